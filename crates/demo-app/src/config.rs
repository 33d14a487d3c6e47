//! Command-line flags, each with an environment fallback `DEMO_APP_<FLAG>`.
//! Names follow podinfo's where the two overlap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The default JWT secret: fine on a laptop, refused anywhere else.
pub const INSECURE_JWT_SECRET: &str = "demo-app-insecure-default-secret";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "demo-app",
    version,
    disable_version_flag = true,
    about = "podinfo-compatible workload with an orders API"
)]
pub struct Config {
    /// Print the version and exit (`-v` as podinfo's, `-V` as clap's).
    #[arg(short = 'v', long, visible_short_alias = 'V', action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// HTTP port of the API and UI.
    #[arg(long, env = "DEMO_APP_PORT", default_value_t = 9898)]
    pub port: u16,
    /// Port of the Prometheus metrics and probe server (0 takes a free port,
    /// logged at start-up).
    #[arg(long, env = "DEMO_APP_PORT_METRICS", default_value_t = 9797)]
    pub port_metrics: u16,
    /// Port of podinfo's gRPC API (its services, health and reflection);
    /// 0 turns it off.
    #[arg(long, env = "DEMO_APP_GRPC_PORT", default_value_t = 0)]
    pub grpc_port: u16,
    /// Name the gRPC health service reports SERVING for (besides "").
    #[arg(long, env = "DEMO_APP_GRPC_SERVICE_NAME", default_value = "demo-app")]
    pub grpc_service_name: String,
    /// HTTPS port serving the same API (podinfo's); 0 turns it off.
    #[arg(long, env = "DEMO_APP_SECURE_PORT", default_value_t = 0)]
    pub secure_port: u16,
    /// Folder of the HTTPS port's tls.crt and tls.key (a mounted
    /// kubernetes.io/tls Secret).
    #[arg(long, env = "DEMO_APP_CERT_PATH", default_value = "/data/cert")]
    pub cert_path: PathBuf,
    /// Folder whose files GET /configs lists (a mounted ConfigMap), read
    /// on each request, so an update shows without a restart.
    #[arg(long, env = "DEMO_APP_CONFIG_PATH")]
    pub config_path: Option<PathBuf>,
    /// Address to bind.
    #[arg(long, env = "DEMO_APP_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Log level: debug, info, warn (or warning), error.
    #[arg(long, env = "DEMO_APP_LEVEL", default_value = "info", value_parser = parse_level)]
    pub level: String,
    /// Message shown by the UI and /api/info.
    #[arg(long, env = "DEMO_APP_UI_MESSAGE", default_value = "greetings from demo-app")]
    pub ui_message: String,
    /// UI background colour (the canary demo shows two).
    #[arg(long, env = "DEMO_APP_UI_COLOR", default_value = "#34577c")]
    pub ui_color: String,
    /// UI logo URL.
    #[arg(long, env = "DEMO_APP_UI_LOGO", default_value = "")]
    pub ui_logo: String,
    /// Backend URL for echo fan-out and checkout; repeat for several.
    #[arg(long = "backend-url", env = "DEMO_APP_BACKEND_URL", value_delimiter = ',', value_parser = http_url)]
    pub backend_urls: Vec<String>,
    /// Delay every app response by a random amount.
    #[arg(long, env = "DEMO_APP_RANDOM_DELAY", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub random_delay: bool,
    /// Unit of the random delay bounds.
    #[arg(long, env = "DEMO_APP_RANDOM_DELAY_UNIT", value_enum, default_value_t = DelayUnit::S)]
    pub random_delay_unit: DelayUnit,
    #[arg(long, env = "DEMO_APP_RANDOM_DELAY_MIN", default_value_t = 0)]
    pub random_delay_min: u64,
    #[arg(long, env = "DEMO_APP_RANDOM_DELAY_MAX", default_value_t = 5)]
    pub random_delay_max: u64,
    /// Fail a third of app responses with a random 5xx.
    #[arg(long, env = "DEMO_APP_RANDOM_ERROR", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub random_error: bool,
    /// Start with /healthz failing.
    #[arg(long, env = "DEMO_APP_UNHEALTHY", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub unhealthy: bool,
    /// Start with /readyz failing.
    #[arg(long, env = "DEMO_APP_UNREADY", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub unready: bool,
    /// Time given to in-flight requests after the listener closes.
    #[arg(long, env = "DEMO_APP_SERVER_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = shutdown_duration)]
    pub server_shutdown_timeout: Duration,
    /// Timeout of outgoing HTTP calls.
    #[arg(long, env = "DEMO_APP_HTTP_CLIENT_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub http_client_timeout: Duration,
    /// Longest a checkout waits for the backend's answer (headers and body);
    /// past it the checkout answers 504 and the client may retry with the
    /// same Idempotency-Key.
    #[arg(long, env = "DEMO_APP_CHECKOUT_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub checkout_timeout: Duration,
    /// Largest backend answer a checkout reads, in bytes; a larger one is a
    /// 502, never buffered whole.
    #[arg(long, env = "DEMO_APP_CHECKOUT_MAX_RESPONSE_BYTES", default_value_t = 64 * 1024,
        value_parser = clap::value_parser!(u64).range(1024..))]
    pub checkout_max_response_bytes: u64,
    /// Folder for the content-addressed store and the SQLite database.
    #[arg(long, env = "DEMO_APP_DATA_PATH", default_value = "/data")]
    pub data_path: PathBuf,
    /// Which APIs this process serves.
    #[arg(long, env = "DEMO_APP_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// Largest WebSocket message (and frame) /ws/echo accepts, in bytes; a
    /// larger one closes the connection (1009) before it is buffered.
    #[arg(long, env = "DEMO_APP_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
        value_parser = parse_ws_limit)]
    pub ws_max_message_bytes: usize,
    /// Memory clients may make the server hold at once, in bytes: request
    /// bodies being read and WebSocket sessions' buffers. Past it requests
    /// with a body and new WebSockets get 503 with Retry-After. Default:
    /// 40 % of the container's memory limit (cgroup v2), else 256 MiB.
    #[arg(long, env = "DEMO_APP_MAX_BUFFERED_BYTES", value_parser = clap::value_parser!(u64).range(1024 * 1024..))]
    pub max_buffered_bytes: Option<u64>,
    /// `sqlite://PATH` or `postgres://...`; default: SQLite under --data-path.
    #[arg(long, env = "DEMO_APP_DATABASE_URL", value_parser = non_empty)]
    pub database_url: Option<String>,
    /// Time between turning unready on SIGTERM and closing the listener, so
    /// load balancers stop sending traffic first.
    /// 5 s by default: endpoint removal takes a few seconds to reach every
    /// proxy, and requests sent meanwhile must still be answered.
    #[arg(long, env = "DEMO_APP_DRAIN_DELAY", default_value = "5s", value_parser = shutdown_duration)]
    pub drain_delay: Duration,
    /// Connections served at once on --port; more wait in the accept queue.
    /// Lowered at start to fit the open-file limit (ulimit -n).
    #[arg(long, env = "DEMO_APP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Longest wait for a request's headers, and for the next request on an
    /// idle keep-alive connection (slow or silent clients are closed after
    /// one to two of these: connections are watched on a clock).
    #[arg(long, env = "DEMO_APP_HTTP_HEADER_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub http_header_timeout: Duration,
    /// Longest time to receive a request's whole body, from its headers on
    /// (slow uploads are cut off, even one that never pauses long).
    #[arg(long, env = "DEMO_APP_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub http_body_timeout: Duration,
    /// Longest a response write may stay blocked on a client that reads
    /// nothing; the connection is then closed and what it held freed.
    #[arg(long, env = "DEMO_APP_HTTP_WRITE_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub http_write_timeout: Duration,
    /// podinfo's read and write timeout: sets --http-body-timeout and
    /// --http-write-timeout when given.
    #[arg(long, env = "DEMO_APP_HTTP_SERVER_TIMEOUT", value_parser = positive_duration)]
    pub http_server_timeout: Option<Duration>,
    /// CPU cores to keep busy from start-up (podinfo's load test aid).
    #[arg(long, env = "DEMO_APP_STRESS_CPU", default_value_t = 0)]
    pub stress_cpu: u16,
    /// MiB of memory to fill and hold from start-up.
    #[arg(long, env = "DEMO_APP_STRESS_MEMORY", default_value_t = 0)]
    pub stress_memory: u32,
    /// Accepted for podinfo's command lines; h2c is always on.
    #[arg(long, env = "DEMO_APP_H2C", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub h2c: bool,
    /// podinfo flags accepted so its command lines start demo-app, each
    /// named in a warning at start-up when set (README: differences).
    #[command(flatten)]
    pub podinfo_only: PodinfoOnly,
    /// Secret for HS256 tokens.
    #[arg(long, env = "DEMO_APP_JWT_SECRET", hide_env_values = true, conflicts_with = "jwt_secret_file")]
    pub jwt_secret: Option<String>,
    /// File holding the token secret (a mounted Kubernetes Secret).
    #[arg(long, env = "DEMO_APP_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Allow the built-in JWT secret without --level debug.
    #[arg(long, env = "DEMO_APP_INSECURE_DEV", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub insecure_dev: bool,
    /// Serve /readyz/enable|disable, /fault_injection/* and /panic.
    #[arg(long, env = "DEMO_APP_CONTROL_ENDPOINTS", default_value_t = true, value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub control_endpoints: bool,
    /// Substrings (case-insensitive) of variable names whose values /env
    /// redacts (PASS covers PASSWORD and PGPASS; HEADERS covers
    /// OTEL_EXPORTER_OTLP_HEADERS). Passwords in URLs are always redacted.
    #[arg(
        long,
        env = "DEMO_APP_ENV_REDACT",
        value_delimiter = ',',
        default_value = "SECRET,TOKEN,PASS,KEY,CREDENTIAL,AUTH,HEADERS,COOKIE"
    )]
    pub env_redact: Vec<String>,
}

