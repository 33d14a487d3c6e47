//! GET|POST /env: the process environment as `KEY=VALUE` strings, with the
//! values of secret-looking names redacted (podinfo leaked its JWT secret),
//! and the password of any URL with credentials (`postgres://app:pw@db`)
//! whatever the variable is called.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use regex::Regex;

use crate::state::AppState;

pub const REDACTED: &str = "[redacted]";

#[utoipa::path(get, path = "/env", operation_id = "getEnv", tag = "podinfo", responses((status = 200, body = Vec<String>)))]
pub async fn handler(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(environment(std::env::vars_os(), &state.config.env_redact))
}

pub fn environment(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    redact: &[String],
) -> Vec<String> {
    vars.map(|(key, value)| {
        let key = key.to_string_lossy();
        let upper = key.to_uppercase();
        let secret = redact.iter().any(|p| !p.is_empty() && upper.contains(&p.to_uppercase()));
        let value = value.to_string_lossy();
        if secret || looks_like_a_credential(&value) {
            format!("{key}={REDACTED}")
        } else {
            format!("{key}={}", redacted(&value))
        }
    })
    .collect()
}

/// Values that are credentials whatever the variable is called: tokens
/// with a well-known prefix, JWTs, HTTP authorization values, PEM keys.
fn looks_like_a_credential(value: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "xapp-",
        "sk_live_",
        "sk-",
        "AKIA",
        "hf_",
    ];
    if value.contains("-----BEGIN") {
        return true;
    }
    let mut words = value.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '='));
    let mut previous = "";
    words.any(|word| {
        let scheme = ["bearer", "basic", "token"].iter().any(|s| previous.eq_ignore_ascii_case(s));
        previous = word;
        let jwt = word.starts_with("eyJ") && word.split('.').filter(|p| !p.is_empty()).count() == 3;
        let prefixed = PREFIXES.iter().any(|p| word.starts_with(p) && word.len() >= p.len() + 16);
        (scheme && word.len() >= 8) || jwt || prefixed
    })
}

/// `value` with the credentials in it redacted: URL passwords, then
/// secret-looking parameters.
fn redacted(value: &str) -> String {
    without_secret_parameters(&without_userinfo_passwords(value))
}

/// `value` with the values of secret-looking parameters redacted, whatever
/// the notation: a query (`?password=...&token=...`), a key-value DSN
/// (`host=db password=...`), spaces around `=`, quoted values, YAML or JSON
/// (`password: ...`, `"password":"..."`).
fn without_secret_parameters(value: &str) -> String {
    static PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
        let name = r"[a-z0-9_.-]*(?:pass|pwd|secret|token|key|sig|auth|credential)[a-z0-9_.-]*";
        let value = r#""(?:[^"\\]|\\.)*"|'[^']*'|[^\s&;,}"']+"#;
        Regex::new(&format!(r#"(?i){name}(["']?\s*([:=])\s*)({value})"#)).expect("a valid expression")
    });
    PARAMETER
        .replace_all(value, |found: &regex::Captures<'_>| {
            let (whole, secret) = (&found[0], &found[3]);
            // `//token-service:8080`: a host and its port, not a parameter.
            let start = found.get(0).map_or(0, |m| m.start());
            let after_host = value[..start].ends_with(['/', '@']) && &found[2] == ":";
            if after_host || secret == REDACTED {
                return whole.to_owned();
            }
            let kept = &whole[..whole.len() - secret.len()];
            match secret.chars().next() {
                Some(quote @ ('"' | '\'')) => format!("{kept}{quote}{REDACTED}{quote}"),
                _ => format!("{kept}{REDACTED}"),
            }
        })
        .into_owned()
}

/// `value` with the credentials in each of its words redacted: the password
/// of `scheme://user:password@host` (everything up to the last `@`, which
/// clients accept: `redis://:pw#x@h`), of a Go DSN (`app:pw@tcp(db)/app`),
/// a user that is a key (`https://<key>@sentry.example/1`), and URL path
/// segments that are tokens (`https://hooks.slack.com/services/T00/B00/<token>`).
fn without_userinfo_passwords(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    loop {
        let end = rest.find(|c: char| c.is_whitespace() || matches!(c, ',' | ';')).unwrap_or(rest.len());
        redact_word(&rest[..end], &mut out);
        let Some(separator) = rest[end..].chars().next() else { break };
        out.push(separator);
        rest = &rest[end + separator.len_utf8()..];
    }
    out
}

fn redact_word(word: &str, out: &mut String) {
    let (scheme, rest) = word.find("://").map_or(("", word), |i| word.split_at(i + 3));
    out.push_str(scheme);
    let after = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            // A colon after a `/` or `?` is in a path or query, not userinfo.
            let colon = userinfo.find(':').filter(|&c| !userinfo[..c].contains(['/', '?', '#']));
            match colon {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(REDACTED);
                }
                None if !scheme.is_empty() && userinfo.len() >= 16 && !userinfo.contains(['/', '?', '#', '=']) => {
                    out.push_str(REDACTED)
                }
                None => out.push_str(userinfo),
            }
            &rest[at..]
        }
        None => rest,
    };
    if scheme.is_empty() {
        out.push_str(after);
        return;
    }
    // The path, segment by segment.
    let path_start = after.find('/').unwrap_or(after.len());
    let path_end = after[path_start..].find(['?', '#']).map_or(after.len(), |i| path_start + i);
    out.push_str(&after[..path_start]);
    for (i, segment) in after[path_start..path_end].split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if is_token(segment) { REDACTED } else { segment });
    }
    out.push_str(&after[path_end..]);
}

