//! Child-process supervision for the local stack: every child runs in its own
//! process group, is stopped with SIGTERM to that group (then SIGKILL after a
//! grace period) and is always waited for, so nothing is left behind, not
//! even a grandchild. Ctrl-C, SIGTERM and SIGHUP only set a flag: the
//! supervisor, not the terminal, decides the order in which children stop.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::cmd;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// True while no supervisor holds children: a signal then does what it does
/// by default (terminate), as if no handler were installed.
static PASS_THROUGH: AtomicBool = AtomicBool::new(true);
static SUPERVISORS: AtomicUsize = AtomicUsize::new(0);

/// From now on, SIGINT, SIGTERM and SIGHUP set [`interrupted`] instead of
/// terminating the process while a [`Supervisor`] is alive, so its children
/// are stopped first; outside that window they keep their default action.
/// Idempotent.
pub fn install_signal_flag() -> Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            let registered = signal_hook::flag::register(signal, &INTERRUPTED)
                .and_then(|_| signal_hook::flag::register_conditional_default(signal, &PASS_THROUGH));
            if let Err(err) = registered {
                result = Err(err).context("cannot install the signal handlers");
                return;
            }
        }
    });
    result
}

/// Whether Ctrl-C (or SIGTERM/SIGHUP) arrived since [`install_signal_flag`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with a clear message once the user asked to stop.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Polls `probe` until it yields a value, the deadline passes or the user
/// interrupts. `probe` returns `Ok(None)` for "not yet" and keeps its last
/// reason in `last`, which the timeout error quotes.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut(&mut String) -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt finished");
    loop {
        check_interrupted()?;
        if let Some(value) = probe(&mut last)? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what}: not within {:.0} s; last seen: {last}", timeout.as_secs_f64());
        }
        thread::sleep(interval);
    }
}

/// One supervised child.
pub struct Managed {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    grace: Duration,
    exit: Option<ExitStatus>,
}

impl Managed {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the child has exited (it is reaped here).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// SIGTERM to the child's process group, SIGKILL after the grace period,
    /// then waits. Returns the exit status; stopping twice is harmless.
    pub fn stop(&mut self) -> ExitStatus {
        let group = Pid::from_child(&self.child);
        if self.exited().is_none() {
            let _ = kill_process_group(group, Signal::TERM);
            let deadline = Instant::now() + self.grace;
            while self.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // The leader may be gone while members of its group are not (a
        // grandchild that ignored SIGTERM): SIGKILL the group in any case.
        // ESRCH, "no such group", is the normal answer.
        let _ = kill_process_group(group, Signal::KILL);
        if self.exit.is_none() {
            self.exit = Some(self.child.wait().unwrap_or_else(|_| ExitStatus::default()));
        }
        self.exit.unwrap_or_default()
    }

    /// The last lines of the child's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        cmd::tail(&[], &text, lines)
    }
}

/// Children started in order and stopped in reverse order, also on drop.
/// While one exists, the signals of [`install_signal_flag`] only set the flag.
pub struct Supervisor {
    children: Vec<Managed>,
}

impl Default for Supervisor {
    fn default() -> Self {
        SUPERVISORS.fetch_add(1, Ordering::SeqCst);
        PASS_THROUGH.store(false, Ordering::SeqCst);
        Supervisor { children: Vec::new() }
    }
}

impl Supervisor {
    /// Starts `cmd` in a new process group with stdin closed and stdout and
    /// stderr appended to `log`.
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path, grace: Duration) -> Result<&mut Managed> {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.process_group(0).stdin(Stdio::null()).stdout(out).stderr(err);
        // A Rust child's error from `main` must stay in the log tails we
        // print: with RUST_BACKTRACE set (CI), anyhow would add a backtrace
        // of thirty lines below it. Panics keep theirs.
        if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
            cmd.env("RUST_LIB_BACKTRACE", "0");
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {name}: `{}`", cmd::display(&cmd)))?;
        self.children.push(Managed { name: name.to_string(), child, log: log.to_path_buf(), grace, exit: None });
        Ok(self.children.last_mut().expect("just pushed"))
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Managed> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// The first child that exited on its own, if any.
    pub fn first_exited(&mut self) -> Option<(&Managed, ExitStatus)> {
        self.first_exited_except(&[])
    }

    /// The first child not named in `restarted` (children their caller
    /// starts again) that exited on its own, if any.
    pub fn first_exited_except(&mut self, restarted: &[&str]) -> Option<(&Managed, ExitStatus)> {
        let index =
            self.children.iter_mut().position(|c| !restarted.contains(&c.name.as_str()) && c.exited().is_some())?;
        let child = &self.children[index];
        Some((child, child.exit.unwrap_or_default()))
    }

    /// Takes an exited child off the list (to start it again, as a kubelet
    /// restarts a container); None if it is running or unknown.
    pub fn remove_exited(&mut self, name: &str) -> Option<(Managed, ExitStatus)> {
        let index = self.children.iter_mut().position(|c| c.name == name && c.exited().is_some())?;
        let child = self.children.remove(index);
        let status = child.exit.unwrap_or_default();
        Some((child, status))
    }

    /// Stops one child (and keeps it in the list, already stopped).
    pub fn stop(&mut self, name: &str) -> Result<ExitStatus> {
        let child = self.get_mut(name).with_context(|| format!("no child named {name}"))?;
        Ok(child.stop())
    }

    /// Stops every child, last started first. Returns (name, status) pairs.
    pub fn stop_all(&mut self) -> Vec<(String, ExitStatus)> {
        self.children.iter_mut().rev().map(|c| (c.name.clone(), c.stop())).collect()
    }

    /// (name, last lines of its log) of every child, in start order.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.children.iter().map(|c| (c.name.clone(), c.log_tail(lines))).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Managed::pid).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
        if SUPERVISORS.fetch_sub(1, Ordering::SeqCst) == 1 {
            PASS_THROUGH.store(true, Ordering::SeqCst);
        }
    }
}

