//! The simulated botserver: its knobs, its health report and its routes.
//!
//! Knobs are set two ways, and the most recent change wins:
//! - control requests (`POST /sim/unhealthy` …), for tests that can reach the server;
//! - `<config dir>/sim.json` (default `/etc/botserver/sim.json`), for an operator that can only
//!   push files. It is re-read on every request; its keys are applied whenever its content
//!   changes, so pushing the same file twice is a no-op and removing it changes nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Request, Response};

pub const VERSION: &str = "6.1.0-sim";
/// Longest CPU burn one request may ask for.
pub const MAX_BUSY_SECS: f64 = 3600.0;
/// Most burner threads one request may ask for.
pub const MAX_BUSY_THREADS: u64 = 64;
/// Longest response delay one request may ask for.
pub const MAX_SLOW_MS: u64 = 600_000;

/// The shared state of one server.
pub struct Sim {
    name: String,
    config_dir: PathBuf,
    /// The shard map file the operator writes (`/opt/gbo/conf/shards.json`).
    shard_map: PathBuf,
    /// The rate limit the operator gives the bots (`/opt/gbo/conf/botcluster.json`).
    limiter: crate::ratelimit::Limiter,
    started: Instant,
    healthy: AtomicBool,
    slow_ms: AtomicU64,
    queue_depth: AtomicU64,
    connections: Arc<AtomicU64>,
    /// The content of sim.json last applied (or rejected), so a change is applied once.
    last_file: Mutex<Option<Vec<u8>>>,
    /// (wall time, process CPU time) at the previous health report, and the CPU % it gave.
    cpu_sample: Mutex<(Instant, Option<Duration>, f64)>,
}

