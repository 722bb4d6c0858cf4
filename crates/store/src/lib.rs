//! The desired-state store: versioned objects (generation, resourceVersion, finalizers), a watch stream and an event log.
//!
//! [`Store`] is the trait the server and the controller use; [`SqliteStore`] is the embedded
//! default (SQLite in WAL mode, durable across `kill -9`). Nothing outside this crate knows
//! about SQLite, so another backend (etcd) can replace it.
//!
//! Objects are kind-agnostic: a kind name, [`ObjectMeta`], and JSON `spec` and `status`.
//!
//! # Guarantees
//! - `generation` changes only when the spec changes; `resourceVersion` changes on every write, and a write naming a stale one fails
//!   with [`StoreError::Conflict`] without changing anything.
//! - A status write never changes `generation`.
//! - Deleting an object with finalizers only marks `deletionTimestamp`; the object goes away
//!   when the last finalizer is removed. An object without finalizers goes at once.
//! - Writes that change nothing write nothing and notify no watcher.

mod sqlite;

use async_trait::async_trait;
use botcluster_api::{Event, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use sqlite::SqliteStore;

/// One stored object of any kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Kind name, e.g. `BotCluster`.
    pub kind: String,
    /// Metadata with every server field set.
    pub meta: ObjectMeta,
    /// Desired state as written by users.
    pub spec: Value,
    /// Observed state as written by the controller (`null` until then).
    pub status: Value,
}

impl StoredObject {
    /// The `resourceVersion` as a number.
    pub fn resource_version(&self) -> u64 {
        self.meta
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    /// The `generation`.
    pub fn generation(&self) -> u64 {
        self.meta.generation.unwrap_or(0)
    }
    /// Whether deletion was requested.
    pub fn is_deleting(&self) -> bool {
        self.meta.deletion_timestamp.is_some()
    }
}

/// A spec write (create or update).
#[derive(Clone, Debug)]
pub struct SpecWrite {
    /// Kind name.
    pub kind: String,
    /// Name, labels and annotations (server fields are ignored).
    pub meta: ObjectMeta,
    /// The desired state.
    pub spec: Value,
    /// When set, the write fails unless the stored object has this resourceVersion.
    pub expected_resource_version: Option<String>,
    /// Who writes (`botctl`, `api`, ...); recorded as `managedBy`.
    pub manager: Option<String>,
    /// Check and report, but write nothing.
    pub dry_run: bool,
}

/// What a spec write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// A new object.
    Created,
    /// An existing object changed.
    Configured,
    /// Nothing changed; nothing was written.
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        })
    }
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    /// Gone.
    Removed,
    /// Marked for deletion; finalizers remain.
    Terminating(Box<StoredObject>),
}

/// A change notification. Events are sent in resourceVersion order (the store sends them while
/// it still holds its write lock), and every revision the store commits has exactly one event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// Kind name.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// What happened.
    pub action: WatchAction,
    /// The store's resourceVersion after the change.
    pub resource_version: u64,
    /// The object after the change (for `Deleted`: its last state, carrying the deletion's
    /// resourceVersion). Shared, so a watch cache keeps it without copying.
    pub object: std::sync::Arc<StoredObject>,
}

/// Kinds of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchAction {
    /// Created.
    Added,
    /// Spec, status, finalizers or deletion mark changed.
    Modified,
    /// Removed for good.
    Deleted,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// Kind name.
        kind: String,
        /// Object name.
        name: String,
    },
    /// The object changed since the writer read it.
    #[error("{kind} \"{name}\" was changed by someone else (you sent resourceVersion {expected}, it is now {actual}); get it again, redo your change and retry")]
    Conflict {
        /// Kind name.
        kind: String,
        /// Object name.
        name: String,
        /// What the writer sent.
        expected: String,
        /// What is stored.
        actual: String,
    },
    /// The object is being deleted and cannot be changed.
    #[error("{kind} \"{name}\" is being deleted; wait until it is gone, then create it again")]
    Terminating {
        /// Kind name.
        kind: String,
        /// Object name.
        name: String,
    },
    /// The backend failed (disk, corruption, ...).
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// Result of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The desired-state store. Every method is atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// One object, or None.
    async fn get(&self, kind: &str, name: &str) -> Result<Option<StoredObject>>;
    /// Every object of a kind, by name.
    async fn list(&self, kind: &str) -> Result<Vec<StoredObject>>;
    /// Creates or updates the spec (and labels/annotations). Bumps `generation` only when the
    /// spec changes; writes nothing when nothing changes.
    async fn apply(&self, write: SpecWrite) -> Result<(StoredObject, Change)>;
    /// Replaces the status. Never bumps `generation`; writes nothing when unchanged.
    /// With `expected_resource_version`, fails on conflict.
    async fn update_status(
        &self,
        kind: &str,
        name: &str,
        status: Value,
        expected_resource_version: Option<&str>,
    ) -> Result<StoredObject>;
    /// Replaces the finalizers. When deletion was requested and none remain, removes the
    /// object and returns None.
    async fn set_finalizers(
        &self,
        kind: &str,
        name: &str,
        finalizers: Vec<String>,
    ) -> Result<Option<StoredObject>>;
    /// Requests deletion: removes an object without finalizers; marks the others.
    async fn delete(&self, kind: &str, name: &str) -> Result<Deleted>;
    /// Appends to an object's event log (kept to the newest 500 per object).
    async fn record_event(&self, kind: &str, name: &str, event: Event) -> Result<()>;
    /// The newest `limit` events of an object, oldest first.
    async fn events(&self, kind: &str, name: &str, limit: usize) -> Result<Vec<Event>>;
    /// A stream of changes from now on. A lagging receiver gets `RecvError::Lagged` and must
    /// re-list.
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent>;
    /// The newest resourceVersion this store instance committed (and sent to watchers). Cheap:
    /// no I/O, so a watch cache can check it on every read.
    fn revision(&self) -> u64;
    /// Does the store answer? One cheap read (`/readyz`), of a name no object can have.
    async fn ping(&self) -> Result<()> {
        self.get("", "").await.map(|_| ())
    }
    /// Every object of every kind, with the resourceVersion they were read at, atomically: a
    /// watcher subscribed before this call gets exactly the events newer than that version.
    async fn snapshot(&self) -> Result<(u64, Vec<StoredObject>)>;
}

/// The current time in RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
