//! The controller: a work queue of cluster names fed by triggers, drained by a bounded pool
//! of workers that each run one reconcile pass.
//!
//! # Guarantees
//! - One cluster is never reconciled by two workers at once; a trigger that arrives while it
//!   is being reconciled makes it run again right after.
//! - Different clusters reconcile in parallel, at most `workers` at a time.
//! - Triggers: a spec change or deletion in the store (status-only writes are ignored, so the
//!   controller's own status writes do not loop), LXD lifecycle events for instances named
//!   `<cluster>-<n>` (and a full resync after every (re)connect, since events are lost while
//!   disconnected), and a jittered periodic resync.
//! - A failing cluster backs off exponentially (0.5 s doubling to 60 s, jittered); success
//!   resets it. Its status shows the backoff and a Degraded condition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botcluster_api::BOTCLUSTER_KIND;
use botcluster_store::{Store, WatchAction};
use futures_util::StreamExt;
use tokio::sync::{watch, Notify};

use crate::backend::ContainerBackend;
use crate::metrics::ControllerMetrics;
use crate::reconcile::{Reconciler, ReconcilerConfig};

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Clusters reconciled at once.
    pub workers: usize,
    /// The reconciler's settings.
    pub reconciler: ReconcilerConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            workers: 4,
            reconciler: ReconcilerConfig::default(),
        }
    }
}

#[derive(Default)]
struct QueueState {
    due: BTreeMap<String, Instant>,
    running: HashSet<String>,
    dirty: HashSet<String>,
}

/// A deduplicating delay queue of keys.
pub struct WorkQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    metrics: ControllerMetrics,
}

