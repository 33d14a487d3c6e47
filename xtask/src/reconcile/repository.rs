//! What Flux is pointed at: the working tree as a Git repository (tracked
//! and untracked files, as on disk, minus what .gitignore excludes), and one
//! chart folder per HelmRepository of the environment.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cmd;
use crate::flux::{self, Renderer};
use crate::project::Project;

pub struct Repository {
    pub git: PathBuf,
    /// The folder `git http-backend` serves (`GIT_PROJECT_ROOT`).
    pub root: PathBuf,
    pub bare: PathBuf,
    index: PathBuf,
    work_tree: PathBuf,
}

impl Repository {
    /// A bare repository with one commit of the working tree on `main`.
    pub fn publish(git: &Path, work_tree: &Path, dir: &Path) -> Result<Self> {
        let root = dir.join("git");
        let bare = root.join("platform.git");
        let repo = Repository {
            git: git.to_path_buf(),
            root,
            bare,
            index: dir.join("git-index"),
            work_tree: work_tree.into(),
        };
        cmd::run(Command::new(git).args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(&repo.bare))?;
        // Image automation pushes its commits, as to GitHub.
        cmd::run(Command::new(git).arg("-C").arg(&repo.bare).args(["config", "http.receivepack", "true"]))?;
        repo.git_in_tree(&["add", "--all"])?;
        repo.commit("the working tree")?;
        Ok(repo)
    }

    /// The index as of `main`: Flux's image automation pushes to it too.
    fn checkout_index(&self) -> Result<()> {
        self.git_in_tree(&["read-tree", "refs/heads/main"]).map(|_| ())
    }

    /// The last commit on `main` (its message, first line).
    pub fn head_subject(&self) -> Result<String> {
        self.git_in_tree(&["log", "-1", "--format=%s", "refs/heads/main"])
    }

    fn git_in_tree(&self, args: &[&str]) -> Result<String> {
        let out = cmd::run(
            Command::new(&self.git)
                .env("GIT_DIR", &self.bare)
                .env("GIT_WORK_TREE", &self.work_tree)
                .env("GIT_INDEX_FILE", &self.index)
                .args(args),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Commits the index on top of `main`; returns the commit.
    fn commit(&self, message: &str) -> Result<String> {
        let tree = self.git_in_tree(&["write-tree"])?;
        let parent = self.git_in_tree(&["rev-parse", "--verify", "--quiet", "refs/heads/main"]).ok();
        let mut args = vec!["-c", "user.name=loopback", "-c", "user.email=loopback@localhost", "commit-tree", &tree];
        if let Some(parent) = parent.as_deref().filter(|p| !p.is_empty()) {
            args.extend(["-p", parent]);
        }
        args.extend(["-m", message]);
        let commit = self.git_in_tree(&args)?;
        self.git_in_tree(&["update-ref", "refs/heads/main", &commit])?;
        Ok(commit)
    }

    /// `path` as of `main` (with the commits image automation pushed).
    pub fn read_file(&self, path: &str) -> Result<String> {
        self.git_in_tree(&["show", &format!("refs/heads/main:{path}")]).map(|text| text + "\n")
    }

    /// Commits `path` (relative to the repository root) with new contents,
    /// as a developer's push would; the working tree is not touched.
    pub fn commit_file(&self, path: &str, contents: &str, message: &str) -> Result<String> {
        self.checkout_index()?;
        self.stage_file(path, contents)?;
        self.commit(message)
    }

    /// Puts `path` with new contents in the next commit (`commit_staged`).
    pub fn stage_file(&self, path: &str, contents: &str) -> Result<()> {
        let scratch = self.index.with_extension("blob");
        std::fs::write(&scratch, contents)?;
        let blob = self.git_in_tree(&["hash-object", "-w", &scratch.display().to_string()])?;
        self.git_in_tree(&["update-index", "--add", "--cacheinfo", &format!("100644,{blob},{path}")])?;
        Ok(())
    }

    /// Commits what `stage_file` staged since the last commit.
    pub fn commit_staged(&self, message: &str) -> Result<String> {
        self.commit(message)
    }

    /// Removes `path` from the next commit.
    pub fn remove_file(&self, path: &str, message: &str) -> Result<String> {
        self.checkout_index()?;
        self.git_in_tree(&["update-index", "--force-remove", path])?;
        self.commit(message)
    }
}

/// Chart folders to serve (key → folder with `index.yaml`), and per Flux
/// Kustomization the HelmRepositories it applies: (has patches, [(name, key)]).
pub type ChartPlan = (HashMap<String, PathBuf>, RepositoriesByKustomization);

/// Flux Kustomization → (whether it has `spec.patches`, [(HelmRepository, chart folder key)]).
pub type RepositoriesByKustomization = BTreeMap<String, (bool, Vec<(String, String)>)>;

pub fn chart_plan(project: &Project, env: &str, dir: &Path) -> Result<ChartPlan> {
    let renderer = Renderer::new(project, &project.root)?;
    let built = flux::kustomizations(&flux::Kustomizer::new(project)?, &project.root, env)?;
    let docs: Vec<&Value> = built.iter().flat_map(|(_, docs)| docs.iter()).collect();
    let repo_url = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "HelmRepository" && d["metadata"]["name"] == name)
            .and_then(|d| d["spec"]["url"].as_str())
    };
    // One chart each HelmRepository serves finds its folder.
    let mut folders: HashMap<String, PathBuf> = HashMap::new();
    let mut keys: HashMap<String, String> = HashMap::new();
    for release in docs.iter().filter(|d| d["kind"] == "HelmRelease") {
        let spec = &release["spec"]["chart"]["spec"];
        if spec["sourceRef"]["kind"] != "HelmRepository" {
            continue;
        }
        let repository = spec["sourceRef"]["name"].as_str().unwrap_or_default();
        let url = repo_url(repository)
            .with_context(|| format!("HelmRelease {}: no HelmRepository {repository}", release["metadata"]["name"]))?;
        let (chart, version) =
            (spec["chart"].as_str().unwrap_or_default(), spec["version"].as_str().unwrap_or_default());
        let archive = renderer.charts.locate(&crate::flux::object_id(release), url, chart, version)?;
        let folder = archive.parent().context("chart archive has a folder")?.to_path_buf();
        let key = crate::tools::fingerprint(&[url.as_bytes()]);
        let folder = match folders.get(&key) {
            Some(done) => done.clone(),
            None => served_folder(project, &renderer.helm, &folder, &dir.join("charts").join(&key))?,
        };
        folders.insert(key.clone(), folder);
        keys.insert(repository.to_string(), key);
    }
    let mut patches = BTreeMap::new();
    for (ks, docs) in &built {
        let repos: Vec<(String, String)> = docs
            .iter()
            .filter(|d| d["kind"] == "HelmRepository")
            .filter_map(|d| {
                let name = d["metadata"]["name"].as_str()?;
                Some((name.to_string(), keys.get(name)?.clone()))
            })
            .collect();
        if repos.is_empty() {
            continue;
        }
        let name = ks["metadata"]["name"].as_str().unwrap_or_default().to_string();
        patches.insert(name, (ks["spec"]["patches"].as_array().is_some_and(|p| !p.is_empty()), repos));
    }
    Ok((folders, patches))
}

