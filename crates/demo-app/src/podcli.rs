//! `podcli check http|tcp ADDRESS`: podinfo's probe client, which its Helm
//! chart runs as exec probes (`podcli check http localhost:9898/healthz`).
//! The binary answers to it when invoked under the name `podcli` (the image
//! links it so), so podinfo's manifests probe demo-app unchanged.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "podcli", about = "podinfo's probe client, answered by demo-app")]
struct Podcli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// Checks that an address answers.
    #[command(subcommand)]
    Check(Check),
}

#[derive(Subcommand, Debug)]
enum Check {
    /// An HTTP call answered with 2xx or 3xx (`http://` is implied).
    Http {
        address: String,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long, default_value = "")]
        body: String,
        #[command(flatten)]
        tries: Tries,
    },
    /// A TCP connection accepted.
    Tcp {
        address: String,
        #[command(flatten)]
        tries: Tries,
    },
}

#[derive(Args, Debug, Clone, Copy)]
struct Tries {
    /// Times to try again after a failure.
    #[arg(long, default_value_t = 0)]
    retry: u32,
    /// Wait between tries.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Longest a try may take.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Runs podcli with `args` (its own name first); the exit code is the verdict.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let Top::Check(check) = Podcli::parse_from(args).command;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("podcli: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(check)) {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(said) => {
            eprintln!("{said}");
            ExitCode::FAILURE
        }
    }
}

async fn run(check: Check) -> Result<String, String> {
    let tries = match &check {
        Check::Http { tries, .. } | Check::Tcp { tries, .. } => *tries,
    };
    let mut last = String::new();
    for attempt in 0..=tries.retry {
        if attempt > 0 {
            tokio::time::sleep(tries.delay).await;
        }
        let outcome = match &check {
            Check::Http { address, method, body, .. } => http(address, method, body, tries.timeout).await,
            Check::Tcp { address, .. } => tcp(address, tries.timeout).await,
        };
        match outcome {
            Ok(said) => return Ok(said),
            Err(said) => last = said,
        }
    }
    Err(last)
}

async fn http(address: &str, method: &str, body: &str, timeout: Duration) -> Result<String, String> {
    let url = if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("invalid --method: {e}"))?;
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().build().map_err(|e| e.to_string())?;
    let response = client
        .request(method, &url)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("check failed: {url}: {e}"))?;
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        Ok(format!("check succeeded: {url} answered {}", status.as_u16()))
    } else {
        Err(format!("check failed: {url} answered {}", status.as_u16()))
    }
}

async fn tcp(address: &str, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(format!("check succeeded: {address} accepted a connection")),
        Ok(Err(error)) => Err(format!("check failed: {address}: {error}")),
        Err(_) => Err(format!("check failed: {address}: no connection within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_pass_on_answers_and_fail_on_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let tries = Tries { retry: 0, delay: Duration::ZERO, timeout: Duration::from_secs(2) };
        assert!(run(Check::Tcp { address: address.clone(), tries }).await.is_ok());
        drop(listener);
        let refused = run(Check::Tcp { address: address.clone(), tries }).await.unwrap_err();
        assert!(refused.starts_with("check failed"), "{refused}");
        let http = Check::Http { address, method: "GET".into(), body: String::new(), tries };
        assert!(run(http).await.unwrap_err().contains("check failed"));
    }

    #[test]
    fn podinfos_probe_command_line_parses() {
        let parsed = Podcli::try_parse_from(["podcli", "check", "http", "localhost:9898/healthz", "--retry", "2"]);
        assert!(matches!(parsed.unwrap().command, Top::Check(Check::Http { tries: Tries { retry: 2, .. }, .. })));
    }
}