/// Counts an open connection for as long as it lives.
pub struct ConnectionGuard(Arc<AtomicU64>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Sim {
    pub fn new(name: impl Into<String>, config_dir: impl Into<PathBuf>) -> Self {
        let now = Instant::now();
        Sim {
            name: name.into(),
            config_dir: config_dir.into(),
            shard_map: PathBuf::from(crate::shards::DEFAULT_MAP_PATH),
            limiter: crate::ratelimit::Limiter::new(crate::ratelimit::DEFAULT_CONFIG_PATH),
            started: now,
            healthy: AtomicBool::new(true),
            slow_ms: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            connections: Arc::new(AtomicU64::new(0)),
            last_file: Mutex::new(None),
            cpu_sample: Mutex::new((now, process_cpu_time(), 0.0)),
        }
    }

    /// Reads the shard map from `path` instead of `/opt/gbo/conf/shards.json`.
    pub fn with_shard_map(mut self, path: impl Into<PathBuf>) -> Self {
        self.shard_map = path.into();
        self
    }

    /// Reads the bots' settings (the rate limit) from `path` instead of
    /// `/opt/gbo/conf/botcluster.json`.
    pub fn with_bot_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.limiter = crate::ratelimit::Limiter::new(path);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call when a connection is accepted; the count drops when the guard does.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(&self.connections))
    }

    /// Answers `req`: applies a changed sim.json, routes, and then waits the configured delay
    /// (except for `/sim/` control requests, so a test can always undo a long delay quickly).
    pub fn respond(&self, req: &Request) -> Response {
        self.apply_config_file();
        if let Some(limited) = self.limiter.check(req) {
            return limited.with_header("X-Botserver-Instance", &self.name);
        }
        let response = self.route(req);
        if !req.path.starts_with("/sim/") {
            let delay = self.slow_ms.load(Ordering::Relaxed);
            if delay > 0 {
                thread::sleep(Duration::from_millis(delay));
            }
        }
        response.with_header("X-Botserver-Instance", &self.name)
    }

    /// Picks the handler for `req`, without any delay.
    pub fn route(&self, req: &Request) -> Response {
        let method = req.method.as_str();
        let read = matches!(method, "GET" | "HEAD");
        match req.path.as_str() {
            "/api/health" if read => self.health(),
            "/api/health" => method_not_allowed("GET, HEAD"),
            "/api/shards" | "/api/shards/route" => crate::shards::respond(&self.shard_map, req),
            "/sim/state" if read => Response::json(200, &self.settings()),
            "/sim/files" if read => self.read_file(req.query_param("path")),
            "/sim/state" | "/sim/files" => method_not_allowed("GET, HEAD"),
            "/sim/healthy" | "/sim/unhealthy" | "/sim/slow" | "/sim/busy" | "/sim/queue"
                if method != "POST" =>
            {
                method_not_allowed("POST")
            }
            "/sim/healthy" => self.set_healthy(true),
            "/sim/unhealthy" => self.set_healthy(false),
            "/sim/slow" => match required(param(req, "ms", 0, MAX_SLOW_MS), "ms") {
                Ok(ms) => {
                    self.slow_ms.store(ms, Ordering::Relaxed);
                    Response::json(200, &self.settings())
                }
                Err(resp) => resp,
            },
            "/sim/queue" => match required(param(req, "depth", 0, u64::MAX), "depth") {
                Ok(depth) => {
                    self.queue_depth.store(depth, Ordering::Relaxed);
                    Response::json(200, &self.settings())
                }
                Err(resp) => resp,
            },
            "/sim/busy" => {
                let secs = required(param(req, "cpu_secs", 0.0, MAX_BUSY_SECS), "cpu_secs");
                let threads = param(req, "threads", 1, MAX_BUSY_THREADS);
                match (secs, threads) {
                    (Ok(secs), Ok(threads)) => {
                        let threads = threads.unwrap_or(1);
                        burn_cpu(Duration::from_secs_f64(secs), threads);
                        Response::json(
                            200,
                            &json!({"busy": {"cpu_secs": secs, "threads": threads}}),
                        )
                    }
                    (Err(resp), _) | (_, Err(resp)) => resp,
                }
            }
            p if p.starts_with("/sim/") => Response::text(
                404,
                "unknown control endpoint; see /sim/state, /sim/files, /sim/healthy, \
                 /sim/unhealthy, /sim/slow, /sim/busy, /sim/queue\n",
            ),
            _ => Response::text(200, format!("{}\n", self.name)),
        }
    }

    fn set_healthy(&self, healthy: bool) -> Response {
        self.healthy.store(healthy, Ordering::Relaxed);
        Response::json(200, &self.settings())
    }

    /// The knobs as they are now.
    pub fn settings(&self) -> Value {
        json!({
            "healthy": self.healthy.load(Ordering::Relaxed),
            "slowMs": self.slow_ms.load(Ordering::Relaxed),
            "queueDepth": self.queue_depth.load(Ordering::Relaxed),
        })
    }

    /// The health report, in the shape General Bots' botserver returns.
    pub fn health(&self) -> Response {
        let healthy = self.healthy.load(Ordering::Relaxed);
        let body = json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "version": VERSION,
            "uptime": self.started.elapsed().as_secs(),
            "instance": self.name,
            "checks": {
                // An unhealthy botserver has something failing; the sim blames the database.
                "database": if healthy { "ok" } else { "error" },
                "cache": "ok",
                "vectordb": "ok",
                "llm": "ok",
            },
            "metrics": {
                "cpu": self.cpu_percent(),
                "memory": memory_percent(),
                "connections": self.connections.load(Ordering::Relaxed),
                "queueDepth": self.queue_depth.load(Ordering::Relaxed),
            },
        });
        Response::json(if healthy { 200 } else { 503 }, &body)
    }

    /// This process's CPU use since the previous report, in percent of the CPUs it may use.
    fn cpu_percent(&self) -> f64 {
        let Ok(mut sample) = self.cpu_sample.lock() else {
            return 0.0;
        };
        let (then, cpu_then, last) = *sample;
        let now = Instant::now();
        let wall = now.duration_since(then);
        // Two reports in quick succession would divide by almost nothing: repeat the last one.
        if wall < Duration::from_millis(200) {
            return last;
        }
        let cpu_now = process_cpu_time();
        let percent = match (cpu_then, cpu_now) {
            (Some(a), Some(b)) => {
                let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                let used = b.saturating_sub(a).as_secs_f64();
                round1((used / wall.as_secs_f64() / cpus * 100.0).clamp(0.0, 100.0))
            }
            _ => 0.0,
        };
        *sample = (now, cpu_now, percent);
        percent
    }

    /// Serves a file under the config dir, or lists a directory there (one name a line).
    fn read_file(&self, path: Option<&str>) -> Response {
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            return Response::text(400, "give ?path=/absolute/path\n");
        };
        let root = match fs::canonicalize(&self.config_dir) {
            Ok(root) => root,
            Err(_) => return Response::text(404, "config directory does not exist\n"),
        };
        let real = match fs::canonicalize(path) {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Response::text(404, format!("{path}: not found\n"))
            }
            Err(e) => return Response::text(500, format!("{path}: {e}\n")),
        };
        // Checked after resolving `..` and symlinks, so neither can escape the directory.
        if !real.starts_with(&root) {
            return Response::text(
                403,
                format!(
                    "only files under {} can be read\n",
                    self.config_dir.display()
                ),
            );
        }
        if real.is_dir() {
            return match list_dir(&real) {
                Ok(listing) => Response::text(200, listing),
                Err(e) => Response::text(500, format!("{path}: {e}\n")),
            };
        }
        match fs::read(&real) {
            Ok(bytes) => Response::new(200, "application/octet-stream", bytes),
            Err(e) => Response::text(500, format!("{path}: {e}\n")),
        }
    }

    /// Applies `sim.json` if its content differs from the last one seen.
    ///
    /// Keys (all optional): `healthy` (bool), `slowMs`, `queueDepth` (integers), and
    /// `busyCpuSecs` (number, with optional `busyThreads`), which starts a burn each time the
    /// file changes. A file that does not parse is reported on stderr once and otherwise ignored.
    pub fn apply_config_file(&self) {
        let Ok(content) = fs::read(self.config_dir.join("sim.json")) else {
            return;
        };
        let Ok(mut last) = self.last_file.lock() else {
            return;
        };
        if last.as_deref() == Some(content.as_slice()) {
            return;
        }
        *last = Some(content.clone());
        drop(last);
        if let Err(why) = self.apply_settings(&content) {
            eprintln!("botserver-sim: ignoring sim.json: {why}");
        }
    }

    fn apply_settings(&self, content: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(content).map_err(|e| e.to_string())?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        // Validate everything before changing anything.
        let healthy = field(obj, "healthy", Value::as_bool, "a boolean")?;
        let slow = field(obj, "slowMs", Value::as_u64, "a non-negative integer")?;
        let queue = field(obj, "queueDepth", Value::as_u64, "a non-negative integer")?;
        let busy = field(obj, "busyCpuSecs", Value::as_f64, "a number")?;
        let threads = field(obj, "busyThreads", Value::as_u64, "a positive integer")?;
        if slow.is_some_and(|ms| ms > MAX_SLOW_MS) {
            return Err(format!("slowMs must be at most {MAX_SLOW_MS}"));
        }
        if busy.is_some_and(|s| !(0.0..=MAX_BUSY_SECS).contains(&s)) {
            return Err(format!("busyCpuSecs must be between 0 and {MAX_BUSY_SECS}"));
        }
        if threads.is_some_and(|n| n == 0 || n > MAX_BUSY_THREADS) {
            return Err(format!(
                "busyThreads must be between 1 and {MAX_BUSY_THREADS}"
            ));
        }
        if let Some(h) = healthy {
            self.healthy.store(h, Ordering::Relaxed);
        }
        if let Some(ms) = slow {
            self.slow_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(depth) = queue {
            self.queue_depth.store(depth, Ordering::Relaxed);
        }
        if let Some(secs) = busy {
            burn_cpu(Duration::from_secs_f64(secs), threads.unwrap_or(1));
        }
        Ok(())
    }
}

