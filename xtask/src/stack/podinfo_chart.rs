//! `cargo xtask podinfo-chart` (part of `make test`): podinfo's own Helm
//! chart runs demo-app. The chart of the podinfo we build (in its Go module,
//! `charts/podinfo`) is rendered with only the image changed; demo-app is
//! started the way the kubelet would start that container (its command and
//! args from /home/app, its environment, the /data volume), its exec probes
//! run as written (`podcli check http ...`: demo-app answers to that name,
//! as the image links it), then every Helm test pod's command, with the
//! Service's DNS name pointing at loopback; once with the chart's defaults
//! and once with its HTTPS port on (tls.enabled, a self-signed Secret).
//! Tools are the real ones: curl and jq (Debian), grpc_health_probe (Go
//! module), openssl for the certificate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::app;
use super::process::{self, Supervisor, poll_until};
use crate::cmd;
use crate::project::Project;
use crate::tools::{self, go};

const RELEASE: &str = "podinfo";
const NAMESPACE: &str = "default";
/// The ports the chart's container listens on (values: service.*Port).
const PORTS: [u16; 4] = [9898, 9797, 9899, 9999];

pub fn run(project: &Project) -> Result<()> {
    process::install_signal_flag()?;
    let helm = tools::locate(project, "helm")?;
    let openssl = tools::locate(project, "openssl")?;
    let chart = chart_dir(project)?;
    let binary = app::build(project)?;

    // The image's layout (Dockerfile): /home/app/podinfo and podcli are demo-app.
    let root = tempfile::tempdir()?;
    let (workdir, bin) = (root.path().join("home/app"), root.path().join("bin"));
    for dir in [&workdir, &bin] {
        std::fs::create_dir_all(dir)?;
    }
    std::os::unix::fs::symlink(&binary, workdir.join("podinfo"))?;
    std::os::unix::fs::symlink(&binary, bin.join("podcli"))?;
    let path = search_path(project, &bin)?;
    for port in PORTS {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            bail!("port {port} is taken: podinfo's chart listens on 9898, 9797, 9899 and 9999; stop what holds it");
        }
    }

    // The chart's defaults, then with its HTTPS port (and its tls test).
    for (variant, sets) in [("defaults", &[][..]), ("tls.enabled=true", &["tls.enabled=true"][..])] {
        let rendered = render(&helm, &chart, sets)?;
        let data = root.path().join(format!("data-{}", variant.replace('=', "-")));
        // The TLS Secret the chart mounts at tls.certPath (under /data).
        std::fs::create_dir_all(data.join("cert"))?;
        self_signed(&openssl, &data.join("cert"))?;
        let summary = start_and_check(&rendered, &workdir, &data, &path, root.path())?;
        println!("podinfo chart {} ({variant}): {summary}", rendered.version);
    }
    Ok(())
}

/// demo-app started as the chart's container (the pod's /data volume is
/// `data`), its probes and the chart's Helm tests run; what passed.
fn start_and_check(rendered: &Rendered, workdir: &Path, data: &Path, path: &str, logs: &Path) -> Result<String> {
    let container = &rendered.deployment["spec"]["template"]["spec"]["containers"][0];
    let (command, env) = (strings(&container["command"])?, env_of(container));
    let (program, args) = command.split_first().context("the container has no command")?;
    let on_volume = |arg: &String| arg.replace("=/data", &format!("={}", data.display()));
    let mut start = Command::new(workdir.join(program.trim_start_matches("./")));
    super::clean_env(&mut start);
    start
        .current_dir(workdir)
        .args(args.iter().map(on_volume))
        .envs(env.iter().cloned())
        // The chart mounts its data volume at /data, the binary's default path.
        .env("DEMO_APP_DATA_PATH", data);
    let mut supervisor = Supervisor::default();
    let log = logs.join(format!("{}.log", data.file_name().unwrap_or_default().to_string_lossy()));
    // SIGTERM's grace: the chart sets no --drain-delay (5 s by default),
    // then in-flight requests get --server-shutdown-timeout (5 s).
    supervisor.spawn("demo-app", start, &log, Duration::from_secs(15))?;
    let outcome = probes_and_tests(container, &rendered.tests, path);
    let status = supervisor.stop("demo-app")?;
    let summary = outcome.map_err(|e| {
        let tail = supervisor.log_tails(15).into_iter().map(|(_, tail)| tail).collect::<String>();
        e.context(format!("demo-app's log ends:\n{tail}"))
    })?;
    if !status.success() {
        bail!("demo-app exited with {status} on SIGTERM");
    }
    Ok(format!("demo-app started with its {} args and {} variables; {summary}", args.len(), env.len()))
}

/// A key and self-signed certificate in `dir`, named as a kubernetes.io/tls
/// Secret's keys.
fn self_signed(openssl: &Path, dir: &Path) -> Result<()> {
    let mut req = Command::new(openssl);
    req.args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=podinfo", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"));
    cmd::run(&mut req).map(drop)
}

struct Rendered {
    version: String,
    deployment: Value,
    /// (name, pod) of each Helm test hook the chart renders.
    tests: Vec<(String, Value)>,
}

