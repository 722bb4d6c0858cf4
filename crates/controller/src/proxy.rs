//! The load balancer as the reconciler sees it: the [`ProxyBackend`] trait, its Caddy
//! implementation over `caddy-client`, and an in-memory fake.
//!
//! Each cluster owns one named server in Caddy's config (`apps/http/servers/botcluster-<name>`)
//! and never touches anything else there, so several clusters and a user's own sites share one
//! Caddy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use botcluster_proxy::Rendered;
use serde_json::Value;

/// A server's proxied traffic since Caddy started, from Caddy's `/metrics` (see
/// [`ProxyBackend::traffic`]).
pub use caddy_client::ServerTraffic;

/// Why a proxy call failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyError(pub String);

/// One upstream as the proxy reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamState {
    /// host:port.
    pub address: String,
    /// Requests in flight.
    pub num_requests: u64,
    /// Failures counted by passive health checks.
    pub fails: u64,
}

/// What the proxy holds under a server name, compared with a rendered server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Nothing under that name.
    Missing,
    /// The same server (semantically: Caddy may write numbers and defaults its own way).
    Same,
    /// Something else.
    Different,
}

/// What the reconciler needs from a proxy. It speaks in rendered servers
/// ([`botcluster_proxy::Rendered`]); what the proxy's own format is stays behind it.
#[async_trait]
pub trait ProxyBackend: Send + Sync + 'static {
    /// Compares what the proxy holds under `name` with `want`.
    async fn compare(&self, name: &str, want: &Rendered) -> Result<Held, ProxyError>;
    /// Whether the proxy holds a server called `name` at all.
    async fn exists(&self, name: &str) -> Result<bool, ProxyError>;
    /// Creates or replaces the named server.
    async fn put_server(&self, name: &str, server: &Rendered) -> Result<(), ProxyError>;
    /// Removes the named server; false when it was not there.
    async fn remove_server(&self, name: &str) -> Result<bool, ProxyError>;
    /// Every upstream the proxy knows, with requests in flight.
    async fn upstreams(&self) -> Result<Vec<UpstreamState>, ProxyError>;
    /// The requests the named server's `reverse_proxy` handlers served since the proxy
    /// started: counters, so a rate needs two readings ([`ServerTraffic::since`], which also
    /// notices a proxy restart). `None` while the server has proxied nothing yet, or when it
    /// is unknown or has no metrics (the rendered servers all have `"metrics": {}`).
    async fn traffic(&self, server: &str) -> Result<Option<ServerTraffic>, ProxyError>;
    /// Whether the proxy being managed has a rate-limit handler module (asked of it, not of a
    /// local binary; implementations may remember the first answer).
    async fn supports_rate_limit(&self) -> Result<bool, ProxyError>;
    /// Config writes sent so far (tests prove "zero pushes" with it).
    fn write_count(&self) -> u64;
    /// Where the admin API is, for messages.
    fn endpoint(&self) -> String;
}

/// Caddy through its admin API.
pub struct CaddyProxy {
    client: caddy_client::Client,
    /// The managed Caddy's answer to "do you have `rate_limit`?", once it gave one.
    rate_limit: Mutex<Option<bool>>,
}

impl CaddyProxy {
    /// Wraps a client.
    pub fn new(client: caddy_client::Client) -> Self {
        CaddyProxy {
            client,
            rate_limit: Mutex::new(None),
        }
    }
}

fn err(e: caddy_client::Error) -> ProxyError {
    ProxyError(e.to_string())
}

#[async_trait]
impl ProxyBackend for CaddyProxy {
    async fn compare(&self, name: &str, want: &Rendered) -> Result<Held, ProxyError> {
        Ok(match self.client.server(name).await.map_err(err)? {
            None => Held::Missing,
            Some((held, _)) if caddy_client::semantically_equal(&held, &want.server) => Held::Same,
            Some(_) => Held::Different,
        })
    }
    async fn exists(&self, name: &str) -> Result<bool, ProxyError> {
        Ok(self.client.server(name).await.map_err(err)?.is_some())
    }
    async fn put_server(&self, name: &str, server: &Rendered) -> Result<(), ProxyError> {
        self.client
            .ensure_server(name, &server.server)
            .await
            .map(drop)
            .map_err(err)
    }
    async fn remove_server(&self, name: &str) -> Result<bool, ProxyError> {
        self.client.remove_server(name).await.map_err(err)
    }
    async fn upstreams(&self) -> Result<Vec<UpstreamState>, ProxyError> {
        Ok(self
            .client
            .upstreams()
            .await
            .map_err(err)?
            .into_iter()
            .map(|u| UpstreamState {
                address: u.address,
                num_requests: u.num_requests,
                fails: u.fails,
            })
            .collect())
    }
    /// One `GET /metrics` (all of Caddy's metrics, a few tens of kB) per call.
    async fn traffic(&self, server: &str) -> Result<Option<ServerTraffic>, ProxyError> {
        let text = self.client.metrics().await.map_err(err)?;
        Ok(ServerTraffic::from_metrics(&text, server))
    }
    /// Asks the managed Caddy once (see [`caddy_client::Client::has_rate_limit`]); a Caddy
    /// replaced by another binary at the same address is asked again after an operator restart.
    async fn supports_rate_limit(&self) -> Result<bool, ProxyError> {
        if let Some(known) = *self.rate_limit.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(known);
        }
        let answer = self.client.has_rate_limit().await.map_err(err)?;
        *self.rate_limit.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        Ok(answer)
    }
    fn write_count(&self) -> u64 {
        self.client.write_count()
    }
    fn endpoint(&self) -> String {
        format!("{:?}", self.client.endpoint())
    }
}

