//! With the Collector unreachable, requests still succeed and every span is
//! accounted for in telemetry_dropped_total: refused at the queue or lost in
//! a failed export, never silently.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_to_a_dead_collector_are_counted_not_lost_silently() {
    // A port nothing listens on: bind, note it, release it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), format!("http://127.0.0.1:{dead}")),
        ("OTEL_BSP_MAX_QUEUE_SIZE".to_string(), "64".to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "200".to_string()),
    ]
    .into_iter()
    .collect();
    let telemetry = demo_app::telemetry::init_from("warn", &vars).unwrap();
    let app = helpers::spawn_app().await;

    let requests = 300;
    for _ in 0..requests {
        assert_eq!(app.get("/version").await.status(), 200, "requests do not depend on the Collector");
    }
    let metrics_url = format!("{}/metrics", app.metrics_address);
    let dropped = || async {
        let text = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("telemetry_dropped_total{signal=\"traces\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = dropped().await;
    while seen < requests && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = dropped().await;
    }
    // One server span per request; metric scrapes add their own spans.
    assert!(seen >= requests, "only {seen} of at least {requests} spans were counted as dropped");
    telemetry.shutdown(Duration::from_secs(1)).await;
}
