//! `cargo xtask tools`: what is missing is built as a few jobs side by side,
//! longest first, with progress and an estimate from the previous run.
//!
//! A job is what one command builds: the binaries of one Go module (one
//! `go build`, so their shared packages compile once), the Collector, OpenTofu,
//! the Python virtualenv, the Debian packages. Two compiles run at once by
//! default (a `go build` alone leaves a core idle while it downloads and while
//! it links), and the package installs beside them.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Tool, debian, go, opentofu, otelcol, python};
use crate::project::Project;

/// How often a long build says it is still going.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

struct Job {
    /// Key of the timings file: the module folder, or the kind of install.
    key: String,
    tools: Vec<Tool>,
}

impl Job {
    fn names(&self) -> String {
        self.tools.iter().map(Tool::name).collect::<Vec<_>>().join(", ")
    }

    /// Short enough for a progress line: a job of many binaries by its key.
    fn label(&self) -> String {
        if self.tools.len() > 4 { format!("{} ({} tools)", self.key, self.tools.len()) } else { self.names() }
    }

    /// Compiles (Go, the Collector, OpenTofu), as against installs of
    /// prebuilt packages (pip, apt), which mostly wait on the network and
    /// the disk and so run beside the compiles instead of taking a core.
    fn compiles(&self) -> bool {
        !matches!(self.tools[0], Tool::Python(_) | Tool::Debian(_))
    }