/// An in-memory proxy for tests.
#[derive(Clone, Default)]
pub struct FakeProxy {
    servers: Arc<Mutex<BTreeMap<String, Value>>>,
    traffic: Arc<Mutex<BTreeMap<String, ServerTraffic>>>,
    writes: Arc<AtomicU64>,
    /// Every call fails as if the proxy did not answer.
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeProxy {
    /// An empty proxy.
    pub fn new() -> Self {
        Self::default()
    }
    /// The servers it holds.
    pub fn servers(&self) -> BTreeMap<String, Value> {
        self.servers.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// Edits a server behind the operator's back.
    pub fn set(&self, name: &str, v: Value) {
        if let Ok(mut s) = self.servers.lock() {
            s.insert(name.into(), v);
        }
    }
    /// Makes every call fail as if the proxy were not running (or answer again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }
    fn up(&self) -> Result<(), ProxyError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(ProxyError(
                "connection refused (the fake proxy is down)".into(),
            ));
        }
        Ok(())
    }
    fn held(&self, name: &str) -> Result<Option<Value>, ProxyError> {
        self.up()?;
        Ok(self
            .servers
            .lock()
            .map_err(|_| ProxyError("poisoned".into()))?
            .get(name)
            .cloned())
    }
    /// What [`ProxyBackend::traffic`] reports for `server` from now on (counters since the
    /// proxy started; set a smaller value to play a proxy restart). Until set: `None`.
    pub fn set_traffic(&self, server: &str, traffic: ServerTraffic) {
        if let Ok(mut t) = self.traffic.lock() {
            t.insert(server.into(), traffic);
        }
    }
}

#[async_trait]
impl ProxyBackend for FakeProxy {
    async fn compare(&self, name: &str, want: &Rendered) -> Result<Held, ProxyError> {
        Ok(match self.held(name)? {
            None => Held::Missing,
            Some(v) if v == want.server => Held::Same,
            Some(_) => Held::Different,
        })
    }
    async fn exists(&self, name: &str) -> Result<bool, ProxyError> {
        Ok(self.held(name)?.is_some())
    }
    async fn put_server(&self, name: &str, server: &Rendered) -> Result<(), ProxyError> {
        self.up()?;
        let server = &server.server;
        let mut s = self
            .servers
            .lock()
            .map_err(|_| ProxyError("poisoned".into()))?;
        if s.get(name) != Some(server) {
            self.writes.fetch_add(1, Ordering::Relaxed);
            s.insert(name.into(), server.clone());
        }
        Ok(())
    }
    async fn remove_server(&self, name: &str) -> Result<bool, ProxyError> {
        self.up()?;
        let removed = self
            .servers
            .lock()
            .map_err(|_| ProxyError("poisoned".into()))?
            .remove(name)
            .is_some();
        if removed {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(removed)
    }
    async fn upstreams(&self) -> Result<Vec<UpstreamState>, ProxyError> {
        Ok(Vec::new())
    }
    async fn traffic(&self, server: &str) -> Result<Option<ServerTraffic>, ProxyError> {
        Ok(self
            .traffic
            .lock()
            .map_err(|_| ProxyError("poisoned".into()))?
            .get(server)
            .copied())
    }
    async fn supports_rate_limit(&self) -> Result<bool, ProxyError> {
        self.up()?;
        Ok(false)
    }
    fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    fn endpoint(&self) -> String {
        "fake".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_reports_the_traffic_a_test_sets_and_none_before() {
        let proxy = FakeProxy::new();
        assert_eq!(proxy.traffic("botcluster-demo").await.ok(), Some(None));
        let t = ServerTraffic {
            requests_total: 120.0,
            errors_total: 1.0,
            duration_seconds_sum: 6.0,
            duration_seconds_count: 119.0,
        };
        proxy.set_traffic("botcluster-demo", t);
        let clone = proxy.clone();
        assert_eq!(clone.traffic("botcluster-demo").await.ok(), Some(Some(t)));
        assert_eq!(clone.traffic("botcluster-other").await.ok(), Some(None));
        assert_eq!(proxy.write_count(), 0, "reading traffic writes nothing");
    }
}
