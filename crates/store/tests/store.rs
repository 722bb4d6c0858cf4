//! The store's contract, on the real SQLite backend.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use botcluster_api::{Event, ObjectMeta};
use botcluster_store::*;
use serde_json::json;

const KIND: &str = "BotCluster";

fn write(name: &str, spec: serde_json::Value) -> SpecWrite {
    SpecWrite {
        kind: KIND.into(),
        meta: ObjectMeta::named(name),
        spec,
        expected_resource_version: None,
        manager: Some("test".into()),
        dry_run: false,
    }
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    (dir, s)
}

#[tokio::test]
async fn generation_moves_only_with_the_spec_and_unchanged_writes_write_nothing() {
    let (_d, s) = store();
    let (a, c) = s.apply(write("a", json!({"replicas": 1}))).await.unwrap();
    assert_eq!((c, a.generation()), (Change::Created, 1));
    let (b, c) = s.apply(write("a", json!({"replicas": 1}))).await.unwrap();
    assert_eq!(c, Change::Unchanged);
    assert_eq!(b.meta.resource_version, a.meta.resource_version);
    let (b, c) = s.apply(write("a", json!({"replicas": 2}))).await.unwrap();
    assert_eq!((c, b.generation()), (Change::Configured, 2));
    assert!(b.resource_version() > a.resource_version());
    let mut labelled = write("a", json!({"replicas": 2}));
    labelled.meta.labels.insert("team".into(), "bots".into());
    let (l, c) = s.apply(labelled).await.unwrap();
    assert_eq!(
        (c, l.generation()),
        (Change::Configured, 2),
        "labels are not spec"
    );
    let st = s
        .update_status(KIND, "a", json!({"readyReplicas": 2}), None)
        .await
        .unwrap();
    assert_eq!(st.generation(), 2, "a status write never bumps generation");
    assert!(st.resource_version() > l.resource_version());
    let again = s
        .update_status(KIND, "a", json!({"readyReplicas": 2}), None)
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        st.resource_version(),
        "same status: no write"
    );
    let (_, dry) = s
        .apply(SpecWrite {
            dry_run: true,
            ..write("a", json!({"replicas": 9}))
        })
        .await
        .unwrap();
    assert_eq!(dry, Change::Configured);
    assert_eq!(
        s.get(KIND, "a").await.unwrap().unwrap().spec,
        json!({"replicas": 2}),
        "dry run wrote nothing"
    );
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict_and_changes_nothing() {
    let (_d, s) = store();
    let (a, _) = s.apply(write("a", json!({"replicas": 1}))).await.unwrap();
    s.apply(write("a", json!({"replicas": 2}))).await.unwrap();
    let stale = SpecWrite {
        expected_resource_version: a.meta.resource_version.clone(),
        ..write("a", json!({"replicas": 3}))
    };
    let err = s.apply(stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("get it again"));
    assert_eq!(
        s.get(KIND, "a").await.unwrap().unwrap().spec,
        json!({"replicas": 2})
    );
    let err = s
        .update_status(KIND, "a", json!({}), a.meta.resource_version.as_deref())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
}

#[tokio::test]
async fn delete_waits_for_finalizers_unless_there_are_none() {
    let (_d, s) = store();
    s.apply(write("plain", json!({}))).await.unwrap();
    assert_eq!(s.delete(KIND, "plain").await.unwrap(), Deleted::Removed);
    assert!(s.get(KIND, "plain").await.unwrap().is_none());

    s.apply(write("owned", json!({}))).await.unwrap();
    s.set_finalizers(KIND, "owned", vec!["botcluster.io/teardown".into()])
        .await
        .unwrap();
    s.record_event(KIND, "owned", ev("Created")).await.unwrap();
    let Deleted::Terminating(obj) = s.delete(KIND, "owned").await.unwrap() else {
        panic!("removed with a finalizer")
    };
    let ts = obj.meta.deletion_timestamp.clone().unwrap();
    let Deleted::Terminating(again) = s.delete(KIND, "owned").await.unwrap() else {
        panic!()
    };
    assert_eq!(
        again.meta.deletion_timestamp.unwrap(),
        ts,
        "deletionTimestamp never moves"
    );
    let err = s
        .apply(write("owned", json!({"replicas": 5})))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Terminating { .. }));
    assert!(s
        .set_finalizers(KIND, "owned", vec![])
        .await
        .unwrap()
        .is_none());
    assert!(s.get(KIND, "owned").await.unwrap().is_none());
    assert!(
        s.events(KIND, "owned", 10).await.unwrap().is_empty(),
        "events go with the object"
    );
    assert!(matches!(
        s.delete(KIND, "owned").await,
        Err(StoreError::NotFound { .. })
    ));
}

fn ev(reason: &str) -> Event {
    Event {
        time: now_rfc3339(),
        type_: "Normal".into(),
        reason: reason.into(),
        message: format!("{reason} happened"),
    }
}

