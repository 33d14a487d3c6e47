//! --secure-port: the same API over HTTPS with the certificate of
//! --cert-path (tls.crt and tls.key, a mounted kubernetes.io/tls Secret).

use demo_app::config::Config;
use demo_app::startup::Application;

/// A self-signed certificate for 127.0.0.1 in `dir`, as podinfo expects it.
fn write_certificate(dir: &std::path::Path) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("tls.crt"), certified.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), certified.signing_key.serialize_pem()).unwrap();
    certified.cert.pem()
}

#[tokio::test]
async fn the_api_is_served_over_https() {
    let data = tempfile::tempdir().unwrap();
    let pem = write_certificate(data.path());
    let mut config = Config::for_tests(data.path().join("data"));
    config.cert_path = data.path().to_path_buf();
    let app = Application::build(config).await.unwrap();
    let app = app.with_secure_listener(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let port = app.secure_port().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let trusted = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(trusted).build().unwrap();
    let response = client.get(format!("https://127.0.0.1:{port}/api/info")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("\"version\""));
    // Plain HTTP on the HTTPS port is told so, as Go's server (podinfo) does.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/api/info")).await.unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.text().await.unwrap().contains("HTTP request to an HTTPS server"));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_missing_certificate_stops_the_start_naming_the_file() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path().join("data"));
    config.cert_path = data.path().join("no-such-folder");
    config.secure_port = 1;
    let Err(error) = Application::build(config).await else { panic!("started without a certificate") };
    let said = format!("{error:#}");
    assert!(said.contains("no-such-folder/tls.crt") && said.contains("--cert-path"), "{said}");
}
