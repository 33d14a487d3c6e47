//! The requests of the benchmark. Every server that implements a scenario
//! answers it with the same method, path, body and success status.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Info,
    /// GET /api/info over HTTP/2 without TLS (h2c, prior knowledge).
    InfoH2,
    Healthz,
    Echo,
    Orders,
    Checkout,
    /// podinfo's gRPC `info.InfoService/Info` (ghz, h2c).
    GrpcInfo,
}

/// The order every POST of `orders` and `checkout` sends (a new order each time).
pub const ORDER_JSON: &str = r#"{"sku":"bench-1","quantity":2,"unit_price_cents":1250}"#;

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Info,
        Scenario::InfoH2,
        Scenario::GrpcInfo,
        Scenario::Healthz,
        Scenario::Echo,
        Scenario::Orders,
        Scenario::Checkout,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::Info => "info",
            Scenario::InfoH2 => "info-h2",
            Scenario::Healthz => "healthz",
            Scenario::Echo => "echo",
            Scenario::Orders => "orders",
            Scenario::Checkout => "checkout",
            Scenario::GrpcInfo => "grpc-info",
        }
    }

    /// How the table and chart name it.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Info => "GET /api/info",
            Scenario::InfoH2 => "GET /api/info (h2c)",
            Scenario::Healthz => "GET /healthz",
            Scenario::Echo => "POST /api/echo 1 KiB",
            Scenario::Orders => "POST /api/orders",
            Scenario::Checkout => "POST /api/checkout",
            Scenario::GrpcInfo => "gRPC info.InfoService/Info",
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Scenario::Info | Scenario::InfoH2 | Scenario::Healthz => "GET",
            // Every gRPC call is a POST (its body is ghz's to write).
            _ => "POST",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Scenario::Info | Scenario::InfoH2 => "/api/info",
            Scenario::Healthz => "/healthz",
            Scenario::Echo => "/api/echo",
            Scenario::Orders => "/api/orders",
            Scenario::Checkout => "/api/checkout",
            Scenario::GrpcInfo => "/info.InfoService/Info",
        }
    }

    /// (content type, body) of a POST.
    pub fn body(self) -> Option<(&'static str, String)> {
        match self {
            Scenario::Info | Scenario::InfoH2 | Scenario::Healthz | Scenario::GrpcInfo => None,
            Scenario::Echo => Some(("application/octet-stream", echo_body())),
            Scenario::Orders | Scenario::Checkout => Some(("application/json", ORDER_JSON.to_string())),
        }
    }

    /// HTTP/2: wrk speaks only HTTP/1.1, so oha drives both runs.
    pub fn http2(self) -> bool {
        self == Scenario::InfoH2
    }

    /// A gRPC call, loaded by ghz on the server's --grpc-port.
    pub fn grpc(self) -> bool {
        self == Scenario::GrpcInfo
    }

    /// Whether each request stores an order (SQLite, fsync per commit).
    pub fn writes(self) -> bool {
        matches!(self, Scenario::Orders | Scenario::Checkout)
    }

    /// The status a correct answer has; anything else counts as an error.
    pub fn expected_status(self) -> u16 {
        match self {
            Scenario::Info | Scenario::InfoH2 | Scenario::Healthz | Scenario::GrpcInfo => 200,
            Scenario::Echo => 202,
            Scenario::Orders | Scenario::Checkout => 201,
        }
    }
}

/// 1 KiB of printable ASCII (so it can sit in a Lua string and a command line).
pub fn echo_body() -> String {
    (0..1024u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_body_is_one_kib() {
        assert_eq!(echo_body().len(), 1024);
    }

    #[test]
    fn only_posts_have_bodies() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.body().is_some(), scenario.method() == "POST" && !scenario.grpc(), "{scenario:?}");
        }
    }
}
