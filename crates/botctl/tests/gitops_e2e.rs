//! GitOps end to end: a real `botctl serve` following a bare Git repository on disk
//! (`file://`, the real git CLI) and reconciling what it applies in the real LXD.
//!
//! Without git or LXD (and its test image) these tests fail under a truthy `CI` and are
//! skipped otherwise (`test_support::require`). Cluster names carry this process's pid
//! (`e2e-<pid>-g...`); each test deletes what it made, and containers of killed runs are swept.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lxd_client::Client;
use serde_json::Value;
use support::Serve;
use test_support::git::git;
use test_support::{free_loopback_addr, git_cli, require, Daemon, GitRepo, Missing};

mod support;

/// The LXD client with the test image (and the git CLI), or what is missing; containers of
/// killed runs of this file (`e2e-<pid>-g...`) are swept first.
async fn lxd() -> Result<Client, Missing> {
    git_cli()?;
    let client = support::lxd::connect().await?;
    support::lxd::sweep_dead_runs(&client, "g").await;
    Ok(client)
}

/// The fleet's repository ([`GitRepo`]), committing files given as owned strings.
struct Repo(GitRepo);

impl Repo {
    fn new() -> Repo {
        Repo(GitRepo::new())
    }
    /// Writes (Some) or removes (None) files, commits and pushes; returns the commit.
    fn commit(&self, files: &[(&str, Option<String>)], msg: &str) -> String {
        let refs: Vec<(&str, Option<&str>)> =
            files.iter().map(|(p, c)| (*p, c.as_deref())).collect();
        self.0.commit(&refs, msg)
    }
    fn url(&self) -> String {
        self.0.url()
    }
}

fn cluster(name: &str, extra: &str) -> Option<String> {
    Some(format!(
        "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\n{extra}spec:\n  image: {}\n  replicas: 1\n  resources: {{cpu: 1, memory: 128MiB}}\n  health: {{interval: 1s, timeout: 1s}}\n",
        support::image()
    ))
}

