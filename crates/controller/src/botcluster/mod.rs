//! The BotCluster reconciler: one pass is observe → plan → execute → status.
//!
//! Where to look:
//! - *what one pass does, in order*: [`pass`];
//! - *what the next pass will do* (`botctl diff`, `?dryRun=true`): [`preview`], which runs the
//!   same observation and planning as a pass and writes nothing;
//! - *why a cluster is Degraded*: [`status::derive_status`], the one place conditions are
//!   derived from facts;
//! - *how actions run and what can come of them*: [`execute`];
//! - *the load balancer's part of the plan*: [`balancer`];
//! - *the shard map and tenant databases*: [`shards`]; *the bots' cache, vector DB, fallback
//!   and rate-limit settings file*: [`botconfig`];
//! - *what is observed and judged*: [`observe`] (instances, probes, load, traffic) and
//!   [`autoscale`] (the replica count).

pub mod autoscale;
pub mod balancer;
pub mod botconfig;
pub mod execute;
pub mod observe;
pub mod pass;
pub mod ports;
pub mod preview;
pub mod shards;
pub mod status;
pub mod triggers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use botcluster_api::{Event, BOTCLUSTER_KIND};
use botcluster_store::{now_rfc3339, Store, StoreError};
use tokio::sync::Semaphore;

use crate::backend::{BackendError, ContainerBackend};
use crate::health::ClusterMemory;
use crate::metrics::ControllerMetrics;
use crate::model::Capabilities;
use crate::probe::{HttpProbe, Probe};
use crate::proxy::ProxyBackend;
use crate::runtime::{Action, Reconcile};
use ports::PortBook;

pub use preview::PassPreview;

/// Why a pass failed; the controller backs off and retries.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// LXD failed.
    #[error("LXD: {0}")]
    Backend(#[from] BackendError),
    /// The stored spec does not parse (should not happen: the server validates).
    #[error("the stored spec is unreadable: {0}")]
    Spec(String),
    /// The load balancer could not be read or written.
    #[error("load balancer: {0}")]
    Proxy(String),
    /// Actions of the plan failed (each with what it was and why).
    #[error("{}", .0.join("; "))]
    Actions(Vec<String>),
}

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Host ports handed out when a spec has no `hostPorts`.
    pub port_range: (u16, u16),
    /// Bound on concurrent LXD create requests (the image unpack, and the file pushes into
    /// the new stopped container) across all clusters.
    pub max_concurrent_creates: usize,
    /// Bound on concurrent LXD starts across all clusters. Separate from the create bound so
    /// a batch's later creates do not wait for earlier containers to finish starting.
    pub max_concurrent_starts: usize,
    /// Readiness probe timeout.
    pub probe_timeout: Duration,
    /// Check that a host port is free before creating a container on it (LXD on this host).
    pub check_host_ports: bool,
    /// Period of the "nothing to do" requeue.
    pub resync: Duration,
    /// Period of the requeue while converging.
    pub converge_poll: Duration,
    /// How long a pass waits for its actions before writing status and leaving the rest to
    /// run in the background (a later pass sees those instances as busy and reports them in
    /// flight), so one slow LXD start never hides a pass's decisions.
    pub action_budget: Duration,
}

/// A batch of actions that outlived its pass.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub id: u64,
    pub started: Instant,
    pub actions: Vec<crate::plan::Action>,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            port_range: (20000, 20999),
            max_concurrent_creates: 8,
            max_concurrent_starts: 16,
            probe_timeout: Duration::from_secs(2),
            check_host_ports: true,
            resync: Duration::from_secs(30),
            converge_poll: Duration::from_millis(500),
            action_budget: Duration::from_secs(5),
        }
    }
}

/// Reconciles BotClusters against a container backend and (optionally) a load balancer.
pub struct BotClusterReconciler {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) backend: Arc<dyn ContainerBackend>,
    pub(crate) metrics: ControllerMetrics,
    config: ReconcilerConfig,
    /// What this LXD host turned out to refuse (learned from failed actions).
    caps: Arc<Mutex<Capabilities>>,
    /// Host ports in use, per cluster (learned from observation), and ports found busy.
    ports: Arc<Mutex<PortBook>>,
    creates: Arc<Semaphore>,
    starts: Arc<Semaphore>,
    /// Action batches still running after their pass gave up waiting, per cluster.
    in_flight: Arc<Mutex<HashMap<String, Vec<InFlight>>>>,
    /// Outcomes of such batches that finished after their pass, for the next pass.
    finished: Arc<Mutex<HashMap<String, Vec<execute::Executed>>>>,
    /// Tells the controller a cluster's background batch finished (see [`Reconcile::triggers`]).
    finished_tx: tokio::sync::mpsc::UnboundedSender<String>,
    finished_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    probe: Arc<dyn Probe>,
    /// Per-cluster memory (health streaks, CPU samples, autoscaler history); a pass works on
    /// a copy and writes it back, a preview works on a copy and drops it.
    memory: Mutex<HashMap<String, ClusterMemory>>,
    epoch: Instant,
    proxy: Option<Arc<dyn ProxyBackend>>,
    /// Where tenant databases are created.
    pub(crate) postgres: shards::PostgresSettings,
}

