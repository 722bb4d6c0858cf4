//! The embedded store: one SQLite file in WAL mode.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use botcluster_api::{Event, ObjectMeta};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::*;

/// Events kept per object.
const EVENTS_PER_OBJECT: i64 = 500;

/// A [`Store`] in one SQLite file (WAL, `synchronous=FULL`: an acknowledged write survives
/// `kill -9` and power loss). Several processes may open the same file; writes serialize on
/// SQLite's lock, and the resourceVersion check runs inside the write transaction.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    tx: broadcast::Sender<WatchEvent>,
    /// The newest revision committed through this instance (see [`Store::revision`]).
    revision: AtomicU64,
}

/// What a write tells watchers once it committed.
struct Notice {
    action: WatchAction,
    object: StoredObject,
}

impl Notice {
    fn new(action: WatchAction, object: StoredObject) -> Option<Self> {
        Some(Notice { action, object })
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A private in-memory store (tests).
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA foreign_keys=ON;
             CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
             INSERT OR IGNORE INTO revision (id, value) VALUES (1, 0);
             CREATE TABLE IF NOT EXISTS objects (
                 kind TEXT NOT NULL,
                 name TEXT NOT NULL,
                 meta TEXT NOT NULL,
                 spec TEXT NOT NULL,
                 status TEXT NOT NULL,
                 resource_version INTEGER NOT NULL,
                 PRIMARY KEY (kind, name)
             );
             CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind TEXT NOT NULL,
                 name TEXT NOT NULL,
                 event TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, name, id);",
        )
        .map_err(backend)?;
        let revision = conn
            .query_row("SELECT value FROM revision WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(backend)? as u64;
        let (tx, _) = broadcast::channel(4096);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            tx,
            revision: AtomicU64::new(revision),
        })
    }

    /// Runs `f` in a write transaction; once it committed, and while the lock is still held,
    /// sends its notice to watchers, so events leave in resourceVersion order.
    fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(T, Option<Notice>)>,
    ) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| backend("store mutex poisoned"))?;
        // IMMEDIATE takes the write lock up front, so the read-check-write below is atomic
        // across processes too.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let (out, notice) = f(&tx)?;
        tx.commit().map_err(backend)?;
        if let Some(n) = notice {
            let rv = n.object.resource_version();
            self.revision.store(rv, Ordering::Release);
            // No receivers is fine.
            let _ = self.tx.send(WatchEvent {
                kind: n.object.kind.clone(),
                name: n.object.meta.name.clone(),
                action: n.action,
                resource_version: rv,
                object: Arc::new(n.object),
            });
        }
        drop(conn);
        Ok(out)
    }
}

fn next_revision(tx: &rusqlite::Transaction<'_>) -> Result<u64> {
    tx.query_row(
        "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
    .map_err(backend)
}

fn load(tx: &Connection, kind: &str, name: &str) -> Result<Option<StoredObject>> {
    tx.query_row(
        "SELECT meta, spec, status FROM objects WHERE kind = ?1 AND name = ?2",
        params![kind, name],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        },
    )
    .optional()
    .map_err(backend)?
    .map(|(m, s, st)| decode(kind, &m, &s, &st))
    .transpose()
}

fn decode(kind: &str, meta: &str, spec: &str, status: &str) -> Result<StoredObject> {
    Ok(StoredObject {
        kind: kind.to_string(),
        meta: serde_json::from_str(meta).map_err(backend)?,
        spec: serde_json::from_str(spec).map_err(backend)?,
        status: serde_json::from_str(status).map_err(backend)?,
    })
}

