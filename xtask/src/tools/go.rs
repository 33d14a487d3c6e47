//! Tools built from the Go module proxy, one pinned module per tool under `tools/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use super::{fingerprint, read};
use crate::cmd;
use crate::project::Project;

pub struct GoTool {
    /// Binary name.
    pub name: &'static str,
    /// The folder under `tools/` holding the module (several binaries of one
    /// upstream module share it, and so one go.sum and the Go build cache).
    pub dir: &'static str,
    /// Module that provides the tool, as required in `tools/<name>/go.mod`.
    pub module: &'static str,
    pub version: &'static str,
    /// The `tool` directive of `tools/<name>/go.mod`.
    pub package: &'static str,
    /// Linker flags, mostly to stamp the version that a module build cannot know.
    pub ldflags: &'static str,
}

/// The Kubernetes release of the loopback control plane (and its kubectl).
pub const KUBERNETES: &str = "v1.33.13";
const KUBE_LDFLAGS: &str = "-X k8s.io/component-base/version.gitVersion=v1.33.13 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=v1.33.13 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=33";

pub const GO_TOOLS: &[GoTool] = &[
    // The Helm that Flux's helm-controller is built on (its go.mod's
    // version), from the workspace's build list: verify renders charts with
    // the very code that installs them, and its 800 packages are compiled
    // with the controllers' (17 of them are the CLI's own).
    GoTool {
        name: "helm",
        dir: "helm-controller",
        module: "helm.sh/helm/v4",
        version: "v4.2.4",
        package: "helm.sh/helm/v4/cmd/helm",
        ldflags: "-X helm.sh/helm/v4/internal/version.version=v4.2.4",
    },
    GoTool {
        name: "kubeconform",
        dir: "kubeconform",
        module: "github.com/yannh/kubeconform",
        version: "v0.8.0",
        package: "github.com/yannh/kubeconform/cmd/kubeconform",
        ldflags: "-X main.version=v0.8.0",
    },
    // The version Kyverno's CLI requires (it validates with the library), in
    // Kyverno's build list: 3 packages of its own beyond Kyverno's 3,200.
    GoTool {
        name: "kubectl-validate",
        dir: "kyverno",
        module: "sigs.k8s.io/kubectl-validate",
        version: "v0.0.5-0.20260105161640-a97ccfaca20b",
        package: "sigs.k8s.io/kubectl-validate",
        ldflags: "",
    },
    GoTool {
        name: "kyverno",
        dir: "kyverno",
        module: "github.com/kyverno/kyverno",
        version: "v1.19.1",
        package: "github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno",
        ldflags: "-X github.com/kyverno/kyverno/pkg/version.BuildVersion=v1.19.1",
    },
    // The offline proof of the image-signature policy (verify/image_signatures.rs):
    // a loopback registry and the signer, at the versions Kyverno's own module
    // requires, so they build in its build list and share its compiled packages.
    GoTool {
        name: "crane",
        dir: "kyverno",
        module: "github.com/google/go-containerregistry",
        version: "v0.21.8",
        package: "github.com/google/go-containerregistry/cmd/crane",
        ldflags: "",
    },
    GoTool {
        name: "cosign",
        dir: "kyverno",
        module: "github.com/sigstore/cosign/v3",
        version: "v3.1.2",
        package: "github.com/sigstore/cosign/v3/cmd/cosign",
        ldflags: "-X sigs.k8s.io/release-utils/version.gitVersion=v3.1.2",
    },
    GoTool {
        name: "istioctl",
        dir: "istioctl",
        module: "istio.io/istio",
        // Istio tags (`1.30.3`) are not Go semver; the proxy serves only
        // pseudo-versions of master. This is the newest one it serves.
        version: "v0.0.0-20260827124520-eed52ebb66ad",
        package: "istio.io/istio/istioctl/cmd/istioctl",
        ldflags: "-X istio.io/istio/pkg/version.buildVersion=1.30-dev+eed52ebb66ad",
    },
    // istiod (its injection and validation webhooks), from the same module.
    GoTool {
        name: "pilot-discovery",
        dir: "istioctl",
        module: "istio.io/istio",
        version: "v0.0.0-20260827124520-eed52ebb66ad",
        package: "istio.io/istio/pilot/cmd/pilot-discovery",
        ldflags: "-X istio.io/istio/pkg/version.buildVersion=1.30-dev+eed52ebb66ad",
    },
    GoTool {
        name: "actionlint",
        dir: "actionlint",
        module: "github.com/rhysd/actionlint",
        version: "v1.7.12",
        package: "github.com/rhysd/actionlint/cmd/actionlint",
        ldflags: "",
    },
    GoTool {
        name: "jaeger",
        dir: "jaeger",
        module: "github.com/jaegertracing/jaeger",
        version: "v1.76.0",
        package: "github.com/jaegertracing/jaeger/cmd/jaeger",
        ldflags: "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v1.76.0",
    },
    GoTool {
        name: "sops",
        dir: "sops",
        module: "github.com/getsops/sops/v3",
        version: "v3.13.3",
        package: "github.com/getsops/sops/v3/cmd/sops",
        ldflags: "",
    },
    GoTool {
        name: "age-keygen",
        dir: "age-keygen",
        module: "filippo.io/age",
        version: "v1.3.2",
        package: "filippo.io/age/cmd/age-keygen",
        ldflags: "-X main.Version=v1.3.2",
    },
    GoTool {
        name: "argo-condition",
        dir: "argo-condition",
        // Our own command (tools/argo-condition/main.go) on the expression
        // library Argo Rollouts evaluates analysis conditions with.
        module: "github.com/expr-lang/expr",
        version: "v1.17.8",
        package: "demo-platform/tools/argo-condition",
        ldflags: "",
    },
    GoTool {
        name: "podinfo",
        dir: "podinfo",
        module: "github.com/stefanprodan/podinfo",
        // The commit of podinfo 6.9.2 (pkg/version says so); used as an oracle only.
        version: "v1.8.1-0.20250910200901-e86405a8674e",
        package: "github.com/stefanprodan/podinfo/cmd/podinfo",
        ldflags: "-X github.com/stefanprodan/podinfo/pkg/version.REVISION=e86405a8674e",
    },
    // The gRPC check of podinfo's Helm tests (templates/tests/grpc.yaml),
    // run against demo-app by `cargo xtask podinfo-chart`.
    GoTool {
        name: "grpc_health_probe",
        dir: "grpc-health-probe",
        module: "github.com/grpc-ecosystem/grpc-health-probe",
        version: "v0.4.63",
        package: "github.com/grpc-ecosystem/grpc-health-probe",
        ldflags: "",
    },
    // gRPC load for `make bench` (podinfo's Info call, demo-app against podinfo).
    GoTool {
        name: "ghz",
        dir: "ghz",
        module: "github.com/bojand/ghz",
        version: "v0.93.0",
        package: "github.com/bojand/ghz/cmd/ghz",
        ldflags: "-X main.version=0.93.0",
    },
    // The loopback cluster of `cargo xtask reconcile`: the control plane of the
    // Kubernetes minor that infra/ provisions (EKS and kind: 1.33), simulated
    // nodes, and the controllers the clusters run, at the versions their
    // charts and CRDs name (Flux 2.9: source/kustomize 1.9, helm 1.6).
    GoTool {
        name: "etcd",
        dir: "etcd",
        module: "go.etcd.io/etcd/server/v3",
        version: "v3.7.3",
        package: "go.etcd.io/etcd/server/v3",
        ldflags: "",
    },
    GoTool {
        name: "kube-apiserver",
        dir: "kubernetes",
        module: "k8s.io/kubernetes",
        version: KUBERNETES,
        package: "k8s.io/kubernetes/cmd/kube-apiserver",
        ldflags: KUBE_LDFLAGS,
    },
    GoTool {
        name: "kube-controller-manager",
        dir: "kubernetes",
        module: "k8s.io/kubernetes",
        version: KUBERNETES,
        package: "k8s.io/kubernetes/cmd/kube-controller-manager",
        ldflags: KUBE_LDFLAGS,
    },
    GoTool {
        name: "kube-scheduler",
        dir: "kubernetes",
        module: "k8s.io/kubernetes",
        version: KUBERNETES,
        package: "k8s.io/kubernetes/cmd/kube-scheduler",
        ldflags: KUBE_LDFLAGS,
    },
    // The loopback cluster's kubectl (reconcile/kube.rs).
    GoTool {
        name: "kubectl",
        dir: "kubernetes",
        module: "k8s.io/kubernetes",
        version: KUBERNETES,
        package: "k8s.io/kubernetes/cmd/kubectl",
        ldflags: KUBE_LDFLAGS,
    },
    GoTool {
        name: "kwok",
        dir: "kwok",
        module: "sigs.k8s.io/kwok",
        version: "v0.8.0",
        package: "sigs.k8s.io/kwok/cmd/kwok",
        ldflags: "-X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0",
    },
    // The kustomize that kustomize-controller is built on (sigs.k8s.io/kustomize/api
    // v0.21.1 is kustomize v5.8.1's), in the workspace's build list: verify
    // and the reconcile model render what the controller would.
    GoTool {
        name: "kustomize",
        dir: "kustomize-controller",
        module: "sigs.k8s.io/kustomize/kustomize/v5",
        version: "v5.8.1",
        package: "sigs.k8s.io/kustomize/kustomize/v5",
        ldflags: "",
    },
    // The artifact library v0.18.3 that source-controller 1.9.6 asks for is not
    // served by the module proxy; its go.mod replaces it with v0.18.0.
    GoTool {
        name: "source-controller",
        dir: "source-controller",
        module: "github.com/fluxcd/source-controller",
        version: "v1.9.6",
        package: "github.com/fluxcd/source-controller",
        ldflags: "",
    },
    GoTool {
        name: "kustomize-controller",
        dir: "kustomize-controller",
        module: "github.com/fluxcd/kustomize-controller",
        version: "v1.9.6",
        package: "github.com/fluxcd/kustomize-controller",
        ldflags: "",
    },
    GoTool {
        name: "helm-controller",
        dir: "helm-controller",
        module: "github.com/fluxcd/helm-controller",
        version: "v1.6.4",
        package: "github.com/fluxcd/helm-controller",
        ldflags: "",
    },
    GoTool {
        name: "notification-controller",
        dir: "notification-controller",
        module: "github.com/fluxcd/notification-controller",
        version: "v1.9.3",
        package: "github.com/fluxcd/notification-controller",
        ldflags: "",
    },
    // Flux's image automation, which the bootstrap adds for dev and staging.
    GoTool {
        name: "image-reflector-controller",
        dir: "image-reflector-controller",
        module: "github.com/fluxcd/image-reflector-controller",
        version: "v1.2.4",
        package: "github.com/fluxcd/image-reflector-controller",
        ldflags: "",
    },
    GoTool {
        name: "image-automation-controller",
        dir: "image-automation-controller",
        module: "github.com/fluxcd/image-automation-controller",
        version: "v1.2.4",
        package: "github.com/fluxcd/image-automation-controller",
        ldflags: "",
    },
    // Kyverno's controllers, from the same module as its CLI.
    GoTool {
        name: "kyverno-admission-controller",
        dir: "kyverno",
        module: "github.com/kyverno/kyverno",
        version: "v1.19.1",
        package: "github.com/kyverno/kyverno/cmd/kyverno",
        ldflags: "-X github.com/kyverno/kyverno/pkg/version.BuildVersion=v1.19.1",
    },
    GoTool {
        name: "kyverno-reports-controller",
        dir: "kyverno",
        module: "github.com/kyverno/kyverno",
        version: "v1.19.1",
        package: "github.com/kyverno/kyverno/cmd/reports-controller",
        ldflags: "-X github.com/kyverno/kyverno/pkg/version.BuildVersion=v1.19.1",
    },
    GoTool {
        name: "kyverno-background-controller",
        dir: "kyverno",
        module: "github.com/kyverno/kyverno",
        version: "v1.19.1",
        package: "github.com/kyverno/kyverno/cmd/background-controller",
        ldflags: "-X github.com/kyverno/kyverno/pkg/version.BuildVersion=v1.19.1",
    },
    // The version chart argo-rollouts 2.41.0 deploys (its appVersion), with
    // that chart's CRDs.
    GoTool {
        name: "rollouts-controller",
        dir: "argo-rollouts",
        module: "github.com/argoproj/argo-rollouts",
        version: "v1.9.0",
        package: "github.com/argoproj/argo-rollouts/cmd/rollouts-controller",
        ldflags: "",
    },
    // The CloudNativePG operator: its webhooks admit the app's database
    // Cluster, and it reconciles that Cluster. Built in Kyverno's build list
    // (the same Kubernetes libraries and controller-runtime): 200 packages of
    // its own instead of 880.
    GoTool {
        name: "cnpg-manager",
        dir: "kyverno",
        module: "github.com/cloudnative-pg/cloudnative-pg",
        version: "v1.30.0",
        package: "github.com/cloudnative-pg/cloudnative-pg/cmd/manager",
        ldflags: "",
    },
    // The Prometheus Operator of kube-prometheus-stack 88.2.0 (its
    // appVersion): its webhook admits PrometheusRules, and it turns the
    // Prometheus and Alertmanager objects into StatefulSets. In Kyverno's
    // build list, not the workspace's: joining that would raise the Flux
    // controllers' Prometheus libraries by minor versions.
    GoTool {
        name: "prometheus-operator",
        dir: "kyverno",
        module: "github.com/prometheus-operator/prometheus-operator",
        version: "v0.93.0",
        package: "github.com/prometheus-operator/prometheus-operator/cmd/operator",
        ldflags: "-X github.com/prometheus/common/version.Version=0.93.0",
    },
];

