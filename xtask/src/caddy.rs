//! Caddy chores for development and tests: `caddy-up` and `caddy-down`.
//!
//! `docs/caddy-setup.md` explains each step and what was measured. `caddy-up` runs Caddy
//! detached, not under systemd, with a bootstrap config that has only an admin endpoint
//! (`127.0.0.1:2019`, or `$BOTCLUSTER_CADDY_ADMIN`) and no apps; the operator then owns one
//! named server in it through the admin API. Everything the chore writes lives in
//! `target/caddy/`. The admin endpoint is checked with a tiny HTTP/1.0 client, and `caddy`,
//! `apt-get` and `kill` run with fixed argument vectors: no shell strings.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::util::{
    apt_install, cmdline, is_debian, is_program, is_root, kill, read_pid, say, tail, target_dir,
    wait_until_gone, which, write_pid,
};

/// The admin address when `BOTCLUSTER_CADDY_ADMIN` is not set.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:2019";
const ADMIN_ENV: &str = "BOTCLUSTER_CADDY_ADMIN";
const UP: &str = "caddy-up";
const DOWN: &str = "caddy-down";

// ---------------------------------------------------------------------------------------------
// Where things live

/// Caddy's admin address, in the two forms the chores accept.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Admin {
    /// `host:port` on loopback.
    Tcp(String),
    /// An absolute unix socket path.
    Unix(PathBuf),
}

impl Admin {
    /// Parses `127.0.0.1:2019`, `http://127.0.0.1:2019`, `unix:///path` or `unix//path`,
    /// refusing TCP addresses off loopback: the admin API has no authentication.
    fn parse(text: &str) -> Result<Admin> {
        let s = text.trim();
        if let Some(path) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix/"))
        {
            ensure!(
                path.starts_with('/'),
                "{ADMIN_ENV}={text}: the socket path must be absolute (unix:///run/caddy/admin.sock)"
            );
            return Ok(Admin::Unix(PathBuf::from(path)));
        }
        let addr = s.strip_prefix("http://").unwrap_or(s);
        let addr = addr.strip_suffix('/').unwrap_or(addr);
        let (host, port) = addr.rsplit_once(':').with_context(|| {
            format!("{ADMIN_ENV}={text}: expected HOST:PORT, http://HOST:PORT or unix:///PATH")
        })?;
        ensure!(
            port.parse::<u16>().is_ok(),
            "{ADMIN_ENV}={text}: the port `{port}` is not a number"
        );
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        ensure!(
            loopback,
            "{ADMIN_ENV}={text}: the admin API has no authentication, so caddy-up only puts it \
             on loopback (127.0.0.0/8, localhost, [::1]) or a unix socket"
        );
        Ok(Admin::Tcp(addr.to_string()))
    }

    fn from_env() -> Result<(Admin, &'static str)> {
        match std::env::var(ADMIN_ENV) {
            Ok(v) if !v.trim().is_empty() => Ok((Admin::parse(&v)?, ADMIN_ENV)),
            _ => Ok((Admin::parse(DEFAULT_ADMIN)?, "default")),
        }
    }

    /// The value of `admin.listen` in Caddy's config.
    fn listen(&self) -> String {
        match self {
            Admin::Tcp(addr) => addr.clone(),
            Admin::Unix(path) => format!("unix/{}", path.display()),
        }
    }

    /// Sends `GET /config/` and returns the status line's code, or `None` when nothing
    /// answers. HTTP/1.0 keeps it simple: Caddy then closes after the answer.
    fn probe(&self) -> Option<u16> {
        let timeout = Duration::from_secs(2);
        let request = |host: &str| format!("GET /config/ HTTP/1.0\r\nHost: {host}\r\n\r\n");
        let mut raw = Vec::new();
        match self {
            Admin::Tcp(addr) => {
                let sock = addr.to_socket_addrs().ok()?.next()?;
                let mut s = TcpStream::connect_timeout(&sock, timeout).ok()?;
                s.set_read_timeout(Some(timeout)).ok()?;
                s.write_all(request(addr).as_bytes()).ok()?;
                s.read_to_end(&mut raw).ok()?;
            }
            Admin::Unix(path) => {
                let mut s = UnixStream::connect(path).ok()?;
                s.set_read_timeout(Some(timeout)).ok()?;
                // Caddy < 2.10 checks Host on the socket too and allows only the empty one.
                s.write_all(request("").as_bytes()).ok()?;
                s.read_to_end(&mut raw).ok()?;
            }
        }
        let head = String::from_utf8_lossy(&raw);
        head.strip_prefix("HTTP/")?.split(' ').nth(1)?.parse().ok()
    }
}

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Admin::Tcp(addr) => write!(f, "http://{addr}"),
            Admin::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// The files of the Caddy that `caddy-up` runs.
