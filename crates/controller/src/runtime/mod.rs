//! The generic part of the controller: nothing here knows what a BotCluster is.
//!
//! A kind is reconciled by implementing [`Reconcile`] and handing it to a
//! [`Controller`](controller::Controller), which feeds it keys from the store's watch, from
//! triggers the kind supplies (e.g. LXD events mapped to cluster names) and from a jittered
//! resync, through the [`queue`](queue::WorkQueue), with backoff on failure.
//!
//! - [`controller`]: triggers → queue → bounded workers; backoff; metrics.
//! - [`queue`]: the deduplicating delay queue with per-key backoff.
//! - [`finalizer`]: add a finalizer before acting; remove it only after cleanup succeeded.

pub mod controller;
pub mod finalizer;
pub mod queue;

use std::time::Duration;

use async_trait::async_trait;

pub use controller::{Controller, Trigger};
pub use queue::{Cause, WorkQueue};

/// What a successful pass asks of the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run again after this long (short while converging, a cadence when settled).
    Requeue(Duration),
    /// Nothing to do until something changes (the object, a child, or the resync).
    AwaitChange,
}

impl Action {
    /// The requeue delay, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self {
            Action::Requeue(d) => Some(*d),
            Action::AwaitChange => None,
        }
    }
}

/// One kind's reconciler.
///
/// # Assumptions
/// - `reconcile` is level-triggered and idempotent: it reads the object and observes the
///   world itself, so running it twice, late, or after a crash does no harm.
/// - The controller never runs `reconcile` for the same key twice at once.
#[async_trait]
pub trait Reconcile: Send + Sync + 'static {
    /// Why a pass failed; shown in logs and handed to [`Reconcile::report_failure`].
    type Error: std::fmt::Display + Send;

    /// The store kind whose objects are the keys (its watch and list feed the queue).
    fn kind(&self) -> &'static str;

    /// The resync period: every key is reconciled at least this often.
    fn resync(&self) -> Duration;

    /// Called once before the workers start (e.g. to learn what already exists).
    async fn init(&self) {}

    /// The reconciler's own triggers (e.g. "work it started in the background finished"),
    /// taken once when the controller starts.
    fn triggers(&self) -> Vec<futures_util::stream::BoxStream<'static, Trigger>> {
        Vec::new()
    }

    /// One pass over `key`.
    async fn reconcile(&self, key: &str) -> Result<Action, Self::Error>;

    /// The pass over `key` failed for the `failures`th time in a row; it is retried after
    /// `retry_after` (which status should say).
    async fn report_failure(&self, key: &str, failures: u32, retry_after: Duration, error: &str);
}
