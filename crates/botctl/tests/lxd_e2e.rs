//! End-to-end against the real LXD daemon: a real `botctl serve` process reconciling real
//! containers built from the test image (`cargo xtask lxd-up` makes both).
//!
//! Without LXD these tests fail under `CI=true` and are skipped (with a message) otherwise.
//! Cluster names carry this process's pid (`e2e-<pid>-...`), and each test deletes what it
//! made; containers left by a killed run (whose pid is gone) are swept at start.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lxd_client::{Client, InstanceSource, InstanceStatePut, InstancesPost};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn image() -> String {
    std::env::var("BOTCLUSTER_TEST_IMAGE").unwrap_or_else(|_| "botcluster-botserver".into())
}

/// The LXD client, or None (skip) when there is no LXD and CI is not set.
async fn lxd() -> Option<Client> {
    let socket = Client::default_socket_path();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing = |why: String| {
        if ci {
            panic!("CI=true and {why}: run `cargo xtask lxd-up` first");
        }
        eprintln!("skipped: {why} (run `cargo xtask lxd-up`)");
        None
    };
    if !socket.exists() {
        return missing(format!("no LXD at {}", socket.display()));
    }
    let client = Client::unix(&socket).expect("client");
    if client.get_image_alias(&image()).await.is_err() {
        return missing(format!("LXD has no image alias {}", image()));
    }
    sweep_leftovers(&client).await;
    Some(client)
}

/// Deletes containers of earlier runs that were killed before cleaning up.
async fn sweep_leftovers(client: &Client) {
    let Ok(all) = client.list_instances(None).await else {
        return;
    };
    for i in all {
        let mut parts = i.name.splitn(3, '-');
        if parts.next() != Some("e2e") {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            force_delete(client, &i.name).await;
        }
    }
}

async fn force_delete(client: &Client, name: &str) {
    let _ = client
        .change_state(name, &InstanceStatePut::stop().force(true))
        .await;
    let _ = client.delete_instance(name).await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A range of 40 host ports nobody listens on right now, below Linux's ephemeral range
/// (32768+), where outgoing connections could take a port between the check and LXD's bind.
fn port_range() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(rand_u32);
    loop {
        // Tests of one run take consecutive slots; each run starts at a random slot.
        let slot = (base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 200;
        let start = 22000 + slot as u16 * 50;
        if (start..start + 40).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return (start, start + 39);
        }
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    t ^ std::process::id().rotate_left(16)
}

/// The tests share one LXD daemon; on a 2-core machine, concurrent container starts with proxy
/// devices can stall LXD 5.0.2's forkproxy start-up for a minute. One test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Operator {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    child: Option<Child>,
    addr: String,
    dir: tempfile::TempDir,
    ports: (u16, u16),
    cluster: String,
    lxd: Client,
}

impl Operator {
    async fn start(test: &str) -> Option<Operator> {
        let serial = SERIAL.lock().await;
        let lxd = lxd().await?;
        let mut op = Operator {
            _serial: serial,
            child: None,
            addr: String::new(),
            dir: tempfile::tempdir().unwrap(),
            ports: port_range(),
            cluster: format!("e2e-{}-{test}", std::process::id()),
            lxd,
        };
        op.spawn();
        Some(op)
    }

