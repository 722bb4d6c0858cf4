//! `cargo xtask bench converge`: time from "asked for N containers" to "every one answers
//! /api/health through its proxy port", three ways, on the real LXD:
//!
//! - **floor**: the benchmark itself creates the N containers with their proxy device and
//!   starts them, all in parallel, straight through the LXD API;
//! - **seed**: the chapter's loop, `lxc launch` then `lxc config device add`, one after another;
//! - **botcluster**: `botctl apply` of a BotCluster with N replicas to a running operator.
//!
//! Each cell is the median of `--runs` (default 3). The columns run in turn, and run r starts
//! with column r (mod their count), so each column goes first equally often. Containers are
//! named `bench-<pid>-...` and deleted after each run.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lxd_client::{Client, InstanceSource, InstanceStatePut, InstancesPost};

use crate::project_root;
use crate::util::target_dir;

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

/// How long a column may take to serve: two failed 90 s starts and a good one fit.
const LIMIT: Duration = Duration::from_secs(240);

/// LXD's daemon log (`$LXD_DIR/logs/lxd.log`, else `/var/log/lxd/lxd.log`).
fn lxd_log() -> PathBuf {
    match std::env::var_os("LXD_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("logs/lxd.log"),
        _ => PathBuf::from("/var/log/lxd/lxd.log"),
    }
}

fn log_len() -> u64 {
    std::fs::metadata(lxd_log()).map(|m| m.len()).unwrap_or(0)
}

/// The instances named `<prefix><digits>` that LXD logged `Failed starting container` for
/// since byte `from` of its log, one entry per failure (LXD logs one line per failed start).
fn start_failures(from: u64, prefix: &str) -> Vec<String> {
    let Ok(text) = std::fs::read(lxd_log()) else {
        return Vec::new();
    };
    let from = (from as usize).min(text.len());
    String::from_utf8_lossy(&text[from..])
        .lines()
        .filter(|l| l.contains("msg=\"Failed starting container\""))
        .filter_map(|l| {
            let name = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("instance="))?;
            let rest = name.strip_prefix(prefix)?;
            (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_string())
        })
        .collect()
}

/// Keeps the liblxc log of each failed instance (LXD deletes it with the instance).
fn keep_lxc_logs(names: &[String], run: &str) {
    let base = lxd_log();
    let Some(dir) = base.parent() else { return };
    let out = target_dir().join("bench-logs");
    let _ = std::fs::create_dir_all(&out);
    for n in names {
        let _ = std::fs::copy(
            dir.join(n).join("lxc.log"),
            out.join(format!("{run}-{n}-lxc.log")),
        );
    }
}

