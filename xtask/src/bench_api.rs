//! `cargo xtask bench api`: how fast the HTTP API answers reads, and how soon a watcher hears
//! of a write, against a release `botctl serve --no-controller`.
//!
//! For each size (default 1, 100 and 1,000 clusters made from `examples/full.yaml`) a fresh
//! server is started on a private data directory, the clusters are stored through the API,
//! and Debian's `wrk` (installed when missing) measures requests per second and p50/p99 for
//! `/healthz`, one object, its status, the full list and a page of 50, one after another in
//! the same run; each read's ratio to `/healthz` is the figure to compare across machines.
//! Then 200 writes (a label changed per write) are timed from the PUT being sent to a watcher
//! (`?watch=true&fieldSelector=metadata.name=...`) receiving the event, and the server's
//! resident memory is read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::project_root;
use crate::util::{apt_install, is_debian, say, target_dir, which};

const CHORE: &str = "bench api";
const WRITES: usize = 200;

/// One row of wrk's answer.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Server {
    child: Child,
    base: String,
    token: String,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ensure_wrk() -> Result<PathBuf> {
    if let Some(p) = which("wrk") {
        return Ok(p);
    }
    if !is_debian() {
        bail!("wrk is not installed and this is not Debian; install wrk (https://github.com/wg/wrk) and run again");
    }
    say(CHORE, "installing wrk (apt-get)");
    apt_install(CHORE, "wrk", &["wrk"])?;
    which("wrk").context("apt-get installed wrk but it is not on PATH")
}

fn build_botctl() -> Result<PathBuf> {
    say(CHORE, "building botctl (release)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "botctl"])
        .current_dir(project_root())
        .status()?;
    if !status.success() {
        bail!("cargo build --release -p botctl failed");
    }
    Ok(target_dir().join("release/botctl"))
}

fn free_addr() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

fn start_server(botctl: &Path) -> Result<Server> {
    let dir = std::env::temp_dir().join(format!(
        "botcluster-bench-api-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir)?;
    let dir = TempDir(dir);
    let addr = free_addr()?;
    let child = Command::new(botctl)
        .args(["serve", "--no-controller", "--listen", &addr])
        .env("BOTCLUSTER_DATA_DIR", &dir.0)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting botctl serve")?;
    let started = Instant::now();
    let token_file = dir.0.join("token");
    loop {
        if std::net::TcpStream::connect(&addr).is_ok() && token_file.exists() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("botctl serve did not listen on {addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = std::fs::read_to_string(&token_file)?.trim().to_string();
    Ok(Server {
        child,
        base: format!("http://{addr}"),
        token,
        _dir: dir,
    })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn name(i: usize) -> String {
    format!("bench-{i:04}")
}

fn template() -> Result<Value> {
    let path = project_root().join("examples/full.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut docs = botcluster_api::yaml::parse_values(&text, Default::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    docs.pop().context("examples/full.yaml is empty")
}

async fn store(http: &reqwest::Client, s: &Server, n: usize, doc: &Value) -> Result<()> {
    for i in 0..n {
        let mut d = doc.clone();
        d["metadata"]["name"] = json!(name(i));
        let r = http
            .put(format!("{}/api/v1/botclusters/{}", s.base, name(i)))
            .bearer_auth(&s.token)
            .json(&d)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("storing {}: {} {}", name(i), r.status(), r.text().await?);
        }
    }
    Ok(())
}

/// `12.5us`, `3.1ms`, `1.2s` → milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => x / 1000.0,
        "ms" => x,
        "s" => x * 1000.0,
        "m" => x * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Result<Load> {
    let mut l = Load::default();
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["Requests/sec:", v] => l.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => l.p50_ms = wrk_ms(v).unwrap_or(f64::NAN),
            ["99%", v] => l.p99_ms = wrk_ms(v).unwrap_or(f64::NAN),
            _ => {}
        }
    }
    if l.rps == 0.0 {
        bail!("could not read wrk's answer:\n{out}");
    }
    Ok(l)
}

fn wrk(wrk: &Path, s: &Server, path: &str, secs: u64) -> Result<Load> {
    let out = Command::new(wrk)
        .args(["-t2", "-c16", &format!("-d{secs}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {}", s.token)])
        .arg(format!("{}{path}", s.base))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if text.contains("Non-2xx") {
        bail!("wrk {path}: the server answered errors:\n{text}");
    }
    parse_wrk(&text)
}

/// Writes one label per PUT and times each from send to the watcher's event.
async fn watch_latency(http: &reqwest::Client, s: &Server, doc: &Value) -> Result<Vec<f64>> {
    let target = name(0);
    let mut resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/botclusters?watch=true&fieldSelector=metadata.name%3D{target}",
            s.base
        ))
        .bearer_auth(&s.token)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("watch: {}", resp.status());
    }
    let mut buf: Vec<u8> = Vec::new();
    // The first event is the object as it is (ADDED).
    next_event(&mut resp, &mut buf).await?;
    let mut out = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let mut d = doc.clone();
        d["metadata"]["name"] = json!(target);
        d["metadata"]["labels"]["bench"] = json!(format!("w{i}"));
        let sent = Instant::now();
        let put = http
            .put(format!("{}/api/v1/botclusters/{target}", s.base))
            .bearer_auth(&s.token)
            .json(&d);
        let (r, ev) = tokio::join!(put.send(), async {
            let ev = next_event(&mut resp, &mut buf).await;
            (ev, sent.elapsed())
        });
        let r = r?;
        if !r.status().is_success() {
            bail!("write {i}: {}", r.status());
        }
        let (ev, took) = ev;
        let ev = ev?;
        if ev.pointer("/object/metadata/labels/bench") != Some(&json!(format!("w{i}"))) {
            bail!("write {i}: the watcher got another change: {ev}");
        }
        out.push(took.as_secs_f64() * 1000.0);
    }
    Ok(out)
}

