//! Redis chores for tests: `redis-up` and `redis-down`.
//!
//! `redis-up` installs Debian's `redis-server` when missing (its service is not started: the
//! machine's `policy-rc.d` or the absence of systemd), runs a private one detached on
//! **127.0.0.1:56379** (`$BOTCLUSTER_REDIS_PORT`) with no persistence, everything under
//! `target/redis/`, checks it answers `PING`, and prints its `host:port` as the last line.
//! Idempotent. `redis-down` stops the one `redis-up` started, and nothing else. Programs run
//! with fixed argument vectors.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::util::{
    apt_install, cmdline, is_debian, is_program, is_root, kill, read_pid, say, tail, target_dir,
    wait_until_gone, which, write_pid,
};

/// The port when `BOTCLUSTER_REDIS_PORT` is not set.
pub const DEFAULT_PORT: u16 = 56379;
const PORT_ENV: &str = "BOTCLUSTER_REDIS_PORT";
const UP: &str = "redis-up";
const DOWN: &str = "redis-down";

fn port() -> Result<u16> {
    crate::util::port_from_env(PORT_ENV, DEFAULT_PORT)
}

/// `PING` answered with `+PONG`.
fn pings(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].starts_with(b"+PONG")
}

struct Paths {
    dir: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

fn paths() -> Paths {
    let dir = target_dir().join("redis");
    Paths {
        pid: dir.join("redis-up.pid"),
        log: dir.join("redis.log"),
        dir,
    }
}

fn ours(pid: u32) -> bool {
    cmdline(pid)
        .and_then(|argv| argv.into_iter().next())
        .is_some_and(|argv0| {
            is_program(&argv0, "redis-server") || argv0.starts_with(b"/usr/bin/redis-server")
        })
}

/// `cargo xtask redis-up`.
pub fn up(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "redis-up takes no arguments, got {args:?}");
    let port = port()?;
    let p = paths();
    if pings(port) {
        say(
            UP,
            format!("already running: 127.0.0.1:{port} answers PING; nothing changed"),
        );
        println!("127.0.0.1:{port}");
        return Ok(());
    }
    let server = match which("redis-server") {
        Some(s) => s,
        None => {
            if !(is_debian() && is_root()) {
                bail!("redis-server is not installed; run `sudo apt-get install redis-server`, then `cargo xtask redis-up` again");
            }
            say(UP, "binary: redis-server not found; running apt-get install redis-server (its service is not used)");
            apt_install(UP, "binary", &["--no-install-recommends", "redis-server"])?;
            which("redis-server")
                .context("apt-get installed redis-server, but it is not on PATH")?
        }
    };
    fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)?;
    let t = Instant::now();
    let child = Command::new(&server)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&p.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    write_pid(&p.pid, child.id())?;
    while t.elapsed() < Duration::from_secs(10) {
        if pings(port) {
            say(
                UP,
                format!(
                    "ready after {:.2} s: pid {} on 127.0.0.1:{port}",
                    t.elapsed().as_secs_f64(),
                    child.id()
                ),
            );
            println!("127.0.0.1:{port}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("redis-server started but 127.0.0.1:{port} did not answer PING within 10 s; last lines of {}:\n{}", p.log.display(), tail(&p.log, 10))
}

/// `cargo xtask redis-down`.
pub fn down(args: &[&str]) -> Result<()> {
    ensure!(
        args.is_empty(),
        "redis-down takes no arguments, got {args:?}"
    );
    let p = paths();
    let Some(pid) = read_pid(&p.pid)?.filter(|pid| ours(*pid)) else {
        say(DOWN, "already down: no redis-server that redis-up started");
        let _ = fs::remove_file(&p.pid);
        return Ok(());
    };
    kill(pid, "TERM")?;
    if !wait_until_gone(Duration::from_secs(10), Duration::from_millis(50), || {
        ours(pid)
    }) {
        kill(pid, "KILL")?;
    }
    let _ = fs::remove_file(&p.pid);
    say(DOWN, format!("stopped redis-server (pid {pid})"));
    Ok(())
}