fn save(tx: &rusqlite::Transaction<'_>, obj: &StoredObject) -> Result<()> {
    let meta = serde_json::to_string(&obj.meta).map_err(backend)?;
    let spec = serde_json::to_string(&obj.spec).map_err(backend)?;
    let status = serde_json::to_string(&obj.status).map_err(backend)?;
    tx.execute(
        "INSERT INTO objects (kind, name, meta, spec, status, resource_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (kind, name) DO UPDATE SET
           meta = excluded.meta, spec = excluded.spec, status = excluded.status,
           resource_version = excluded.resource_version",
        params![
            obj.kind,
            obj.meta.name,
            meta,
            spec,
            status,
            obj.resource_version() as i64
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn remove(tx: &rusqlite::Transaction<'_>, kind: &str, name: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
        params![kind, name],
    )
    .map_err(backend)?;
    tx.execute(
        "DELETE FROM events WHERE kind = ?1 AND name = ?2",
        params![kind, name],
    )
    .map_err(backend)?;
    Ok(())
}

fn check_version(obj: &StoredObject, expected: Option<&str>) -> Result<()> {
    match expected {
        Some(e) if !e.is_empty() && e != obj.meta.resource_version.as_deref().unwrap_or("") => {
            Err(StoreError::Conflict {
                kind: obj.kind.clone(),
                name: obj.meta.name.clone(),
                expected: e.to_string(),
                actual: obj.meta.resource_version.clone().unwrap_or_default(),
            })
        }
        _ => Ok(()),
    }
}

fn new_uid() -> String {
    let bytes: [u8; 16] = rand::random();
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, kind: &str, name: &str) -> Result<Option<StoredObject>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| backend("store mutex poisoned"))?;
        load(&conn, kind, name)
    }

    async fn list(&self, kind: &str) -> Result<Vec<StoredObject>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| backend("store mutex poisoned"))?;
        let mut stmt = conn
            .prepare_cached("SELECT meta, spec, status FROM objects WHERE kind = ?1 ORDER BY name")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![kind], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (m, s, st) = row.map_err(backend)?;
            decode(kind, &m, &s, &st)
        })
        .collect()
    }

    async fn apply(&self, w: SpecWrite) -> Result<(StoredObject, Change)> {
        let name = w.meta.name.clone();
        let out = self.with_tx(|tx| {
            let existing = load(tx, &w.kind, &name)?;
            let (mut obj, change) = match existing {
                None => {
                    if let Some(e) = w
                        .expected_resource_version
                        .as_deref()
                        .filter(|e| !e.is_empty())
                    {
                        return Err(StoreError::Conflict {
                            kind: w.kind.clone(),
                            name: name.clone(),
                            expected: e.to_string(),
                            actual: "absent (it does not exist)".into(),
                        });
                    }
                    let meta = ObjectMeta {
                        uid: Some(new_uid()),
                        generation: Some(1),
                        creation_timestamp: Some(now_rfc3339()),
                        managed_by: w.manager.clone(),
                        ..w.meta.user_fields()
                    };
                    let obj = StoredObject {
                        kind: w.kind.clone(),
                        meta,
                        spec: w.spec.clone(),
                        status: Value::Null,
                    };
                    (obj, Change::Created)
                }
                Some(old) => {
                    if old.is_deleting() {
                        return Err(StoreError::Terminating {
                            kind: w.kind.clone(),
                            name: name.clone(),
                        });
                    }
                    check_version(&old, w.expected_resource_version.as_deref())?;
                    let spec_changed = old.spec != w.spec;
                    let meta_changed = old.meta.labels != w.meta.labels
                        || old.meta.annotations != w.meta.annotations
                        || (spec_changed
                            && w.manager.is_some()
                            && old.meta.managed_by != w.manager);
                    if !spec_changed && !meta_changed {
                        return Ok(((old, Change::Unchanged), None));
                    }
                    let mut obj = old.clone();
                    obj.meta.labels = w.meta.labels.clone();
                    obj.meta.annotations = w.meta.annotations.clone();
                    if spec_changed {
                        obj.spec = w.spec.clone();
                        obj.meta.generation = Some(old.generation() + 1);
                        if w.manager.is_some() {
                            obj.meta.managed_by = w.manager.clone();
                        }
                    }
                    (obj, Change::Configured)
                }
            };
            if w.dry_run {
                return Ok(((obj, change), None));
            }
            obj.meta.resource_version = Some(next_revision(tx)?.to_string());
            save(tx, &obj)?;
            let action = if change == Change::Created {
                WatchAction::Added
            } else {
                WatchAction::Modified
            };
            let notice = Notice::new(action, obj.clone());
            Ok(((obj, change), notice))
        })?;
        Ok(out)
    }

    async fn update_status(
        &self,
        kind: &str,
        name: &str,
        status: Value,
        expected: Option<&str>,
    ) -> Result<StoredObject> {
        self.with_tx(|tx| {
            let mut obj = load(tx, kind, name)?.ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                name: name.into(),
            })?;
            check_version(&obj, expected)?;
            if obj.status == status {
                return Ok((obj, None));
            }
            obj.status = status;
            obj.meta.resource_version = Some(next_revision(tx)?.to_string());
            save(tx, &obj)?;
            let notice = Notice::new(WatchAction::Modified, obj.clone());
            Ok((obj, notice))
        })
    }

    async fn set_finalizers(
        &self,
        kind: &str,
        name: &str,
        finalizers: Vec<String>,
    ) -> Result<Option<StoredObject>> {
        self.with_tx(|tx| {
            let mut obj = load(tx, kind, name)?.ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                name: name.into(),
            })?;
            if obj.is_deleting() && finalizers.is_empty() {
                let rv = next_revision(tx)?;
                remove(tx, kind, name)?;
                obj.meta.finalizers.clear();
                obj.meta.resource_version = Some(rv.to_string());
                return Ok((None, Notice::new(WatchAction::Deleted, obj)));
            }
            if obj.meta.finalizers == finalizers {
                return Ok((Some(obj), None));
            }
            obj.meta.finalizers = finalizers;
            let rv = next_revision(tx)?;
            obj.meta.resource_version = Some(rv.to_string());
            save(tx, &obj)?;
            let notice = Notice::new(WatchAction::Modified, obj.clone());
            Ok((Some(obj), notice))
        })
    }

    async fn delete(&self, kind: &str, name: &str) -> Result<Deleted> {
        self.with_tx(|tx| {
            let mut obj = load(tx, kind, name)?.ok_or_else(|| StoreError::NotFound {
                kind: kind.into(),
                name: name.into(),
            })?;
            if obj.is_deleting() && !obj.meta.finalizers.is_empty() {
                // Already marked: deletionTimestamp never moves (Kubernetes' rule), and
                // nothing is written, so no revision is spent.
                return Ok((Deleted::Terminating(Box::new(obj)), None));
            }
            let rv = next_revision(tx)?;
            obj.meta.resource_version = Some(rv.to_string());
            if obj.meta.finalizers.is_empty() {
                remove(tx, kind, name)?;
                return Ok((Deleted::Removed, Notice::new(WatchAction::Deleted, obj)));
            }
            obj.meta.deletion_timestamp = Some(now_rfc3339());
            save(tx, &obj)?;
            let notice = Notice::new(WatchAction::Modified, obj.clone());
            Ok((Deleted::Terminating(Box::new(obj)), notice))
        })
    }

    async fn record_event(&self, kind: &str, name: &str, event: Event) -> Result<()> {
        let text = serde_json::to_string(&event).map_err(backend)?;
        self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO events (kind, name, event) VALUES (?1, ?2, ?3)",
                params![kind, name, text],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM events WHERE kind = ?1 AND name = ?2 AND id <= (
                     SELECT id FROM events WHERE kind = ?1 AND name = ?2
                     ORDER BY id DESC LIMIT 1 OFFSET ?3)",
                params![kind, name, EVENTS_PER_OBJECT],
            )
            .map_err(backend)?;
            Ok(((), None))
        })
    }

    async fn events(&self, kind: &str, name: &str, limit: usize) -> Result<Vec<Event>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| backend("store mutex poisoned"))?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT event FROM events WHERE kind = ?1 AND name = ?2 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![kind, name, limit as i64], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let mut out: Vec<Event> = rows
            .map(|r| serde_json::from_str(&r.map_err(backend)?).map_err(backend))
            .collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        self.tx.subscribe()
    }

    fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    async fn snapshot(&self) -> Result<(u64, Vec<StoredObject>)> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| backend("store mutex poisoned"))?;
        // One read transaction: the revision and the rows are of the same moment, even with
        // another process writing the file.
        let tx = conn.transaction().map_err(backend)?;
        let rv = tx
            .query_row("SELECT value FROM revision WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(backend)? as u64;
        let objects = {
            let mut stmt = tx
                .prepare_cached("SELECT kind, meta, spec, status FROM objects ORDER BY kind, name")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (k, m, s, st) = row.map_err(backend)?;
                decode(&k, &m, &s, &st)
            })
            .collect::<Result<Vec<_>>>()?
        };
        tx.commit().map_err(backend)?;
        Ok((rv, objects))
    }
}
