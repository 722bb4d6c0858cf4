//! GitSource passes on the real store (in memory) and the real git (temporary repositories):
//! what a sync writes, what it prunes after an interrupted pass, zero writes when nothing
//! changed, `wait`, and release on delete. Without git these fail under a truthy `CI` and are
//! skipped otherwise (`test_support::require`).

use std::sync::Arc;
use std::time::Duration;

use botcluster_api::gitsource::{GitSourceStatus, GITSOURCE_KIND, OWNER_LABEL};
use botcluster_api::{ObjectMeta, BOTCLUSTER_KIND};
use botcluster_controller::runtime::{Action, Reconcile};
use botcluster_controller::{GitSourceMetrics, GitSourceReconciler};
use botcluster_store::{SpecWrite, SqliteStore, Store};
use git_client::GitCli;
use serde_json::json;
use test_support::{git_cli, require, GitRepo};

/// A repository whose `c/` holds one BotCluster file per name.
struct Repo(GitRepo);

impl Repo {
    fn new() -> Repo {
        let r = GitRepo::new();
        r.commit(&[("c/README.md", Some("keeps the directory"))], "init");
        Repo(r)
    }
    /// Makes `c/` hold exactly these clusters; returns the commit.
    fn set(&self, names: &[(&str, u32)]) -> String {
        let mut files: Vec<(String, Option<String>)> = Vec::new();
        for e in std::fs::read_dir(self.0.work.join("c")).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                files.push((format!("c/{}", e.file_name().to_string_lossy()), None));
            }
        }
        for (n, replicas) in names {
            let doc = format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {{name: {n}}}\nspec: {{image: img, replicas: {replicas}}}\n");
            files.retain(|(p, _)| p != &format!("c/{n}.yaml"));
            files.push((format!("c/{n}.yaml"), Some(doc)));
        }
        let refs: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_deref()))
            .collect();
        self.0.commit(&refs, "x")
    }
}

struct World {
    store: Arc<SqliteStore>,
    cache: tempfile::TempDir,
    repo: Repo,
}

impl World {
    async fn new(spec_extra: serde_json::Value) -> World {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let repo = Repo::new();
        let mut spec = json!({"url": repo.0.url(), "ref": {"branch": "main"}, "path": "c",
            "interval": "1h", "prune": true, "suspend": false, "allowEmpty": false, "wait": false, "timeout": "30s"});
        for (k, v) in spec_extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        store
            .apply(SpecWrite {
                kind: GITSOURCE_KIND.into(),
                meta: ObjectMeta::named("src"),
                spec,
                expected_resource_version: None,
                manager: None,
                dry_run: false,
            })
            .await
            .unwrap();
        World {
            store,
            cache: tempfile::tempdir().unwrap(),
            repo,
        }
    }
    fn reconciler(&self, pause: Duration) -> GitSourceReconciler {
        GitSourceReconciler::new(
            self.store.clone(),
            Arc::new(GitCli::new(self.cache.path())),
            GitSourceMetrics::new(&prometheus::Registry::new()),
        )
        .with_apply_pause(pause)
    }
    async fn status(&self) -> GitSourceStatus {
        serde_json::from_value(
            self.store
                .get(GITSOURCE_KIND, "src")
                .await
                .unwrap()
                .unwrap()
                .status,
        )
        .unwrap_or_default()
    }
    async fn names(&self) -> Vec<String> {
        self.store
            .list(BOTCLUSTER_KIND)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| !o.is_deleting())
            .map(|o| o.meta.name)
            .collect()
    }
}

#[tokio::test]
async fn an_object_created_by_an_interrupted_pass_is_still_pruned_later() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({})).await;
    w.repo.set(&[("a", 1)]);
    w.reconciler(Duration::ZERO).reconcile("src").await.unwrap();
    assert_eq!(w.names().await, ["a"]);
    // A revision adding b and c; the pass dies (is dropped) right after writing b.
    w.repo.set(&[("a", 1), ("b", 1), ("c", 1)]);
    let slow = w.reconciler(Duration::from_secs(30));
    let _ = tokio::time::timeout(Duration::from_secs(3), slow.reconcile("src")).await;
    assert_eq!(
        w.names().await,
        ["a", "b"],
        "the interrupted pass wrote b only"
    );
    let st = w.status().await;
    assert_ne!(st.last_attempted_revision, st.last_applied_revision);
    assert!(
        st.inventory.iter().any(|i| i.name == "c"),
        "the write-ahead inventory lists c before it exists"
    );
    // Git drops b and c before any pass finishes: the next pass prunes b, which only the
    // write-ahead inventory knew about.
    let rev = w.repo.set(&[("a", 1)]);
    w.reconciler(Duration::ZERO).reconcile("src").await.unwrap();
    assert_eq!(
        w.names().await,
        ["a"],
        "b, created by the interrupted pass, was forgotten"
    );
    let st = w.status().await;
    assert_eq!(st.last_applied_revision, Some(format!("main@sha1:{rev}")));
    assert_eq!(st.inventory.len(), 1);
}

#[tokio::test]
async fn a_second_pass_with_nothing_changed_writes_no_botcluster() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({})).await;
    w.repo.set(&[("a", 1), ("b", 2)]);
    let r = w.reconciler(Duration::ZERO);
    r.reconcile("src").await.unwrap();
    let before: Vec<String> = w
        .store
        .list(BOTCLUSTER_KIND)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.meta.resource_version.unwrap())
        .collect();
    let events = w
        .store
        .events(GITSOURCE_KIND, "src", 50)
        .await
        .unwrap()
        .len();
    assert!(matches!(
        r.reconcile("src").await.unwrap(),
        Action::Requeue(_)
    ));
    let after: Vec<String> = w
        .store
        .list(BOTCLUSTER_KIND)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.meta.resource_version.unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        w.store
            .events(GITSOURCE_KIND, "src", 50)
            .await
            .unwrap()
            .len(),
        events,
        "an idle poll recorded an event"
    );
}

