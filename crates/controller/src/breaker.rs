//! A circuit breaker for the operator's own calls to LXD and the proxy: after `threshold`
//! consecutive failures to reach the backend it opens and fails calls at once for `timeout`,
//! then lets `half_open` trial calls through; one success closes it again.
//!
//! Only "cannot reach the backend" failures count (a refused request is an answer). While open,
//! reconciles fail fast with a message saying so, the cluster shows Degraded, and the work
//! queue's backoff keeps retries calm instead of piling requests on a dead daemon.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use botcluster_api::spec::FileSpec;

use crate::backend::{BackendError, ContainerBackend, CreateRequest, Instance, Result, Usage};
use crate::model::Device;

/// Breaker settings (the seed's `circuit-breaker-*` defaults).
#[derive(Clone, Copy, Debug)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub threshold: u32,
    /// How long it stays open.
    pub timeout: Duration,
    /// Trial calls allowed when half-open.
    pub half_open: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            timeout: Duration::from_secs(30),
            half_open: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed { fails: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

/// The state machine, independent of what it guards.
pub struct Breaker {
    name: &'static str,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        Breaker {
            name,
            config,
            state: Mutex::new(State::Closed { fails: 0 }),
        }
    }

    /// May a call go through now? Err with the reason when the circuit is open.
    pub fn admit(&self, now: Instant) -> std::result::Result<(), String> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *s {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(format!(
                "circuit open: {} failed {} times in a row; next try in {:.0?}",
                self.name,
                self.config.threshold,
                until - now
            )),
            State::Open { .. } => {
                *s = State::HalfOpen { in_flight: 1 };
                Ok(())
            }
            State::HalfOpen { in_flight } if in_flight < self.config.half_open.max(1) => {
                *s = State::HalfOpen {
                    in_flight: in_flight + 1,
                };
                Ok(())
            }
            State::HalfOpen { .. } => Err(format!(
                "circuit half-open: {} trial calls to {} are under way",
                self.config.half_open, self.name
            )),
        }
    }

    /// Records a call's outcome: `reached` is false when the backend could not be reached.
    pub fn record(&self, reached: bool, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = match (*s, reached) {
            (_, true) => State::Closed { fails: 0 },
            (State::Closed { fails }, false) if fails + 1 >= self.config.threshold.max(1) => {
                tracing::warn!(
                    backend = self.name,
                    "circuit opened after {} failures",
                    fails + 1
                );
                State::Open {
                    until: now + self.config.timeout,
                }
            }
            (State::Closed { fails }, false) => State::Closed { fails: fails + 1 },
            (State::HalfOpen { .. } | State::Open { .. }, false) => State::Open {
                until: now + self.config.timeout,
            },
        };
    }

    /// True while open (calls fail fast).
    pub fn is_open(&self) -> bool {
        matches!(*self.state.lock().unwrap_or_else(|p| p.into_inner()), State::Open { until } if Instant::now() < until)
    }
}

/// A [`ContainerBackend`] behind a [`Breaker`].
pub struct BreakerBackend<B> {
    inner: B,
    breaker: Breaker,
}

impl<B: ContainerBackend> BreakerBackend<B> {
    /// Guards `inner`.
    pub fn new(inner: B, config: BreakerConfig) -> Self {
        BreakerBackend {
            inner,
            breaker: Breaker::new("LXD", config),
        }
    }

    async fn call<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.breaker
            .admit(Instant::now())
            .map_err(BackendError::Unavailable)?;
        let r = f.await;
        self.breaker.record(
            !matches!(r, Err(BackendError::Unavailable(_))),
            Instant::now(),
        );
        r
    }
}

#[async_trait]
impl<B: ContainerBackend> ContainerBackend for BreakerBackend<B> {
    async fn list(&self, cluster: &str) -> Result<Vec<Instance>> {
        self.call(self.inner.list(cluster)).await
    }
    async fn list_managed(&self) -> Result<Vec<Instance>> {
        self.call(self.inner.list_managed()).await
    }
    async fn create(&self, request: &CreateRequest) -> Result<()> {
        self.call(self.inner.create(request)).await
    }
    async fn start(&self, name: &str) -> Result<()> {
        self.call(self.inner.start(name)).await
    }
    async fn stop(&self, name: &str) -> Result<()> {
        self.call(self.inner.stop(name)).await
    }
    async fn restart(&self, name: &str) -> Result<()> {
        self.call(self.inner.restart(name)).await
    }
    async fn delete(&self, name: &str) -> Result<()> {
        self.call(self.inner.delete(name)).await
    }
    async fn patch(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        devices: &BTreeMap<String, Device>,
        remove_devices: &[String],
    ) -> Result<()> {
        self.call(self.inner.patch(name, config, devices, remove_devices))
            .await
    }
    async fn push_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        self.call(self.inner.push_file(name, file)).await
    }
    async fn replace_file(&self, name: &str, file: &FileSpec) -> Result<()> {
        self.call(self.inner.replace_file(name, file)).await
    }
    async fn remove_file(&self, name: &str, path: &str) -> Result<()> {
        self.call(self.inner.remove_file(name, path)).await
    }
    async fn usage(&self, names: &[String]) -> Result<HashMap<String, Usage>> {
        self.call(self.inner.usage(names)).await
    }
    fn write_count(&self) -> u64 {
        self.inner.write_count()
    }
}

