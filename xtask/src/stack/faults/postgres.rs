//! PostgreSQL dies under load: every process of the server is SIGKILLed (an
//! OOM kill of its container) while four writers create orders, then it
//! starts again and runs crash recovery. demo-app must answer 503 while it is
//! gone (never 500, never a hang), serve again by itself, and keep every
//! acknowledged order exactly once; writers retry with the same
//! Idempotency-Key, so an order committed but unanswered is replayed, not
//! duplicated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{App, Programs};
use crate::cmd;
use crate::stack::http;
use crate::stack::process::poll_until;

/// PostgreSQL refuses to run as root: the cluster belongs to this OS user.
const SERVICE_USER: &str = "postgres";

pub(super) fn killed_under_load(programs: &Programs) -> Result<String> {
    let mut server = Server::init(&programs.postgres_bin)?;
    server.start()?;
    let dir = tempfile::tempdir()?;
    let url = server.url();
    let app = App::start_with(programs, &dir.path().join("data"), &[("DEMO_APP_DATABASE_URL", &url)])?;
    let writers = Writers::start(app.port);

    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = writers.acknowledged_count();
    let killed = server.kill()?;
    let outage_started = Instant::now();
    poll_until("readiness to report the database gone", Duration::from_secs(10), Duration::from_millis(100), |last| {
        let status = app.status("/readyz");
        *last = format!("/readyz {status}");
        Ok((status == 503).then_some(()))
    })?;
    std::thread::sleep(Duration::from_secs(2));
    let during_outage = writers.acknowledged_count() - before_kill;

    server.start()?;
    let restarted = Instant::now();
    let acknowledged_at_restart = writers.acknowledged_count();
    poll_until("orders to succeed again", Duration::from_secs(30), Duration::from_millis(100), |last| {
        let (count, ready) = (writers.acknowledged_count(), app.status("/readyz"));
        *last = format!("{} acknowledged since the restart, /readyz {ready}", count - acknowledged_at_restart);
        Ok((count > acknowledged_at_restart && ready == 200).then_some(()))
    })?;
    let recovery = restarted.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (acknowledged, statuses) = writers.stop();

    let mut missing = Vec::new();
    for (key, order) in &acknowledged {
        let stored = http::get(app.port, &format!("/api/orders/{}", order["id"]))?;
        if stored.status != 200 || stored.json()? != *order {
            missing.push(key.clone());
        }
    }
    let rows = super::all_orders(app.port)?.0;
    let peak = app.stop()?;
    let unexpected: BTreeMap<_, _> = statuses.iter().filter(|(s, _)| ![201, 503].contains(*s)).collect();
    if !unexpected.is_empty() || !missing.is_empty() {
        bail!("answers {statuses:?} (only 201 and 503 are right); acknowledged orders missing or changed: {missing:?}");
    }
    // A writer stopped between a commit and its answer leaves one row nobody
    // acknowledged: at most one per writer.
    if rows < acknowledged.len() || rows > acknowledged.len() + Writers::COUNT {
        bail!("{rows} rows for {} acknowledged idempotency keys: an order was lost or duplicated", acknowledged.len());
    }
    Ok(format!(
        "{killed} PostgreSQL processes SIGKILLed under 4 writers; answers {statuses:?} ({during_outage} acknowledged \
         after the kill, {:.1} s outage); served again {:.0} ms after the restart; all {} acknowledged orders \
         there once ({rows} rows); peak RSS {peak} MiB",
        (restarted - outage_started).as_secs_f64(),
        recovery.as_secs_f64() * 1000.0,
        acknowledged.len()
    ))
}

