//! Finalizers: cleanup that must finish before an object may go (kube-rs's contract).
//!
//! # Expected flow
//! 1. [`prepare`] before every pass. An object that is not being deleted gets the finalizer
//!    **before** the reconciler acts ([`Step::Apply`]), so a delete can never skip cleanup.
//! 2. A deleted object that still carries it gets [`Step::Cleanup`]; once cleanup has
//!    succeeded, [`complete`] removes the finalizer and the store drops the object.
//!
//! # Guarantees
//! - If apply ever started, cleanup must succeed before deletion completes.
//! - Another party's finalizers are never added or removed.
//!
//! # Assumptions
//! - Apply and cleanup are idempotent and tolerate running several times, even if cancelled.

use botcluster_store::{Store, StoreError, StoredObject};

/// What the pass should do with the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make the world match the object.
    Apply,
    /// The object is being deleted and our cleanup has not finished.
    Cleanup,
    /// The object is being deleted and our cleanup already finished (other finalizers are
    /// holding it): nothing to do.
    Nothing,
}

/// The facts the decision is made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    has_ours: bool,
    deleting: bool,
}

/// Decides the step for `obj` and adds `finalizer` when the step is [`Step::Apply`] and it
/// is missing.
pub async fn prepare(
    store: &dyn Store,
    obj: &StoredObject,
    finalizer: &str,
) -> Result<Step, StoreError> {
    let state = State {
        has_ours: obj.meta.finalizers.iter().any(|f| f == finalizer),
        deleting: obj.is_deleting(),
    };
    Ok(match state {
        State {
            has_ours: false,
            deleting: false,
        } => {
            let mut f = obj.meta.finalizers.clone();
            f.push(finalizer.to_string());
            store.set_finalizers(&obj.kind, &obj.meta.name, f).await?;
            Step::Apply
        }
        State {
            has_ours: true,
            deleting: false,
        } => Step::Apply,
        State {
            has_ours: true,
            deleting: true,
        } => Step::Cleanup,
        // We never started, or already finished: someone else's finalizer holds it.
        State {
            has_ours: false,
            deleting: true,
        } => Step::Nothing,
    })
}

/// Removes `finalizer` after a successful cleanup (only ours; others stay).
pub async fn complete(
    store: &dyn Store,
    obj: &StoredObject,
    finalizer: &str,
) -> Result<(), StoreError> {
    let f: Vec<String> = obj
        .meta
        .finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    match store.set_finalizers(&obj.kind, &obj.meta.name, f).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