    fn run(&self, project: &Project) -> Result<()> {
        match self.tools[0] {
            Tool::Go(_) => {
                let go_tools: Vec<&go::GoTool> =
                    self.tools.iter().filter_map(|t| if let Tool::Go(g) = t { Some(*g) } else { None }).collect();
                go::build(project, &go_tools)
            }
            Tool::Otelcol => otelcol::build(project),
            Tool::OpenTofu => opentofu::build(project),
            Tool::Python(_) => python::install_venv(project),
            Tool::Debian(_) => {
                for tool in &self.tools {
                    if let Tool::Debian(t) = tool {
                        debian::install(t)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The jobs that install `missing`: the Go binaries of one build list (one
/// module, or the members of `tools/go.work`) together.
fn plan(project: &Project, missing: Vec<Tool>) -> Result<Vec<Job>> {
    let mut jobs: Vec<Job> = Vec::new();
    for tool in missing {
        let key = match tool {
            Tool::Go(g) if go::in_workspace(project, g)? => "go/workspace".into(),
            Tool::Go(g) => format!("go/{}", g.dir),
            Tool::Otelcol => "otelcol".into(),
            Tool::OpenTofu => "opentofu".into(),
            Tool::Python(_) => "python".into(),
            Tool::Debian(_) => "debian".into(),
        };
        match jobs.iter_mut().find(|j| j.key == key) {
            Some(job) => job.tools.push(tool),
            None => jobs.push(Job { key, tools: vec![tool] }),
        }
    }
    Ok(jobs)
}

/// Seconds each job took the last time it ran on this machine, or, for a job
/// never run here, on the reference machine (`tools/build-times.json`: a cold
/// run on 2 idle cores, two jobs at a time, empty Go module and build caches,
/// 2026-12-06; debian from 2026-12-05), so that even a first run starts the longest jobs first and
/// can give an estimate.
struct Timings {
    path: PathBuf,
    seconds: BTreeMap<String, f64>,
}

impl Timings {
    fn load(project: &Project) -> Self {
        let read = |path: &std::path::Path| -> BTreeMap<String, f64> {
            fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
        };
        let path = project.tools_dir().join("build-times.json");
        let mut seconds = read(&project.root.join("tools/build-times.json"));
        seconds.extend(read(&path));
        Self { path, seconds }
    }

    fn estimate(&self, job: &Job) -> Option<f64> {
        self.seconds.get(&job.key).copied()
    }

    fn save(&self) -> Result<()> {
        Ok(fs::write(&self.path, serde_json::to_vec_pretty(&self.seconds)?)?)
    }
}

pub struct Built {
    pub name: &'static str,
    pub seconds: f64,
    pub error: Option<String>,
}

/// Installs `missing` with `workers` jobs at a time; one result per tool.
pub fn install(project: &Project, missing: Vec<Tool>, workers: usize) -> Result<Vec<Built>> {
    let mut timings = Timings::load(project);
    let mut jobs = plan(project, missing)?;
    // Longest first: the last job to start should be a short one.
    jobs.sort_by(|a, b| timings.estimate(b).unwrap_or(f64::MAX).total_cmp(&timings.estimate(a).unwrap_or(f64::MAX)));
    let total = jobs.len();
    let known: f64 = jobs.iter().filter(|j| j.compiles()).filter_map(|j| timings.estimate(j)).sum();
    let unknown = jobs.iter().filter(|j| timings.estimate(j).is_none()).count();
    println!(
        "tools: {total} job(s) to run, {workers} compiles at a time and the package installs beside them; {}",
        if unknown == total {
            "no timings from an earlier run on this machine, so no estimate yet".to_string()
        } else {
            format!(
                "about {} min by earlier timings{}",
                minutes(known / workers as f64),
                if unknown > 0 { format!(" ({unknown} job(s) never timed here)") } else { String::new() }
            )
        }
    );
    let (compiles, installs): (VecDeque<_>, VecDeque<_>) = jobs
        .into_iter()
        .enumerate()
        .map(|(index, job)| {
            let estimate = timings.estimate(&job).map_or("never timed".into(), |s| format!("estimated {s:.0} s"));
            (index, job, estimate)
        })
        .partition(|(_, job, _)| job.compiles());
    let compiles = Mutex::new(compiles);
    let installs = Mutex::new(installs);
    // `workers` threads take compiles; one more takes the installs.
    let queues: Vec<&Mutex<VecDeque<_>>> =
        std::iter::repeat_n(&compiles, workers.max(1)).chain(std::iter::once(&installs)).collect();
    let mut measured = BTreeMap::new();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(Event, usize, String)>();
    let mut results = Vec::new();
    std::thread::scope(|scope| {
        for queue in queues {
            let tx = tx.clone();
            scope.spawn(move || {
                loop {
                    // Its own statement: the lock must not be held while the job runs.
                    let next = queue.lock().expect("job queue").pop_front();
                    let Some((index, job, estimate)) = next else { break };
                    let _ = tx.send((Event::Started(estimate), index, job.label()));
                    let began = Instant::now();
                    let outcome = job.run(project).map_err(|e| format!("{e:#}"));
                    let _ =
                        tx.send((Event::Finished(job, began.elapsed().as_secs_f64(), outcome), index, String::new()));
                }
            });
        }
        drop(tx);
        let mut running: BTreeMap<usize, (String, Instant)> = BTreeMap::new();
        let mut done = 0;
        loop {
            match rx.recv_timeout(PROGRESS_EVERY) {
                Ok((Event::Started(estimate), index, label)) => {
                    println!("tools: [{}/{total}] building {label} ({estimate})", index + 1);
                    running.insert(index, (label, Instant::now()));
                }
                Ok((Event::Finished(job, seconds, outcome), index, _)) => {
                    done += 1;
                    running.remove(&index);
                    let state = if outcome.is_ok() { "built" } else { "FAILED" };
                    println!(
                        "tools: [{}/{total}] {state} {} in {seconds:.0} s ({done}/{total} done, {} min elapsed)",
                        index + 1,
                        job.label(),
                        minutes(started.elapsed().as_secs_f64())
                    );
                    if outcome.is_ok() {
                        measured.insert(job.key.clone(), seconds);
                    }
                    for tool in &job.tools {
                        results.push(Built { name: tool.name(), seconds, error: outcome.clone().err() });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now: Vec<String> = running
                        .values()
                        .map(|(names, since)| format!("{names} for {:.0} s", since.elapsed().as_secs_f64()))
                        .collect();
                    println!(
                        "tools: {done}/{total} done after {} min; building {}",
                        minutes(started.elapsed().as_secs_f64()),
                        now.join("; ")
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    timings.seconds.extend(measured);
    timings.save()?;
    Ok(results)
}

enum Event {
    Started(String),
    Finished(Job, f64, Result<(), String>),
}

fn minutes(seconds: f64) -> String {
    format!("{:.1}", seconds / 60.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_of_one_build_list_share_a_job_and_the_rest_do_not() {
        let project = Project::discover().unwrap();
        let go_tools: Vec<Tool> = go::GO_TOOLS.iter().map(Tool::Go).collect();
        let jobs = plan(&project, go_tools.clone()).unwrap();
        let names = |key: &str| jobs.iter().find(|j| j.key == key).map(Job::names).unwrap_or_default();
        assert_eq!(names("go/kubernetes"), "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl");
        let workspace = names("go/workspace");
        for member in
            ["istioctl", "pilot-discovery", "sops", "kwok", "source-controller", "helm-controller", "helm", "kustomize"]
        {
            assert!(workspace.split(", ").any(|n| n == member), "{member} not in the workspace job: {workspace}");
        }
        assert!(!workspace.contains("kyverno"), "kyverno cannot share the workspace's build list");
        let kyverno = names("go/kyverno");
        for member in ["kyverno", "cosign", "kubectl-validate", "cnpg-manager", "prometheus-operator"] {
            assert!(kyverno.split(", ").any(|n| n == member), "{member} not in Kyverno's job: {kyverno}");
        }
        let in_jobs: usize = jobs.iter().map(|j| j.tools.len()).sum();
        assert_eq!(in_jobs, go_tools.len(), "every tool in exactly one job");
    }

    /// A new tool gets a reference time, or a first run would start it last.
    #[test]
    fn every_job_has_a_reference_build_time() {
        let project = Project::discover().unwrap();
        let reference: BTreeMap<String, f64> =
            serde_json::from_slice(&fs::read(project.root.join("tools/build-times.json")).unwrap()).unwrap();
        for job in plan(&project, Tool::all()).unwrap() {
            assert!(reference.contains_key(&job.key), "tools/build-times.json has no time for {}", job.key);
        }
    }
}