pub(crate) fn event(type_: &str, reason: &str, message: impl Into<String>) -> Event {
    Event {
        time: now_rfc3339(),
        type_: type_.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

impl BotClusterReconciler {
    /// A reconciler over `store` and `backend`, registering metrics in `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn ContainerBackend>,
        metrics: ControllerMetrics,
        config: ReconcilerConfig,
    ) -> Self {
        let (finished_tx, finished_rx) = tokio::sync::mpsc::unbounded_channel();
        BotClusterReconciler {
            store,
            backend,
            metrics,
            creates: Arc::new(Semaphore::new(config.max_concurrent_creates.max(1))),
            starts: Arc::new(Semaphore::new(config.max_concurrent_starts.max(1))),
            probe: Arc::new(HttpProbe::new(config.probe_timeout)),
            config,
            caps: Arc::new(Mutex::new(Capabilities::default())),
            ports: Arc::new(Mutex::new(PortBook::default())),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            finished: Arc::new(Mutex::new(HashMap::new())),
            finished_tx,
            finished_rx: Mutex::new(Some(finished_rx)),
            memory: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            proxy: None,
            postgres: shards::PostgresSettings::default(),
        }
    }

    /// Creates tenant databases on the operator's PostgreSQL (`--postgres`), and logs into
    /// servers named in specs with `settings.password`.
    pub fn with_postgres(mut self, settings: shards::PostgresSettings) -> Self {
        self.postgres = settings;
        self
    }

    /// Manages each cluster's load balancer through `proxy`.
    pub fn with_proxy(mut self, proxy: Arc<dyn ProxyBackend>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Judges health with `probe` instead of HTTP requests to each instance's host port.
    pub fn with_probe(mut self, probe: Arc<dyn Probe>) -> Self {
        self.probe = probe;
        self
    }

    /// The resync period.
    pub fn resync(&self) -> Duration {
        self.config.resync
    }

    pub(crate) fn executor(&self) -> execute::Executor {
        execute::Executor {
            backend: self.backend.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            creates: self.creates.clone(),
            starts: self.starts.clone(),
            caps: self.caps.clone(),
            ports: self.ports.clone(),
            check_host_ports: self.config.check_host_ports,
        }
    }

    pub(crate) fn caps(&self) -> Capabilities {
        self.caps.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// A copy of the cluster's memory (empty after a restart).
    pub(crate) fn memory_of(&self, name: &str) -> ClusterMemory {
        let all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        all.get(name).cloned().unwrap_or_default()
    }

    /// Stores the pass's memory of the cluster.
    pub(crate) fn keep_memory(&self, name: &str, m: ClusterMemory) {
        let mut all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(name.to_string(), m);
    }

    pub(crate) fn forget_memory(&self, name: &str) {
        let mut all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(name);
    }

    pub(crate) async fn record(&self, name: &str, e: Event) {
        if let Err(err) = self.store.record_event(BOTCLUSTER_KIND, name, e).await {
            tracing::warn!(cluster = name, error = %err, "recording an event failed");
        }
    }
}

#[async_trait]
impl Reconcile for BotClusterReconciler {
    type Error = ReconcileError;

    fn kind(&self) -> &'static str {
        BOTCLUSTER_KIND
    }

    fn resync(&self) -> Duration {
        self.config.resync
    }

    async fn init(&self) {
        if let Err(e) = self.learn_ports().await {
            tracing::warn!(error = %e, "could not list managed instances at start; host ports are learned as clusters reconcile");
        }
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ReconcileError> {
        BotClusterReconciler::reconcile(self, key).await
    }

    fn triggers(&self) -> Vec<futures_util::stream::BoxStream<'static, crate::runtime::Trigger>> {
        let rx = self
            .finished_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        rx.map(triggers::finished_batches).into_iter().collect()
    }

    async fn report_failure(&self, key: &str, failures: u32, retry_after: Duration, error: &str) {
        BotClusterReconciler::report_failure(self, key, failures, retry_after, error).await
    }
}
