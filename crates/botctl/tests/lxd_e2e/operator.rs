//! The harness of this binary: one test's `botctl serve` and its cluster on the real LXD
//! (one test at a time), deleted when the test ends.

use std::path::PathBuf;
use std::time::Duration;

use lxd_client::Client;
use serde_json::Value;
use test_support::{require, Admin, Caddy, Missing};

use crate::observe::condition;
use crate::support::{self, image, Serve};

/// The LXD client with the test image, or what is missing (see `test_support::require`);
/// containers and profiles of killed runs are swept first.
async fn lxd() -> Result<Client, Missing> {
    let client = support::lxd::connect().await?;
    support::lxd::sweep_dead_runs(&client, "").await;
    support::lxd::sweep_dead_profiles();
    Ok(client)
}

/// The tests share one LXD daemon; concurrent container starts with proxy devices make LXD
/// 5.0.2 stall more often, so one test at a time. Even alone, LXD 5.0.2 here now and then fails
/// a start after 90 s (its start hook times out after 30 s); the operator retries, so the waits
/// below allow for several such failures in a row (three were seen).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's `botctl serve` (40 host ports, resync 1 s) and its cluster `e2e-<pid>-<test>`,
/// whose containers are deleted when dropped.
pub struct Operator {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    serve: Serve,
    pub caddy: Option<Caddy>,
    /// A socket to reach LXD through instead of the default one.
    pub lxd_socket: Option<PathBuf>,
    /// More `botctl serve` arguments.
    pub extra_args: Vec<String>,
    pub cluster: String,
    pub lxd: Client,
}

impl std::ops::Deref for Operator {
    type Target = Serve;
    fn deref(&self) -> &Serve {
        &self.serve
    }
}

impl std::ops::DerefMut for Operator {
    fn deref_mut(&mut self) -> &mut Serve {
        &mut self.serve
    }
}

impl Operator {
    pub async fn start(test: &str) -> Option<Operator> {
        Self::start_with(test, false).await
    }

    /// With its own Caddy (the operator gets `--caddy-admin`).
    pub async fn start_with(test: &str, with_caddy: bool) -> Option<Operator> {
        let serial = SERIAL.lock().await;
        let found = match lxd().await {
            Ok(lxd) if with_caddy => Caddy::start(Admin::Tcp).map(|c| (lxd, Some(c))),
            Ok(lxd) => Ok((lxd, None)),
            Err(missing) => Err(missing),
        };
        let (lxd, caddy) = require(found)?;
        let ports = support::port_range_arg(40);
        let mut op = Operator {
            _serial: serial,
            serve: Serve::new(&["--port-range", &ports, "--resync", "1s"]),
            caddy,
            lxd_socket: None,
            extra_args: Vec::new(),
            cluster: format!("e2e-{}-{test}", std::process::id()),
            lxd,
        };
        op.spawn();
        Some(op)
    }

    /// Starts `botctl serve` (again) with this test's Caddy, LXD socket and extra arguments.
    pub fn spawn(&mut self) {
        let admin = self.caddy.as_ref().map(|c| c.admin_url().to_owned());
        // Without a Caddy of its own, none at all: never the machine's shared one.
        let mut args = vec!["--caddy-admin", admin.as_deref().unwrap_or("none")];
        let socket = self.lxd_socket.as_ref().map(|p| p.display().to_string());
        if let Some(sock) = &socket {
            args.extend(["--lxd", sock.as_str()]);
        }
        args.extend(self.extra_args.iter().map(String::as_str));
        self.serve.spawn_with(&args);
    }

    pub fn apply(&self, spec: &str) {
        self.apply_image(&image(), spec)
    }

    pub fn apply_image(&self, image: &str, spec: &str) {
        let yaml = support::cluster_yaml(&self.cluster, image, spec);
        let o = self.apply_file("cluster.yaml", &yaml, &[]);
        assert!(
            o.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn wait_ready(&self) {
        let o = self.botctl(&[
            "wait",
            &self.cluster,
            "--for",
            "condition=Ready",
            "--timeout",
            "600s",
        ]);
        assert!(
            o.status.success(),
            "not Ready: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    pub fn get(&self) -> Value {
        self.json(&self.cluster)
    }

    /// This cluster's containers in LXD, sorted by name.
    pub async fn containers(&self) -> Vec<lxd_client::Instance> {
        support::lxd::containers(&self.lxd, &self.cluster).await
    }

    pub async fn metric(&self, name: &str) -> f64 {
        self.metric_where(name, "").await
    }

    /// Waits until LXD trouble shows: Degraded (ReconcileError) and at least two failures in
    /// the backoff.
    pub async fn wait_degraded_with_backoff(&self, timeout: Duration) {
        self.wait_for("Degraded with a backoff", timeout, || async {
            let o = self.get();
            condition(&o, "Degraded")
                .is_some_and(|c| c["status"] == "True" && c["reason"] == "ReconcileError")
                && o.pointer("/status/backoff/failures")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    >= 2
        })
        .await;
    }

    /// Waits until LXD is usable again: `n` containers, Ready, Degraded cleared.
    pub async fn wait_recovered(&self, n: usize) {
        self.wait_for(
            "the containers after LXD came back",
            Duration::from_secs(600),
            || async { self.containers().await.len() == n },
        )
        .await;
        self.wait_ready();
        self.wait_for("Degraded cleared", Duration::from_secs(600), || async {
            condition(&self.get(), "Degraded").is_some_and(|c| c["status"] == "False")
        })
        .await;
    }

    /// `botctl delete --wait` of this test's cluster; fails the test if it does not finish.
    pub fn delete_cluster(&self) {
        let o = self.botctl(&["delete", &self.cluster, "--wait", "--timeout", "600s"]);
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    pub fn lb_url(&self) -> String {
        self.get()
            .pointer("/status/proxy/url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn apply_named(&self, name: &str, spec: &str) {
        let yaml = support::cluster_yaml(name, &image(), spec);
        let o = self.apply_file(&format!("{name}.yaml"), &yaml, &[]);
        assert!(
            o.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill_9();
        support::lxd::delete_containers_blocking(&format!("{}-", self.cluster));
    }
}