fn module_dir(project: &Project, tool: &GoTool) -> PathBuf {
    project.root.join("tools").join(tool.dir)
}

/// `go env GOVERSION`, once per process: a new Go means a new build.
pub fn go_version() -> Result<&'static str> {
    static VERSION: OnceLock<String> = OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(v);
    }
    let out = cmd::run(Command::new("go").args(["env", "GOVERSION"]))
        .context("Go is required (>= 1.26); install it and put `go` on PATH")?;
    Ok(VERSION.get_or_init(|| cmd::first_line(&out)))
}

/// `tools/go.work`: the tools built on one build list (see its comments).
fn workspace_file(project: &Project) -> PathBuf {
    project.root.join("tools/go.work")
}

/// The module folders `tools/go.work` uses, as `use ./<dir>` lines name them.
pub fn workspace_members(project: &Project) -> Result<Vec<String>> {
    let text = String::from_utf8(read(&workspace_file(project))?)?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("use ").trim().strip_prefix("./"))
        .map(str::to_string)
        .collect())
}

pub fn in_workspace(project: &Project, tool: &GoTool) -> Result<bool> {
    Ok(workspace_members(project)?.iter().any(|m| m == tool.dir))
}

/// The pin files a tool's build list comes from: its module's, and for a
/// workspace member every member's and the workspace's own.
fn pin_files(project: &Project, tool: &GoTool) -> Result<Vec<PathBuf>> {
    let tools = project.root.join("tools");
    if !in_workspace(project, tool)? {
        let dir = module_dir(project, tool);
        return Ok(vec![dir.join("go.mod"), dir.join("go.sum")]);
    }
    let mut files = vec![workspace_file(project), tools.join("go.work.sum")];
    for member in workspace_members(project)? {
        files.push(tools.join(&member).join("go.mod"));
        files.push(tools.join(&member).join("go.sum"));
    }
    for stub in fs::read_dir(tools.join("stub"))? {
        files.push(stub?.path().join("go.mod"));
    }
    files.sort();
    Ok(files)
}

