//! The generic controller: triggers feed a [`WorkQueue`] of keys, drained by a bounded pool
//! of workers that each run one [`Reconcile::reconcile`] pass.
//!
//! # Guarantees
//! - One key is never reconciled by two workers at once; a trigger that arrives while it is
//!   being reconciled makes it run again right after.
//! - Different keys reconcile in parallel, at most `workers` at a time.
//! - Triggers: a change of generation or deletion mark in the store for the reconciler's kind
//!   (status-only writes are ignored, so the controller's own status writes do not loop),
//!   the kind's own [`Trigger`] streams (e.g. LXD events), and a jittered periodic resync.
//! - A failing key backs off exponentially (0.5 s doubling to 60 s, jittered) and the backoff
//!   holds against resyncs and child events (only a change of the object cuts it short), so
//!   what [`Reconcile::report_failure`] is told is what happens. Success resets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botcluster_store::{Store, WatchAction};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::queue::{Cause, WorkQueue};
use super::{Action, Reconcile};
use crate::metrics::ControllerMetrics;

/// What a kind's own trigger stream asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Reconcile this key after a short delay (a child changed).
    Key(String, Duration),
    /// Reconcile every key (events may have been lost, e.g. after a reconnect).
    All,
    /// Reconcile this key now, as if the object had changed: a person asked (e.g.
    /// `botctl sync`), so a running backoff is cut short.
    Now(String),
}

/// The first retry delay after a failure; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The delay after the `n`th failure in a row (1-based), before jitter.
pub fn backoff(n: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << n.saturating_sub(1).min(7))
        .min(MAX_BACKOFF)
}

/// `d` ± `fraction`, at random.
pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = 1.0 + (rand::random::<f64>() * 2.0 - 1.0) * fraction;
    d.mul_f64(f.max(0.0))
}

/// Runs one [`Reconcile`] implementation. See the module documentation.
pub struct Controller<R: Reconcile> {
    reconciler: Arc<R>,
    store: Arc<dyn Store>,
    queue: Arc<WorkQueue>,
    metrics: ControllerMetrics,
    workers: usize,
    failures: Mutex<HashMap<String, u32>>,
}

