//! botctl as a user runs it: a real `botctl serve` process, driven by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use test_support::{free_loopback_addr, Daemon};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    /// `botctl serve`, killed when dropped.
    _serve: Daemon,
    addr: String,
    dir: tempfile::TempDir,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_loopback_addr();
    let mut serve = Daemon::spawn(
        "botctl serve",
        Command::new(env!("CARGO_BIN_EXE_botctl"))
            .args(["serve", "--listen", &addr, "--no-controller"])
            .env("BOTCLUSTER_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    serve.wait_listening(&addr, Duration::from_secs(20), String::new);
    Server {
        _serve: serve,
        addr,
        dir,
    }
}

impl Server {
    fn botctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_botctl"))
            .args(args)
            .current_dir(repo())
            .env("BOTCLUSTER_DATA_DIR", self.dir.path())
            .env("BOTCLUSTER_SERVER", format!("http://{}", self.addr))
            .env_remove("BOTCLUSTER_TOKEN")
            .output()
            .unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn apply_get_diff_delete_round_trip_through_the_cli() {
    let s = start();
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
    let s = start();
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
    let s = start();
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
    let s = start();
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