struct Paths {
    dir: PathBuf,
    bootstrap: PathBuf,
    log: PathBuf,
    /// Written by `caddy-up` when it starts Caddy, read by `caddy-down`.
    pid: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let dir = target_dir().join("caddy");
        Paths {
            bootstrap: dir.join("bootstrap.json"),
            log: dir.join("caddy.log"),
            pid: dir.join("caddy.pid"),
            dir,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// caddy-up

/// `cargo xtask caddy-up`: installs Caddy if needed and runs it detached with an admin-only
/// bootstrap config. Does nothing when the admin endpoint already answers.
pub fn up(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "caddy-up takes no arguments, got {args:?}");
    let (admin, source) = Admin::from_env()?;
    let paths = Paths::new();
    say(UP, format!("admin endpoint: {admin} ({source})"));

    if let Some(status) = admin.probe() {
        let owner = match recorded_pid(&paths) {
            Some(pid) if is_our_caddy(pid, &paths) => format!("pid {pid}, started by caddy-up"),
            _ => "not started by caddy-up; caddy-down will leave it alone".to_string(),
        };
        say(
            UP,
            format!(
            "already running: {admin} answers (GET /config/ → {status}; {owner}); nothing changed"
        ),
        );
        return Ok(());
    }
    if let Some(pid) = recorded_pid(&paths).filter(|&pid| is_our_caddy(pid, &paths)) {
        let started_with = fs::read_to_string(&paths.bootstrap)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["admin"]["listen"].as_str().map(str::to_string))
            .unwrap_or_else(|| "an unknown address".to_string());
        bail!(
            "caddy (pid {pid}, started by caddy-up with admin {started_with}) is running, but \
             {admin} does not answer: it was started for another address, or a config load \
             moved its admin endpoint. Run `cargo xtask caddy-down` first, then \
             `cargo xtask caddy-up` again (log: {})",
            paths.log.display()
        );
    }

    let caddy = ensure_installed()?;
    fs::create_dir_all(&paths.dir).with_context(|| format!("creating {}", paths.dir.display()))?;
    if let Admin::Unix(sock) = &admin {
        prepare_socket_dir(sock)?;
    }
    let bootstrap = json!({
        "admin": {
            "listen": admin.listen(),
            // The operator converges the config through the API; a resurrected autosave
            // (`caddy run --resume`) would only confuse it.
            "config": {"persist": false},
        },
    });
    fs::write(
        &paths.bootstrap,
        serde_json::to_string_pretty(&bootstrap)? + "\n",
    )
    .with_context(|| format!("writing {}", paths.bootstrap.display()))?;
    say(
        UP,
        format!(
            "config: wrote {} (admin {} only, no apps, autosave off)",
            paths.bootstrap.display(),
            admin.listen()
        ),
    );
    start(&caddy, &admin, &paths)
}

/// The `caddy` binary, installed with apt-get when missing (root on Debian only).
fn ensure_installed() -> Result<PathBuf> {
    if let Some(path) = which("caddy") {
        say(
            UP,
            format!("binary: {} ({})", path.display(), caddy_version(&path)),
        );
        return Ok(path);
    }
    if !(is_debian() && is_root()) {
        bail!(
            "caddy is not installed. Install it with `sudo apt-get install caddy` (Debian/Ubuntu) \
             or from https://caddyserver.com/docs/install, then run `cargo xtask caddy-up` again"
        );
    }
    say(
        UP,
        "binary: caddy not found; running apt-get install caddy (its systemd unit is not used)",
    );
    apt_install(UP, "binary", &["--no-install-recommends", "caddy"])?;
    let path = which("caddy").context("apt-get installed caddy, but it is not on PATH")?;
    say(
        UP,
        format!("binary: {} ({})", path.display(), caddy_version(&path)),
    );
    Ok(path)
}

fn caddy_version(path: &Path) -> String {
    Command::new(path)
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "version unknown".to_string())
}

/// Creates the socket's directory (0700 when we create it) and removes a stale socket file,
/// which would make Caddy fail with "address already in use".
fn prepare_socket_dir(sock: &Path) -> Result<()> {
    if let Some(parent) = sock.parent() {
        if !parent.exists() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o700))?;
            say(
                UP,
                format!("socket: created {} (mode 0700)", parent.display()),
            );
        }
    }
    match fs::symlink_metadata(sock) {
        Ok(meta) if meta.file_type().is_socket() => {
            // probe() already found nobody answering on it.
            fs::remove_file(sock).with_context(|| format!("removing {}", sock.display()))?;
            say(UP, format!("socket: removed stale {}", sock.display()));
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; choose another path in {ADMIN_ENV}",
            sock.display()
        ),
        Err(_) => {}
    }
    Ok(())
}