impl<R: Reconcile> Controller<R> {
    /// A controller running `reconciler` over the objects of its kind in `store`, with
    /// `workers` passes at a time, reporting into `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        reconciler: Arc<R>,
        metrics: ControllerMetrics,
        workers: usize,
    ) -> Arc<Self> {
        metrics.max_concurrent.set(workers as i64);
        Arc::new(Controller {
            reconciler,
            store,
            queue: Arc::new(WorkQueue::new(Some(metrics.clone()))),
            metrics,
            workers: workers.max(1),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The reconciler.
    pub fn reconciler(&self) -> Arc<R> {
        self.reconciler.clone()
    }

    /// The work queue (tests enqueue by hand).
    pub fn queue(&self) -> Arc<WorkQueue> {
        self.queue.clone()
    }

    async fn enqueue_all(&self, cause: Cause, spread: Duration) {
        match self.store.list(self.reconciler.kind()).await {
            Ok(all) => {
                for o in all {
                    let delay = if spread.is_zero() {
                        Duration::ZERO
                    } else {
                        jitter(spread, 1.0)
                    };
                    self.queue.add(&o.meta.name, delay, cause);
                }
            }
            Err(e) => {
                tracing::warn!(kind = self.reconciler.kind(), error = %e, "listing objects failed")
            }
        }
    }

    /// Runs until `shutdown` turns true, with `triggers` from the kind's children.
    pub async fn run(
        self: Arc<Self>,
        triggers: Vec<BoxStream<'static, Trigger>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.reconciler.init().await;
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(self.clone().watch_store()));
        let own = self.reconciler.triggers();
        for mut stream in triggers.into_iter().chain(own) {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(t) = stream.next().await {
                    match t {
                        Trigger::Key(k, d) => me.queue.add(&k, d, Cause::Event),
                        Trigger::Now(k) => me.queue.add(&k, Duration::ZERO, Cause::Change),
                        Trigger::All => me.enqueue_all(Cause::Event, Duration::ZERO).await,
                    }
                }
            }));
        }
        // Periodic resync, jittered so objects do not all reconcile in the same instant.
        {
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(jitter(me.reconciler.resync(), 0.1)).await;
                    me.enqueue_all(Cause::Resync, Duration::from_secs(1)).await;
                }
            }));
        }
        self.enqueue_all(Cause::Change, Duration::ZERO).await;
        for _ in 0..self.workers {
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

    /// Store watch: creations, spec changes and deletion marks of the kind.
    async fn watch_store(self: Arc<Self>) {
        let kind = self.reconciler.kind();
        let mut rx = self.store.watch();
        let mut seen: HashMap<String, (u64, bool)> = HashMap::new();
        loop {
            match rx.recv().await {
                Ok(ev) if ev.kind == kind => {
                    if ev.action == WatchAction::Deleted {
                        seen.remove(&ev.name);
                        self.queue.forget(&ev.name);
                        continue;
                    }
                    // The event carries the object as written: no read back from the store.
                    let now = (ev.object.generation(), ev.object.is_deleting());
                    if seen.insert(ev.name.clone(), now) != Some(now) {
                        self.queue.add(&ev.name, Duration::ZERO, Cause::Change);
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.enqueue_all(Cause::Change, Duration::ZERO).await
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    async fn work(&self, key: &str) {
        let m = &self.metrics;
        m.active_workers.inc();
        let started = Instant::now();
        let result = self.reconciler.reconcile(key).await;
        m.reconcile_time.observe(started.elapsed().as_secs_f64());
        m.active_workers.dec();
        match result {
            Ok(action) => {
                if let Ok(mut f) = self.failures.lock() {
                    f.remove(key);
                }
                let resync = self.reconciler.resync();
                let label = match action {
                    Action::Requeue(d) if d < resync => "requeue_after",
                    _ => "success",
                };
                m.reconcile_total.with_label_values(&[label]).inc();
                let after =
                    action
                        .requeue_after()
                        .map(|d| if d >= resync { jitter(d, 0.1) } else { d });
                self.queue.done(key, after, None);
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
                let delay = jitter(backoff(n), 0.2);
                let error = e.to_string();
                tracing::warn!(kind = self.reconciler.kind(), key, error = %error, attempt = n, retry_in = ?delay, "reconcile failed");
                self.reconciler.report_failure(key, n, delay, &error).await;
                self.queue.done(key, None, Some(delay));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use botcluster_store::{SpecWrite, SqliteStore};

    /// Fails every pass, records when each ran and whether two ever overlapped.
    struct Failing {
        runs: Mutex<Vec<Instant>>,
        running: std::sync::atomic::AtomicBool,
        overlapped: std::sync::atomic::AtomicBool,
        reported: Mutex<Vec<Duration>>,
    }

    #[async_trait]
    impl Reconcile for Failing {
        type Error = String;
        fn kind(&self) -> &'static str {
            "Thing"
        }
        fn resync(&self) -> Duration {
            Duration::from_millis(50)
        }
        async fn reconcile(&self, _key: &str) -> Result<Action, String> {
            use std::sync::atomic::Ordering::SeqCst;
            if self.running.swap(true, SeqCst) {
                self.overlapped.store(true, SeqCst);
            }
            self.runs.lock().unwrap().push(Instant::now());
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.store(false, SeqCst);
            Err("no".into())
        }
        async fn report_failure(&self, _key: &str, _n: u32, retry_after: Duration, _e: &str) {
            self.reported.lock().unwrap().push(retry_after);
        }
    }

    #[tokio::test]
    async fn a_failing_key_waits_out_the_backoff_it_reported_despite_fast_resyncs() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        store
            .apply(SpecWrite {
                kind: "Thing".into(),
                meta: botcluster_api::ObjectMeta::named("a"),
                spec: serde_json::json!({}),
                expected_resource_version: None,
                manager: None,
                dry_run: false,
            })
            .await
            .unwrap();
        let r = Arc::new(Failing {
            runs: Mutex::new(Vec::new()),
            running: Default::default(),
            overlapped: Default::default(),
            reported: Mutex::new(Vec::new()),
        });
        let c = Controller::new(
            store,
            r.clone(),
            ControllerMetrics::new(&prometheus::Registry::new()),
            4,
        );
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(c.run(Vec::new(), rx));
        // Resyncs every 50 ms for 3.2 s; backoff 0.5, 1, 2 s (±20 %): 3 or 4 passes, not 60.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let _ = tx.send(true);
        let _ = task.await;
        let runs = r.runs.lock().unwrap().clone();
        let reported = r.reported.lock().unwrap().clone();
        assert!((2..=4).contains(&runs.len()), "{} passes", runs.len());
        for (i, pair) in runs.windows(2).enumerate() {
            let waited = pair[1] - pair[0];
            assert!(
                waited + Duration::from_millis(30) >= reported[i],
                "pass {} came after {waited:?}, but status said {:?}",
                i + 2,
                reported[i]
            );
        }
        assert!(!r.overlapped.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_a_minute() {
        let got: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            got,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
