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

/// `value` with the values of secret-looking query parameters
/// (`?password=...`, `&token=...`) redacted.
fn without_query_secrets(value: &str) -> String {
    const SECRET_NAMES: [&str; 8] = ["pass", "pwd", "secret", "token", "key", "sig", "auth", "credential"];
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    // Each parameter starts after `?`, `&` or `;`.
    while let Some(start) = rest.find(['?', '&', ';']) {
        let (before, after) = rest.split_at(start + 1);
        out.push_str(before);
        let end = after.find(['&', '#', ';', ' ', ',']).unwrap_or(after.len());
        match after[..end].split_once('=') {
            Some((name, _)) if SECRET_NAMES.iter().any(|s| name.to_ascii_lowercase().contains(s)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(&after[..end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `value` with the password of every `scheme://user:password@host` in it
/// redacted.
fn without_url_passwords(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first of `/?#` or whitespace.
        let end = after.find(['/', '?', '#', ' ', ',', ';']).unwrap_or(after.len());
        let authority = &after[..end];
        match authority
            .rfind('@')
            .and_then(|userinfo_end| authority[..userinfo_end].find(':').map(|colon| (colon, userinfo_end)))
        {
            Some((colon, userinfo_end)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
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
                "PATH=/usr/bin:/bin",
            ]
        );
    }
}
