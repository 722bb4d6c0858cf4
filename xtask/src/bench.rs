//! `cargo xtask bench converge`: time from "asked for N containers" to "every one answers
//! /api/health through its proxy port", three ways, on the real LXD:
//!
//! - **floor**: the benchmark itself creates the N containers with their proxy device and
//!   starts them, all in parallel, straight through the LXD API;
//! - **seed**: the chapter's loop, `lxc launch` then `lxc config device add`, one after another;
//! - **botcluster**: `botctl apply` of a BotCluster with N replicas to a running operator.
//!
//! Each cell is the median of `--runs` (default 3). Containers are named `bench-<pid>-...`
//! and deleted after each run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lxd_client::{Client, InstanceSource, InstanceStatePut, InstancesPost};

use crate::project_root;

const IMAGE: &str = "botcluster-botserver";

fn image() -> String {
    std::env::var("BOTCLUSTER_TEST_IMAGE").unwrap_or_else(|_| IMAGE.into())
}

fn proxy(port: u16) -> std::collections::BTreeMap<String, String> {
    [
        ("type", "proxy".to_string()),
        ("listen", format!("tcp:127.0.0.1:{port}")),
        ("connect", "tcp:127.0.0.1:8080".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn healthy(http: &reqwest::Client, port: u16) -> bool {
    match http
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// Waits until every port answers; returns when the last one did.
async fn wait_all(ports: &[u16], started: Instant, limit: Duration) -> Result<Duration> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .no_proxy()
        .build()?;
    let mut pending: Vec<u16> = ports.to_vec();
    while !pending.is_empty() {
        if started.elapsed() > limit {
            bail!("ports {pending:?} never answered /api/health within {limit:?}");
        }
        let mut still = Vec::new();
        for p in pending {
            if !healthy(&http, p).await {
                still.push(p);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(started.elapsed())
}

async fn cleanup(lxd: &Client, prefix: &str) {
    if let Ok(all) = lxd.list_instances(None).await {
        for i in all.into_iter().filter(|i| i.name.starts_with(prefix)) {
            let _ = lxd
                .change_state(&i.name, &InstanceStatePut::stop().force(true))
                .await;
            let _ = lxd.delete_instance(&i.name).await;
        }
    }
}

fn free_block(n: u16) -> u16 {
    let mut start = 24000;
    loop {
        if (start..start + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return start;
        }
        start += 100;
    }
}

async fn floor(lxd: &Client, prefix: &str, n: u16) -> Result<Duration> {
    let base = free_block(n);
    let started = Instant::now();
    let jobs = (0..n).map(|i| {
        let lxd = lxd.clone();
        let name = format!("{prefix}{i}");
        async move {
            let mut devices = std::collections::BTreeMap::new();
            devices.insert("http".to_string(), proxy(base + i));
            lxd.create_instance(&InstancesPost {
                name: name.clone(),
                source: InstanceSource::image_alias(image()),
                devices,
                ..Default::default()
            })
            .await?;
            lxd.change_state(&name, &InstanceStatePut::start()).await
        }
    });
    let ports: Vec<u16> = (0..n).map(|i| base + i).collect();
    // Poll while the starts run: LXD's start operation returns up to a second after the proxy
    // is already serving (it polls forkproxy's log once a second), and botcluster is measured
    // the same way, from the request to the first healthy answer.
    let (results, served) = tokio::join!(
        futures_util::future::join_all(jobs),
        wait_all(&ports, started, Duration::from_secs(120))
    );
    for r in results {
        r.context("creating a container")?;
    }
    served
}

fn lxc(args: &[&str]) -> Result<()> {
    let out = Command::new("lxc")
        .args(args)
        .output()
        .context("running lxc")?;
    if !out.status.success() {
        bail!(
            "lxc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn seed(prefix: &str, n: u16) -> Result<Duration> {
    let base = free_block(n);
    let ports: Vec<u16> = (0..n).map(|i| base + i).collect();
    let started = Instant::now();
    let prefix = prefix.to_string();
    // The loop runs on a thread (it shells out to lxc); health is polled meanwhile.
    let script = tokio::task::spawn_blocking(move || seed_loop(&prefix, base, n));
    let served = wait_all(&ports, started, Duration::from_secs(180)).await;
    script.await.context("the seed loop panicked")??;
    served
}

fn seed_loop(prefix: &str, base: u16, n: u16) -> Result<()> {
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let port = base + i;
        // The chapter's loop: lxc launch, then lxc config device add ... proxy.
        lxc(&["launch", &image(), &name])?;
        lxc(&[
            "config",
            "device",
            "add",
            &name,
            &format!("port-{port}"),
            "proxy",
            &format!("listen=tcp:127.0.0.1:{port}"),
            "connect=tcp:127.0.0.1:8080",
        ])?;
    }
    Ok(())
}

struct Operator {
    child: Child,
    addr: String,
    dir: PathBuf,
    botctl: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    fn botctl(&self, args: &[&str]) -> Result<()> {
        let out = Command::new(&self.botctl)
            .args(args)
            .env("BOTCLUSTER_DATA_DIR", &self.dir)
            .env("BOTCLUSTER_SERVER", format!("http://{}", self.addr))
            .output()
            .context("running botctl")?;
        if !out.status.success() {
            bail!(
                "botctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

fn start_operator() -> Result<Operator> {
    let root = project_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "botctl"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building botctl failed");
    }
    let dir = root.join(format!("target/bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let botctl = root.join("target/release/botctl");
    let child = Command::new(&botctl)
        .args(["serve", "--listen", &addr, "--caddy-admin", "none"])
        .env("BOTCLUSTER_DATA_DIR", &dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("botctl serve did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Operator {
        child,
        addr,
        dir,
        botctl,
    })
}

async fn botcluster(op: &Operator, lxd: &Client, name: &str, n: u16) -> Result<Duration> {
    let base = free_block(n);
    let file = op.dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: {}\n  replicas: {n}\n  hostPorts: {{start: {base}, end: {}}}\n",
            image(),
            base + n
        ),
    )?;
    let started = Instant::now();
    op.botctl(&["apply", "-f", file.to_str().unwrap_or_default()])?;
    let ports: Vec<u16> = (0..n).map(|i| base + i).collect();
    let took = wait_all(&ports, started, Duration::from_secs(120)).await;
    op.botctl(&["delete", name, "--wait", "--timeout", "120s"])?;
    cleanup(lxd, &format!("{name}-")).await;
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(args: &[&str]) -> Result<()> {
    if args.first() == Some(&"react") {
        return crate::bench_react::run(&args[1..]);
    }
    if args.first() != Some(&"converge") {
        bail!("usage: cargo xtask bench converge [--runs N] [--sizes 1,5,10]");
    }
    let mut runs = 3usize;
    let mut sizes: Vec<u16> = vec![1, 5, 10];
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match *a {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).context("--runs N")?,
            "--sizes" => {
                sizes = it
                    .next()
                    .context("--sizes 1,5,10")?
                    .split(',')
                    .map(|s| s.parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?
            }
            other => bail!("unknown option {other}"),
        }
    }
    crate::lxd::up(&[])?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let lxd = Client::from_env()?;
        let op = start_operator()?;
        let pid = std::process::id();
        println!("| N | floor: parallel LXD API (s) | seed: sequential lxc loop (s) | botcluster apply (s) | botcluster / floor |");
        println!("|---|---|---|---|---|");
        for &n in &sizes {
            let (mut f, mut s, mut b) = (Vec::new(), Vec::new(), Vec::new());
            for r in 0..runs {
                let prefix = format!("bench-{pid}-f{n}r{r}-");
                f.push(floor(&lxd, &prefix, n).await?);
                cleanup(&lxd, &prefix).await;
                let prefix = format!("bench-{pid}-s{n}r{r}-");
                s.push(seed(&prefix, n).await?);
                cleanup(&lxd, &prefix).await;
                b.push(botcluster(&op, &lxd, &format!("bench-{pid}-b{n}r{r}"), n).await?);
            }
            let (f, s, b) = (median(f), median(s), median(b));
            println!(
                "| {n} | {:.2} | {:.2} | {:.2} | {:.2}× |",
                f.as_secs_f64(),
                s.as_secs_f64(),
                b.as_secs_f64(),
                b.as_secs_f64() / f.as_secs_f64()
            );
        }
        let _ = std::fs::remove_dir_all(&op.dir);
        Ok::<(), anyhow::Error>(())
    })
}