/// `botctl serve` with its own data dir and 20 host ports, no Caddy; killed when dropped.
fn operator() -> Serve {
    let ports = support::port_range_arg(20);
    Serve::new(&[
        "--port-range",
        &ports,
        "--resync",
        "1s",
        "--caddy-admin",
        "none",
    ])
    .started()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn condition<'a>(v: &'a Value, t: &str) -> &'a Value {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_git_repository_drives_the_fleet_and_only_what_it_applied() {
    let Some(lxd) = require(lxd().await) else {
        return;
    };
    let started = Instant::now();
    let pid = std::process::id();
    let (a, b, h) = (
        format!("e2e-{pid}-ga"),
        format!("e2e-{pid}-gb"),
        format!("e2e-{pid}-gh"),
    );
    let repo = Repo::new();
    let c1 = repo.commit(
        &[
            ("clusters/a.yaml", cluster(&a, "")),
            ("clusters/b.yaml", cluster(&b, "")),
            (
                "clusters/README.md",
                Some("not a spec; keeps the directory".into()),
            ),
        ],
        "two clusters",
    );
    let mut op = operator();
    // A cluster applied by hand, which no sync may touch.
    let hand = format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata: {{name: {h}}}\nspec: {{image: {}, replicas: 0}}\n", support::image());
    assert!(op.apply_file("doc.yaml", &hand, &[]).status.success());
    let source = format!(
        "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {{name: fleet}}\nspec:\n  url: {}\n  path: clusters\n  interval: 1h\n",
        repo.url()
    );
    let o = op.apply_file("doc.yaml", &source, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    eprintln!("step 1 at {:.1?}", started.elapsed());
    // 1. Both clusters stored with the source as owner, and reconciled.
    let out = op.ok(&["sync", "fleet"]);
    assert!(out.contains(&format!("main@sha1:{c1}")), "{out}");
    for c in [&a, &b] {
        let v = op.json(c);
        assert_eq!(
            s(&v, "/metadata/labels/botcluster.io~1gitsource"),
            "fleet",
            "{v:#}"
        );
        assert_eq!(s(&v, "/metadata/managedBy"), "gitsource/fleet", "{v:#}");
        op.ok(&["wait", c, "--for", "condition=Ready", "--timeout", "180s"]);
    }
    assert_eq!(support::lxd::containers(&lxd, &a).await.len(), 1);
    assert_eq!(support::lxd::containers(&lxd, &b).await.len(), 1);
    let fleet = op.json("gitsource/fleet");
    assert_eq!(
        s(&fleet, "/status/lastAppliedRevision"),
        format!("main@sha1:{c1}")
    );
    assert_eq!(
        fleet
            .pointer("/status/inventory")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(2),
        "{fleet:#}"
    );

    eprintln!("step 2 at {:.1?}", started.elapsed());
    // 2. A commit changing one's replicas: converged, and `sync` did not wait for the 1h interval.
    let c2 = repo.commit(
        &[(
            "clusters/a.yaml",
            cluster(&a, "").map(|y| y.replace("replicas: 1", "replicas: 2")),
        )],
        "a: 2 replicas",
    );
    let out = op.ok(&["sync", "fleet"]);
    assert!(out.contains(&format!("main@sha1:{c2}")), "{out}");
    op.ok(&["wait", &a, "--for", "condition=Ready", "--timeout", "180s"]);
    let v = op.until(&a, WAIT, |v| {
        v.pointer("/status/readyReplicas").and_then(Value::as_u64) == Some(2)
    });
    assert_eq!(v["spec"]["replicas"], 2);
    assert_eq!(support::lxd::containers(&lxd, &a).await.len(), 2);

    eprintln!("step 3 at {:.1?}", started.elapsed());
    // 3. `botctl apply` of an owned cluster is refused without --force; forced, the next sync
    //    puts Git's version back.
    let forced = cluster(&a, "")
        .unwrap()
        .replace("replicas: 1", "replicas: 2\n  suspend: true");
    let o = op.apply_file("doc.yaml", &forced, &[]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("managed by GitSource \"fleet\"") && err.contains("--force"),
        "{err}"
    );
    let o = op.apply_file("doc.yaml", &forced, &["--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(op.json(&a)["spec"]["suspend"], true);
    op.ok(&["sync", "fleet"]);
    let v = op.json(&a);
    assert_eq!(v["spec"]["suspend"], false, "drift not put back: {v:#}");
    assert_eq!(s(&v, "/metadata/labels/botcluster.io~1gitsource"), "fleet");
    let status = op.ok(&["status", "gitsource/fleet"]);
    assert!(status.contains("DriftCorrected"), "{status}");

    eprintln!("step 4 at {:.1?}", started.elapsed());
    // 4. A commit with a broken document: refused as a whole, the previous revision stays,
    //    status names the file and the field.
    let (gen_a, gen_b) = (
        op.json(&a)["metadata"]["generation"].clone(),
        op.json(&b)["metadata"]["generation"].clone(),
    );
    let c4 = repo.commit(
        &[
            (
                "clusters/a.yaml",
                cluster(&a, "").map(|y| y.replace("replicas: 1", "replicas: 3")),
            ),
            (
                "clusters/b.yaml",
                cluster(&b, "").map(|y| y.replace("replicas: 1", "replicas: many")),
            ),
            (
                "clusters/typo.yaml",
                Some("apiVersion: botcluster.io/v1alpha1\nkind: [BotCluster\n".into()),
            ),
        ],
        "broken b, and a file that is not YAML",
    );
    let o = op.botctl(&["sync", "fleet"]);
    assert!(
        !o.status.success(),
        "a broken revision synced: {}",
        text(&o.stdout)
    );
    let fleet = op.json("gitsource/fleet");
    let ready = condition(&fleet, "Ready");
    assert_eq!(
        (s(ready, "/status"), s(ready, "/reason")),
        ("False", "ValidationFailed"),
        "{fleet:#}"
    );
    let message = s(ready, "/message");
    assert!(
        message.contains("clusters/b.yaml (document 1): spec.replicas"),
        "{ready:#}"
    );
    assert!(
        message.contains("clusters/typo.yaml: not valid YAML"),
        "{ready:#}"
    );
    assert_eq!(
        s(&fleet, "/status/lastAppliedRevision"),
        format!("main@sha1:{c2}")
    );
    assert_eq!(
        s(&fleet, "/status/lastAttemptedRevision"),
        format!("main@sha1:{c4}")
    );
    assert_eq!(
        op.json(&a)["metadata"]["generation"],
        gen_a,
        "a changed although its revision was refused"
    );
    assert_eq!(op.json(&b)["metadata"]["generation"], gen_b);

    eprintln!("step 5 at {:.1?}", started.elapsed());
    // 5. The operator killed mid-sync: the restarted one finishes the revision.
    op.kill_9();
    op.spawn_with(&["--test-gitsource-apply-pause", "5s"]);
    let label = "  labels: {rev: five}\n";
    let c5 = repo.commit(
        &[
            (
                "clusters/a.yaml",
                cluster(&a, label).map(|y| y.replace("replicas: 1", "replicas: 2")),
            ),
            ("clusters/b.yaml", cluster(&b, label)),
            ("clusters/typo.yaml", None),
        ],
        "labels on both",
    );
    op.ok(&["sync", "fleet", "--no-wait"]);
    op.until(&a, Duration::from_secs(30), |v| {
        s(v, "/metadata/labels/rev") == "five"
    });
    op.kill_9();
    // Killed inside the window: a has the new revision, b not yet, and status says a sync of
    // c5 started and did not finish.
    let seen = offline(&op, &[&b, "gitsource/fleet"]);
    assert_eq!(
        s(&seen[0], "/metadata/labels/rev"),
        "",
        "b was written before the kill: the test missed the window"
    );
    assert_eq!(
        s(&seen[1], "/status/lastAttemptedRevision"),
        format!("main@sha1:{c5}")
    );
    assert_eq!(
        s(&seen[1], "/status/lastAppliedRevision"),
        format!("main@sha1:{c2}")
    );
    op.spawn();
    let fleet = op.until("gitsource/fleet", Duration::from_secs(60), |v| {
        s(v, "/status/lastAppliedRevision") == format!("main@sha1:{c5}")
    });
    assert_eq!(
        s(condition(&fleet, "Ready"), "/status"),
        "True",
        "{fleet:#}"
    );
    for c in [&a, &b] {
        assert_eq!(
            s(&op.json(c), "/metadata/labels/rev"),
            "five",
            "{c} misses the revision after the restart"
        );
    }

    eprintln!("step 6 at {:.1?}", started.elapsed());
    // 6. A commit deleting one: pruned and torn down; the hand-applied cluster untouched.
    let hand_before = op.json(&h);
    repo.commit(&[("clusters/b.yaml", None)], "remove b");
    op.ok(&["sync", "fleet"]);
    op.ok(&["wait", &b, "--for", "delete", "--timeout", "180s"]);
    assert!(
        support::lxd::containers(&lxd, &b).await.is_empty(),
        "b's containers were left"
    );
    let hand_after = op.json(&h);
    for field in [
        "/metadata/generation",
        "/metadata/labels",
        "/metadata/managedBy",
        "/spec",
        "/metadata/deletionTimestamp",
    ] {
        assert_eq!(
            hand_after.pointer(field),
            hand_before.pointer(field),
            "the hand-applied cluster's {field} changed"
        );
    }
    assert_eq!(s(&hand_after, "/metadata/managedBy"), "botctl");

    eprintln!("step 7 at {:.1?}", started.elapsed());
    // 7. A revision that would prune everything is refused (allowEmpty: false).
    repo.commit(&[("clusters/a.yaml", None)], "remove everything");
    let o = op.botctl(&["sync", "fleet"]);
    assert!(!o.status.success());
    let fleet = op.json("gitsource/fleet");
    assert_eq!(
        s(condition(&fleet, "Ready"), "/reason"),
        "EmptyRevisionRefused",
        "{fleet:#}"
    );
    assert!(op.json(&a)["metadata"]["deletionTimestamp"].is_null());

    // Clean up: --cascade deletes what the source applied; the hand-applied one by hand.
    let out = op.ok(&["delete", "gitsource/fleet", "--cascade", "--wait"]);
    assert!(
        out.contains("deleted too") && out.contains("gitsource/fleet deleted"),
        "{out}"
    );
    op.ok(&["wait", &a, "--for", "delete", "--timeout", "180s"]);
    op.ok(&["delete", &h, "--wait"]);
    assert!(support::lxd::containers(&lxd, &a).await.is_empty());
    eprintln!("gitops e2e took {:.1?}", started.elapsed());
}

/// Objects as the store holds them, read through a second operator process that serves the
/// API only (the first was just killed mid-sync; this one must not reconcile).
fn offline(op: &Serve, what: &[&str]) -> Vec<Value> {
    let addr = free_loopback_addr();
    let mut api = Daemon::spawn(
        "botctl serve --no-controller",
        Command::new(env!("CARGO_BIN_EXE_botctl"))
            .args(["serve", "--listen", &addr, "--no-controller"])
            .env("BOTCLUSTER_DATA_DIR", op.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    api.wait_listening(&addr, Duration::from_secs(30), String::new);
    let out = what
        .iter()
        .map(|w| {
            let o = Command::new(env!("CARGO_BIN_EXE_botctl"))
                .args(["get", w, "-o", "json"])
                .env("BOTCLUSTER_DATA_DIR", op.dir.path())
                .env("BOTCLUSTER_SERVER", format!("http://{addr}"))
                .output()
                .unwrap();
            serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
        })
        .collect();
    api.kill();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_repository_is_stalled_with_a_growing_backoff_until_sync_finds_it() {
    if require(git_cli()).is_none() {
        return;
    }
    let op = operator();
    // A repository that does not exist yet (under the operator's temp dir).
    let late = op.dir.path().join("nonexistent/fleet.git");
    let source = format!(
        "apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata: {{name: lost}}\nspec:\n  url: file://{}\n  interval: 1h\n",
        late.display()
    );
    assert!(op.apply_file("doc.yaml", &source, &[]).status.success());
    let first = op.until("gitsource/lost", Duration::from_secs(30), |v| {
        s(condition(v, "Stalled"), "/status") == "True"
    });
    let ready = condition(&first, "Ready");
    assert_eq!(s(ready, "/reason"), "GitOperationFailed", "{first:#}");
    assert!(s(ready, "/message").contains("nonexistent"), "{ready:#}");
    let retry = |v: &Value| {
        v.pointer("/status/backoff/retryAfterSeconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let r1 = retry(&first);
    let later = op.until("gitsource/lost", Duration::from_secs(30), |v| {
        v.pointer("/status/backoff/failures")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 4
    });
    assert!(
        retry(&later) > r1,
        "backoff did not grow: {r1} then {}",
        retry(&later)
    );
    assert!(later.pointer("/status/lastAppliedRevision").is_none());
    // Five failures in a row: the next try is 8 s (±20 %) away. The repository appears;
    // `botctl sync` cuts the backoff short and applies it within 5 s.
    op.until("gitsource/lost", Duration::from_secs(30), |v| {
        v.pointer("/status/backoff/failures")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            >= 5
    });
    std::fs::create_dir_all(late.parent().unwrap()).unwrap();
    git(
        late.parent().unwrap(),
        &["init", "-q", "--bare", late.to_str().unwrap()],
    );
    let work = op.dir.path().join("late-work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "empty"]);
    git(
        &work,
        &["push", "-q", late.to_str().unwrap(), "HEAD:refs/heads/main"],
    );
    let out = op.ok(&["sync", "lost", "--timeout", "5s"]);
    assert!(out.contains("synced: main@sha1:"), "{out}");
    let v = op.json("gitsource/lost");
    assert_eq!(s(condition(&v, "Stalled"), "/status"), "False", "{v:#}");
    assert!(v.pointer("/status/backoff").is_none(), "{v:#}");
    op.ok(&["delete", "gitsource/lost"]);
}
