//! The watch cache: every stored object in memory, serialized once per version, kept current
//! from the store's own watch, with a bounded history of changes for watchers (the model is
//! the Kubernetes API server's watch cache).
//!
//! # Guarantees
//! - **Consistent reads.** [`WatchCache::sync`] waits until the cache has applied every
//!   revision the store has committed ([`Store::revision`]), so a read that follows an
//!   acknowledged write, by anyone in this process, sees it.
//! - **Ordered, complete history.** The store sends one event per revision, in order, while it
//!   holds its write lock; the cache applies them in that order. A watcher that starts from
//!   resourceVersion `RV` gets every change after `RV` exactly once, or `410 Gone` when `RV` is
//!   older than the history kept ([`CacheConfig::history`]).
//! - **Writers never wait for watchers.** Events fan out through a bounded broadcast; a watcher
//!   that falls [`CacheConfig::watcher_buffer`] events behind is ended with an `ERROR` event.
//! - **Consistent pages.** A paged list reads one immutable snapshot of the map; the
//!   continue token names it, and it is kept [`CacheConfig::snapshot_ttl`] (then `410`).
//!
//! # Assumptions
//! SQLite stays the source of truth: the cache is rebuilt from [`Store::snapshot`] at start and
//! whenever the store's watch lags. Writes by another process that opened the same SQLite file
//! are not seen (the store's watch is in-process).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use botcluster_api::{BotClusterStatus, BOTCLUSTER_KIND};
use botcluster_store::{Store, StoredObject, WatchAction, WatchEvent};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::handlers::to_document;

/// Sizes and times of the cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Changes kept for watchers resuming from an older resourceVersion.
    pub history: usize,
    /// Events a watcher may fall behind before it is ended.
    pub watcher_buffer: usize,
    /// How often a watch sends a `BOOKMARK`.
    pub bookmark_interval: Duration,
    /// How long a continue token stays valid.
    pub snapshot_ttl: Duration,
    /// Snapshots kept for continue tokens at most (oldest dropped first).
    pub max_snapshots: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            history: 2048,
            watcher_buffer: 4096,
            bookmark_interval: Duration::from_secs(10),
            snapshot_ttl: Duration::from_secs(300),
            max_snapshots: 64,
        }
    }
}

/// One version of one object, serialized once.
#[derive(Debug)]
pub struct CachedObject {
    /// Kind name.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Its resourceVersion.
    pub resource_version: u64,
    /// Its labels (for selectors).
    pub labels: BTreeMap<String, String>,
    /// The whole document as the API shows it (JSON).
    pub doc: Bytes,
    /// The `/status` document (JSON).
    pub status_doc: Bytes,
}

impl CachedObject {
    fn new(obj: &StoredObject) -> Self {
        let status = if obj.status.is_null() {
            default_status(&obj.kind)
        } else {
            obj.status.clone()
        };
        let status_doc = json!({
            "name": obj.meta.name,
            "generation": obj.meta.generation,
            "resourceVersion": obj.meta.resource_version,
            "deletionTimestamp": obj.meta.deletion_timestamp,
            "status": status,
        });
        CachedObject {
            kind: obj.kind.clone(),
            name: obj.meta.name.clone(),
            resource_version: obj.resource_version(),
            labels: obj.meta.labels.clone(),
            doc: serde_json::to_vec(&to_document(obj))
                .unwrap_or_default()
                .into(),
            status_doc: serde_json::to_vec(&status_doc).unwrap_or_default().into(),
        }
    }
}

/// What `/status` shows before the controller wrote any.
fn default_status(kind: &str) -> Value {
    match kind {
        BOTCLUSTER_KIND => serde_json::to_value(BotClusterStatus::default()).unwrap_or(Value::Null),
        botcluster_api::GITSOURCE_KIND => {
            serde_json::to_value(botcluster_api::GitSourceStatus::default()).unwrap_or(Value::Null)
        }
        _ => json!({}),
    }
}

/// `(kind, name)`.
pub type Key = (String, String);
/// Every object, by kind then name.
pub type Objects = BTreeMap<Key, Arc<CachedObject>>;

/// One change, as kept in the history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    /// What happened.
    pub action: WatchAction,
    /// The version before (None for `Added`).
    pub prev: Option<Arc<CachedObject>>,
    /// The version after (for `Deleted`: the last state at the deletion's resourceVersion).
    pub cur: Arc<CachedObject>,
}

/// What watchers receive.
#[derive(Clone, Debug)]
pub enum Fanout {
    /// One change.
    Change(Arc<Change>),
    /// The cache was rebuilt (the store's watch lagged): every watcher must re-list.
    Reset,
}

/// The state behind the lock; never held across an await.
struct Inner {
    /// The resourceVersion the cache reflects.
    rv: u64,
    /// Copy-on-write: a reader (a page, a watch start) holds the `Arc`, a writer clones the map
    /// only when someone still does.
    objects: Arc<Objects>,
    history: VecDeque<Arc<Change>>,
    /// The oldest resourceVersion a watch may start from.
    floor: u64,
    /// Snapshots named by continue tokens: (rv, map, taken at).
    snapshots: VecDeque<(u64, Arc<Objects>, Instant)>,
}

