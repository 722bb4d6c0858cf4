//! The readiness probe: an HTTP GET of the health endpoint through the instance's host port.
//!
//! A TCP connect proves nothing here: LXD's proxy device accepts connections even when nothing
//! listens inside the container. So the probe reads the seed's health JSON.

use std::time::Duration;

/// What one probe saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// Serving: HTTP 200 and `status` not `unhealthy`.
    pub ready: bool,
    /// `healthy`, `degraded`, `unhealthy`, or `unreachable`.
    pub health: String,
    /// Why not ready.
    pub message: Option<String>,
    /// How long the probe took, milliseconds.
    pub latency_ms: f64,
    /// `metrics.queueDepth` from the health JSON.
    pub queue_depth: Option<f64>,
    /// `metrics.connections` from the health JSON.
    pub connections: Option<f64>,
}

/// Judges one instance's health endpoint. The reconciler's health judging runs against this
/// trait, so tests can hand it fakes.
#[async_trait::async_trait]
pub trait Probe: Send + Sync + 'static {
    /// Probes `path` on the instance listening at `host:port`.
    async fn probe(&self, host: &str, port: u16, path: &str) -> ProbeResult;
}

/// Probes health endpoints over loopback HTTP.
#[derive(Clone)]
pub struct HttpProbe {
    http: reqwest::Client,
}

#[async_trait::async_trait]
impl Probe for HttpProbe {
    async fn probe(&self, host: &str, port: u16, path: &str) -> ProbeResult {
        self.get(host, port, path).await
    }
}

impl HttpProbe {
    /// A prober whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpProbe { http }
    }

    /// GETs `http://{host}:{port}{path}` and reads the health JSON.
    pub async fn get(&self, host: &str, port: u16, path: &str) -> ProbeResult {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let url = format!("http://{host}:{port}{path}");
        let started = std::time::Instant::now();
        let resp = match self.http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                return ProbeResult {
                    ready: false,
                    health: "unreachable".into(),
                    message: Some(format!("GET {url}: {}", short(&e))),
                    latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                    queue_depth: None,
                    connections: None,
                }
            }
        };
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let metric = |k: &str| {
            body.pointer(&format!("/metrics/{k}"))
                .and_then(serde_json::Value::as_f64)
        };
        let health = body
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or(if status.is_success() {
                "healthy"
            } else {
                "unhealthy"
            })
            .to_string();
        let ready = status.is_success() && health != "unhealthy";
        ProbeResult {
            ready,
            message: (!ready)
                .then(|| format!("GET {url} answered {status} with status \"{health}\"")),
            health,
            latency_ms,
            queue_depth: metric("queueDepth"),
            connections: metric("connections"),
        }
    }
}

fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or reset".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s = format!("{s}: {inner}");
            src = inner.source();
        }
        s
    }
}