async fn next_event(resp: &mut reqwest::Response, buf: &mut Vec<u8>) -> Result<Value> {
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line)?;
            if v["type"] == "BOOKMARK" {
                continue;
            }
            return Ok(v);
        }
        match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
            Ok(Ok(None)) => bail!("the watch ended"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("no watch event within 10 s"),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Column {
    n: usize,
    loads: Vec<Load>,
    watch: Vec<f64>,
    rss_empty: f64,
    rss_after: f64,
    list_kib: f64,
}

const READS: [(&str, &str); 5] = [
    ("/healthz", "/healthz"),
    ("object GET", "/api/v1/botclusters/bench-0000"),
    ("status GET", "/api/v1/botclusters/bench-0000/status"),
    ("full list", "/api/v1/botclusters"),
    ("page of 50", "/api/v1/botclusters?limit=50"),
];

pub fn run(args: &[&str]) -> Result<()> {
    let usage = "usage: cargo xtask bench api [--sizes 1,100,1000] [--seconds 5]";
    let mut sizes = vec![1usize, 100, 1000];
    let mut secs = 5u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--sizes" => {
                sizes = it
                    .next()
                    .context(usage)?
                    .split(',')
                    .map(|s| s.parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?
            }
            "--seconds" => {
                secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--seconds N")?
            }
            other => bail!("unknown option {other}; {usage}"),
        }
    }
    let wrk_bin = ensure_wrk()?;
    let botctl = build_botctl()?;
    let doc = template()?;
    let rt = tokio::runtime::Runtime::new()?;
    let mut cols = Vec::new();
    for &n in &sizes {
        let s = start_server(&botctl)?;
        let pid = s.child.id();
        let rss_empty = rss_mib(pid);
        let http = reqwest::Client::builder().no_proxy().build()?;
        say(CHORE, format!("N={n}: storing {n} clusters"));
        let list_kib = rt.block_on(async {
            store(&http, &s, n, &doc).await?;
            let body = http
                .get(format!("{}/api/v1/botclusters", s.base))
                .bearer_auth(&s.token)
                .send()
                .await?
                .bytes()
                .await?;
            Ok::<f64, anyhow::Error>(body.len() as f64 / 1024.0)
        })?;
        let mut loads = Vec::new();
        for (label, path) in READS {
            say(CHORE, format!("N={n}: {label} ({secs} s of wrk -t2 -c16)"));
            loads.push(wrk(&wrk_bin, &s, path, secs)?);
        }
        say(
            CHORE,
            format!("N={n}: {WRITES} writes, each timed to the watcher"),
        );
        let mut watch = rt.block_on(watch_latency(&http, &s, &doc))?;
        watch.sort_by(f64::total_cmp);
        cols.push(Column {
            n,
            loads,
            watch,
            rss_empty,
            rss_after: rss_mib(pid),
            list_kib,
        });
    }
    print_table(&cols, secs);
    Ok(())
}

fn print_table(cols: &[Column], secs: u64) {
    println!();
    println!(
        "botctl serve --no-controller (release), wrk -t2 -c16 -d{secs}s per row, clusters from examples/full.yaml"
    );
    println!();
    let mut head = String::from("| read |");
    let mut rule = String::from("|---|");
    for c in cols {
        head.push_str(&format!(
            " N={} req/s | p50 ms | p99 ms | vs /healthz |",
            c.n
        ));
        rule.push_str("---:|---:|---:|---:|");
    }
    println!("{head}");
    println!("{rule}");
    for (r, (label, _)) in READS.iter().enumerate() {
        let mut line = format!("| {label} |");
        for c in cols {
            let l = c.loads[r];
            let base = c.loads[0].rps;
            line.push_str(&format!(
                " {:.0} | {:.2} | {:.2} | {:.1} % |",
                l.rps,
                l.p50_ms,
                l.p99_ms,
                100.0 * l.rps / base
            ));
        }
        println!("{line}");
    }
    let mut line = format!("| write → watcher ({WRITES} PUTs) |");
    for c in cols {
        line.push_str(&format!(
            " | {:.2} | {:.2} | |",
            percentile(&c.watch, 0.5),
            percentile(&c.watch, 0.99)
        ));
    }
    println!("{line}");
    println!();
    for c in cols {
        println!(
            "N={}: full list {:.0} KiB; server RSS {:.1} MiB empty, {:.1} MiB after storing and the run",
            c.n, c.list_kib, c.rss_empty, c.rss_after
        );
    }
}