/// podinfo's flags that demo-app does not act on.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PodinfoOnly {
    /// (podinfo) settings file in --config-path (config.yaml when not
    /// given): flag names to values, under flags and variables.
    #[arg(long, env = "DEMO_APP_CONFIG", hide = true)]
    pub config: Option<String>,
    /// (podinfo) UI folder: demo-app's UI is built in.
    #[arg(long, env = "DEMO_APP_UI_PATH", hide = true)]
    pub ui_path: Option<String>,
    /// (podinfo) Redis for /cache: demo-app keeps the cache in its database.
    #[arg(long, env = "DEMO_APP_CACHE_SERVER", hide = true)]
    pub cache_server: Option<String>,
    /// (podinfo) service name for tracing: demo-app reads OTEL_SERVICE_NAME.
    #[arg(long, env = "DEMO_APP_OTEL_SERVICE_NAME", hide = true)]
    pub otel_service_name: Option<String>,
    /// What reading the settings file found (src/config_file.rs).
    #[arg(skip)]
    pub notes: Vec<String>,
}

impl PodinfoOnly {
    /// One warning for each podinfo flag given that demo-app ignores, and what
    /// the settings file set or could not.
    pub fn warnings(&self) -> Vec<String> {
        let given = [
            ("--ui-path", self.ui_path.as_ref().map(|_| "the UI is built into the binary")),
            ("--cache-server", self.cache_server.as_ref().map(|_| "the cache is kept in the app's database")),
            ("--otel-service-name", self.otel_service_name.as_ref().map(|_| "set OTEL_SERVICE_NAME instead")),
        ];
        given
            .into_iter()
            .filter_map(|(flag, why)| why.map(|why| format!("podinfo's {flag} is ignored: {why}")))
            .chain(self.notes.iter().cloned())
            .collect()
    }
}

