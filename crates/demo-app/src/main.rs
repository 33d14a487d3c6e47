use clap::Parser;
use demo_app::config::Config;
use demo_app::startup::{Application, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    demo_app::telemetry::init_logging(&config.level);
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), metrics_port = app.metrics_port(), "demo-app listening");
    app.run_until(shutdown_signal()).await
}
