//! Configuration mistakes are refused at start-up with the flag's name,
//! never turned into a silently different service.

use std::process::Command;

fn start(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DEMO_APP_LEVEL")
        .output()
        .expect("the binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_unknown_log_level_is_refused() {
    let (ok, stderr) = start(&["--level", "verbose", "--port", "0"], &[]);
    assert!(!ok);
    assert!(stderr.contains("unknown log level \"verbose\""), "{stderr}");
}

#[test]
fn empty_urls_from_the_environment_are_refused() {
    for name in ["DEMO_APP_DATABASE_URL", "DEMO_APP_BACKEND_URL"] {
        let (ok, stderr) = start(&["--port", "0"], &[(name, "")]);
        assert!(!ok, "{name}= was accepted");
        assert!(stderr.contains("must not be empty"), "{name}: {stderr}");
    }
}
