//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, start
//! on a free loopback port, stop (immediately) on Drop.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! cluster belongs to the `postgres` OS user and every binary runs through
//! `runuser` (or `su`). Missing binaries fail the test: a suite that silently
//! skips its database half proves nothing.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sqlx::{Connection as _, Executor as _, PgConnection};
use tempfile::TempDir;

/// The OS account that owns the cluster when we are root.
const SERVICE_USER: &str = "postgres";
/// The superuser role `initdb` creates; connections use it with trust auth.
const ROLE: &str = "postgres";

pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    /// Chosen at the first start and kept, so a restarted server has the same URL.
    port: Option<u16>,
    /// `Some("postgres")` when we are root and must switch user.
    run_as: Option<&'static str>,
    running: bool,
}

impl PgServer {
    /// Creates a cluster in a temp dir; it is not running until `start`.
    pub fn init() -> Self {
        let bin = find_bin_dir();
        let dir =
            tempfile::Builder::new().prefix("demo-app-pg-").tempdir().expect("creating a temp dir for PostgreSQL");
        let run_as = is_root().then_some(SERVICE_USER);
        if let Some(user) = run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("giving the temp dir to the postgres user");
        }
        let server = Self { dir, bin, port: None, run_as, running: false };
        // --no-sync: a test cluster need not survive a power cut, and it is faster.
        server.run_ok(
            "initdb",
            &[
                "-D",
                server.data_dir().to_str().unwrap(),
                "--auth=trust",
                "--username",
                ROLE,
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server
    }

    /// `init` + `start` + a database named `db`.
    pub async fn with_database(db: &str) -> Self {
        let mut server = Self::init();
        server.start();
        server.create_database(db).await;
        server
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(!self.running, "PostgreSQL is already running");
        // A port picked on a fresh cluster can be taken by a parallel test
        // before the server binds it: then try another one.
        let attempts = if self.port.is_some() { 1 } else { 3 };
        for attempt in 1..=attempts {
            let port = *self.port.get_or_insert_with(free_port);
            // fsync=off: a test cluster need not survive a power cut, and
            // with it a restart after `stop` skips fsyncing the whole data
            // dir (about 2 s here).
            let options =
                format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.dir.path().display());
            let out = self.run(
                "pg_ctl",
                &[
                    "-D",
                    self.data_dir().to_str().unwrap(),
                    "-l",
                    self.log_file().to_str().unwrap(),
                    "-w",
                    "start",
                    "-o",
                    &options,
                ],
            );
            if out.status.success() {
                self.running = true;
                return;
            }
            if attempt == attempts {
                panic!("pg_ctl start failed:\n{}", self.describe(&out));
            }
            self.port = None;
        }
    }

    /// Stops the server the hard way (like a crash): clients see the
    /// connection drop, as in a real outage.
    pub fn stop(&mut self) {
        assert!(self.running, "PostgreSQL is not running");
        self.pg_ctl_stop();
        self.running = false;
    }

    /// Over SQL rather than `createdb`, which is not always next to `initdb`.
    pub async fn create_database(&self, db: &str) {
        let mut conn =
            PgConnection::connect(&self.url("postgres")).await.expect("connecting to the maintenance database");
        conn.execute(format!(r#"CREATE DATABASE "{db}""#).as_str()).await.expect("CREATE DATABASE");
    }

    pub fn url(&self, db: &str) -> String {
        let port = self.port.expect("start the server once first");
        format!("postgres://{ROLE}@127.0.0.1:{port}/{db}")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn pg_ctl_stop(&self) -> Output {
        self.run("pg_ctl", &["-D", self.data_dir().to_str().unwrap(), "-m", "immediate", "-w", "stop"])
    }

    /// Runs one of the PostgreSQL binaries, as the service user if we are root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = match self.run_as {
            None => Command::new(&program),
            Some(user) => {
                let mut cmd = Command::new(switch_user_tool());
                cmd.args(["-u", user, "--"]).arg(&program);
                cmd
            }
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    }

    fn run_ok(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(out.status.success(), "{program} {args:?} failed:\n{}", self.describe(&out));
    }

    fn describe(&self, out: &Output) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        format!(
            "{}\nstdout: {}\nstderr: {}\nserver log:\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            // Errors are ignored: Drop may run while a failed test unwinds.
            let _ = self.pg_ctl_stop();
        }
    }
}

/// The folder holding `initdb` and `pg_ctl`: PATH first, then Debian's
/// versioned layout (newest version wins).
fn find_bin_dir() -> PathBuf {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path =
        std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect::<Vec<_>>()).unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_tools(dir)) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in \
             /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql`"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free loopback port")
        .port()
}

fn is_root() -> bool {
    id(&["-u"]) == "0"
}

fn user_ids(user: &str) -> (u32, u32) {
    let parse = |flag: &str| {
        id(&[flag, user]).parse().unwrap_or_else(|_| {
            panic!(
                "running as root needs the `{user}` OS user to own the test cluster \
                 (`apt-get install postgresql` creates it)"
            )
        })
    };
    (parse("-u"), parse("-g"))
}

/// Output of `id ARGS`, trimmed; empty if it fails.
fn id(args: &[&str]) -> String {
    Command::new("id")
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `runuser` (util-linux) takes `-u USER -- CMD ARGS` without a shell.
fn switch_user_tool() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect("running as root needs `runuser` (util-linux) to drop to the postgres user")
}
