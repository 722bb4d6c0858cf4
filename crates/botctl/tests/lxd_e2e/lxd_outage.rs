//! LXD cut off (its socket closed) or frozen (SIGSTOP): the cluster is Degraded with a
//! backoff, running containers keep serving, and it recovers when LXD is back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lxd_client::Client;
use serde_json::Value;
use test_support::{skip, Missing};

use crate::observe::{condition, health, instance_urls};
use crate::operator::Operator;

/// Forwards a unix socket to LXD's, so a test can cut the operator off from LXD (as if the
/// daemon were stopped) without stopping the daemon other tests use.
struct LxdCut {
    path: PathBuf,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl LxdCut {
    fn open(dir: &Path) -> LxdCut {
        let path = dir.join("lxd.sock");
        let c = LxdCut {
            path,
            tasks: Default::default(),
        };
        c.connect();
        c
    }
    fn connect(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = tokio::net::UnixListener::bind(&self.path).unwrap();
        let target = Client::default_socket_path();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::UnixStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }
    /// Closes the socket and every connection through it.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_lxd_makes_the_cluster_degraded_with_backoff_and_it_recovers() {
    let Some(mut op) = Operator::start("cut").await else {
        return;
    };
    // Restart the operator against a socket the test controls.
    op.kill_9();
    let cut = LxdCut::open(op.dir.path());
    op.lxd_socket = Some(cut.path.clone());
    op.spawn();
    op.apply("  replicas: 1\n");
    op.wait_ready();
    cut.cut();
    // Scale while LXD is gone: the operator cannot act, says so, and backs off.
    op.apply("  replicas: 2\n");
    op.wait_degraded_with_backoff(Duration::from_secs(600))
        .await;
    let status = String::from_utf8_lossy(&op.botctl(&["status", &op.cluster]).stdout).to_string();
    assert!(
        status.contains("Backoff:") && status.contains("ReconcileError"),
        "{status}"
    );
    // LXD is back: the operator converges and clears the condition.
    cut.connect();
    op.wait_recovered(2).await;
    op.delete_cluster();
}

/// The pid of the LXD daemon `cargo xtask lxd-up` started (from its pid file), if it runs.
fn lxd_daemon_pid() -> Option<u32> {
    let dir = std::env::var_os("LXD_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/lxd"));
    let pid: u32 = std::fs::read_to_string(dir.join("xtask-lxd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "lxd").then_some(pid)
}

/// Freezes the LXD daemon with SIGSTOP: the real daemon, there but not answering (its socket
/// still accepts connections). SIGCONT when dropped, also when the test fails.
struct LxdFreeze(u32);

impl LxdFreeze {
    fn new(pid: u32) -> LxdFreeze {
        let ok = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not SIGSTOP the LXD daemon (pid {pid})");
        LxdFreeze(pid)
    }
}

impl Drop for LxdFreeze {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_lxd_daemon_makes_the_cluster_degraded_while_containers_keep_serving() {
    let Some(mut op) = Operator::start("freeze").await else {
        return;
    };
    let Some(pid) = lxd_daemon_pid() else {
        skip(Missing::new(
            "LXD was not started by `cargo xtask lxd-up` (no xtask-lxd.pid), so its pid is unknown",
            "start LXD with `cargo xtask lxd-up`",
        ));
        return;
    };
    // A short request timeout, so the test need not wait out the default 20 s.
    op.kill_9();
    op.extra_args = vec!["--lxd-timeout".into(), "2s".into()];
    op.spawn();
    let spec = |n: u32| format!("  replicas: {n}\n  health:\n    interval: 1s\n    timeout: 1s\n");
    op.apply(&spec(1));
    op.wait_ready();
    let url = instance_urls(&op.get()).remove(0);

    let freeze = LxdFreeze::new(pid);
    let frozen_at = Instant::now();
    op.apply(&spec(2));
    op.wait_degraded_with_backoff(Duration::from_secs(120))
        .await;
    eprintln!("Degraded {:?} after LXD froze", frozen_at.elapsed());
    let message = condition(&op.get(), "Degraded").unwrap()["message"].clone();
    assert!(
        message.as_str().is_some_and(|m| m.contains("LXD")),
        "the condition should name LXD: {message}"
    );
    // The container does not need the daemon to serve: its proxy device is its own process.
    let h = health(&url).await;
    assert_eq!(
        h.as_ref().map(|h| h["status"].clone()),
        Some(Value::from("healthy")),
        "{h:?}"
    );

    drop(freeze);
    op.wait_recovered(2).await;
    op.delete_cluster();
}