/// Writers that create orders until stopped, each key retried until it is
/// acknowledged.
struct Writers {
    acknowledged: Arc<Mutex<Vec<(String, Value)>>>,
    statuses: Arc<Mutex<BTreeMap<u16, usize>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writers {
    const COUNT: usize = 4;

    fn start(port: u16) -> Writers {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..Self::COUNT)
            .map(|w| {
                let (acknowledged, statuses, stop) = (acknowledged.clone(), statuses.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{w}-{n}");
                        let body = json!({"sku": format!("pg-{w}"), "quantity": n % 9 + 1, "unit_price_cents": 1999});
                        // No answer at all (a timeout) is counted as status 0.
                        let response = http::post_json(port, "/api/orders", &[("idempotency-key", &key)], &body);
                        let status = response.as_ref().map_or(0, |r| r.status);
                        *statuses.lock().expect("not poisoned").entry(status).or_default() += 1;
                        match response.ok().filter(|r| r.status == 201).map(|r| r.json()) {
                            Some(Ok(order)) => {
                                acknowledged.lock().expect("not poisoned").push((key, order));
                                n += 1;
                            }
                            // Same key again, after a pause like a client's backoff.
                            _ => std::thread::sleep(Duration::from_millis(50)),
                        }
                    }
                })
            })
            .collect();
        Writers { acknowledged, statuses, stop, threads }
    }

    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().expect("not poisoned").len()
    }

    fn stop(self) -> (Vec<(String, Value)>, BTreeMap<u16, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        let acknowledged = self.acknowledged.lock().expect("not poisoned").clone();
        let statuses = self.statuses.lock().expect("not poisoned").clone();
        (acknowledged, statuses)
    }
}

/// A throwaway cluster in a temp dir, stopped (immediately) when dropped.
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: Option<u16>,
    running: bool,
}

impl Server {
    fn init(bin: &Path) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("faults-pg-").tempdir()?;
        if is_root() {
            cmd::run(Command::new("chown").arg(format!("{SERVICE_USER}:")).arg(dir.path())).with_context(|| {
                format!("PostgreSQL refuses root: the `{SERVICE_USER}` OS user owns the cluster (apt-get install postgresql creates it)")
            })?;
        }
        let server = Server { dir, bin: bin.to_path_buf(), port: None, running: false };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        Ok(server)
    }

    /// Starts (or restarts, with crash recovery) on the port of the first
    /// start; a fresh port taken by someone else before the server bound it
    /// is replaced by another.
    fn start(&mut self) -> Result<()> {
        let attempts = if self.port.is_some() { 1 } else { 3 };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = match self.port {
                Some(port) => port,
                None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
            };
            let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", self.dir.path().display());
            let (data, log) = (self.data_dir(), self.dir.path().join("server.log"));
            match self.run("pg_ctl", &["-D", path_str(&data)?, "-l", path_str(&log)?, "-w", "start", "-o", &options]) {
                Ok(()) => {
                    self.port = Some(port);
                    self.running = true;
                    return Ok(());
                }
                Err(err) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = Some(err.context(format!("PostgreSQL's log:\n{log}")));
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port.expect("started once"))
    }

    /// SIGKILL to the postmaster and every process it started, at once: no
    /// shutdown, no checkpoint. Returns how many processes were killed.
    fn kill(&mut self) -> Result<usize> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))?;
        let postmaster: i32 = pid_file.lines().next().unwrap_or_default().trim().parse()?;
        let mut pids = children_of(postmaster)?;
        pids.push(postmaster);
        for pid in &pids {
            let pid = rustix::process::Pid::from_raw(*pid).context("a pid is positive")?;
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        poll_until("PostgreSQL's processes to be gone", Duration::from_secs(10), Duration::from_millis(50), |last| {
            let alive: Vec<_> = pids.iter().filter(|pid| Path::new(&format!("/proc/{pid}")).exists()).collect();
            *last = format!("still alive: {alive:?}");
            Ok(alive.is_empty().then_some(()))
        })?;
        self.running = false;
        Ok(pids.len())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of PostgreSQL's programs, as its service user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        // The tools folder links to the installed programs from under the
        // user's home, which the service user may not enter (/root is 700):
        // the link is followed here.
        let program = std::fs::canonicalize(self.bin.join(program))
            .with_context(|| format!("{program} is not in {}: run `make tools`", self.bin.display()))?;
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVICE_USER, "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        cmd::run(command.args(args).current_dir(self.dir.path())).map(drop)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.run("pg_ctl", &["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// Processes whose parent is `parent` (from /proc/<pid>/stat).
fn children_of(parent: i32) -> Result<Vec<i32>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name is in parentheses and may hold spaces: the fields
        // after the last ')' are state, then the parent's pid.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    Ok(children)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))
}