/// A copy of a chart repository folder, as it is published: the mirror's
/// stub of Kyverno's `kyverno-api` subchart (see the mirror's SOURCES.md)
/// gets the policies.kyverno.io CRDs the published subchart carries, from
/// Kyverno's own module; a folder of pulled charts gets its `index.yaml`.
fn served_folder(project: &Project, helm: &Path, from: &Path, to: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tgz") {
            copy_chart(project, helm, &path, to)?;
        }
    }
    cmd::run(Command::new(helm).arg("repo").arg("index").arg(to))?;
    Ok(to.to_path_buf())
}

fn copy_chart(project: &Project, helm: &Path, archive: &Path, to: &Path) -> Result<()> {
    let name = archive.file_name().context("chart archive has a name")?;
    let unpacked = tempfile::tempdir()?;
    cmd::run(Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(unpacked.path()))?;
    let stub = std::fs::read_dir(unpacked.path())?
        .flatten()
        .map(|e| e.path().join("charts/kyverno-api"))
        .find(|p| p.join("Chart.yaml").is_file() && !p.join("templates").exists());
    let Some(stub) = stub else {
        std::fs::copy(archive, to.join(name))?;
        return Ok(());
    };
    let crds =
        crate::tools::module_source(project, "kyverno-admission-controller")?.join("config/crds/policies.kyverno.io");
    std::fs::create_dir_all(stub.join("templates"))?;
    for crd in std::fs::read_dir(&crds).with_context(|| format!("no CRDs in {}", crds.display()))? {
        let crd = crd?.path();
        std::fs::copy(&crd, stub.join("templates").join(crd.file_name().context("CRD file name")?))?;
    }
    let chart = stub.parent().and_then(Path::parent).context("subchart inside a chart")?;
    cmd::run(Command::new(helm).arg("package").arg(chart).arg("--destination").arg(to))?;
    Ok(())
}