pub fn binary_path(project: &Project, tool: &GoTool) -> Result<PathBuf> {
    let dir = module_dir(project, tool);
    let mut parts = Vec::new();
    for file in pin_files(project, tool)? {
        parts.push(file.strip_prefix(&project.root).unwrap_or(&file).as_os_str().as_encoded_bytes().to_vec());
        parts.push(read(&file)?);
    }
    parts.push(go_version()?.as_bytes().to_vec());
    parts.push(tool.ldflags.as_bytes().to_vec());
    parts.push(COMPILE_FLAGS.as_bytes().to_vec());
    // A tool with sources of its own (tools/argo-condition) is rebuilt when
    // they change; upstream tools have none, so their key stays the same.
    let mut sources: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "go"))
        .collect();
    sources.sort();
    for source in &sources {
        parts.push(source.file_name().unwrap_or_default().as_encoded_bytes().to_vec());
        parts.push(fs::read(source)?);
    }
    let key = fingerprint(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    Ok(project.tools_dir().join("go").join(format!("{}-{key}", tool.name)).join(tool.name))
}

/// No DWARF from the compiler (`-ldflags=-w` drops it at link time anyway;
/// sops from an empty build cache: 148 s with it, 132 s without) and no
/// inlining (helm from an empty build cache: 92 s, 180 CPU-s with it; 72 s,
/// 139 CPU-s without). Inlining makes a tool's hot loops faster; ours spend
/// their time in I/O and waiting, and a first run spends it compiling.
pub const COMPILE_FLAGS: &str = "-gcflags=all=-dwarf=false -l";