/// The configuration from the command line and the environment, where
/// podinfo's `PODINFO_<FLAG>` stands in for an unset `DEMO_APP_<FLAG>` (so
/// podinfo's manifests configure demo-app unchanged).
pub fn parse() -> Config {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = with_podinfo_variables(Config::command(), |name| std::env::var_os(name).is_some());
    // Twice: the first parse finds podinfo's settings file, whose values
    // become defaults for the second.
    let (command, notes) = crate::config_file::apply(command.clone(), &command.get_matches());
    let mut config = Config::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    config.podinfo_only.notes = notes;
    config
}

fn with_podinfo_variables(command: clap::Command, is_set: impl Fn(&str) -> bool) -> clap::Command {
    command.mut_args(|arg| {
        let Some(ours) = arg.get_env().and_then(|e| e.to_str()).map(str::to_owned) else { return arg };
        let theirs = ours.replacen("DEMO_APP_", "PODINFO_", 1);
        // Leaked: clap keeps names for the program's life (a few, once).
        if !is_set(&ours) && is_set(&theirs) { arg.env(&*theirs.leak()) } else { arg }
    })
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// UI, podinfo API and checkout; orders come from --backend-url.
    Frontend,
    /// podinfo API and the orders/cache store.
    Backend,
    /// Everything in one process.
    All,
}

impl Role {
    pub fn serves_orders(self) -> bool {
        matches!(self, Role::Backend | Role::All)
    }

