//! GET|POST /env: the process environment as `KEY=VALUE` strings, with the
//! values of secret-looking names redacted (podinfo leaked its JWT secret),
//! and the password of any URL with credentials (`postgres://app:pw@db`)
//! whatever the variable is called.

use axum::Json;
use axum::extract::State;

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
            format!("{key}={}", without_query_secrets(&without_url_passwords(&value)))
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

/// `value` with the values of secret-looking parameters redacted: in a
/// query (`?password=...&token=...`) or a key-value DSN
/// (`host=db user=app password=...`).
fn without_query_secrets(value: &str) -> String {
    const SECRET_NAMES: [&str; 8] = ["pass", "pwd", "secret", "token", "key", "sig", "auth", "credential"];
    const SEPARATORS: [char; 8] = ['?', '&', ';', '#', ',', ' ', '\t', '\n'];
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    loop {
        let end = rest.find(SEPARATORS).unwrap_or(rest.len());
        match rest[..end].split_once('=') {
            Some((name, _)) if SECRET_NAMES.iter().any(|s| name.to_ascii_lowercase().contains(s)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(&rest[..end]),
        }
        let Some(separator) = rest[end..].chars().next() else { break };
        out.push(separator);
        rest = &rest[end + separator.len_utf8()..];
    }
    out
}

/// `value` with the credentials of every URL in it redacted: the password
/// of `scheme://user:password@host`, a user that is a key
/// (`https://<key>@sentry.example/1`), and path segments that are tokens
/// (`https://hooks.slack.com/services/T00/B00/<token>`).
fn without_url_passwords(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first of `/?#` or whitespace.
        let end = after.find(['/', '?', '#', ' ', ',', ';']).unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&authority[..=colon]);
                        out.push_str(REDACTED);
                    }
                    None if userinfo.len() >= 16 => out.push_str(REDACTED),
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        // The path, segment by segment.
        let after = &after[end..];
        let path_end = after.find(['?', '#', ' ', ',', ';', '\n']).unwrap_or(after.len());
        for (i, segment) in after[..path_end].split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(if is_token(segment) { REDACTED } else { segment });
        }
        rest = &after[path_end..];
    }
    out.push_str(rest);
    out
}

/// A path segment that is a random credential rather than a name: long,
/// with letters and digits, nothing but `[A-Za-z0-9_-]`.
fn is_token(segment: &str) -> bool {
    segment.len() >= 20
        && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
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
            without_url_passwords("postgres://app:S3cretPw@db.demo:5432/app?sslmode=require"),
            "postgres://app:[redacted]@db.demo:5432/app?sslmode=require"
        );
        assert_eq!(
            without_url_passwords("redis://:pw@cache:6379,http://user@host/x https://a:b@c"),
            "redis://:[redacted]@cache:6379,http://user@host/x https://a:[redacted]@c"
        );
        assert_eq!(without_url_passwords("http://host:8080/path"), "http://host:8080/path");
        assert_eq!(without_url_passwords("no url here"), "no url here");
        let vars = [("REDIS_URL", "redis://u:hunter2@r:6379")].map(|(k, v)| (k.into(), v.into()));
        assert_eq!(environment(vars.into_iter(), &[]), ["REDIS_URL=redis://u:[redacted]@r:6379"]);
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
