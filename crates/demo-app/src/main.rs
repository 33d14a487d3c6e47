use std::time::Duration;

use demo_app::config::Config;
use demo_app::startup::{Application, shutdown_signal};

/// glibc's malloc took a third of a request's instructions (callgrind,
/// docs/benchmarks.md): every request allocates its headers, futures and
/// JSON body, and mimalloc's fast path is several times shorter.
#[global_allocator]
static ALLOCATOR: demo_app::allocator::Allocator = demo_app::allocator::Allocator;

/// Time left to flush telemetry after the server has drained.
const TELEMETRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<std::process::ExitCode> {
    // podinfo's image runs its probe client as `podcli`: ours is this binary.
    let invoked_as = std::env::args_os().next().map(std::path::PathBuf::from);
    if invoked_as.as_deref().and_then(std::path::Path::file_name).is_some_and(|name| name == "podcli") {
        return Ok(demo_app::podcli::main(std::env::args()));
    }
    let config = demo_app::config::parse();
    // Two workers at least, whatever the CPU quota: OTLP export must never
    // compete with requests for a single worker thread.
    let workers = std::thread::available_parallelism().map_or(2, usize::from).max(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = demo_app::telemetry::init(&config.level)?;
    for warning in config.podinfo_only.warnings() {
        tracing::warn!("{warning}");
    }
    demo_app::stress::start(config.stress_cpu, config.stress_memory);
    let app = Application::build(config).await?;
    tracing::info!(
        port = app.port(),
        metrics_port = app.metrics_port(),
        grpc_port = app.grpc_port(),
        "demo-app listening"
    );
    let result = app.run_until(shutdown_signal()).await;
    telemetry.shutdown(TELEMETRY_FLUSH_TIMEOUT).await;
    result
}