    pub fn serves_checkout(self) -> bool {
        matches!(self, Role::Frontend | Role::All)
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayUnit {
    S,
    Ms,
}

/// podinfo's level names (zap's) included; anything else is refused rather
/// than silently filtering every log out.
fn parse_level(level: &str) -> Result<String, String> {
    match level.to_ascii_lowercase().as_str() {
        "trace" => Ok("trace".into()),
        "debug" => Ok("debug".into()),
        "info" => Ok("info".into()),
        "warn" | "warning" => Ok("warn".into()),
        "error" | "fatal" | "panic" => Ok("error".into()),
        _ => Err(format!("unknown log level {level:?}: use debug, info, warn or error")),
    }
}

/// At least 1 KiB (a 0 limit would close every socket on its first
/// message), at most 16 MiB (a session's buffers come out of
/// --max-buffered-bytes).
fn parse_ws_limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(bytes) if (1024..=16 * 1024 * 1024).contains(&bytes) => Ok(bytes),
        Ok(_) => Err("must be between 1024 and 16777216 bytes".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// An empty value (`DEMO_APP_DATABASE_URL=` in a manifest) is a mistake, not
/// a URL: refused with the flag's name by clap.
/// A duration above zero: a zero timeout would close every connection.
fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Err("must be longer than 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// A step of the shutdown sequence: at most 10 minutes, so a typo (`5h`
/// for `5s`) cannot keep a terminated process alive until it is killed.
fn shutdown_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d > Duration::from_secs(600) => Err("must be at most 10m".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// An absolute http(s) URL: anything else would fail on every call instead
/// of at start-up.
fn http_url(value: &str) -> Result<String, String> {
    let value = non_empty(value)?;
    match reqwest::Url::parse(value.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(value.trim().to_string()),
        Ok(url) => Err(format!("{value:?} is not an http(s) URL (scheme {:?})", url.scheme())),
        Err(e) => Err(format!("{value:?} is not a URL: {e} (e.g. http://backend:9898)")),
    }
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() { Err("must not be empty (unset it for the default)".into()) } else { Ok(value.into()) }
}

impl Config {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_path.join("demo-app.db").display()))
    }

    /// The token secret, refusing the built-in one outside development.
    pub fn jwt_secret(&self) -> anyhow::Result<String> {
        // An empty key signs tokens anyone can forge: refused, never used.
        let refuse_blank = |secret: String, from: &str| {
            if secret.trim().is_empty() {
                anyhow::bail!("the JWT secret from {from} is empty: give it a long random value");
            }
            Ok(secret)
        };
        if let Some(secret) = &self.jwt_secret {
            return refuse_blank(secret.clone(), "--jwt-secret (DEMO_APP_JWT_SECRET)");
        }
        if let Some(path) = &self.jwt_secret_file {
            let secret = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --jwt-secret-file {}: {e}", path.display()))?;
            return refuse_blank(secret.trim_end().to_string(), &format!("--jwt-secret-file {}", path.display()));
        }
        if self.level == "debug" || self.insecure_dev {
            tracing::warn!(
                "no JWT secret: tokens are signed with the built-in development key, which anyone can read in the \
                 source and forge tokens with (allowed by --level debug or --insecure-dev only); set \
                 --jwt-secret-file for anything others can reach"
            );
            return Ok(INSECURE_JWT_SECRET.to_string());
        }
        // podinfo's chart passes no secret: start anyway, with a key nobody
        // knows (tokens then hold for this process only), never a known one.
        tracing::warn!(
            "no JWT secret: tokens are signed with a random key of this process (they fail on other replicas \
             and after a restart); set --jwt-secret-file (or DEMO_APP_JWT_SECRET)"
        );
        Ok(random_secret())
    }
}

/// 256 random bits, hex-encoded.
fn random_secret() -> String {
    use std::fmt::Write as _;
    rand::random::<[u8; 32]>().iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

impl Config {
    /// A configuration for tests: ephemeral ports, data in `data_path`.
    pub fn for_tests(data_path: PathBuf) -> Self {
        let mut config = Config::parse_from(["demo-app", "--port", "0", "--port-metrics", "0", "--insecure-dev"]);
        config.host = "127.0.0.1".into();
        config.data_path = data_path;
        config.server_shutdown_timeout = Duration::from_secs(5);
        config.drain_delay = Duration::ZERO;
        config.http_client_timeout = Duration::from_secs(5);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_jwt_secret_is_refused() {
        let config = Config::parse_from(["demo-app", "--jwt-secret", " "]);
        let error = config.jwt_secret().expect_err("a blank secret makes tokens forgeable");
        assert!(error.to_string().contains("is empty"), "{error}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "\n").unwrap();
        let config = Config::parse_from(["demo-app", "--jwt-secret-file", file.path().to_str().unwrap()]);
        assert!(config.jwt_secret().is_err(), "a newline-only file is empty too");
        assert_eq!(Config::parse_from(["demo-app", "--jwt-secret", "s3cret"]).jwt_secret().unwrap(), "s3cret");
    }

    /// The defaults a review found unsafe: no drain (requests lost while
    /// endpoints are removed) and a checkout waiting 2 minutes on a hung
    /// backend; and every limit has a bound without a flag.
    #[test]
    fn defaults_are_safe_without_flags() {
        let config = Config::parse_from(["demo-app"]);
        assert_eq!(config.drain_delay, Duration::from_secs(5));
        assert_eq!(config.checkout_timeout, Duration::from_secs(10));
        assert_eq!(config.checkout_max_response_bytes, 64 * 1024);
        assert_eq!(config.max_connections, 1024);
        for timeout in [config.http_header_timeout, config.http_body_timeout, config.http_write_timeout] {
            assert_eq!(timeout, Duration::from_secs(30));
        }
        assert_eq!(config.ws_max_message_bytes, 64 * 1024);
    }

    #[test]
    fn warning_is_warn_and_nonsense_is_refused() {
        let config = Config::try_parse_from(["demo-app", "--level", "warning"]).unwrap();
        assert_eq!(config.level, "warn");
        let err = Config::try_parse_from(["demo-app", "--level", "loud"]).unwrap_err().to_string();
        assert!(err.contains("unknown log level \"loud\""), "{err}");
        let err = Config::try_parse_from(["demo-app", "--database-url", ""]).unwrap_err().to_string();
        assert!(err.contains("--database-url") && err.contains("must not be empty"), "{err}");
    }

    #[test]
    fn values_that_would_fail_later_are_refused_at_start() {
        let refused = |args: &[&str], why: &str| {
            let err = Config::try_parse_from([&["demo-app"], args].concat()).unwrap_err().to_string();
            assert!(err.contains(args[0]) && err.contains(why), "{args:?}: {err}");
        };
        refused(&["--backend-url", "not a url"], "is not a URL");
        refused(&["--backend-url", "ftp://backend"], "is not an http(s) URL");
        refused(&["--ws-max-message-bytes", "0"], "between 1024 and");
        refused(&["--drain-delay", "1000y"], "at most 10m");
        refused(&["--server-shutdown-timeout", "2h"], "at most 10m");
        refused(&["--max-buffered-bytes", "10"], "1048576");
        let config = Config::parse_from(["demo-app", "--backend-url", "http://a:9898,https://b"]);
        assert_eq!(config.backend_urls, ["http://a:9898", "https://b"]);
    }

    #[test]
    fn podinfos_command_lines_are_understood() {
        let config = Config::parse_from([
            "demo-app",
            "--random-delay=false",
            "--random-error=true",
            "--unhealthy",
            "--h2c",
            "--grpc-port=9999",
            "--grpc-service-name=podinfo",
            "--config-path=/podinfo/config",
            "--config=config.yaml",
            "--http-server-timeout=15s",
        ]);
        assert!(!config.random_delay && config.random_error && config.unhealthy && config.h2c);
        assert_eq!((config.grpc_port, config.grpc_service_name.as_str()), (9999, "podinfo"));
        assert_eq!(config.http_server_timeout, Some(Duration::from_secs(15)));
        assert_eq!(config.config_path.as_deref(), Some(std::path::Path::new("/podinfo/config")));
        assert_eq!(config.podinfo_only.config.as_deref(), Some("config.yaml"));
        assert!(Config::parse_from(["demo-app"]).podinfo_only.warnings().is_empty());
        // Go's ParseBool spellings, as podinfo's viper reads them.
        let config = Config::parse_from(["demo-app", "--unhealthy=1", "--unready=True", "--random-error=0"]);
        assert!(config.unhealthy && config.unready && !config.random_error);
    }

    #[test]
    fn podinfo_variables_stand_in_for_unset_ones() {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let set = ["PODINFO_UI_MESSAGE", "PODINFO_UI_COLOR", "DEMO_APP_UI_COLOR"];
        let command = with_podinfo_variables(Config::command(), |name| set.contains(&name));
        let envs: Vec<_> =
            command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
        assert!(envs.contains(&"PODINFO_UI_MESSAGE".into()), "podinfo's variable is read when ours is unset");
        assert!(envs.contains(&"DEMO_APP_UI_COLOR".into()), "ours wins when both are set");
        assert!(envs.contains(&"DEMO_APP_PORT".into()));
        let _ = Config::from_arg_matches(&command.get_matches_from(["demo-app"])).unwrap();
    }
}