/// The cache. Build it with [`WatchCache::start`]; it follows the store until dropped.
pub struct WatchCache {
    store: Arc<dyn Store>,
    config: CacheConfig,
    inner: RwLock<Inner>,
    rv: AtomicU64,
    rv_tx: tokio::sync::watch::Sender<u64>,
    fanout: broadcast::Sender<Fanout>,
    /// Set by [`WatchCache::close`]: every watch stream ends.
    closed: tokio::sync::watch::Sender<bool>,
    /// The last whole list of each kind, serialized, with its resourceVersion.
    lists: std::sync::Mutex<std::collections::HashMap<String, (u64, Bytes)>>,
}

/// Why a read could not be served from the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The cache did not catch up with the store in time.
    Behind {
        /// Where the cache is.
        cache: u64,
        /// What it waited for.
        wanted: u64,
    },
}

/// How long a read waits for the cache to reach the store's revision.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

impl WatchCache {
    /// Subscribes to the store's watch now (so no later write is missed), then loads the
    /// snapshot and follows the watch in a background task. Reads wait for the load.
    /// Must be called inside a tokio runtime.
    pub fn start(store: Arc<dyn Store>, config: CacheConfig) -> Arc<Self> {
        let rx = store.watch();
        let (rv_tx, _) = tokio::sync::watch::channel(0);
        let (fanout, _) = broadcast::channel(config.watcher_buffer.max(1));
        let cache = Arc::new(WatchCache {
            store,
            config,
            inner: RwLock::new(Inner {
                rv: 0,
                objects: Arc::new(Objects::new()),
                history: VecDeque::new(),
                floor: 0,
                snapshots: VecDeque::new(),
            }),
            rv: AtomicU64::new(0),
            rv_tx,
            fanout,
            closed: tokio::sync::watch::channel(false).0,
            lists: Default::default(),
        });
        tokio::spawn(follow(Arc::downgrade(&cache), rx));
        cache
    }

    /// Ends every watch stream, now and from now on: a graceful shutdown waits for responses
    /// to finish, and a watch never would.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`WatchCache::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// The whole list of `kind` as serialized at `rv`, if it was.
    pub fn memo_list(&self, kind: &str, rv: u64) -> Option<Bytes> {
        let g = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        g.get(kind)
            .filter(|(r, _)| *r == rv)
            .map(|(_, b)| b.clone())
    }

