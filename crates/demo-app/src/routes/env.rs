//! GET|POST /env: the process environment as `KEY=VALUE` strings, with the
//! values of secret-looking names redacted (podinfo leaked its JWT secret).

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
        if secret { format!("{key}={REDACTED}") } else { format!("{key}={}", value.to_string_lossy()) }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
