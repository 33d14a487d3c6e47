use demo_app::config::Config;
use demo_app::startup::Application;
use tokio::sync::oneshot;

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of the gRPC API (spawn_grpc_app only).
    pub grpc_address: Option<String>,
    pub metrics_address: String,
    pub client: reqwest::Client,
    /// Keeps the data folder alive as long as the app.
    pub data: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client.post(self.url(path)).body(body).send().await.expect("request failed")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request failed")
    }

    /// Sends the shutdown signal and waits for the server to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.take().expect("not shut down yet").send(());
        self.server.take().expect("running").await?
    }
}

/// Starts the app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `adjust` has changed the test configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    start(adjust, false).await
}

/// Starts the app with its gRPC API on a free port too.
pub async fn spawn_grpc_app(adjust: impl FnOnce(&mut Config)) -> TestApp {
    start(adjust, true).await
}

async fn start(adjust: impl FnOnce(&mut Config), grpc: bool) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(data.path().to_path_buf());
    adjust(&mut config);
    let mut app = Application::build(config).await.expect("app builds");
    if grpc {
        app = app.with_grpc_listener(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port"));
    }
    let grpc_address = app.grpc_port().map(|port| format!("http://127.0.0.1:{port}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = format!("http://127.0.0.1:{}", app.metrics_port());
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        grpc_address,
        metrics_address,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        data,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// The sorted keys of a JSON object.
pub fn keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("a JSON object").keys().cloned().collect();
    keys.sort();
    keys
}
