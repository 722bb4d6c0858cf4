//! `botctl serve` as a child process on a free loopback port with a temporary data dir, and
//! the real `botctl` binary run against it.

use std::future::Future;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::{free_loopback_addr, Daemon};

/// `botctl serve --listen <free port> <args>`, logging to `serve.log` in its data dir; killed
/// when dropped (and when the test's thread dies).
pub struct Serve {
    /// The data dir (`BOTCLUSTER_DATA_DIR`): the store, the token, `serve.log`.
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:<port>` the server listens on (a new port after each spawn).
    pub addr: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    rust_log: String,
    child: Option<Daemon>,
}

impl Serve {
    /// Not running yet ([`Serve::started`], [`Serve::spawn`]); `args` follow `--listen`.
    pub fn new(args: &[&str]) -> Serve {
        Serve {
            dir: tempfile::tempdir().unwrap(),
            addr: String::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            rust_log: "info".into(),
            child: None,
        }
    }

    /// The API only (`--no-controller`, warnings logged), as the CLI tests use it.
    pub fn api_only() -> Serve {
        Serve::new(&["--no-controller"]).rust_log("warn").started()
    }

    /// One more environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Serve {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `RUST_LOG` for the server (`info` unless told).
    pub fn rust_log(mut self, level: &str) -> Serve {
        self.rust_log = level.into();
        self
    }

    pub fn started(mut self) -> Serve {
        self.spawn();
        self
    }

    /// Starts the server on a new free port and waits until it listens.
    pub fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    /// [`Serve::spawn`] with `extra` arguments for this run only (same data dir, log appended).
    pub fn spawn_with(&mut self, extra: &[&str]) {
        self.addr = free_loopback_addr();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_botctl"));
        cmd.args(["serve", "--listen", &self.addr])
            .args(&self.args)
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("BOTCLUSTER_DATA_DIR", self.dir.path())
            .env("RUST_LOG", &self.rust_log)
            .stdout(Stdio::null())
            .stderr(log);
        let mut serve = Daemon::spawn("botctl serve", &mut cmd);
        serve.wait_listening(&self.addr, Duration::from_secs(30), || self.log());
        self.child = Some(serve);
    }

    /// SIGKILL, as a crash would; [`Serve::spawn`] starts it again on the same data dir.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// The running server's process.
    pub fn daemon(&mut self) -> &mut Daemon {
        self.child.as_mut().expect("botctl serve is running")
    }

    /// `botctl <args>` against this server, in the repository's root, not run yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_botctl"));
        cmd.args(args)
            .current_dir(super::repo())
            .env("BOTCLUSTER_DATA_DIR", self.dir.path())
            .env("BOTCLUSTER_SERVER", format!("http://{}", self.addr))
            .env_remove("BOTCLUSTER_TOKEN");
        cmd
    }

    /// Runs `botctl <args>` against this server.
    pub fn botctl(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `botctl <args>`, fails the test unless it succeeds; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.botctl(args);
        assert!(
            o.status.success(),
            "botctl {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `botctl apply -f <yaml written to file_name in the data dir> <extra>`.
    pub fn apply_file(&self, file_name: &str, yaml: &str, extra: &[&str]) -> Output {
        let file = self.dir.path().join(file_name);
        std::fs::write(&file, yaml).unwrap();
        let mut args = vec!["apply", "-f", file.to_str().unwrap()];
        args.extend(extra);
        self.botctl(&args)
    }

    /// `botctl get <what> -o json` (`Null` when it fails).
    pub fn json(&self, what: &str) -> Value {
        let o = self.botctl(&["get", what, "-o", "json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    /// Polls `what` until `done` holds (or fails after `timeout`, showing the last value).
    pub fn until(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.json(what);
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < timeout,
                "{what} did not get there in {timeout:?}: {v:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `f` until it holds (or fails after `timeout`, showing the server's log).
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
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

    /// The last 40 lines the server logged.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The API token the server wrote to its data dir.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `GET <path>` with the token: (status code, JSON body or `Null`).
    pub async fn api(&self, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// The server's `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(format!("http://{}/metrics", self.addr))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The sum of the metric lines that start with `prefix` and contain `filter`.
    pub async fn metric_where(&self, prefix: &str, filter: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
            .sum()
    }

    /// Mutating LXD requests the operator has sent, from its `/metrics`.
    pub async fn lxd_writes(&self) -> u64 {
        let mut total = 0.0;
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            total += self
                .metric_where("botcluster_lxd_requests_total{", &format!("method=\"{m}\""))
                .await;
        }
        total as u64
    }
}