    /// Keeps the whole list of `kind` at `rv` (one per kind: the newest).
    pub fn remember_list(&self, kind: &str, rv: u64, body: Bytes) {
        let mut g = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        match g.get_mut(kind) {
            Some(e) if e.0 >= rv => {}
            Some(e) => *e = (rv, body),
            None => {
                g.insert(kind.to_string(), (rv, body));
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the cache reflects at least `rv`, at most `timeout`.
    pub async fn wait_for(&self, rv: u64, timeout: Duration) -> Result<u64, CacheError> {
        let now = self.rv.load(Ordering::Acquire);
        if now >= rv {
            return Ok(now);
        }
        let mut rx = self.rv_tx.subscribe();
        let reached = match tokio::time::timeout(timeout, rx.wait_for(|v| *v >= rv)).await {
            Ok(Ok(v)) => Some(*v),
            _ => None,
        };
        reached.ok_or_else(|| CacheError::Behind {
            cache: self.rv.load(Ordering::Acquire),
            wanted: rv,
        })
    }

    /// Waits until the cache holds every write the store acknowledged so far.
    pub async fn sync(&self) -> Result<u64, CacheError> {
        self.wait_for(self.store.revision(), SYNC_TIMEOUT).await
    }

    /// One object.
    pub fn get(&self, kind: &str, name: &str) -> Option<Arc<CachedObject>> {
        self.read()
            .objects
            .get(&(kind.to_string(), name.to_string()))
            .cloned()
    }

    /// How many objects of a kind.
    pub fn count(&self, kind: &str) -> usize {
        kind_range(&self.read().objects, kind, None).count()
    }

    /// The current map and its resourceVersion.
    pub fn current(&self) -> (u64, Arc<Objects>) {
        let g = self.read();
        (g.rv, g.objects.clone())
    }

    /// The current map, kept for continue tokens.
    pub fn keep_snapshot(&self) -> (u64, Arc<Objects>) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let ttl = self.config.snapshot_ttl;
        g.snapshots
            .retain(|(_, _, at)| now.duration_since(*at) < ttl);
        let rv = g.rv;
        if let Some((_, m, at)) = g.snapshots.iter_mut().find(|(r, _, _)| *r == rv) {
            // A new listing from the same state: the token lives its full time from now.
            *at = now;
            return (rv, m.clone());
        }
        let m = g.objects.clone();
        g.snapshots.push_back((rv, m.clone(), now));
        while g.snapshots.len() > self.config.max_snapshots {
            g.snapshots.pop_front();
        }
        (rv, m)
    }

    /// The snapshot a continue token names, if still kept (or if nothing changed since).
    pub fn snapshot_at(&self, rv: u64) -> Option<Arc<Objects>> {
        let g = self.read();
        if g.rv == rv {
            return Some(g.objects.clone());
        }
        g.snapshots
            .iter()
            .find(|(r, _, at)| *r == rv && at.elapsed() < self.config.snapshot_ttl)
            .map(|(_, m, _)| m.clone())
    }

    /// Starts a watch after `rv`: the changes after it still in the history, and a receiver
    /// for the ones to come, taken under one lock so nothing is missed or repeated.
    /// `None` means `rv` is older than the history (410).
    pub fn watch_from(&self, rv: u64) -> Option<(Vec<Arc<Change>>, broadcast::Receiver<Fanout>)> {
        let g = self.read();
        if rv < g.floor {
            return None;
        }
        let rx = self.fanout.subscribe();
        let backlog = g
            .history
            .iter()
            .filter(|c| c.cur.resource_version > rv)
            .cloned()
            .collect();
        Some((backlog, rx))
    }

    /// Starts a watch at the current state: the map, its resourceVersion and a receiver.
    pub fn watch_now(&self) -> (u64, Arc<Objects>, broadcast::Receiver<Fanout>) {
        let g = self.read();
        (g.rv, g.objects.clone(), self.fanout.subscribe())
    }

    /// The oldest resourceVersion a watch may start from.
    pub fn floor(&self) -> u64 {
        self.read().floor
    }

    /// Number of watchers now.
    pub fn watchers(&self) -> usize {
        self.fanout.receiver_count()
    }

    fn apply(&self, ev: WatchEvent) {
        if ev.resource_version <= self.rv.load(Ordering::Acquire) {
            return; // already in the snapshot
        }
        // Serialized before taking the lock: readers never wait for it.
        let cur = Arc::new(CachedObject::new(&ev.object));
        let key = (ev.kind.clone(), ev.name.clone());
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if ev.resource_version <= g.rv {
            return;
        }
        let objects = Arc::make_mut(&mut g.objects);
        let prev = match ev.action {
            WatchAction::Deleted => objects.remove(&key),
            WatchAction::Added | WatchAction::Modified => objects.insert(key, cur.clone()),
        };
        let change = Arc::new(Change {
            action: ev.action,
            prev,
            cur,
        });
        g.rv = ev.resource_version;
        g.history.push_back(change.clone());
        while g.history.len() > self.config.history {
            if let Some(old) = g.history.pop_front() {
                g.floor = old.cur.resource_version;
            }
        }
        // Sent under the lock, so a watch start (which reads the history under it) sees each
        // change either in its backlog or on its receiver, never both or neither.
        let _ = self.fanout.send(Fanout::Change(change));
        self.publish(ev.resource_version);
    }

    fn reset(&self, rv: u64, objects: Vec<StoredObject>) {
        let map: Objects = objects
            .iter()
            .map(|o| {
                (
                    (o.kind.clone(), o.meta.name.clone()),
                    Arc::new(CachedObject::new(o)),
                )
            })
            .collect();
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let first = g.rv == 0 && g.history.is_empty();
        g.rv = rv;
        g.objects = Arc::new(map);
        g.history.clear();
        g.floor = rv;
        if !first {
            let _ = self.fanout.send(Fanout::Reset);
        }
        self.publish(rv);
    }

    fn publish(&self, rv: u64) {
        self.rv.store(rv, Ordering::Release);
        self.rv_tx.send_replace(rv);
    }
}

/// The objects of one kind, from after `after` (a name) on, in name order.
pub fn kind_range<'a>(
    objects: &'a Objects,
    kind: &str,
    after: Option<&str>,
) -> impl Iterator<Item = &'a Arc<CachedObject>> + 'a {
    use std::ops::Bound;
    let kind = kind.to_string();
    let start = match after {
        Some(n) => Bound::Excluded((kind.clone(), n.to_string())),
        None => Bound::Included((kind.clone(), String::new())),
    };
    objects
        .range((start, Bound::Unbounded))
        .take_while(move |((k, _), _)| *k == kind)
        .map(|(_, v)| v)
}

/// The background task: load, then apply the store's events; rebuild when they lag.
async fn follow(cache: Weak<WatchCache>, mut rx: broadcast::Receiver<WatchEvent>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(c) = cache.upgrade() else { return };
        match c.store.snapshot().await {
            Ok((rv, objects)) => {
                c.reset(rv, objects);
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "watch cache: loading the store failed; retrying");
            }
        }
        drop(c);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    loop {
        let ev = rx.recv().await;
        let Some(c) = cache.upgrade() else { return };
        match ev {
            Ok(ev) => c.apply(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "watch cache fell behind the store; reloading (watchers must re-list)"
                );
                match c.store.snapshot().await {
                    Ok((rv, objects)) => c.reset(rv, objects),
                    Err(e) => tracing::error!(error = %e, "watch cache: reloading failed"),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