/// The chart in the podinfo module that `make tools` builds from.
fn chart_dir(project: &Project) -> Result<PathBuf> {
    let podinfo = go::GO_TOOLS.iter().find(|t| t.name == "podinfo").context("podinfo is a Go tool")?;
    let mut download = Command::new("go");
    download.current_dir(project.root.join("tools").join(podinfo.dir)).args([
        "mod",
        "download",
        "-json",
        &format!("{}@{}", podinfo.module, podinfo.version),
    ]);
    let out = cmd::capture(&mut download)?;
    let info: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("`go mod download` said: {}", cmd::tail(&out.stderr, &out.stdout, 10)))?;
    let dir = PathBuf::from(info["Dir"].as_str().context("`go mod download -json` gave no Dir")?);
    Ok(dir.join("charts/podinfo"))
}

/// `helm template` with the image changed, and `sets`.
fn render(helm: &Path, chart: &Path, sets: &[&str]) -> Result<Rendered> {
    let mut template = Command::new(helm);
    template.args(["template", RELEASE]).arg(chart).args(["--namespace", NAMESPACE]);
    template.args(["--set", "image.repository=demo-app", "--set", "image.tag=local"]);
    for set in sets {
        template.args(["--set", set]);
    }
    let out = cmd::capture(&mut template)?;
    if !out.status.success() {
        bail!("helm template failed: {}", cmd::tail(&out.stderr, &out.stdout, 20));
    }
    let docs = crate::flux::documents_of(&String::from_utf8_lossy(&out.stdout))?;
    let deployment =
        docs.iter().find(|d| d["kind"] == "Deployment").context("the chart renders no Deployment")?.clone();
    let tests: Vec<(String, Value)> = docs
        .iter()
        .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"].as_str().is_some_and(|h| h.contains("test")))
        .map(|d| (d["metadata"]["name"].as_str().unwrap_or("?").to_string(), d.clone()))
        .collect();
    if tests.is_empty() {
        bail!("the chart renders no Helm test");
    }
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml"))?;
    let version = chart_yaml.lines().find_map(|l| l.strip_prefix("version:")).unwrap_or("?").trim().to_string();
    Ok(Rendered { version, deployment, tests })
}

/// The probes as the kubelet runs them (startup until it passes, then
/// liveness and readiness once), then every Helm test.
fn probes_and_tests(container: &Value, tests: &[(String, Value)], path: &str) -> Result<String> {
    // The probes the chart renders (startup only when enabled in values).
    let probes: Vec<(&str, Vec<String>)> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .into_iter()
        .filter(|kind| !container[*kind].is_null())
        .map(|kind| {
            Ok((kind, strings(&container[kind]["exec"]["command"]).with_context(|| format!("the chart's {kind}"))?))
        })
        .collect::<Result<_>>()?;
    let (first, _) = probes.first().context("the chart renders no probe")?;
    let started = Instant::now();
    poll_until(&format!("the chart's {first} to pass"), Duration::from_secs(30), Duration::from_millis(300), |last| {
        let (ok, said) = exec(&probes[0].1, &[], path)?;
        *last = said;
        Ok(ok.then_some(()))
    })?;
    let up = started.elapsed();
    for (kind, line) in &probes[1..] {
        let (ok, said) = exec(line, &[], path)?;
        if !ok {
            bail!("the chart's {kind} failed: {said}");
        }
    }
    let probed: Vec<&str> = probes.iter().map(|(kind, _)| kind.trim_end_matches("Probe")).collect();
    let service = format!("{RELEASE}.{NAMESPACE}");
    let mut passed = Vec::new();
    for (name, pod) in tests {
        for test in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let mut line = strings(&test["command"]).with_context(|| format!("the command of Helm test {name}"))?;
            line.extend(strings(&test["args"]).unwrap_or_default());
            // The Service's name resolves to the pod: here, loopback.
            let line: Vec<String> = line.iter().map(|part| part.replace(&service, "127.0.0.1")).collect();
            let env: Vec<(String, String)> =
                env_of(test).into_iter().map(|(k, v)| (k, v.replace(&service, "127.0.0.1"))).collect();
            let (ok, said) = exec(&line, &env, path)?;
            if !ok {
                bail!("Helm test {name} failed: `{}`: {said}", line.join(" "));
            }
            passed.push(name.trim_start_matches(&format!("{RELEASE}-")).split('-').next().unwrap_or(name).to_string());
        }
    }
    Ok(format!(
        "probes {} passed (the first after {:.1} s); Helm tests passed: {} of {} ({})",
        probed.join(", "),
        up.as_secs_f64(),
        passed.len(),
        tests.len(),
        passed.join(", ")
    ))
}

/// Runs a container command line (at most 30 s): success, and what it said.
fn exec(line: &[String], env: &[(String, String)], path: &str) -> Result<(bool, String)> {
    let (program, args) = line.split_first().context("an empty command")?;
    let mut command = Command::new("timeout");
    command.arg("30").arg(program).args(args).env("PATH", path).envs(env.iter().cloned());
    let out = cmd::capture(&mut command)?;
    Ok((out.status.success(), cmd::tail(&out.stderr, &out.stdout, 5)))
}

/// The image's bin folder, then the tools (curl, jq, grpc_health_probe), then
/// the system's (sh).
fn search_path(project: &Project, image_bin: &Path) -> Result<String> {
    let mut dirs = vec![image_bin.to_path_buf()];
    for tool in ["curl", "jq", "grpc_health_probe"] {
        let found = tools::locate(project, tool)?;
        dirs.push(found.parent().context("a tool has a folder")?.to_path_buf());
    }
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    Ok(std::env::join_paths(dirs)?.to_string_lossy().into_owned())
}

fn strings(value: &Value) -> Result<Vec<String>> {
    let list = value.as_array().with_context(|| format!("expected a list of strings, found {value}"))?;
    Ok(list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
}

/// A container's literal `env` entries.
fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}
