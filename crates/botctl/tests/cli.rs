//! botctl as a user runs it: a real `botctl serve` process, driven by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod support;

use support::{repo, Serve};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn apply_get_diff_delete_round_trip_through_the_cli() {
    let s = Serve::api_only();
    let o = s.botctl(&["apply", "-f", "examples/"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("botcluster/minimal created"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("botcluster/botserver created"));
    let o = s.botctl(&["apply", "-f", "examples/minimal.yaml"]);
    assert_eq!(out(&o).trim(), "botcluster/minimal unchanged");

    let o = s.botctl(&["get"]);
    assert!(out(&o).starts_with("NAME"), "{}", out(&o));
    assert!(out(&o).contains("minimal"));
    let o = s.botctl(&["get", "minimal", "-o", "yaml"]);
    let yaml = out(&o);
    let docs =
        botcluster_api::parse_documents(&yaml).expect("get -o yaml gives a valid BotCluster");
    assert_eq!(docs[0].spec.replicas, 2);

    // diff: 0 when equal, 1 when different, >1 on error.
    assert_eq!(
        s.botctl(&["diff", "-f", "examples/minimal.yaml"])
            .status
            .code(),
        Some(0)
    );
    let changed = s.dir.path().join("m4.yaml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(repo().join("examples/minimal.yaml"))
            .unwrap()
            .replace("replicas: 2", "replicas: 4"),
    )
    .unwrap();
    let o = s.botctl(&["diff", "-f", changed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        out(&o).contains("-  replicas: 2") && out(&o).contains("+  replicas: 4"),
        "{}",
        out(&o)
    );
    let o = s.botctl(&["diff", "-f", "crates/api/tests/invalid/min-above-max.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));

    let o = s.botctl(&["status", "minimal"]);
    assert!(out(&o).contains("Name:        minimal"), "{}", out(&o));

    let o = s.botctl(&["delete", "minimal"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = s.botctl(&["get", "minimal"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not found"), "{}", err(&o));
}

#[test]
fn invalid_files_are_rejected_with_file_and_field_and_the_rest_still_apply() {
    let s = Serve::api_only();
    let mixed = s.dir.path().join("mixed.yaml");
    let good = std::fs::read_to_string(repo().join("examples/minimal.yaml")).unwrap();
    let bad = std::fs::read_to_string(repo().join("crates/api/tests/invalid/min-above-max.yaml"))
        .unwrap();
    std::fs::write(&mixed, format!("{bad}\n---\n{good}")).unwrap();
    let o = s.botctl(&["apply", "-f", mixed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("(document 1)"), "{}", err(&o));
    assert!(
        err(&o).contains("spec.autoscaling.minInstances: 12 is greater than maxInstances (10)"),
        "{}",
        err(&o)
    );
    assert!(out(&o).contains("botcluster/minimal created"));
    let o = s.botctl(&["get", "bad"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the invalid object must not be stored"
    );
}

#[test]
fn wait_times_out_with_a_clear_message_while_nothing_reconciles() {
    let s = Serve::api_only();
    s.botctl(&["apply", "-f", "examples/minimal.yaml"]);
    let o = s.botctl(&[
        "wait",
        "minimal",
        "--for",
        "condition=Ready",
        "--timeout",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("timed out"), "{}", err(&o));
    let o = s.botctl(&["wait", "minimal", "--for", "ready"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("condition=TYPE"), "{}", err(&o));
}

#[test]
fn a_wrong_token_is_refused() {
    let s = Serve::api_only();
    let o = Command::new(env!("CARGO_BIN_EXE_botctl"))
        .args([
            "get",
            "--token",
            "wrong",
            "--server",
            &format!("http://{}", s.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("token is wrong"), "{}", err(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn import_turns_the_seed_config_csv_into_a_valid_botcluster() {
    let o = Command::new(env!("CARGO_BIN_EXE_botctl"))
        .args(["import", "examples/config.csv", "--name", "support"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    botcluster_api::parse_documents(&out(&o)).expect("valid YAML BotCluster");
    assert!(err(&o).contains("majority"), "{}", err(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_botctl"))
        .args(["--help"])
        .output()
        .unwrap();
    assert!(out(&o).contains("botctl apply -f examples/minimal.yaml"));
}

/// A `botctl` child whose standard output is read line by line, with the time each came.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(std::time::Instant, String)>,
}

impl Follower {
    fn start(s: &Serve, args: &[&str]) -> Follower {
        let mut cmd = s.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = test_support::dies_with_this_test(&mut cmd).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout).lines() {
                let Ok(l) = l else { return };
                if tx.send((std::time::Instant::now(), l)).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }
    /// The first line containing `text` within `wait`, and when it came.
    fn line_with(&self, text: &str, wait: Duration) -> Option<(std::time::Instant, String)> {
        let end = std::time::Instant::now() + wait;
        loop {
            let left = end.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((t, l)) if l.contains(text) => return Some((t, l)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn minimal_with(dir: &Path, name: &str, replicas: u32, labels: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{replicas}.yaml"));
    std::fs::write(
        &path,
        format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  image: botcluster-botserver\n  replicas: {replicas}\n"),
    )
    .unwrap();
    path
}

#[test]
fn get_watch_shows_a_change_within_a_second() {
    let s = Serve::api_only();
    let f1 = minimal_with(s.dir.path(), "watched", 1, "team: bots");
    assert!(s
        .botctl(&["apply", "-f", f1.to_str().unwrap()])
        .status
        .success());
    let w = Follower::start(&s, &["get", "-w"]);
    let (_, first) = w
        .line_with("watched", Duration::from_secs(10))
        .expect("get -w lists what exists first");
    assert!(first.contains("Pending"), "{first}");
    // Give the watch a moment to be open, then change the cluster.
    std::thread::sleep(Duration::from_millis(300));
    let f3 = minimal_with(s.dir.path(), "watched", 3, "team: bots");
    let written = std::time::Instant::now();
    let o = s.botctl(&["apply", "-f", f3.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let acked = std::time::Instant::now();
    let (seen, row) = w
        .line_with("watched", Duration::from_secs(5))
        .expect("the change shows up");
    assert!(
        row.split_whitespace().nth(2) == Some("3"),
        "DESIRED is 3: {row}"
    );
    assert!(
        seen.duration_since(acked) < Duration::from_secs(1),
        "shown {:?} after the write was acknowledged ({:?} after it started)",
        seen.duration_since(acked),
        seen.duration_since(written)
    );
    let o = s.botctl(&["delete", "watched"]);
    assert!(o.status.success());
    let (_, row) = w
        .line_with("watched", Duration::from_secs(5))
        .expect("the deletion shows up");
    assert!(row.contains("Deleted"), "{row}");
}

/// `--output-watch-events` (kubectl's flag): with -o json each change is one line
/// `{type, object}`, so a script can tell a deletion from an update.
#[test]
fn output_watch_events_prints_each_change_with_its_type_one_json_line_each() {
    let s = Serve::api_only();
    let f1 = minimal_with(s.dir.path(), "typed", 1, "team: bots");
    assert!(s
        .botctl(&["apply", "-f", f1.to_str().unwrap()])
        .status
        .success());
    let w = Follower::start(&s, &["get", "-w", "-o", "json", "--output-watch-events"]);
    let parse =
        |l: &str| serde_json::from_str::<serde_json::Value>(l).expect("one JSON event per line");
    let (_, added) = w
        .line_with("typed", Duration::from_secs(10))
        .expect("the listed object");
    let added = parse(&added);
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "typed");
    std::thread::sleep(Duration::from_millis(300));
    let f2 = minimal_with(s.dir.path(), "typed", 2, "team: bots");
    assert!(s
        .botctl(&["apply", "-f", f2.to_str().unwrap()])
        .status
        .success());
    let (_, modified) = w
        .line_with("typed", Duration::from_secs(5))
        .expect("the change");
    let modified = parse(&modified);
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["spec"]["replicas"], 2);
    assert!(s.botctl(&["delete", "typed"]).status.success());
    let (_, deleted) = w
        .line_with("typed", Duration::from_secs(5))
        .expect("the deletion");
    assert_eq!(parse(&deleted)["type"], "DELETED");
    // Without -o json|yaml the flag is refused, saying what to use.
    let o = s.botctl(&["get", "-w", "--output-watch-events"]);
    assert!(!o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("-o json"), "{}", err(&o));
}

#[test]
fn get_selects_by_label_and_wait_follows_the_watch() {
    let s = Serve::api_only();
    for (name, labels) in [
        ("a-bots", "team: bots"),
        ("b-web", "team: web"),
        ("c-none", ""),
    ] {
        let f = minimal_with(s.dir.path(), name, 1, labels);
        assert!(s
            .botctl(&["apply", "-f", f.to_str().unwrap()])
            .status
            .success());
    }
    let names = |o: &Output| -> Vec<String> {
        out(o)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    assert_eq!(
        names(&s.botctl(&["get", "-l", "team=bots"])),
        vec!["a-bots"]
    );
    assert_eq!(
        names(&s.botctl(&["get", "-l", "team!=bots"])),
        vec!["b-web", "c-none"]
    );
    assert_eq!(
        names(&s.botctl(&["get", "-l", "team in (bots,web)"])),
        vec!["a-bots", "b-web"]
    );
    assert_eq!(names(&s.botctl(&["get", "-l", "!team"])), vec!["c-none"]);
    let o = s.botctl(&["get", "-l", "team in bots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("labelSelector"), "{}", err(&o));
    // `wait --for delete` returns as soon as the watch says it is gone.
    let mut waiter = s.command(&["wait", "a-bots", "--for", "delete", "--timeout", "20s"]);
    waiter.stdout(Stdio::piped()).stderr(Stdio::piped());
    let waiter = test_support::dies_with_this_test(&mut waiter)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let deleted = std::time::Instant::now();
    assert!(s.botctl(&["delete", "a-bots"]).status.success());
    let o = waiter.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("botcluster/a-bots deleted"), "{}", out(&o));
    assert!(
        deleted.elapsed() < Duration::from_secs(2),
        "{:?}",
        deleted.elapsed()
    );
}

#[test]
fn status_watch_prints_the_page_again_on_each_change() {
    let s = Serve::api_only();
    let f1 = minimal_with(s.dir.path(), "paged", 1, "");
    assert!(s
        .botctl(&["apply", "-f", f1.to_str().unwrap()])
        .status
        .success());
    let w = Follower::start(&s, &["status", "paged", "-w"]);
    w.line_with("Generation:  1", Duration::from_secs(10))
        .expect("the first page");
    std::thread::sleep(Duration::from_millis(300));
    let f2 = minimal_with(s.dir.path(), "paged", 2, "");
    assert!(s
        .botctl(&["apply", "-f", f2.to_str().unwrap()])
        .status
        .success());
    w.line_with("Generation:  2", Duration::from_secs(2))
        .expect("the page again after the change");
}

#[test]
fn serve_stops_promptly_on_sigterm_while_a_watch_is_open() {
    let mut s = Serve::api_only();
    let f = minimal_with(s.dir.path(), "held", 1, "");
    assert!(s
        .botctl(&["apply", "-f", f.to_str().unwrap()])
        .status
        .success());
    let w = Follower::start(&s, &["get", "-w"]);
    w.line_with("held", Duration::from_secs(10))
        .expect("the watch is open");
    let term = Command::new("kill")
        .args(["-TERM", &s.daemon().id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let t = std::time::Instant::now();
    while s.daemon().exited().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "botctl serve still runs 5 s after SIGTERM: the open watch holds the graceful shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gitsource_with(dir: &Path, name: &str, branch: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{branch}.yaml"));
    std::fs::write(
        &path,
        format!("apiVersion: botcluster.io/v1alpha1\nkind: GitSource\nmetadata:\n  name: {name}\nspec:\n  url: https://git.example.com/ops/bots.git\n  ref: {{ branch: {branch} }}\n  path: clusters\n  interval: 5m\n"),
    )
    .unwrap();
    path
}

#[test]
fn get_and_status_watch_follow_a_gitsource_as_it_is_created_changed_and_deleted() {
    let s = Serve::api_only();
    // Started before the source exists: `get gitsources -w` shows it when it is created.
    let rows = Follower::start(&s, &["get", "gitsources", "-w"]);
    std::thread::sleep(Duration::from_millis(500));
    let main = gitsource_with(s.dir.path(), "fleet", "main");
    let o = s.botctl(&["apply", "-f", main.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let (_, row) = rows
        .line_with("fleet", Duration::from_secs(5))
        .expect("get gitsources -w prints a row when the GitSource is created");
    assert!(
        row.contains("branch main") && row.contains("Pending"),
        "{row}"
    );

    let page = Follower::start(&s, &["status", "gitsource/fleet", "-w"]);
    page.line_with("branch main, path clusters", Duration::from_secs(10))
        .expect("status gitsource/NAME -w prints the page first");
    std::thread::sleep(Duration::from_millis(300));
    let next = gitsource_with(s.dir.path(), "fleet", "next");
    let o = s.botctl(&["apply", "-f", next.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let (_, row) = rows
        .line_with("fleet", Duration::from_secs(5))
        .expect("get gitsources -w prints a row when the GitSource changes");
    assert!(row.contains("branch next"), "{row}");
    page.line_with("branch next, path clusters", Duration::from_secs(5))
        .expect("status gitsource/NAME -w prints the page again on the change");

    // A GitSource's conditions are waited on like a BotCluster's, under its own name.
    let o = s.botctl(&[
        "wait",
        "gitsource/fleet",
        "--for",
        "condition=Ready",
        "--timeout",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("waiting for gitsource/fleet: Ready not reported yet"),
        "{}",
        err(&o)
    );
    let o = s.botctl(&["wait", "fleet", "--for", "condition=Ready"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("write gitsource/fleet"), "{}", err(&o));

    let o = s.botctl(&["delete", "gitsource/fleet", "--wait", "--timeout", "10s"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("gitsource/fleet deleted"), "{}", out(&o));
    // (The server records the delete policy on the object first: a row for that, then this.)
    let (_, row) = rows
        .line_with("Deleted", Duration::from_secs(5))
        .expect("get gitsources -w prints the deletion");
    assert!(row.starts_with("fleet "), "{row}");
    page.line_with("gitsource/fleet deleted", Duration::from_secs(5))
        .expect("status -w says the source is gone");
}