fn start(caddy: &Path, admin: &Admin, paths: &Paths) -> Result<()> {
    let t = Instant::now();
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("opening {}", paths.log.display()))?;
    say(
        UP,
        format!(
            "start: `{} run --config {}` detached, logging to {}",
            caddy.display(),
            paths.bootstrap.display(),
            paths.log.display()
        ),
    );
    let mut child = Command::new(caddy)
        .arg("run")
        .arg("--config")
        .arg(&paths.bootstrap)
        // Certificates and autosave go under target/caddy, not into the user's home.
        .env("XDG_DATA_HOME", paths.dir.join("data"))
        .env("XDG_CONFIG_HOME", paths.dir.join("config"))
        // Detached: no inherited pipes (a caller reading our output would wait for Caddy too),
        // and its own process group, so Ctrl-C on the xtask does not reach it.
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", caddy.display()))?;
    write_pid(&paths.pid, child.id())?;

    while t.elapsed() < Duration::from_secs(15) {
        if let Some(status) = child.try_wait()? {
            let _ = fs::remove_file(&paths.pid);
            bail!(
                "caddy exited at start-up ({status}); last lines of {}:\n{}",
                paths.log.display(),
                tail(&paths.log, 10)
            );
        }
        if let Some(code) = admin.probe() {
            if let Admin::Unix(sock) = admin {
                // Caddy creates the socket 0755; the admin API has no authentication.
                fs::set_permissions(sock, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("chmod 0600 {}", sock.display()))?;
            }
            say(
                UP,
                format!(
                "ready after {:.2} s: {admin} answers (GET /config/ → {code}); pid {} recorded \
                 in {}",
                t.elapsed().as_secs_f64(),
                child.id(),
                paths.pid.display()
            ),
            );
            // `child` is not waited for: Caddy outlives this process on purpose.
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!(
        "caddy (pid {}) started but {admin} did not answer within 15 s; see {} (stop it with \
         `cargo xtask caddy-down`)",
        child.id(),
        paths.log.display()
    )
}

// ---------------------------------------------------------------------------------------------
// caddy-down

/// `cargo xtask caddy-down`: stops the Caddy that `caddy-up` started, and nothing else.
pub fn down(args: &[&str]) -> Result<()> {
    ensure!(
        args.is_empty(),
        "caddy-down takes no arguments, got {args:?}"
    );
    let (admin, _) = Admin::from_env()?;
    let paths = Paths::new();
    let Some(pid) = recorded_pid(&paths) else {
        let running = if admin.probe().is_some() {
            format!("; a Caddy answers on {admin}, started some other way: left alone")
        } else {
            String::new()
        };
        say(
            DOWN,
            format!("already down: no {}{running}", paths.pid.display()),
        );
        return Ok(());
    };
    if !is_our_caddy(pid, &paths) {
        say(
            DOWN,
            format!("already down: pid {pid} is not the caddy that caddy-up started any more"),
        );
        fs::remove_file(&paths.pid)?;
        return Ok(());
    }
    let t = Instant::now();
    say(DOWN, format!("stopping caddy (pid {pid}) with SIGTERM"));
    kill(pid, "TERM")?;
    if !wait_gone(pid, &paths, Duration::from_secs(15)) {
        say(
            DOWN,
            format!("still running 15 s after SIGTERM; sending SIGKILL to {pid}"),
        );
        kill(pid, "KILL")?;
        ensure!(
            wait_gone(pid, &paths, Duration::from_secs(5)),
            "caddy (pid {pid}) is still running after SIGKILL"
        );
    }
    fs::remove_file(&paths.pid)?;
    say(
        DOWN,
        format!(
            "stopped in {:.2} s (log kept: {})",
            t.elapsed().as_secs_f64(),
            paths.log.display()
        ),
    );
    Ok(())
}

fn recorded_pid(paths: &Paths) -> Option<u32> {
    read_pid(&paths.pid).ok().flatten()
}

/// Whether `pid` is a live `caddy run` with our bootstrap file: a pid file can outlive its
/// process, and the pid can be reused. A zombie (which this machine's init may never reap)
/// has an empty command line, so it counts as gone.
fn is_our_caddy(pid: u32, paths: &Paths) -> bool {
    let Some(args) = cmdline(pid) else {
        return false;
    };
    let argv0_is_caddy = args.first().is_some_and(|a| is_program(a, "caddy"));
    let bootstrap = paths.bootstrap.as_os_str().as_encoded_bytes();
    argv0_is_caddy && args.iter().any(|a| a == bootstrap)
}

fn wait_gone(pid: u32, paths: &Paths, limit: Duration) -> bool {
    wait_until_gone(limit, Duration::from_millis(50), || {
        is_our_caddy(pid, paths)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses_parse_and_stay_on_loopback() {
        assert_eq!(
            Admin::parse("127.0.0.1:2019").ok(),
            Some(Admin::Tcp("127.0.0.1:2019".into()))
        );
        assert_eq!(
            Admin::parse("http://localhost:2019/").ok(),
            Some(Admin::Tcp("localhost:2019".into()))
        );
        assert_eq!(
            Admin::parse("unix:///run/caddy/admin.sock").ok(),
            Some(Admin::Unix("/run/caddy/admin.sock".into()))
        );
        assert_eq!(
            Admin::parse("unix//run/caddy/admin.sock")
                .map(|a| a.listen())
                .ok(),
            Some("unix//run/caddy/admin.sock".to_string())
        );
        for bad in [
            "0.0.0.0:2019",
            "10.0.0.1:2019",
            ":2019",
            "127.0.0.1",
            "unix://rel.sock",
        ] {
            assert!(Admin::parse(bad).is_err(), "{bad}");
        }
    }
}
