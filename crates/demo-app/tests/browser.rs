//! The UI in headless Chromium (Debian's chromium + chromium-driver, driven
//! over WebDriver): load, check the version, place an order, see it listed.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(path: &str, package: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: install Debian's {package} (`make tools` does it as root)"
    );
}

async fn start_chromedriver() -> (Driver, String) {
    require("/usr/bin/chromium", "chromium");
    require("/usr/bin/chromedriver", "chromium-driver");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver(child), url)
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver as `make tools` installs them; `make test` runs it"]
async fn a_visitor_sees_the_version_and_places_an_order() {
    let app = helpers::spawn_app().await;
    let (_driver, webdriver) = start_chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            // The machine has no network: without these Chromium keeps
            // trying to reach Google's services.
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new()) // chromedriver speaks plain HTTP on loopback
        .capabilities(caps)
        .connect(&webdriver)
        .await
        .expect("a browser session");
    let result = async {
        browser.goto(&app.url("/")).await?;
        let version = browser.wait().for_element(Locator::Css("#version")).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while version.text().await? != env!("CARGO_PKG_VERSION") {
            assert!(Instant::now() < deadline, "the version never appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sku = browser.find(Locator::Css("input[name=sku]")).await?;
        sku.clear().await?;
        sku.send_keys("ui-test-sku").await?;
        browser.find(Locator::Css("#order-form button")).await?.click().await?;
        let row = browser.wait().for_element(Locator::XPath("//tbody[@id='orders']/tr[td='ui-test-sku']")).await?;
        let status = browser.find(Locator::Css("#order-status")).await?.text().await?;
        assert!(status.starts_with("order ") && status.ends_with(" placed"), "{status}");
        assert!(row.text().await?.contains("ui-test-sku"));
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.close().await.ok();
    result.expect("browser steps");
    let page: serde_json::Value = app.get("/api/orders").await.json().await.unwrap();
    assert_eq!(page["orders"][0]["sku"], "ui-test-sku");
}
