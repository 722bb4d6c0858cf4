//! The LXD daemon itself: starting it detached and waiting until it is ready (`lxd-up`),
//! and stopping the one `lxd-up` started (`lxd-down`).

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::Lxd;
use crate::util::{cmdline, is_program, kill, read_pid, run, say, wait_until_gone, write_pid};

pub(super) fn ensure_daemon(lxd: &Lxd) -> Result<()> {
    if lxd.answers() {
        say(
            "lxd-up",
            format!("daemon: already running ({} answers)", lxd.socket.display()),
        );
        return Ok(());
    }
    // A daemon can be alive and still miss the 5 s probe: LXD 5.0.2 stalls its API now and then
    // while a container start hangs in its hooks. Starting a second daemon would only fail
    // ("LXD is already running") and, on the way out, delete the live one's pid file.
    if let Some(pid) = read_pid(&lxd.pid_file)
        .ok()
        .flatten()
        .filter(|&pid| is_lxd_process(pid))
    {
        say(
            "lxd-up",
            format!(
                "daemon: pid {pid} (recorded in {}) runs but did not answer within 5 s; waiting \
                 for it with `lxd waitready --timeout 60`",
                lxd.pid_file.display()
            ),
        );
        run(Command::new("lxd")
            .args(["waitready", "--timeout", "60"])
            .env("LXD_DIR", &lxd.dir)
            .stdin(Stdio::null()))
        .with_context(|| {
            format!(
                "lxd (pid {pid}) runs but is not ready; see {} or stop it with \
                 `cargo xtask lxd-down`",
                lxd.log_dir.join("lxd.log").display()
            )
        })?;
        say("lxd-up", format!("daemon: pid {pid} answers now"));
        return Ok(());
    }
    let t = Instant::now();
    fs::create_dir_all(&lxd.dir).with_context(|| format!("creating {}", lxd.dir.display()))?;
    fs::create_dir_all(&lxd.log_dir)
        .with_context(|| format!("creating {}", lxd.log_dir.display()))?;
    let log = lxd.log_dir.join("lxd.log");
    let out_path = lxd.log_dir.join("lxd.stdout.log");
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .with_context(|| format!("opening {}", out_path.display()))?;
    say(
        "lxd-up",
        format!(
            "daemon: starting `lxd --group root --logfile {}` (instance-type fetch sent to a \
             closed proxy on 127.0.0.1:9)",
            log.display()
        ),
    );
    let mut daemon = Command::new("lxd");
    daemon
        .args(["--group", "root", "--logfile"])
        .arg(&log)
        // LXD fetches instance types from the internet at start-up; this makes that fail at
        // once on loopback instead of going out (LXD never proxies loopback addresses).
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        // An inherited NO_PROXY=* would send the fetch straight out again.
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("LXD_DIR", &lxd.dir)
        // Detached: no inherited pipes (a caller waiting for our output would wait for LXD
        // too), and its own process group, so Ctrl-C on the xtask does not reach it.
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let mut child = daemon.spawn().context("starting lxd")?;
    write_pid(&lxd.pid_file, child.id())?;

    let mut waitready = Command::new("lxd")
        .args(["waitready", "--timeout", "60"])
        .env("LXD_DIR", &lxd.dir)
        .stdin(Stdio::null())
        .spawn()
        .context("running lxd waitready")?;
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = waitready.kill();
            let _ = waitready.wait();
            let _ = fs::remove_file(&lxd.pid_file);
            bail!(
                "lxd exited at start-up ({status}); see {} and {}",
                log.display(),
                out_path.display()
            );
        }
        if let Some(status) = waitready.try_wait()? {
            ensure!(
                status.success(),
                "`lxd waitready --timeout 60` failed ({status}); see {}",
                log.display()
            );
            break;
        }
        sleep(Duration::from_millis(100));
    }
    say(
        "lxd-up",
        format!(
            "daemon: ready after {:.1} s (pid {}, recorded in {})",
            t.elapsed().as_secs_f64(),
            child.id(),
            lxd.pid_file.display()
        ),
    );
    // `child` is not waited for: the daemon outlives this process on purpose.
    Ok(())
}

/// `cargo xtask lxd-down`: stop the daemon that `lxd-up` started.
///
/// Only a daemon recorded in `$LXD_DIR/xtask-lxd.pid` is stopped, with `lxd shutdown` (which
/// stops its instances first), then SIGTERM if it is still there. A daemon started some other
/// way is left alone.
pub fn down(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "lxd-down takes no arguments, got {args:?}");
    let lxd = Lxd::from_env()?;
    let pid = match read_pid(&lxd.pid_file)? {
        Some(pid) => pid,
        None => {
            let running = if lxd.answers() {
                format!(
                    "; a daemon answers on {}, started some other way: left alone \
                     (stop it with `lxd shutdown`)",
                    lxd.socket.display()
                )
            } else {
                String::new()
            };
            say(
                "lxd-down",
                format!("already down: no {}{running}", lxd.pid_file.display()),
            );
            return Ok(());
        }
    };
    if !is_lxd_process(pid) {
        say(
            "lxd-down",
            format!("already down: pid {pid} is not an lxd daemon any more"),
        );
        fs::remove_file(&lxd.pid_file)?;
        return Ok(());
    }
    let t = Instant::now();
    say(
        "lxd-down",
        format!("stopping lxd (pid {pid}) with `lxd shutdown --timeout 60`"),
    );
    let shutdown = Command::new("lxd")
        .args(["shutdown", "--timeout", "60"])
        .env("LXD_DIR", &lxd.dir)
        .stdin(Stdio::null())
        .status();
    if !wait_gone(pid, Duration::from_secs(30)) {
        say(
            "lxd-down",
            format!("lxd shutdown did not stop it ({shutdown:?}); sending SIGTERM to {pid}"),
        );
        kill(pid, "TERM")?;
        ensure!(
            wait_gone(pid, Duration::from_secs(30)),
            "lxd (pid {pid}) is still running 30 s after SIGTERM"
        );
    }
    fs::remove_file(&lxd.pid_file)?;
    say(
        "lxd-down",
        format!("stopped in {:.1} s", t.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// Whether `pid` is a live `lxd` process (a zombie has an empty command line).
fn is_lxd_process(pid: u32) -> bool {
    cmdline(pid).is_some_and(|args| args.first().is_some_and(|argv0| is_program(argv0, "lxd")))
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    wait_until_gone(limit, Duration::from_millis(100), || is_lxd_process(pid))
}