/// A path segment that is a random credential rather than a name: long,
/// nothing but `[A-Za-z0-9_-]`, mixing two of lower case, upper case and
/// digits.
fn is_token(segment: &str) -> bool {
    let has = |class: fn(&u8) -> bool| segment.bytes().any(|b| class(&b));
    let classes = [has(u8::is_ascii_lowercase), has(u8::is_ascii_uppercase), has(u8::is_ascii_digit)];
    segment.len() >= 20
        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && classes.iter().filter(|&&c| c).count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_covers_credentials_a_review_found_in_clear() {
        let config = crate::config::Config::for_tests(std::env::temp_dir());
        let vars = ["PGPASS", "OTEL_EXPORTER_OTLP_HEADERS", "AUTH_HEADER", "SESSION_COOKIE", "DEMO_APP_JWT_SECRET"]
            .map(|k| (k.into(), "value".into()));
        for line in environment(vars.into_iter(), &config.env_redact) {
            assert!(line.ends_with("=[redacted]"), "{line}");
        }
    }

    #[test]
    fn passwords_in_urls_are_redacted_whatever_the_name() {
        assert_eq!(
            redacted("postgres://app:S3cretPw@db.demo:5432/app?sslmode=require"),
            "postgres://app:[redacted]@db.demo:5432/app?sslmode=require"
        );
        assert_eq!(
            redacted("redis://:pw@cache:6379,http://user@host/x https://a:b@c"),
            "redis://:[redacted]@cache:6379,http://user@host/x https://a:[redacted]@c"
        );
        assert_eq!(redacted("http://host:8080/path"), "http://host:8080/path");
        assert_eq!(redacted("no url here"), "no url here");
        let vars = [("REDIS_URL", "redis://u:hunter2@r:6379")].map(|(k, v)| (k.into(), v.into()));
        assert_eq!(environment(vars.into_iter(), &[]), ["REDIS_URL=redis://u:[redacted]@r:6379"]);
    }

    /// What a review still read in clear after the first redaction.
    #[test]
    fn secrets_in_every_notation_are_redacted() {
        for (value, expected) in [
            ("password = hunter2 dbname=app", "password = [redacted] dbname=app"),
            ("password='a b' host=db", "password='[redacted]' host=db"),
            (r#"{"user":"app","password":"a \" b"}"#, r#"{"user":"app","password":"[redacted]"}"#),
            ("password: hunter2", "password: [redacted]"),
            ("app:pw@tcp(db:3306)/app?parseTime=true", "app:[redacted]@tcp(db:3306)/app?parseTime=true"),
            ("redis://:pw#x@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
            ("mysql://u:pw/x@db/app", "mysql://u:[redacted]@db/app"),
            (
                "https://hooks.slack.com/services/TABCDEFGH/BABCDEFGH/abcdEFGHijklMNOPqrstUVWX",
                "https://hooks.slack.com/services/TABCDEFGH/BABCDEFGH/[redacted]",
            ),
            // Hosts, ports, mail addresses and plain paths stay readable.
            ("http://token-service:8080/v1", "http://token-service:8080/v1"),
            ("git@example.com:org/repo.git", "git@example.com:org/repo.git"),
            ("https://example.com/a-long-lowercase-path-name/x", "https://example.com/a-long-lowercase-path-name/x"),
        ] {
            assert_eq!(redacted(value), expected, "{value}");
        }
    }

    #[test]
    fn secret_looking_names_are_redacted_case_insensitively() {
        let vars = [("DEMO_APP_JWT_SECRET", "s3cr3t"), ("db_password", "pw"), ("PATH", "/bin"), ("api_key", "k")]
            .map(|(k, v)| (k.into(), v.into()));
        let redact: Vec<String> = ["SECRET", "PASSWORD", "KEY"].map(String::from).to_vec();
        assert_eq!(
            environment(vars.into_iter(), &redact),
            ["DEMO_APP_JWT_SECRET=[redacted]", "db_password=[redacted]", "PATH=/bin", "api_key=[redacted]"]
        );
    }

    #[test]
    fn credentials_are_redacted_whatever_the_variable_is_called() {
        let vars = [
            ("GH", "ghp_0123456789abcdefghijklmnopqrstuvwxyz"),
            ("UPSTREAM", "Bearer abcdefgh12345678"),
            ("CA", "-----BEGIN PRIVATE KEY-----\nMIIE..."),
            ("SESSION", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
            ("DSN", "https://db.example/app?user=app&password=hunter2&sslmode=require"),
            ("PLAIN", "http://host:8080/path?page=2"),
            ("PG", "host=db user=app password=hunter2 dbname=app"),
            ("SENTRY_DSN", "https://0123456789abcdef0123456789abcdef@o1.ingest.example/42"),
            ("SLACK", "https://hooks.slack.com/services/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"),
            ("PATH", "/usr/bin:/bin"),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        assert_eq!(
            environment(vars.into_iter(), &[]),
            [
                "GH=[redacted]",
                "UPSTREAM=[redacted]",
                "CA=[redacted]",
                "SESSION=[redacted]",
                "DSN=https://db.example/app?user=app&password=[redacted]&sslmode=require",
                "PLAIN=http://host:8080/path?page=2",
                "PG=host=db user=app password=[redacted] dbname=app",
                "SENTRY_DSN=https://[redacted]@o1.ingest.example/42",
                "SLACK=https://hooks.slack.com/services/T0AB12CD3/B0CD34EF5/[redacted]",
                "PATH=/usr/bin:/bin",
            ]
        );
    }
}
