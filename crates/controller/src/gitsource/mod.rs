//! The GitSource reconciler: follows a Git repository and applies the BotClusters in it,
//! the way Flux does (see `docs/gitops.md`).
//!
//! - [`documents`]: files at a commit → validated BotClusters, or every problem (pure).
//! - [`plan`]: what one sync writes, prunes and releases, and the inventory (pure).
//! - [`status`]: conditions and history (pure).
//! - [`pass`]: one pass — poll, fetch when changed, read, validate, apply, prune, report.
//!
//! The reconciler talks to git only through [`git_client::Git`], and to the store through
//! [`Store`]; the BotCluster controller then reconciles LXD from what it stored.

pub mod documents;
mod pass;
pub mod plan;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use botcluster_api::gitsource::{GitSourceStatus, GITSOURCE_KIND, SYNC_ANNOTATION};
use botcluster_api::status::BackoffStatus;
use botcluster_api::Event;
use botcluster_store::{now_rfc3339, Store, StoreError, WatchAction};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use git_client::{Git, GitError};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::runtime::{Action, Reconcile, Trigger};

/// Metrics of GitSources.
#[derive(Clone)]
pub struct GitSourceMetrics {
    /// `botcluster_gitsource_syncs_total{result}`: `applied`, `unchanged`, `refused`, `failed`.
    pub syncs: IntCounterVec,
    /// `botcluster_gitsource_last_applied_timestamp_seconds{source}`.
    pub last_applied: GaugeVec,
    /// `botcluster_gitsource_objects{source}`: objects in the inventory.
    pub objects: IntGaugeVec,
}

impl GitSourceMetrics {
    /// Creates and registers them.
    pub fn new(r: &Registry) -> Self {
        let m = GitSourceMetrics {
            syncs: IntCounterVec::new(
                Opts::new(
                    "botcluster_gitsource_syncs_total",
                    "GitSource syncs by result",
                ),
                &["result"],
            )
            .expect("static"),
            last_applied: GaugeVec::new(
                Opts::new(
                    "botcluster_gitsource_last_applied_timestamp_seconds",
                    "Unix time a GitSource last applied a revision",
                ),
                &["source"],
            )
            .expect("static"),
            objects: IntGaugeVec::new(
                Opts::new(
                    "botcluster_gitsource_objects",
                    "Objects a GitSource applied",
                ),
                &["source"],
            )
            .expect("static"),
        };
        let _ = r.register(Box::new(m.syncs.clone()));
        let _ = r.register(Box::new(m.last_applied.clone()));
        let _ = r.register(Box::new(m.objects.clone()));
        m
    }
}

/// Why a pass failed (backed off by the controller; status says `Stalled`).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// git failed: unreachable, bad ref, timeout.
    #[error("{0}")]
    Git(#[from] GitError),
    /// The stored spec cannot be used (credentials missing, ...).
    #[error("{0}")]
    Spec(String),
}

impl SyncError {
    fn reason(&self) -> &'static str {
        match self {
            SyncError::Store(_) => "StoreFailed",
            SyncError::Git(_) => "GitOperationFailed",
            SyncError::Spec(_) => "InvalidSpec",
        }
    }
}

/// The GitSource reconciler. See the module documentation.
pub struct GitSourceReconciler {
    store: Arc<dyn Store>,
    git: Arc<dyn Git>,
    metrics: GitSourceMetrics,
    credentials_dir: Option<PathBuf>,
    apply_pause: Duration,
    resync: Duration,
    last_reason: Mutex<HashMap<String, &'static str>>,
    reserved: botcluster_api::ports::ReservedPorts,
}

impl GitSourceReconciler {
    /// A reconciler over `store`, fetching with `git`.
    pub fn new(store: Arc<dyn Store>, git: Arc<dyn Git>, metrics: GitSourceMetrics) -> Self {
        GitSourceReconciler {
            store,
            git,
            metrics,
            credentials_dir: None,
            apply_pause: Duration::ZERO,
            resync: Duration::from_secs(600),
            last_reason: Mutex::new(HashMap::new()),
            reserved: Default::default(),
        }
    }

    /// The ports the operator itself holds (its `--port-range`, the API's address), which a
    /// revision's clusters may not claim, as the API's PUT refuses them.
    pub fn with_reserved_ports(mut self, reserved: botcluster_api::ports::ReservedPorts) -> Self {
        self.reserved = reserved;
        self
    }