/// Force-stops and deletes a column's containers. Like `LxdBackend::delete`, it waits for
/// LXD 5.0.2's stop hooks (`lxd callhook ... stop`, run after the stop operation returns)
/// before deleting: deleting at once makes those hooks fail on a missing instance, which was
/// seen next to every batch of stalled starts that followed.
async fn cleanup(lxd: &Client, prefix: &str) {
    let Ok(all) = lxd.list_instances(None).await else {
        return;
    };
    let names: Vec<String> = all
        .into_iter()
        .map(|i| i.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    for n in &names {
        let _ = lxd
            .change_state(n, &InstanceStatePut::stop().force(true))
            .await;
    }
    if names.is_empty() {
        return;
    }
    tokio::time::sleep(Duration::from_millis(750)).await;
    for _ in 0..40 {
        if !operations_running(lxd, prefix).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for n in &names {
        let _ = lxd.delete_instance(n).await;
    }
}

/// Whether any running LXD operation names an instance starting with `prefix`.
async fn operations_running(lxd: &Client, prefix: &str) -> bool {
    let Ok(v) = lxd
        .request("GET", "/1.0/operations?recursion=1", None)
        .await
    else {
        return false;
    };
    let needle = format!("/1.0/instances/{prefix}");
    v.get("running")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .any(|op| op.to_string().contains(&needle))
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

/// What a floor variant adds to the plain "create and start all N at once".
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// Nothing: the floor.
    Plain,
    /// At most 8 create+start at a time (the operator's `--max-concurrent-creates`).
    Bounded8,
    /// A lifecycle events stream open for the whole run (the operator keeps one).
    Events,
    /// The operator's create request: `type: container`, `profiles: [default]`, its
    /// `user.botcluster.*` keys.
    OperatorConfig,
    /// A file push and a config PATCH between create and start (the operator's create with
    /// `spec.files`).
    Files,
}

impl Variant {
    fn parse(s: &str) -> Option<Variant> {
        Some(match s {
            "floor" => Variant::Plain,
            "floor8" => Variant::Bounded8,
            "floor-events" => Variant::Events,
            "floor-config" => Variant::OperatorConfig,
            "floor-files" => Variant::Files,
            _ => return None,
        })
    }
    fn tag(self) -> &'static str {
        match self {
            Variant::Plain => "f",
            Variant::Bounded8 => "g",
            Variant::Events => "e",
            Variant::OperatorConfig => "c",
            Variant::Files => "p",
        }
    }
}

/// Starts `name`; a failed start is counted and retried once, the way the operator retries,
/// so the run still ends with every container serving.
async fn start_counted(
    lxd: &Client,
    name: &str,
    failed: &std::sync::atomic::AtomicUsize,
) -> Result<()> {
    for attempt in 0..2 {
        match lxd.change_state(name, &InstanceStatePut::start()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!("  start of {name} failed (attempt {}): {e}", attempt + 1);
                if attempt == 1 {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

async fn floor(lxd: &Client, prefix: &str, n: u16, v: Variant) -> Result<Duration> {
    let base = free_block(n);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let bound = tokio::sync::Semaphore::new(if v == Variant::Bounded8 {
        8
    } else {
        n as usize
    });
    let events = if v == Variant::Events {
        use futures_util::StreamExt;
        let mut s = lxd.watch_events(&[lxd_client::EventType::Lifecycle], Default::default());
        Some(tokio::spawn(
            async move { while s.next().await.is_some() {} },
        ))
    } else {
        None
    };
    let started = Instant::now();
    let jobs = (0..n).map(|i| {
        let lxd = lxd.clone();
        let name = format!("{prefix}{i}");
        let (failed, bound) = (&failed, &bound);
        async move {
            let _permit = bound.acquire().await?;
            let mut devices = std::collections::BTreeMap::new();
            devices.insert("http".to_string(), proxy(base + i));
            let mut post = InstancesPost {
                name: name.clone(),
                source: InstanceSource::image_alias(image()),
                devices,
                ..Default::default()
            };
            if matches!(v, Variant::OperatorConfig | Variant::Files) {
                post.instance_type = "container".into();
                post.profiles = Some(vec!["default".into()]);
                for (k, val) in [
                    (
                        "user.botcluster.cluster",
                        prefix.trim_end_matches('-').to_string(),
                    ),
                    (
                        "user.botcluster.uid",
                        "00000000-0000-0000-0000-000000000000".into(),
                    ),
                    ("user.botcluster.ordinal", i.to_string()),
                    ("user.botcluster.template", "0123456789abcdef".into()),
                ] {
                    post.config.insert(k.into(), val);
                }
            }
            lxd.create_instance(&post).await?;
            if v == Variant::Files {
                lxd.push_file(
                    &name,
                    "/etc/botserver/bench.conf",
                    b"bench=1\n".to_vec(),
                    &lxd_client::FilePush::mode(0o644),
                )
                .await?;
                let patch = lxd_client::InstancePatch {
                    config: Some(
                        [("user.botcluster.files".to_string(), "0123".to_string())]
                            .into_iter()
                            .collect(),
                    ),
                    ..Default::default()
                };
                lxd.patch_instance(&name, &patch, None).await?;
            }
            start_counted(&lxd, &name, failed).await
        }
    });
    let ports: Vec<u16> = (0..n).map(|i| base + i).collect();
    // Poll while the starts run: LXD's start operation returns up to a second after the proxy
    // is already serving (it polls forkproxy's log once a second), and botcluster is measured
    // the same way, from the request to the first healthy answer.
    let (results, served) = tokio::join!(
        futures_util::future::join_all(jobs),
        wait_all(&ports, started, LIMIT)
    );
    if let Some(e) = events {
        e.abort();
    }
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
    let served = wait_all(&ports, started, LIMIT).await;
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
    let target = target_dir();
    let dir = target.join(format!("bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let botctl = target.join("release/botctl");
    let child = Command::new(&botctl)
        .args(["serve", "--listen", &addr, "--caddy-admin", "none"])
        // `BENCH_MAX_CREATES=N`: the operator's create bound, to measure what it costs.
        .args(
            std::env::var("BENCH_MAX_CREATES")
                .ok()
                .map(|n| vec!["--max-concurrent-creates".to_string(), n])
                .unwrap_or_default(),
        )
        .env("BOTCLUSTER_DATA_DIR", &dir)
        // `BENCH_RUST_LOG=botcluster_controller=debug` to see a pass's timeline in the log.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            target.join(format!("bench-operator-{}.log", std::process::id())),
        )?)
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
    let took = wait_all(&ports, started, LIMIT).await;
    let deleting = Instant::now();
    op.botctl(&["delete", name, "--wait", "--timeout", "300s"])?;
    // Not a column (the floor's cleanup is the bench's own), but worth seeing.
    println!(
        "  {name}: botctl delete --wait took {:.2} s",
        deleting.elapsed().as_secs_f64()
    );
    cleanup(lxd, &format!("{name}-")).await;
    took
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

/// One column of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Column {
    Floor(Variant),
    Seed,
    Botcluster,
}

impl Column {
    fn parse(s: &str) -> Result<Column> {
        Ok(match s {
            "seed" => Column::Seed,
            "botcluster" => Column::Botcluster,
            other => Column::Floor(Variant::parse(other).with_context(|| {
                format!("unknown column {other} (floor, floor8, floor-events, floor-config, floor-files, seed, botcluster)")
            })?),
        })
    }
    fn title(self) -> &'static str {
        match self {
            Column::Floor(Variant::Plain) => "floor: parallel LXD API",
            Column::Floor(Variant::Bounded8) => "floor, 8 at a time",
            Column::Floor(Variant::Events) => "floor + events stream",
            Column::Floor(Variant::OperatorConfig) => "floor + operator's create body",
            Column::Floor(Variant::Files) => "floor + file push + PATCH",
            Column::Seed => "seed: sequential lxc loop",
            Column::Botcluster => "botcluster apply",
        }
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    if args.first() == Some(&"react") {
        return crate::bench_react::run(&args[1..]);
    }
    if args.first() == Some(&"api") {
        return crate::bench_api::run(&args[1..]);
    }
    let usage = "usage: cargo xtask bench converge [--runs N] [--sizes 1,5,10] [--columns floor,seed,botcluster,floor8,floor-events,floor-config,floor-files]";
    if args.first() != Some(&"converge") {
        bail!("{usage}");
    }
    let mut runs = 3usize;
    let mut sizes: Vec<u16> = vec![1, 5, 10];
    let mut columns = vec![
        Column::Floor(Variant::Plain),
        Column::Seed,
        Column::Botcluster,
    ];
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
            "--columns" => {
                columns = it
                    .next()
                    .context(usage)?
                    .split(',')
                    .map(Column::parse)
                    .collect::<Result<_>>()?
            }
            other => bail!("unknown option {other}; {usage}"),
        }
    }
    crate::lxd::up(&[])?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let lxd = Client::from_env()?;
        let op = if columns.contains(&Column::Botcluster) {
            Some(start_operator()?)
        } else {
            None
        };
        let pid = std::process::id();
        let mut rows = Vec::new();
        for &n in &sizes {
            // Per column: the times of the runs that served, and the start failures.
            let mut cells: Vec<(Vec<Duration>, usize, usize)> = vec![(Vec::new(), 0, 0); columns.len()];
            for r in 0..runs {
                let mut line = format!("N={n} run {}:", r + 1);
                // Run r starts at column r (mod the count): going second, right after another
                // column's cleanup, costs a column about 0.1 s at N = 10, so a fixed order
                // favours the first column; rotating cancels that within one command.
                let order = (0..columns.len()).map(|i| (i + r) % columns.len());
                for c in order {
                    let col = &columns[c];
                    let from = log_len();
                    let (prefix, took) = match *col {
                        Column::Floor(v) => {
                            let prefix = format!("bench-{pid}-{}{n}r{r}-", v.tag());
                            let took = floor(&lxd, &prefix, n, v).await;
                            (prefix, took)
                        }
                        Column::Seed => {
                            let prefix = format!("bench-{pid}-s{n}r{r}-");
                            let took = seed(&prefix, n).await;
                            (prefix, took)
                        }
                        Column::Botcluster => {
                            let name = format!("bench-{pid}-b{n}r{r}");
                            let op = op.as_ref().context("no operator")?;
                            let took = botcluster(op, &lxd, &name, n).await;
                            (format!("{name}-"), took)
                        }
                    };
                    let failed = start_failures(from, &prefix);
                    keep_lxc_logs(&failed, &format!("{pid}"));
                    cleanup(&lxd, &prefix).await;
                    let cell = &mut cells[c];
                    cell.1 += failed.len();
                    match took {
                        Ok(t) => {
                            cell.0.push(t);
                            line += &format!(" {} {:.2} s ({} failed starts);", col.title(), t.as_secs_f64(), failed.len());
                        }
                        Err(e) => {
                            cell.2 += 1;
                            line += &format!(" {} did not serve ({e:#}; {} failed starts);", col.title(), failed.len());
                        }
                    }
                }
                println!("{line}");
            }
            rows.push((n, cells));
        }
        // The table: per column the median time of the runs that served, and the start
        // failures LXD logged for that column's containers over all runs.
        let mut head = String::from("| N |");
        let mut rule = String::from("|---|");
        for col in &columns {
            head += &format!(" {} (s) | start failures |", col.title());
            rule += "---|---|";
        }
        if columns.contains(&Column::Botcluster) && columns.contains(&Column::Floor(Variant::Plain)) {
            head += " botcluster / floor |";
            rule += "---|";
        }
        println!("\n{runs} runs per size; a time is the median of the runs that served, failures are summed over the runs.\n");
        println!("{head}\n{rule}");
        for (n, cells) in rows {
            let mut line = format!("| {n} |");
            let mut med = Vec::new();
            for (times, failed, unserved) in cells {
                let m = median(times);
                med.push(m);
                let t = m.map(|d| format!("{:.2}", d.as_secs_f64())).unwrap_or_else(|| "—".into());
                let unserved = if unserved > 0 { format!(" ({unserved} runs never served)") } else { String::new() };
                line += &format!(" {t} | {failed}{unserved} |");
            }
            let at = |c: Column| columns.iter().position(|x| *x == c).and_then(|i| med[i]);
            if let (Some(b), Some(f)) = (at(Column::Botcluster), at(Column::Floor(Variant::Plain))) {
                line += &format!(" {:.2}× |", b.as_secs_f64() / f.as_secs_f64());
            } else if columns.contains(&Column::Botcluster) && columns.contains(&Column::Floor(Variant::Plain)) {
                line += " — |";
            }
            println!("{line}");
        }
        if let Some(op) = &op {
            let _ = std::fs::remove_dir_all(&op.dir);
        }
        Ok::<(), anyhow::Error>(())
    })
}