/// A [`ProxyBackend`](crate::proxy::ProxyBackend) behind a [`Breaker`].
pub struct BreakerProxy<P> {
    inner: P,
    breaker: Breaker,
}

impl<P: crate::proxy::ProxyBackend> BreakerProxy<P> {
    /// Guards `inner`.
    pub fn new(inner: P, config: BreakerConfig) -> Self {
        BreakerProxy {
            inner,
            breaker: Breaker::new("the proxy", config),
        }
    }

    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, crate::proxy::ProxyError>>,
    ) -> std::result::Result<T, crate::proxy::ProxyError> {
        self.breaker
            .admit(Instant::now())
            .map_err(crate::proxy::ProxyError)?;
        let r = f.await;
        // Any proxy error counts: the admin API answers every well-formed request we send.
        self.breaker.record(r.is_ok(), Instant::now());
        r
    }
}

#[async_trait]
impl<P: crate::proxy::ProxyBackend> crate::proxy::ProxyBackend for BreakerProxy<P> {
    async fn compare(
        &self,
        name: &str,
        want: &botcluster_proxy::Rendered,
    ) -> std::result::Result<crate::proxy::Held, crate::proxy::ProxyError> {
        self.call(self.inner.compare(name, want)).await
    }
    async fn exists(&self, name: &str) -> std::result::Result<bool, crate::proxy::ProxyError> {
        self.call(self.inner.exists(name)).await
    }
    async fn put_server(
        &self,
        name: &str,
        server: &botcluster_proxy::Rendered,
    ) -> std::result::Result<(), crate::proxy::ProxyError> {
        self.call(self.inner.put_server(name, server)).await
    }
    async fn remove_server(
        &self,
        name: &str,
    ) -> std::result::Result<bool, crate::proxy::ProxyError> {
        self.call(self.inner.remove_server(name)).await
    }
    async fn upstreams(
        &self,
    ) -> std::result::Result<Vec<crate::proxy::UpstreamState>, crate::proxy::ProxyError> {
        self.call(self.inner.upstreams()).await
    }
    async fn traffic(
        &self,
        server: &str,
    ) -> std::result::Result<Option<crate::proxy::ServerTraffic>, crate::proxy::ProxyError> {
        self.call(self.inner.traffic(server)).await
    }
    async fn supports_rate_limit(&self) -> std::result::Result<bool, crate::proxy::ProxyError> {
        self.call(self.inner.supports_rate_limit()).await
    }
    fn write_count(&self) -> u64 {
        self.inner.write_count()
    }
    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{FakeProxy, ProxyBackend, ServerTraffic};

    #[tokio::test]
    async fn the_proxy_breaker_passes_traffic_through() {
        let fake = FakeProxy::new();
        let t = ServerTraffic {
            requests_total: 3.0,
            ..ServerTraffic::default()
        };
        fake.set_traffic("botcluster-demo", t);
        let guarded = BreakerProxy::new(fake, BreakerConfig::default());
        assert_eq!(guarded.traffic("botcluster-demo").await.ok(), Some(Some(t)));
        assert_eq!(guarded.traffic("botcluster-x").await.ok(), Some(None));
    }

    #[test]
    fn opens_after_threshold_half_opens_after_timeout_and_closes_on_success() {
        let cfg = BreakerConfig {
            threshold: 3,
            timeout: Duration::from_secs(10),
            half_open: 2,
        };
        let b = Breaker::new("LXD", cfg);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.record(false, t0);
        }
        assert!(b.admit(t0).is_ok(), "still closed after 2 of 3 failures");
        b.record(false, t0);
        let err = b.admit(t0 + Duration::from_secs(1)).unwrap_err();
        assert!(
            err.contains("circuit open") && err.contains("failed 3 times"),
            "{err}"
        );
        // Half-open after the timeout: two trials, not three.
        let t1 = t0 + Duration::from_secs(11);
        assert!(b.admit(t1).is_ok());
        assert!(b.admit(t1).is_ok());
        assert!(b.admit(t1).is_err());
        // A failed trial opens it again; a successful one closes it.
        b.record(false, t1);
        assert!(b.admit(t1 + Duration::from_secs(1)).is_err());
        let t2 = t1 + Duration::from_secs(11);
        assert!(b.admit(t2).is_ok());
        b.record(true, t2);
        assert!(b.admit(t2).is_ok() && b.admit(t2).is_ok() && b.admit(t2).is_ok());
    }
}