/// Whether a process is alive: present in /proc and not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    fn read_pid(path: &Path) -> u32 {
        poll_until("grandchild pid", Duration::from_secs(10), Duration::from_millis(20), |_| {
            Ok(fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()))
        })
        .unwrap()
    }

    #[test]
    fn dropping_the_supervisor_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let grandchild_file = dir.path().join("grandchild.pid");
        let (pids, grandchild) = {
            let mut supervisor = Supervisor::default();
            let grace = Duration::from_millis(500);
            supervisor.spawn("sleep-a", sh("exec sleep 1000"), &dir.path().join("a.log"), grace).unwrap();
            supervisor.spawn("sleep-b", sh("exec sleep 1000"), &dir.path().join("b.log"), grace).unwrap();
            // A child that starts a grandchild and ignores SIGTERM itself:
            // the group kill must reach both.
            let script = format!("trap '' TERM; sleep 1000 & echo $! > {}; wait", grandchild_file.display());
            supervisor.spawn("stubborn", sh(&script), &dir.path().join("c.log"), grace).unwrap();
            let grandchild = read_pid(&grandchild_file);
            let pids = supervisor.pids();
            assert!(pids.iter().chain([&grandchild]).all(|&p| is_alive(p)), "children should run before the drop");
            assert!(supervisor.first_exited().is_none());
            (pids, grandchild)
        };
        for pid in pids.iter().chain([&grandchild]) {
            let gone = poll_until("exit", Duration::from_secs(5), Duration::from_millis(20), |_| {
                Ok((!is_alive(*pid)).then_some(()))
            });
            assert!(gone.is_ok(), "process {pid} survived the supervisor");
        }
    }

    #[test]
    fn stop_one_child_keeps_the_others_and_reports_early_exits() {
        let dir = tempfile::tempdir().unwrap();
        let mut supervisor = Supervisor::default();
        let grace = Duration::from_secs(5);
        supervisor.spawn("keeps", sh("exec sleep 1000"), &dir.path().join("k.log"), grace).unwrap();
        supervisor.spawn("stops", sh("exec sleep 1000"), &dir.path().join("s.log"), grace).unwrap();
        supervisor.spawn("fails", sh("echo boom; exit 3"), &dir.path().join("f.log"), grace).unwrap();
        let (name, status) = poll_until("exit", Duration::from_secs(5), Duration::from_millis(20), |_| {
            Ok(supervisor.first_exited().map(|(c, s)| (c.name.clone(), s)))
        })
        .unwrap();
        assert_eq!((name.as_str(), status.code()), ("fails", Some(3)));
        assert!(supervisor.get_mut("fails").unwrap().log_tail(5).contains("boom"));

        let started = Instant::now();
        let status = supervisor.stop("stops").unwrap();
        assert!(started.elapsed() < Duration::from_secs(4), "SIGTERM should stop sleep at once");
        assert!(!status.success());
        let keeps = supervisor.get_mut("keeps").unwrap();
        assert!(keeps.exited().is_none());
        let pid = keeps.pid();
        let stopped = supervisor.stop_all();
        assert_eq!(stopped.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["fails", "stops", "keeps"]);
        assert!(!is_alive(pid));
    }

    #[test]
    fn poll_until_quotes_the_last_reason() {
        let err = poll_until::<()>("thing", Duration::from_millis(50), Duration::from_millis(10), |last| {
            *last = "still 503".into();
            Ok(None)
        })
        .unwrap_err();
        assert!(format!("{err}").contains("thing: not within 0 s; last seen: still 503"), "{err}");
    }
}