fn field<T>(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    get: impl Fn(&Value) -> Option<T>,
    what: &str,
) -> Result<Option<T>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => get(v)
            .map(Some)
            .ok_or(format!("{key} must be {what}, got {v}")),
    }
}

fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, format!("use {allow}\n")).with_header("Allow", allow)
}

/// Reads query parameter `key` as a number in `min..=max` (absent is `None`), or the 400
/// response that says why it is not one.
fn param<T>(req: &Request, key: &str, min: T, max: T) -> Result<Option<T>, Response>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(raw) = req.query_param(key) else {
        return Ok(None);
    };
    match raw.parse::<T>() {
        // NaN compares false both ways, so it fails the range check too.
        Ok(n) if n >= min && n <= max => Ok(Some(n)),
        _ => Err(Response::text(
            400,
            format!("`{key}` must be a number from {min} to {max}, got `{raw}`\n"),
        )),
    }
}

fn required<T>(value: Result<Option<T>, Response>, key: &str) -> Result<T, Response> {
    value?.ok_or_else(|| Response::text(400, format!("missing query parameter `{key}`\n")))
}

/// Burns one core per thread for `duration`, in the background.
fn burn_cpu(duration: Duration, threads: u64) {
    for _ in 0..threads {
        let spawned = thread::Builder::new().name("busy".into()).spawn(move || {
            let until = Instant::now() + duration;
            let mut x = 0u64;
            while Instant::now() < until {
                for i in 0..10_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("botserver-sim: cannot start a busy thread: {e}");
        }
    }
}

fn list_dir(dir: &Path) -> std::io::Result<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    Ok(names.iter().map(|n| format!("{n}\n")).collect())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// User plus system CPU time of this process, from `/proc/self/stat`.
fn process_cpu_time() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are at indices 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture we run on.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of this process in percent of the memory the kernel reports.
fn memory_percent() -> f64 {
    let kib = |text: &str, key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    };
    let rss = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| kib(&s, "VmRSS:"));
    let total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| kib(&s, "MemTotal:"));
    match (rss, total) {
        (Some(rss), Some(total)) if total > 0.0 => round1(rss / total * 100.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::read_request;
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("botserver-sim-test-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn request(method: &str, target: &str) -> Request {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        read_request(&mut raw.as_bytes()).unwrap()
    }

    fn body_json(resp: &Response) -> Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    fn sim() -> (Sim, TempDir) {
        let dir = TempDir::new();
        (Sim::new("bs-test-0", &dir.0), dir)
    }

    #[test]
    fn health_reports_the_botserver_shape() {
        let (sim, _dir) = sim();
        let resp = sim.respond(&request("GET", "/api/health"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let v = body_json(&resp);
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["version"], VERSION);
        assert_eq!(v["instance"], "bs-test-0");
        assert!(v["uptime"].is_u64());
        for check in ["database", "cache", "vectordb", "llm"] {
            assert_eq!(v["checks"][check], "ok", "{check}");
        }
        assert!(v["metrics"]["cpu"].is_f64());
        assert!(v["metrics"]["memory"].is_f64());
        assert!(v["metrics"]["connections"].is_u64());
        assert_eq!(v["metrics"]["queueDepth"], 0);
    }

    #[test]
    fn unhealthy_health_is_503_until_made_healthy_again() {
        let (sim, _dir) = sim();
        assert_eq!(sim.respond(&request("POST", "/sim/unhealthy")).status, 200);
        let resp = sim.respond(&request("GET", "/api/health"));
        assert_eq!(resp.status, 503);
        assert_eq!(body_json(&resp)["status"], "unhealthy");
        sim.respond(&request("POST", "/sim/healthy"));
        assert_eq!(sim.respond(&request("GET", "/api/health")).status, 200);
    }

    #[test]
    fn any_other_path_answers_with_the_instance_name() {
        let (sim, _dir) = sim();
        for (method, path) in [("GET", "/"), ("POST", "/api/chat"), ("GET", "/x/y?z=1")] {
            let resp = sim.respond(&request(method, path));
            assert_eq!(resp.status, 200, "{method} {path}");
            assert_eq!(resp.body, b"bs-test-0\n");
            assert_eq!(resp.header("x-botserver-instance"), Some("bs-test-0"));
        }
    }

    #[test]
    fn control_endpoints_need_post_and_valid_numbers() {
        let (sim, _dir) = sim();
        let resp = sim.respond(&request("GET", "/sim/unhealthy"));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("allow"), Some("POST"));
        assert_eq!(sim.respond(&request("POST", "/api/health")).status, 405);
        assert_eq!(sim.respond(&request("POST", "/sim/slow")).status, 400);
        assert_eq!(sim.respond(&request("POST", "/sim/slow?ms=-3")).status, 400);
        assert_eq!(
            sim.respond(&request("POST", "/sim/busy?cpu_secs=nan"))
                .status,
            400
        );
        assert_eq!(
            sim.respond(&request("POST", "/sim/busy?cpu_secs=99999"))
                .status,
            400
        );
        assert_eq!(
            sim.respond(&request("POST", "/sim/queue?depth=x")).status,
            400
        );
        assert_eq!(sim.respond(&request("POST", "/sim/nope")).status, 404);
    }

    #[test]
    fn queue_depth_is_reported_in_health() {
        let (sim, _dir) = sim();
        let resp = sim.respond(&request("POST", "/sim/queue?depth=42"));
        assert_eq!(body_json(&resp)["queueDepth"], 42);
        let health = body_json(&sim.respond(&request("GET", "/api/health")));
        assert_eq!(health["metrics"]["queueDepth"], 42);
    }

    #[test]
    fn slow_delays_normal_responses_but_not_control_requests() {
        let (sim, _dir) = sim();
        sim.respond(&request("POST", "/sim/slow?ms=150"));
        let t = Instant::now();
        sim.respond(&request("GET", "/api/health"));
        assert!(t.elapsed() >= Duration::from_millis(150));
        let t = Instant::now();
        sim.respond(&request("POST", "/sim/slow?ms=0"));
        assert!(t.elapsed() < Duration::from_millis(150));
        let t = Instant::now();
        sim.respond(&request("GET", "/"));
        assert!(t.elapsed() < Duration::from_millis(150));
    }

    #[test]
    fn busy_burns_cpu_that_health_reports() {
        let (sim, _dir) = sim();
        // Let the first sample age so the next report measures the burn.
        thread::sleep(Duration::from_millis(250));
        let resp = sim.respond(&request("POST", "/sim/busy?cpu_secs=0.6"));
        assert_eq!(resp.status, 200);
        thread::sleep(Duration::from_millis(500));
        let health = body_json(&sim.respond(&request("GET", "/api/health")));
        let cpu = health["metrics"]["cpu"].as_f64().unwrap();
        assert!(cpu > 5.0, "cpu {cpu} after a burn");
    }

    #[test]
    fn sim_json_is_applied_when_it_changes() {
        let (sim, dir) = sim();
        let file = dir.0.join("sim.json");
        fs::write(&file, r#"{"healthy": false, "queueDepth": 7}"#).unwrap();
        let resp = sim.respond(&request("GET", "/api/health"));
        assert_eq!(resp.status, 503);
        assert_eq!(body_json(&resp)["metrics"]["queueDepth"], 7);

        // A control request overrides it, and an unchanged file does not win it back.
        sim.respond(&request("POST", "/sim/healthy"));
        assert_eq!(sim.respond(&request("GET", "/api/health")).status, 200);

        fs::write(&file, r#"{"healthy": false, "queueDepth": 8}"#).unwrap();
        assert_eq!(sim.respond(&request("GET", "/api/health")).status, 503);
    }

    #[test]
    fn invalid_sim_json_changes_nothing() {
        let (sim, dir) = sim();
        fs::write(
            dir.0.join("sim.json"),
            r#"{"healthy": false, "slowMs": "fast"}"#,
        )
        .unwrap();
        assert_eq!(sim.respond(&request("GET", "/api/health")).status, 200);
        assert_eq!(sim.settings()["slowMs"], 0);
    }

    #[test]
    fn files_under_the_config_dir_can_be_read_and_nothing_else() {
        let (sim, dir) = sim();
        fs::write(dir.0.join("bot.csv"), "name,value\n").unwrap();
        fs::create_dir(dir.0.join("sub")).unwrap();
        let q = |p: &Path| format!("/sim/files?path={}", p.display());

        let resp = sim.respond(&request("GET", &q(&dir.0.join("bot.csv"))));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"name,value\n");

        let listing = sim.respond(&request("GET", &q(&dir.0)));
        assert_eq!(listing.body, b"bot.csv\nsub/\n");

        assert_eq!(
            sim.respond(&request("GET", &q(&dir.0.join("none")))).status,
            404
        );
        assert_eq!(
            sim.respond(&request("GET", "/sim/files?path=/etc/passwd"))
                .status,
            403
        );
        let escape = dir.0.join("sub/../../");
        assert_eq!(sim.respond(&request("GET", &q(&escape))).status, 403);
        assert_eq!(
            sim.respond(&request("GET", "/sim/files?path=rel")).status,
            400
        );
        assert_eq!(sim.respond(&request("GET", "/sim/files")).status, 400);
    }
}
