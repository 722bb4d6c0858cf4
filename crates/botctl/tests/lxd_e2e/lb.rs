//! Requests through the load balancer (a real Caddy per test): who answers, a steady client
//! counting failures, and the spec of a load-balanced cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use test_support::Caddy;

/// caddy-client for a test Caddy's admin endpoint.
pub trait AdminClient {
    fn client(&self) -> caddy_client::Client;
}

impl AdminClient for Caddy {
    fn client(&self) -> caddy_client::Client {
        caddy_client::Client::from_url(self.admin_url()).unwrap()
    }
}

/// The instances that answered `n` GETs through the load balancer (failed requests skipped).
pub async fn who_answers(http: &reqwest::Client, url: &str, n: usize) -> BTreeSet<String> {
    let mut hits = BTreeSet::new();
    for _ in 0..n {
        if let Ok((who, _)) = via_lb(http, url, None).await {
            hits.insert(who);
        }
    }
    hits
}

/// A client sending GETs through the load balancer, one after another, until told to stop;
/// counts answers and failures (see [`via_lb`]).
pub struct SteadyClient {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Vec<String>)>,
}

impl SteadyClient {
    pub fn start(url: &str, pause: Duration) -> SteadyClient {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let url = url.to_string();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .unwrap();
            let (mut ok, mut failed) = (0u32, Vec::new());
            let started = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(600)
            {
                match via_lb(&http, &url, None).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
                tokio::time::sleep(pause).await;
            }
            (ok, failed)
        });
        SteadyClient { stop, task }
    }

    /// Stops the client: (answered, failures).
    pub async fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// One GET through the load balancer: (instance that answered, Set-Cookie). A connection reset
/// before any answer is retried once, as browsers and Caddy itself do for idempotent requests:
/// Caddy briefly resets new connections while it swaps configs.
pub async fn via_lb(
    http: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
) -> Result<(String, Option<String>), String> {
    for attempt in 0..2 {
        let mut req = http.get(format!("{url}/hello"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status();
                let set_cookie = r
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(';').next().unwrap_or("").to_string());
                let body = r.text().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("{status}: {body}"));
                }
                return Ok((body.trim().to_string(), set_cookie));
            }
            Err(e) if attempt == 0 && (e.is_connect() || e.is_request()) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("unreachable".into())
}

pub fn lb_spec(replicas: u32, listen: u16, policy: &str) -> String {
    format!(
        "  replicas: {replicas}\n  health:\n    interval: 1s\n    timeout: 1s\n    retries: 1\n  loadBalancer:\n    listen: 127.0.0.1:{listen}\n    healthCheck: {{uri: /api/health, interval: 1s, timeout: 1s}}\n    drainTimeout: 10s\n    routes:\n      - name: all\n        policy: {policy}\n"
    )
}