#[tokio::test]
async fn watchers_see_every_change_and_nothing_for_no_ops() {
    let (_d, s) = store();
    let mut w = s.watch();
    s.apply(write("a", json!({"x": 1}))).await.unwrap();
    s.apply(write("a", json!({"x": 1}))).await.unwrap();
    s.update_status(KIND, "a", json!({"y": 1}), None)
        .await
        .unwrap();
    s.delete(KIND, "a").await.unwrap();
    let got: Vec<WatchAction> = (0..3).map(|_| w.try_recv().unwrap().action).collect();
    assert_eq!(
        got,
        vec![
            WatchAction::Added,
            WatchAction::Modified,
            WatchAction::Deleted
        ]
    );
    assert!(w.try_recv().is_err());
}

#[tokio::test]
async fn event_log_keeps_order_and_is_bounded() {
    let (_d, s) = store();
    s.apply(write("a", json!({}))).await.unwrap();
    for i in 0..510 {
        s.record_event(KIND, "a", ev(&format!("E{i}")))
            .await
            .unwrap();
    }
    let all = s.events(KIND, "a", 1000).await.unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(all.last().unwrap().reason, "E509");
    assert_eq!(
        s.events(KIND, "a", 2)
            .await
            .unwrap()
            .iter()
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>(),
        vec!["E508", "E509"]
    );
}

/// Writers in separate connections (as separate processes would be) doing read-modify-write
/// with resourceVersion: every increment lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_conflicts_never_lost_updates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let first = SqliteStore::open(&path).unwrap();
    first
        .apply(write("counter", json!({"n": 0})))
        .await
        .unwrap();
    let writers = 6;
    let per = 20;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let s = Arc::new(SqliteStore::open(&path).unwrap());
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..per {
                loop {
                    let cur = s.get(KIND, "counter").await.unwrap().unwrap();
                    let n = cur.spec["n"].as_u64().unwrap();
                    let w = SpecWrite {
                        expected_resource_version: cur.meta.resource_version.clone(),
                        ..write("counter", json!({"n": n + 1}))
                    };
                    match s.apply(w).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let end = first.get(KIND, "counter").await.unwrap().unwrap();
    assert_eq!(end.spec["n"], json!(writers * per), "lost updates");
    assert_eq!(end.generation(), 1 + (writers * per) as u64);
    eprintln!("{conflicts} conflicts were retried");
}

/// A child process writes objects and prints each acknowledged name; the parent kills it with
/// SIGKILL mid-stream, reopens the file, and finds every acknowledged write.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    if std::env::var("BOTCLUSTER_STORE_CHILD").is_ok() {
        return; // the child runs `child_writer` below, not this test
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("BOTCLUSTER_STORE_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("ACK ") {
            acked.push(name.to_string());
            if acked.len() == 40 {
                break;
            }
        }
    }
    // SIGKILL, mid-write loop.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 40, "child stopped early");
    let s = SqliteStore::open(&path).unwrap();
    let names: Vec<String> = s
        .list(KIND)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.meta.name)
        .collect();
    for a in &acked {
        assert!(names.contains(a), "acknowledged {a} was lost");
    }
    // And the store still works.
    s.apply(write("after-crash", json!({}))).await.unwrap();
}

#[tokio::test]
async fn child_writer() {
    let Ok(path) = std::env::var("BOTCLUSTER_STORE_CHILD") else {
        return;
    };
    let s = SqliteStore::open(std::path::Path::new(&path)).unwrap();
    for i in 0.. {
        let name = format!("obj-{i}");
        s.apply(write(&name, json!({"i": i, "pad": "x".repeat(2000)})))
            .await
            .unwrap();
        println!("ACK {name}");
    }
}

#[tokio::test]
async fn concurrent_writers_notify_in_revision_order_one_event_per_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
    let mut w = s.watch();
    let start = s.revision();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                s.apply(write(&format!("o{t}"), json!({"i": i})))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Deleting an object already marked spends no revision (and sends nothing).
    s.apply(write("fin", json!({}))).await.unwrap();
    s.set_finalizers(KIND, "fin", vec!["x".into()])
        .await
        .unwrap();
    s.delete(KIND, "fin").await.unwrap();
    s.delete(KIND, "fin").await.unwrap();
    let mut rvs = Vec::new();
    while let Ok(ev) = w.try_recv() {
        assert_eq!(ev.resource_version, ev.object.resource_version());
        assert_eq!(ev.name, ev.object.meta.name);
        rvs.push(ev.resource_version);
    }
    let expected: Vec<u64> = (start + 1..=s.revision()).collect();
    assert_eq!(rvs, expected, "one event per revision, in order");
    assert_eq!(rvs.len(), 4 * 50 + 3);
    let (rv, all) = s.snapshot().await.unwrap();
    assert_eq!(rv, s.revision());
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|o| o.resource_version() <= rv));
}

#[tokio::test]
async fn a_deleted_event_carries_the_last_state_at_the_deletion_revision() {
    let (_d, s) = store();
    s.apply(write("a", json!({"x": 1}))).await.unwrap();
    let mut w = s.watch();
    s.delete(KIND, "a").await.unwrap();
    let ev = w.try_recv().unwrap();
    assert_eq!(ev.action, WatchAction::Deleted);
    assert_eq!(ev.object.spec, json!({"x": 1}));
    assert_eq!(ev.resource_version, s.revision());
    assert_eq!(ev.object.resource_version(), ev.resource_version);
}