    /// Where `spec.credentials` names are looked up (`<dir>/<name>/identity`,
    /// `known_hosts`, `token`).
    pub fn with_credentials_dir(mut self, dir: PathBuf) -> Self {
        self.credentials_dir = Some(dir);
        self
    }

    /// Tests only: sleep this long after each object written, so a test can kill the
    /// operator mid-sync.
    pub fn with_apply_pause(mut self, pause: Duration) -> Self {
        self.apply_pause = pause;
        self
    }

    async fn event(&self, key: &str, type_: &str, reason: &str, message: String) {
        let ev = Event {
            time: now_rfc3339(),
            type_: type_.into(),
            reason: reason.into(),
            message,
        };
        if let Err(e) = self.store.record_event(GITSOURCE_KIND, key, ev).await {
            tracing::warn!(gitsource = key, error = %e, "recording an event failed");
        }
    }
}

/// RFC 3339 of now + `d`, whole seconds.
fn rfc3339_after(d: Duration) -> String {
    let t = time::OffsetDateTime::now_utc() + d;
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[async_trait]
impl Reconcile for GitSourceReconciler {
    type Error = SyncError;

    fn kind(&self) -> &'static str {
        GITSOURCE_KIND
    }

    fn resync(&self) -> Duration {
        self.resync
    }

    /// A new `botcluster.io/sync-requested-at` token (`POST .../sync`) polls at once, cutting
    /// a backoff short; the store watch of the runtime only reacts to spec changes.
    fn triggers(&self) -> Vec<BoxStream<'static, Trigger>> {
        let rx = self.store.watch();
        let seen: HashMap<String, String> = HashMap::new();
        let stream = futures_util::stream::unfold((rx, seen), |(mut rx, mut seen)| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.kind == GITSOURCE_KIND && ev.action != WatchAction::Deleted => {
                        let o = &ev.object;
                        let Some(token) = o.meta.annotations.get(SYNC_ANNOTATION).cloned() else {
                            continue;
                        };
                        let handled = o.status.get("lastHandledSync").and_then(|v| v.as_str())
                            == Some(token.as_str());
                        if handled || seen.get(&ev.name) == Some(&token) {
                            continue;
                        }
                        seen.insert(ev.name.clone(), token);
                        // A person asked: poll now, even during a backoff.
                        return Some((Trigger::Now(ev.name), (rx, seen)));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Trigger::All, (rx, seen)))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        vec![stream.boxed()]
    }

    async fn reconcile(&self, key: &str) -> Result<Action, SyncError> {
        let r = self.pass(key).await;
        if let Err(e) = &r {
            if let Ok(mut m) = self.last_reason.lock() {
                m.insert(key.to_string(), e.reason());
            }
        }
        r
    }

    async fn report_failure(&self, key: &str, failures: u32, retry_after: Duration, error: &str) {
        self.metrics.syncs.with_label_values(&["failed"]).inc();
        let reason = self
            .last_reason
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .unwrap_or("ReconciliationFailed");
        let Ok(Some(obj)) = self.store.get(GITSOURCE_KIND, key).await else {
            return;
        };
        let mut st: GitSourceStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        let now = now_rfc3339();
        let applied = st
            .last_applied_revision
            .clone()
            .unwrap_or_else(|| "nothing".into());
        let message = format!(
            "{error}; nothing changed (still applied: {applied}); retrying in {:.0}s",
            retry_after.as_secs_f64()
        );
        status::set_conditions(
            &mut st,
            obj.generation(),
            &now,
            status::stalled(reason, message.clone()),
        );
        st.backoff = Some(BackoffStatus {
            failures,
            retry_after_seconds: retry_after.as_secs_f64(),
            last_error: error.to_string(),
        });
        st.next_poll_time = Some(rfc3339_after(retry_after));
        st.observed_generation = obj.generation();
        st.last_handled_sync = obj.meta.annotations.get(SYNC_ANNOTATION).cloned();
        if let Ok(v) = serde_json::to_value(&st) {
            let _ = self.store.update_status(GITSOURCE_KIND, key, v, None).await;
        }
        if failures == 1 {
            self.event(key, "Warning", reason, message).await;
        }
    }
}