    fn spawn(&mut self) {
        self.addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_botctl"))
            .args([
                "serve",
                "--listen",
                &self.addr,
                "--port-range",
                &format!("{}-{}", self.ports.0, self.ports.1),
                "--resync",
                "1s",
            ])
            .env("BOTCLUSTER_DATA_DIR", self.dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "botctl serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    fn botctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_botctl"))
            .args(args)
            .current_dir(repo())
            .env("BOTCLUSTER_DATA_DIR", self.dir.path())
            .env("BOTCLUSTER_SERVER", format!("http://{}", self.addr))
            .output()
            .unwrap()
    }

    fn apply(&self, spec: &str) {
        let file = self.dir.path().join("cluster.yaml");
        std::fs::write(&file, format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {}\nspec:\n  image: {}\n{spec}", self.cluster, image())).unwrap();
        let o = self.botctl(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn wait_ready(&self) {
        let o = self.botctl(&[
            "wait",
            &self.cluster,
            "--for",
            "condition=Ready",
            "--timeout",
            "240s",
        ]);
        assert!(
            o.status.success(),
            "not Ready: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    fn get(&self) -> Value {
        let o = self.botctl(&["get", &self.cluster, "-o", "json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// This cluster's containers in LXD: (name, running, config).
    async fn containers(&self) -> Vec<lxd_client::Instance> {
        let prefix = format!("{}-", self.cluster);
        let mut v: Vec<_> = self
            .lxd
            .list_instances(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.name.starts_with(&prefix))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Mutating LXD requests the operator has sent, from its /metrics.
    async fn lxd_writes(&self) -> u64 {
        let token = std::fs::read_to_string(self.dir.path().join("token")).unwrap();
        let text = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("botcluster_lxd_requests_total{"))
            .filter(|l| {
                [
                    "method=\"POST\"",
                    "method=\"PUT\"",
                    "method=\"PATCH\"",
                    "method=\"DELETE\"",
                ]
                .iter()
                .any(|m| l.contains(m))
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
            .sum::<f64>() as u64
    }

    async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !f().await {
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill_9();
        let prefix = format!("{}-", self.cluster);
        let socket = Client::default_socket_path();
        // Clean up on a fresh runtime: Drop can run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(c) = Client::unix(&socket) else { return };
                if let Ok(all) = c.list_instances(None).await {
                    for i in all.into_iter().filter(|i| i.name.starts_with(&prefix)) {
                        force_delete(&c, &i.name).await;
                    }
                }
            })
        })
        .join();
    }
}

async fn health(url: &str) -> Option<Value> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?
        .get(format!("{url}/api/health"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

fn instance_urls(obj: &Value) -> Vec<String> {
    obj.pointer("/status/instances")
        .and_then(Value::as_array)
        .map(|is| {
            is.iter()
                .filter_map(|i| i.get("url").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_converges_scales_heals_and_goes_away_on_real_lxd() {
    let Some(op) = Operator::start("life").await else {
        return;
    };

    // 3 replicas: 3 containers running, each answering /api/health through its host port.
    op.apply("  replicas: 3\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_ready();
    let obj = op.get();
    let urls = instance_urls(&obj);
    assert_eq!(urls.len(), 3, "{obj}");
    for u in &urls {
        let h = health(u)
            .await
            .unwrap_or_else(|| panic!("{u}/api/health does not answer"));
        assert_eq!(h["status"], "healthy");
        assert!(u.starts_with("http://127.0.0.1:"));
    }
    let c = op.containers().await;
    assert_eq!(c.iter().filter(|i| i.is_running()).count(), 3);
    assert!(c
        .iter()
        .all(|i| i.config.get("limits.memory").map(String::as_str) == Some("128MiB")));

    // Nothing changed: resyncs (every 1 s here) make zero writes to LXD.
    let before = op.lxd_writes().await;
    assert!(before > 0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        op.lxd_writes().await,
        before,
        "an unchanged cluster was written to\n{}",
        op.log()
    );

    // Scale to 5, then back to 2: the highest ordinals go.
    op.apply("  replicas: 5\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_ready();
    assert_eq!(op.containers().await.len(), 5);
    op.apply("  replicas: 2\n  resources:\n    cpu: 1\n    memory: 128MiB\n");
    op.wait_for("2 containers", Duration::from_secs(180), || async {
        op.containers().await.len() == 2
    })
    .await;
    op.wait_ready();
    let names: Vec<String> = op.containers().await.into_iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        vec![format!("{}-0", op.cluster), format!("{}-1", op.cluster)]
    );

    // A limit changes in place.
    op.apply("  replicas: 2\n  resources:\n    cpu: 1\n    memory: 192MiB\n");
    op.wait_for(
        "limits.memory=192MiB in LXD",
        Duration::from_secs(30),
        || async {
            op.containers()
                .await
                .iter()
                .all(|i| i.config.get("limits.memory").map(String::as_str) == Some("192MiB"))
        },
    )
    .await;

    // A container deleted by hand comes back.
    let victim = format!("{}-1", op.cluster);
    force_delete(&op.lxd, &victim).await;
    op.wait_for(
        "the deleted container to come back running",
        Duration::from_secs(180),
        || async {
            op.containers()
                .await
                .iter()
                .any(|i| i.name == victim && i.is_running())
        },
    )
    .await;
    op.wait_ready();
    // A proxy device removed by hand comes back too.
    let (inst, _) = op
        .lxd
        .get_instance(&format!("{}-0", op.cluster))
        .await
        .unwrap();
    let mut put = lxd_client::InstancePut::from(&inst);
    put.devices.remove("botcluster-http");
    op.lxd.put_instance(&inst.name, &put, None).await.unwrap();
    op.wait_for(
        "the proxy device to be restored",
        Duration::from_secs(30),
        || async {
            op.lxd
                .get_instance(&inst.name)
                .await
                .is_ok_and(|(i, _)| i.devices.contains_key("botcluster-http"))
        },
    )
    .await;

    // Delete the cluster: nothing of it remains.
    let o = op.botctl(&["delete", &op.cluster, "--wait", "--timeout", "120s"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        op.log()
    );
    assert!(op.containers().await.is_empty());
    assert_eq!(op.botctl(&["get", &op.cluster]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_container_with_a_colliding_name_is_left_alone_and_reported() {
    let Some(op) = Operator::start("clash").await else {
        return;
    };
    let squatter = format!("{}-1", op.cluster);
    op.lxd
        .create_instance(&InstancesPost {
            name: squatter.clone(),
            source: InstanceSource::image_alias(image()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (before, _) = op.lxd.get_instance(&squatter).await.unwrap();
    op.apply("  replicas: 2\n");
    op.wait_for(
        "a NameConflict condition",
        Duration::from_secs(180),
        || async {
            let o = op.get();
            o.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Degraded"
                            && c["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("NameConflict"))
                    })
                })
                && o.pointer("/status/readyReplicas") == Some(&Value::from(1))
        },
    )
    .await;
    let status = String::from_utf8_lossy(&op.botctl(&["status", &op.cluster]).stdout).to_string();
    assert!(
        status.contains(&squatter) && status.contains("NameConflict"),
        "{status}"
    );
    let (after, _) = op.lxd.get_instance(&squatter).await.unwrap();
    assert_eq!(
        after.config, before.config,
        "the hand-made container was changed"
    );
    assert!(!after
        .config
        .keys()
        .any(|k| k.starts_with("user.botcluster")));
    let o = op.botctl(&["delete", &op.cluster, "--wait", "--timeout", "120s"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        op.log()
    );
    assert!(
        op.lxd.get_instance(&squatter).await.is_ok(),
        "the hand-made container was deleted"
    );
    force_delete(&op.lxd, &squatter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_convergence_then_restart_converges_with_nothing_duplicated() {
    let Some(mut op) = Operator::start("crash").await else {
        return;
    };
    op.apply("  replicas: 4\n  files:\n    - path: /etc/botserver/app.conf\n      content: \"mode=crash-test\\n\"\n");
    op.wait_for(
        "the first container to appear",
        Duration::from_secs(30),
        || async { !op.containers().await.is_empty() },
    )
    .await;
    op.kill_9();
    let seen = op.containers().await.len();
    op.spawn();
    op.wait_ready();
    let c = op.containers().await;
    let names: BTreeSet<String> = c.iter().map(|i| i.name.clone()).collect();
    let want: BTreeSet<String> = (0..4).map(|n| format!("{}-{n}", op.cluster)).collect();
    assert_eq!(names, want, "killed with {seen} containers present");
    let uids: BTreeSet<&str> = c
        .iter()
        .filter_map(|i| i.config.get("user.botcluster.uid").map(String::as_str))
        .collect();
    assert_eq!(uids.len(), 1, "containers from two incarnations");
    let ports: BTreeSet<String> = c
        .iter()
        .filter_map(|i| {
            i.devices
                .get("botcluster-http")
                .and_then(|d| d.get("listen"))
                .cloned()
        })
        .collect();
    assert_eq!(ports.len(), 4, "host ports must be unique");
    for u in instance_urls(&op.get()) {
        let conf = reqwest::get(format!("{u}/sim/files?path=/etc/botserver/app.conf"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            conf, "mode=crash-test\n",
            "files must be pushed even after a crash"
        );
    }
    let o = op.botctl(&["delete", &op.cluster, "--wait", "--timeout", "120s"]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        op.log()
    );
}
