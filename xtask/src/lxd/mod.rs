//! LXD chores for development and tests: `lxd-up`, `lxd-down` and `image`.
//!
//! `docs/lxd-setup.md` explains each step and what was measured. The chores talk to LXD over
//! its unix socket (`$LXD_DIR/unix.socket`, default `/var/lib/lxd/unix.socket`) with the
//! workspace's `lxd-client`, and run `lxd`, `apt-get`, `cargo`, `ldd` and `tar` with fixed
//! argument vectors: no shell strings.
//!
//! One module per concern: `install` (the Debian packages), `daemon` (starting it detached,
//! waiting until it is ready, stopping it), `init` (`lxd init --preseed`), `rootfs` (building
//! the test image's content) and `image` (importing it and pointing the alias at it).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use lxd_client::Client;

use crate::util::say;

mod daemon;
mod image;
mod init;
mod install;
mod rootfs;

pub use daemon::down;
pub use image::image;

/// Default image alias; `BOTCLUSTER_TEST_IMAGE` overrides it.
pub const DEFAULT_IMAGE_ALIAS: &str = "botcluster-botserver";

// ---------------------------------------------------------------------------------------------
// Where LXD lives

/// The paths of one LXD daemon, following `LXD_DIR` like `lxd` and `lxc` do, and clients
/// for its socket. The chores are synchronous; each LXD call blocks on a small runtime.
struct Lxd {
    dir: PathBuf,
    socket: PathBuf,
    log_dir: PathBuf,
    /// Written by `lxd-up` when it starts the daemon, read by `lxd-down`.
    pid_file: PathBuf,
    /// For reads: 30 s per request.
    reads: Client,
    /// For writes (an image upload among them): 300 s per request, and 300 s for the
    /// operation LXD runs in the background.
    writes: Client,
    rt: tokio::runtime::Runtime,
}

impl Lxd {
    fn from_env() -> Result<Self> {
        let custom = std::env::var_os("LXD_DIR").filter(|d| !d.is_empty());
        let dir = custom
            .clone()
            .map_or_else(|| PathBuf::from("/var/lib/lxd"), PathBuf::from);
        // LXD itself logs to $LXD_DIR/logs when LXD_DIR is set, else to /var/log/lxd.
        let log_dir = if custom.is_some() {
            dir.join("logs")
        } else {
            PathBuf::from("/var/log/lxd")
        };
        let socket = dir.join("unix.socket");
        let client = Client::unix(&socket)
            .with_context(|| format!("LXD client for {}", socket.display()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime for the LXD client")?;
        Ok(Lxd {
            reads: client.clone().with_request_timeout(Duration::from_secs(30)),
            writes: client
                .with_request_timeout(Duration::from_secs(300))
                .with_operation_timeout(Some(Duration::from_secs(300))),
            rt,
            socket,
            pid_file: dir.join("xtask-lxd.pid"),
            dir,
            log_dir,
        })
    }

    /// Runs one LXD call to its end.
    fn block_on<F: Future>(&self, call: F) -> F::Output {
        self.rt.block_on(call)
    }

    /// Whether a daemon answers `GET /1.0` on the socket (within 5 s).
    fn answers(&self) -> bool {
        let quick = self
            .reads
            .clone()
            .with_request_timeout(Duration::from_secs(5));
        self.block_on(quick.server()).is_ok()
    }
}

/// `Ok(None)` for LXD's "not found", so a check can tell "absent" from "failed".
fn found<T>(result: lxd_client::Result<T>) -> lxd_client::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(lxd_client::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether device options `device` have `key` set to `value`.
fn has(device: &BTreeMap<String, String>, key: &str, value: &str) -> bool {
    device.get(key).map(String::as_str) == Some(value)
}

/// The first 12 characters of a fingerprint or hash, as `lxc` shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

// ---------------------------------------------------------------------------------------------
// lxd-up

/// `cargo xtask lxd-up`: make LXD usable for botcluster's tests on this machine.
///
/// Expected flow:
/// 1. install `lxd` and `busybox-static` with apt-get when missing (as root on Debian);
/// 2. start the daemon, detached, unless its socket already answers (or the daemon it
///    recorded is alive but slow to answer: then wait for that one);
/// 3. `lxd init --preseed` unless pool `default` and a root disk in the default profile exist;
/// 4. `cargo xtask image`.
///
/// Guarantees: every step checks before it acts, so a second run changes nothing and says
/// "already …" for each step. Errors: a step that fails stops the chore with what to do next.
pub fn up(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "lxd-up takes no arguments, got {args:?}");
    let started = Instant::now();
    let lxd = Lxd::from_env()?;
    install::ensure_packages()?;
    daemon::ensure_daemon(&lxd)?;
    init::ensure_initialised(&lxd)?;
    image::build_and_import_image(&lxd)?;
    say(
        "lxd-up",
        format!("done in {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}