/// `go` for building a tool in `dir`: no cgo, and the compiler's garbage
/// collector at a quarter of its default pace (GOGC=400: helm from an empty
/// build cache 4 % faster; a compile's heap grows, and there is room for it).
pub fn go_build(dir: &Path) -> Command {
    let mut go = Command::new("go");
    go.current_dir(dir).env("CGO_ENABLED", "0").env("GOGC", "400");
    go
}

/// Builds several binaries of one build list (one module, or the workspace) in
/// one `go build`: one action graph, so the packages they share compile once
/// and their links run side by side. The linker flags of all of them are
/// passed to each link; a `-X` for a package a binary does not contain is
/// ignored by the linker, so each binary gets its own stamps.
pub fn build(project: &Project, tools: &[&GoTool]) -> Result<()> {
    let first = tools.first().context("nothing to build")?;
    let workspace = in_workspace(project, first)?;
    for other in tools {
        if other.dir != first.dir && !(workspace && in_workspace(project, other)?) {
            bail!("{} and {} do not share a build list and cannot share one go build", first.name, other.name);
        }
    }
    let mut ldflags: Vec<&str> = Vec::new();
    for tool in tools {
        if !tool.ldflags.is_empty() && !ldflags.contains(&tool.ldflags) {
            ldflags.push(tool.ldflags);
        }
    }
    let label = if workspace { "workspace" } else { first.dir };
    let staging = project.tools_dir().join("go").join(format!(".building-{label}"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    let mut build = go_build(&module_dir(project, first));
    build
        .env("GOWORK", if workspace { workspace_file(project).into_os_string() } else { "off".into() })
        .args(["build", "-trimpath", "-mod=readonly", COMPILE_FLAGS])
        .args(["-ldflags", &format!("-s -w {}", ldflags.join(" "))])
        // `-o <folder>/` names each binary after its package.
        .arg("-o")
        .arg(format!("{}/", staging.display()))
        .args(tools.iter().map(|t| t.package));
    let specs: Vec<String> = tools.iter().map(|t| format!("{}@{}", t.package, t.version)).collect();
    cmd::run(&mut build).with_context(|| format!("building {} failed", specs.join(", ")))?;
    for tool in tools {
        let target = binary_path(project, tool)?;
        let out_dir = target.parent().expect("binary path has a folder");
        let built = staging.join(binary_name_of(tool.package));
        let _ = fs::remove_dir_all(out_dir);
        fs::create_dir_all(out_dir)?;
        fs::rename(&built, &target).with_context(|| format!("go build produced no {}", built.display()))?;
    }
    fs::remove_dir_all(&staging)?;
    Ok(())
}

/// The file `go build -o <folder>/` writes for a main package: the last element
/// of its import path, or the one before a major-version suffix (`.../server/v3`).
fn binary_name_of(package: &str) -> &str {
    let mut parts = package.rsplit('/');
    let last = parts.next().unwrap_or(package);
    let is_major = last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    if is_major { parts.next().unwrap_or(last) } else { last }
}

/// The source folder of a Go tool's upstream module in the module cache
/// (downloaded by its build): data files some tools need at run time, such as
/// kwok's stages and Flux's CRDs, come from the pinned version itself.
pub fn module_source(project: &Project, name: &str) -> Result<PathBuf> {
    let tool = GO_TOOLS
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("`{name}` is not a Go tool of this project"))?;
    let spec = format!("{}@{}", tool.module, tool.version);
    let out = cmd::run(
        Command::new("go")
            .current_dir(module_dir(project, tool))
            .env("GOWORK", "off")
            .args(["mod", "download", "-json", &spec]),
    )
    .with_context(|| format!("cannot find the source of {spec} in the Go module cache; run `make tools`"))?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    info["Dir"].as_str().map(PathBuf::from).context("`go mod download -json` printed no Dir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names_follow_go_build() {
        assert_eq!(binary_name_of("k8s.io/kubernetes/cmd/kube-apiserver"), "kube-apiserver");
        assert_eq!(binary_name_of("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(binary_name_of("github.com/fluxcd/source-controller"), "source-controller");
        assert_eq!(binary_name_of("example.com/v2tool"), "v2tool");
    }

    /// The table above and the go.mod files must agree, or the table lies.
    #[test]
    fn every_go_tool_matches_its_go_mod() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for tool in GO_TOOLS {
            let go_mod = fs::read_to_string(root.join("tools").join(tool.dir).join("go.mod")).unwrap();
            // `tool x` alone, or `x` inside a `tool ( … )` block.
            let tools = go_mod.lines().map(|l| l.trim().trim_start_matches("tool ").trim());
            assert!(
                tools.into_iter().any(|l| l == tool.package),
                "tools/{}/go.mod lacks `tool {}`",
                tool.dir,
                tool.package
            );
            let required = format!("{} {}", tool.module, tool.version);
            assert!(
                go_mod.lines().any(|l| l.trim().trim_start_matches("require ").starts_with(&required)),
                "tools/{}/go.mod does not require {required}",
                tool.dir
            );
        }
    }
}