#[tokio::test]
async fn with_wait_ready_comes_only_when_every_cluster_is_ready() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({"wait": true})).await;
    w.repo.set(&[("a", 1)]);
    let r = w.reconciler(Duration::ZERO);
    r.reconcile("src").await.unwrap();
    let ready = |st: &GitSourceStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.to_string(), c.reason.clone()))
    };
    assert_eq!(
        ready(&w.status().await),
        Some(("False".into(), "HealthCheckPending".into()))
    );
    // The BotCluster controller reports a Ready for the current generation.
    w.store
        .update_status(BOTCLUSTER_KIND, "a", json!({"conditions": [{"type": "Ready", "status": "True", "reason": "AllReady", "observedGeneration": 1}]}), None)
        .await
        .unwrap();
    r.reconcile("src").await.unwrap();
    assert_eq!(
        ready(&w.status().await),
        Some(("True".into(), "ReconciliationSucceeded".into()))
    );
}

#[tokio::test]
async fn deleting_a_source_without_cascade_releases_its_clusters() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({})).await;
    w.repo.set(&[("a", 1)]);
    let r = w.reconciler(Duration::ZERO);
    r.reconcile("src").await.unwrap();
    w.store.delete(GITSOURCE_KIND, "src").await.unwrap();
    r.reconcile("src").await.unwrap();
    assert!(
        w.store.get(GITSOURCE_KIND, "src").await.unwrap().is_none(),
        "the finalizer was not removed"
    );
    let a = w
        .store
        .get(BOTCLUSTER_KIND, "a")
        .await
        .unwrap()
        .expect("a kept");
    assert!(
        !a.meta.labels.contains_key(OWNER_LABEL),
        "a still says it is owned"
    );
    assert!(!a.is_deleting());
}

/// Found reviewing the GitOps path: a revision was stored without the host-port check the
/// API's PUT makes, so two files (or a file and a cluster applied by hand) could claim the
/// same ports and only collide at reconcile time. The revision is now refused whole, naming
/// the file and field, and nothing of it is written.
#[tokio::test]
async fn a_revision_whose_clusters_share_host_ports_is_refused_whole() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({})).await;
    // Applied by hand, with the range a Git file will want.
    w.store
        .apply(SpecWrite {
            kind: BOTCLUSTER_KIND.into(),
            meta: ObjectMeta::named("by-hand"),
            spec: json!({"image": "img", "hostPorts": {"start": 23000, "end": 23009}}),
            expected_resource_version: None,
            manager: None,
            dry_run: false,
        })
        .await
        .unwrap();
    let doc = |n: &str, start: u16| {
        format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {{name: {n}}}\nspec: {{image: img, hostPorts: {{start: {start}, end: {}}}}}\n", start + 9)
    };
    let (a, b) = (doc("a", 23005), doc("b", 24000));
    w.repo.0.commit(
        &[
            ("c/a.yaml", Some(a.as_str())),
            ("c/b.yaml", Some(b.as_str())),
        ],
        "ports",
    );
    let _ = w.reconciler(Duration::ZERO).reconcile("src").await;
    assert_eq!(
        w.names().await,
        ["by-hand"],
        "nothing of the revision is written"
    );
    let st = w.status().await;
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready.reason, "PortConflict", "{ready:?}");
    assert!(
        ready
            .message
            .contains("c/a.yaml (document 1): spec.hostPorts")
            && ready.message.contains("\"by-hand\""),
        "{}",
        ready.message
    );
    assert!(st.last_applied_revision.is_none());
    // Moved apart in Git: applied.
    let a = doc("a", 25000);
    w.repo.0.commit(&[("c/a.yaml", Some(a.as_str()))], "apart");
    w.reconciler(Duration::ZERO).reconcile("src").await.unwrap();
    assert_eq!(w.names().await, ["a", "b", "by-hand"]);
}

/// Found when `botctl sync` moved from polling to the watch: the write-ahead status write
/// already carried the new `lastHandledSync`, so a watcher saw "handled" while the revision
/// was still being applied (`Progressing: applying …`), and `sync` reported a failure. The
/// token is now recorded only when the pass ends.
#[tokio::test]
async fn a_sync_is_marked_handled_only_when_its_pass_ends() {
    if require(git_cli()).is_none() {
        return;
    }
    let w = World::new(json!({})).await;
    let obj = w.store.get(GITSOURCE_KIND, "src").await.unwrap().unwrap();
    let mut meta = obj.meta.user_fields();
    meta.annotations.insert(
        botcluster_api::gitsource::SYNC_ANNOTATION.into(),
        "token-1".into(),
    );
    w.store
        .apply(SpecWrite {
            kind: GITSOURCE_KIND.into(),
            meta,
            spec: obj.spec.clone(),
            expected_resource_version: None,
            manager: None,
            dry_run: false,
        })
        .await
        .unwrap();
    w.repo.set(&[("a", 1)]);
    // The pass stops after its write-ahead status write (the apply pauses for 30 s).
    let slow = w.reconciler(Duration::from_secs(30));
    let _ = tokio::time::timeout(Duration::from_secs(3), slow.reconcile("src")).await;
    let st = w.status().await;
    assert!(st.last_attempted_revision.is_some(), "the write-ahead ran");
    assert_ne!(
        st.last_handled_sync.as_deref(),
        Some("token-1"),
        "handled too early"
    );
    w.reconciler(Duration::ZERO).reconcile("src").await.unwrap();
    assert_eq!(
        w.status().await.last_handled_sync.as_deref(),
        Some("token-1")
    );
}