impl WorkQueue {
    fn new(metrics: ControllerMetrics) -> Self {
        WorkQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            metrics,
        }
    }

    /// Schedules `key` after `delay`; an earlier schedule wins. A key being worked on is run
    /// again as soon as its worker is done.
    pub fn add(&self, key: &str, delay: Duration) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.running.contains(key) {
            if delay.is_zero() {
                s.dirty.insert(key.to_string());
            } else if !s.dirty.contains(key) {
                let at = Instant::now() + delay;
                s.due
                    .entry(key.to_string())
                    .and_modify(|d| *d = (*d).min(at))
                    .or_insert(at);
            }
            return;
        }
        let at = Instant::now()
            .checked_add(delay)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        s.due
            .entry(key.to_string())
            .and_modify(|d| *d = (*d).min(at))
            .or_insert(at);
        self.metrics.queue_adds.inc();
        self.metrics.queue_depth.set(s.due.len() as i64);
        drop(s);
        self.notify.notify_one();
    }

    async fn next(&self) -> String {
        loop {
            let wait = {
                let Ok(mut s) = self.state.lock() else {
                    return String::new();
                };
                let now = Instant::now();
                let ready = s
                    .due
                    .iter()
                    .filter(|(k, at)| **at <= now && !s.running.contains(*k))
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = ready {
                    s.due.remove(&k);
                    s.running.insert(k.clone());
                    self.metrics.queue_depth.set(s.due.len() as i64);
                    return k;
                }
                s.due
                    .iter()
                    .filter(|(k, _)| !s.running.contains(*k))
                    .map(|(_, at)| at.saturating_duration_since(now))
                    .min()
                    .unwrap_or(Duration::from_secs(3600))
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn done(&self, key: &str, requeue_after: Option<Duration>) {
        let again = {
            let Ok(mut s) = self.state.lock() else { return };
            s.running.remove(key);
            s.dirty.remove(key)
        };
        if again {
            self.add(key, Duration::ZERO);
        } else if let Some(d) = requeue_after {
            self.add(key, d);
        } else {
            self.notify.notify_one();
        }
    }
}

/// The controller.
pub struct Controller {
    reconciler: Arc<Reconciler>,
    queue: Arc<WorkQueue>,
    config: ControllerConfig,
    failures: Mutex<HashMap<String, u32>>,
}

fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = 1.0 + (rand::random::<f64>() * 2.0 - 1.0) * fraction;
    d.mul_f64(f.max(0.0))
}

impl Controller {
    /// A controller over `store`, `backend` and (when given) a load-balancer `proxy`, reporting into `metrics` (create them once
    /// per registry with [`ControllerMetrics::new`]; the LXD request observer shares them).
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn ContainerBackend>,
        proxy: Option<Arc<dyn crate::proxy::ProxyBackend>>,
        metrics: ControllerMetrics,
        config: ControllerConfig,
    ) -> Arc<Self> {
        metrics.max_concurrent.set(config.workers as i64);
        let mut reconciler =
            Reconciler::new(store, backend, metrics.clone(), config.reconciler.clone());
        if let Some(p) = proxy {
            reconciler = reconciler.with_proxy(p);
        }
        let reconciler = Arc::new(reconciler);
        Arc::new(Controller {
            reconciler,
            queue: Arc::new(WorkQueue::new(metrics)),
            config,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The reconciler (for dry-run previews).
    pub fn reconciler(&self) -> Arc<Reconciler> {
        self.reconciler.clone()
    }

    /// The work queue (tests enqueue by hand).
    pub fn queue(&self) -> Arc<WorkQueue> {
        self.queue.clone()
    }

    async fn enqueue_all(&self) {
        match self.reconciler.store.list(BOTCLUSTER_KIND).await {
            Ok(all) => {
                for o in all {
                    self.queue.add(&o.meta.name, Duration::ZERO);
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing clusters failed"),
        }
    }

    /// Runs until `shutdown` turns true. `events` is the LXD client to subscribe to
    /// lifecycle events with (None: rely on resync only).
    pub async fn run(
        self: Arc<Self>,
        events: Option<lxd_client::Client>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if let Err(e) = self.reconciler.learn_ports().await {
            tracing::warn!(error = %e, "could not list managed instances at start; host ports are learned as clusters reconcile");
        }
        let mut tasks = Vec::new();
        // Store watch: spec changes, creations, deletions.
        {
            let me = self.clone();
            let mut rx = self.reconciler.store.watch();
            tasks.push(tokio::spawn(async move {
                let mut seen: HashMap<String, (u64, bool)> = HashMap::new();
                loop {
                    match rx.recv().await {
                        Ok(ev) if ev.kind == BOTCLUSTER_KIND => {
                            let key = match ev.action {
                                WatchAction::Deleted => {
                                    seen.remove(&ev.name);
                                    None
                                }
                                _ => match me.reconciler.store.get(BOTCLUSTER_KIND, &ev.name).await
                                {
                                    Ok(Some(o)) => {
                                        let now = (o.generation(), o.is_deleting());
                                        let changed =
                                            seen.insert(ev.name.clone(), now) != Some(now);
                                        changed.then_some(ev.name)
                                    }
                                    _ => None,
                                },
                            };
                            if let Some(k) = key {
                                me.queue.add(&k, Duration::ZERO);
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            me.enqueue_all().await
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }));
        }
        // LXD events.
        if let Some(client) = events {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = client.watch_events(
                    &[lxd_client::EventType::Lifecycle],
                    lxd_client::Backoff::default(),
                );
                while let Some(item) = stream.next().await {
                    match item {
                        lxd_client::WatchItem::Connected | lxd_client::WatchItem::Reconnected => {
                            me.enqueue_all().await
                        }
                        lxd_client::WatchItem::Event(ev) => {
                            if let Some(name) = ev
                                .lifecycle()
                                .as_ref()
                                .and_then(|l| l.instance_name())
                                .and_then(crate::model::cluster_of)
                            {
                                // A short delay merges the burst of events one action causes.
                                me.queue.add(name, Duration::from_millis(200));
                            }
                        }
                        lxd_client::WatchItem::Disconnected { .. } => {}
                    }
                }
            }));
        }
        // Periodic resync, jittered so clusters do not all reconcile in the same instant.
        {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(jitter(me.reconciler.resync(), 0.1)).await;
                    if let Ok(all) = me.reconciler.store.list(BOTCLUSTER_KIND).await {
                        for o in all {
                            me.queue
                                .add(&o.meta.name, jitter(Duration::from_secs(1), 1.0));
                        }
                    }
                }
            }));
        }
        self.enqueue_all().await;
        for _ in 0..self.config.workers.max(1) {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let key = me.queue.next().await;
                    me.work(&key).await;
                }
            }));
        }
        let _ = shutdown.wait_for(|s| *s).await;
        for t in tasks {
            t.abort();
        }
    }

    async fn work(&self, key: &str) {
        let m = &self.reconciler.metrics;
        m.active_workers.inc();
        let started = Instant::now();
        let result = self.reconciler.reconcile(key).await;
        m.reconcile_time.observe(started.elapsed().as_secs_f64());
        m.active_workers.dec();
        match result {
            Ok(outcome) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.remove(key);
                }
                let label = if outcome.requeue_after < self.reconciler.resync() {
                    "requeue_after"
                } else {
                    "success"
                };
                m.reconcile_total.with_label_values(&[label]).inc();
                let after = (outcome.requeue_after != Duration::MAX).then(|| {
                    if outcome.requeue_after >= self.reconciler.resync() {
                        jitter(outcome.requeue_after, 0.1)
                    } else {
                        outcome.requeue_after
                    }
                });
                self.queue.done(key, after);
            }
            Err(e) => {
                m.reconcile_total.with_label_values(&["error"]).inc();
                m.reconcile_errors.inc();
                m.queue_retries.inc();
                let n = {
                    let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                    let n = f.entry(key.to_string()).or_insert(0);
                    *n += 1;
                    *n
                };
                let base = Duration::from_millis(500).saturating_mul(1u32 << (n - 1).min(7));
                let delay = jitter(base.min(Duration::from_secs(60)), 0.2);
                tracing::warn!(cluster = key, error = %e, attempt = n, retry_in = ?delay, "reconcile failed");
                self.reconciler
                    .report_failure(key, n, delay, &e.to_string())
                    .await;
                self.queue.done(key, Some(delay));
            }
        }
    }
}
