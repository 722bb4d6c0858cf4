//! LXD chores for development and tests: `lxd-up`, `lxd-down` and `image`.
//!
//! `docs/lxd-setup.md` explains each step and what was measured. The chores talk to LXD over
//! its unix socket (`$LXD_DIR/unix.socket`, default `/var/lib/lxd/unix.socket`) with the
//! workspace's `lxd-client`, and run `lxd`, `apt-get`, `cargo`, `ldd` and `tar` with fixed
//! argument vectors: no shell strings.

use std::collections::BTreeMap;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use lxd_client::{Client, ImageImport};
use sha2::{Digest, Sha256};

use crate::project_root;
use crate::util::{
    apt_install, cmdline, is_debian, is_program, is_root, kill, output, read_pid, run, say,
    target_dir, wait_until_gone, which, write_pid,
};

/// Default image alias; `BOTCLUSTER_TEST_IMAGE` overrides it.
pub const DEFAULT_IMAGE_ALIAS: &str = "botcluster-botserver";
/// The image property that records the content hash of what the image was built from.
const HASH_PROPERTY: &str = "botcluster.content_hash";
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// Where busybox init starts the sim; the first line brings loopback up, because a container
/// without a NIC starts with `lo` down and a proxy device could not reach 127.0.0.1:8080.
const INITTAB: &str = "\
::sysinit:/bin/busybox ip link set lo up
::respawn:/usr/bin/botserver-sim
";
const PRESEED_POOL: &str = "\
storage_pools:
- name: default
  driver: dir
";
const PRESEED_REST: &str = "\
config:
  images.auto_update_interval: \"0\"
networks: []
profiles:
- name: default
  description: Default LXD profile (botcluster xtask lxd-up)
  devices:
    root:
      path: /
      pool: default
      type: disk
";

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
// Shared libraries of an executable (ldd)

/// Whether `path` is a dynamically linked executable, and the files it loads if so
/// (shared libraries and the dynamic loader, as absolute paths).
fn shared_libraries(path: &Path) -> Result<Option<Vec<PathBuf>>> {
    let out = Command::new("ldd")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .context("running ldd (from libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if text.contains("statically linked") || err.contains("not a dynamic executable") {
        return Ok(None);
    }
    ensure!(
        out.status.success(),
        "ldd {} failed: {}",
        path.display(),
        err.trim()
    );
    parse_ldd(&text)
        .map(Some)
        .with_context(|| format!("ldd {}", path.display()))
}

/// The files named in `ldd` output. Lines look like
/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`
/// or `linux-vdso.so.1 (0x…)` (in the kernel, no file: skipped).
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let file = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match file {
            Some(f) if f.starts_with('/') => libs.push(PathBuf::from(f)),
            Some("not") => bail!("{}", line.trim()),
            _ => {}
        }
    }
    Ok(libs)
}

// ---------------------------------------------------------------------------------------------
// lxd-up

/// `cargo xtask lxd-up`: make LXD usable for botcluster's tests on this machine.
///
/// Expected flow:
/// 1. install `lxd` and `busybox-static` with apt-get when missing (as root on Debian);
/// 2. start the daemon, detached, unless its socket already answers;
/// 3. `lxd init --preseed` unless pool `default` and a root disk in the default profile exist;
/// 4. `cargo xtask image`.
///
/// Guarantees: every step checks before it acts, so a second run changes nothing and says
/// "already …" for each step. Errors: a step that fails stops the chore with what to do next.
pub fn up(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "lxd-up takes no arguments, got {args:?}");
    let started = Instant::now();
    let lxd = Lxd::from_env()?;
    ensure_packages()?;
    ensure_daemon(&lxd)?;
    ensure_initialised(&lxd)?;
    build_and_import_image(&lxd)?;
    say(
        "lxd-up",
        format!("done in {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

fn busybox_static_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
}

fn ensure_packages() -> Result<()> {
    let debian = is_debian();
    let mut missing = Vec::new();
    if which("lxd").is_none() {
        missing.push("lxd");
    }
    if debian && !busybox_static_installed() {
        missing.push("busybox-static");
    }
    if missing.is_empty() {
        say(
            "lxd-up",
            "packages: already installed (lxd, busybox-static)",
        );
        return Ok(());
    }
    if !(debian && is_root()) {
        bail!(
            "missing: {}. Install them with `sudo apt-get install {}` (Debian/Ubuntu) or your \
             distribution's packages, then run `cargo xtask lxd-up` again",
            missing.join(", "),
            missing.join(" ")
        );
    }
    say(
        "lxd-up",
        format!("packages: installing {}", missing.join(" ")),
    );
    apt_install("lxd-up", "packages", &missing)
}

fn ensure_daemon(lxd: &Lxd) -> Result<()> {
    if lxd.answers() {
        say(
            "lxd-up",
            format!("daemon: already running ({} answers)", lxd.socket.display()),
        );
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

fn ensure_initialised(lxd: &Lxd) -> Result<()> {
    let pool = found(lxd.block_on(lxd.reads.get_storage_pool("default")))?;
    let profile = found(lxd.block_on(lxd.reads.get_profile("default")))?
        .context("LXD has no default profile")?;
    let devices = profile.devices;
    let has_root = devices
        .values()
        .any(|d| has(d, "type", "disk") && has(d, "path", "/"));
    if let (Some(pool), true) = (&pool, has_root) {
        say(
            "lxd-up",
            format!(
                "init: already initialised (pool default, driver {}; default profile has a root disk)",
                Some(pool.driver.as_str()).filter(|d| !d.is_empty()).unwrap_or("?")
            ),
        );
        let nics: Vec<&String> = devices
            .iter()
            .filter(|(_, d)| has(d, "type", "nic"))
            .map(|(name, _)| name)
            .collect();
        if !nics.is_empty() {
            say(
                "lxd-up",
                format!(
                    "init: note: the default profile has NIC device(s) {nics:?}; left as they are"
                ),
            );
        }
        return Ok(());
    }
    // An existing pool is left alone (its driver cannot change); only what is missing is added.
    let preseed = if pool.is_none() {
        format!("{PRESEED_POOL}{PRESEED_REST}")
    } else {
        PRESEED_REST.to_string()
    };
    say(
        "lxd-up",
        "init: lxd init --preseed (pool default on dir, root disk in the default profile, no network)",
    );
    let mut child = Command::new("lxd")
        .args(["init", "--preseed"])
        .env("LXD_DIR", &lxd.dir)
        .stdin(Stdio::piped())
        .spawn()
        .context("running lxd init --preseed")?;
    child
        .stdin
        .take()
        .context("lxd init has no stdin")?
        .write_all(preseed.as_bytes())?;
    let status = child.wait()?;
    ensure!(status.success(), "lxd init --preseed failed: {status}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// lxd-down

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

// ---------------------------------------------------------------------------------------------
// image

/// `cargo xtask image`: build the busybox + botserver-sim test image and import it into LXD.
///
/// Guarantees: the image carries the sha256 of its content (rootfs and templates) in the
/// property `botcluster.content_hash`; when the alias already points at an image with the same
/// hash nothing is imported. When the content changed, the new image is imported, the alias
/// moved to it, and the old image deleted if no alias points at it any more.
pub fn image(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "image takes no arguments, got {args:?}");
    let lxd = Lxd::from_env()?;
    ensure!(
        lxd.answers(),
        "LXD does not answer on {}; run `cargo xtask lxd-up` first",
        lxd.socket.display()
    );
    build_and_import_image(&lxd)
}

fn image_alias() -> String {
    std::env::var("BOTCLUSTER_TEST_IMAGE")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE_ALIAS.to_string())
}

/// Whether the Rust standard library for `target` is installed.
fn rust_target_installed(target: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            let sysroot = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(target)
                .join("lib")
                .is_dir()
        })
}

/// Builds botserver-sim in release mode: static with musl when that target is installed.
fn build_sim() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "-p", "botserver-sim"])
        .current_dir(project_root());
    let (bin, how) = if rust_target_installed(MUSL_TARGET) {
        cmd.args(["--target", MUSL_TARGET]);
        (
            target_dir().join(MUSL_TARGET).join("release/botserver-sim"),
            "static (musl)",
        )
    } else {
        (
            target_dir().join("release/botserver-sim"),
            "dynamic (glibc; its libraries are copied in; install the musl target for a static build)",
        )
    };
    say("image", format!("building botserver-sim: {how}"));
    run(&mut cmd)?;
    ensure!(
        bin.is_file(),
        "cargo build did not produce {}",
        bin.display()
    );
    Ok(bin)
}

fn find_busybox() -> Result<PathBuf> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("no /bin/busybox; install busybox-static (`cargo xtask lxd-up` does)")?;
    ensure!(
        shared_libraries(&busybox)?.is_none(),
        "{} is dynamically linked; install busybox-static (it replaces the busybox package)",
        busybox.display()
    );
    Ok(busybox)
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Copies `from` (following symlinks) to the same absolute path under `rootfs`.
fn copy_in(rootfs: &Path, from: &Path, mode: u32) -> Result<()> {
    let rel = from.strip_prefix("/").unwrap_or(from);
    let content = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_file(&rootfs.join(rel), &content, mode)
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Lays out the image under `stage`: `metadata.yaml` is written later, with the hash.
fn build_rootfs(stage: &Path, busybox: &Path, sim: &Path) -> Result<()> {
    let rootfs = stage.join("rootfs");
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc/botserver", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("var/log", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    write_file(&rootfs.join("bin/busybox"), &fs::read(busybox)?, 0o755)?;
    // One symlink per applet, where busybox says it belongs (bin/sh, sbin/init, usr/bin/wc…).
    let applets = output(Command::new(busybox).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "bin/busybox" || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link).with_context(|| format!("linking {}", link.display()))?;
    }
    ensure!(
        rootfs.join("sbin/init").is_symlink(),
        "{} has no init applet",
        busybox.display()
    );

    let sim_content = fs::read(sim)?;
    write_file(&rootfs.join("usr/bin/botserver-sim"), &sim_content, 0o755)?;
    if let Some(libs) = shared_libraries(sim)? {
        for lib in libs {
            copy_in(&rootfs, &lib, 0o755)?;
        }
    }

    let etc = rootfs.join("etc");
    write_file(&etc.join("inittab"), INITTAB.as_bytes(), 0o644)?;
    write_file(
        &etc.join("passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    write_file(&etc.join("group"), b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    write_file(
        &etc.join("hosts"),
        b"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    // No /etc/hostname in the rootfs: LXD writes it from this template when an instance is
    // created or copied, and until then the sim falls back to the kernel hostname, which LXD
    // sets to the instance name too.
    write_file(
        &stage.join("templates/hostname.tpl"),
        b"{{ container.name }}\n",
        0o644,
    )?;
    Ok(())
}

/// sha256 over every path, type, mode, symlink target and file content under `dirs`.
fn content_hash(stage: &Path, dirs: &[&str]) -> Result<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            out.push(path.clone());
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out)?;
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    for dir in dirs {
        walk(&stage.join(dir), &mut paths)?;
    }
    paths.sort();
    let mut hash = Sha256::new();
    for path in paths {
        let meta = fs::symlink_metadata(&path)?;
        let rel = path.strip_prefix(stage).unwrap_or(&path);
        hash.update(rel.as_os_str().as_encoded_bytes());
        hash.update(format!("\0{:o}\0", meta.permissions().mode()));
        if meta.is_symlink() {
            hash.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            hash.update(fs::read(&path)?);
        }
        hash.update(b"\0");
    }
    // The metadata that is not per-build (everything but creation_date) counts too.
    hash.update(metadata_yaml(0, ""));
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn metadata_yaml(creation_date: u64, hash: &str) -> String {
    format!(
        "architecture: x86_64\n\
         creation_date: {creation_date}\n\
         properties:\n  \
           description: botcluster test botserver (botserver-sim on busybox)\n  \
           os: busybox\n  \
           release: botserver-sim\n  \
           {HASH_PROPERTY}: \"{hash}\"\n\
         templates:\n  \
           /etc/hostname:\n    \
             when:\n    \
             - create\n    \
             - copy\n    \
             template: hostname.tpl\n"
    )
}

fn build_and_import_image(lxd: &Lxd) -> Result<()> {
    let alias = image_alias();
    let sim = build_sim()?;
    let busybox = find_busybox()?;
    // Per process, so two engineers running `image` at once do not build into each other.
    let scratch = Scratch(
        target_dir()
            .join("lxd-image")
            .join(std::process::id().to_string()),
    );
    let _ = fs::remove_dir_all(&scratch.0);
    let stage = scratch.0.join("stage");
    build_rootfs(&stage, &busybox, &sim)?;
    let hash = content_hash(&stage, &["rootfs", "templates"])?;

    // What the alias points at now, and whether an image with this content is already there.
    let current = found(lxd.block_on(lxd.reads.get_image_alias(&alias)))?.map(|a| a.target);
    let images = lxd.block_on(lxd.reads.list_images())?;
    let same = images
        .iter()
        .find(|img| img.properties.get(HASH_PROPERTY) == Some(&hash))
        .map(|img| img.fingerprint.clone());
    if let (Some(cur), Some(same)) = (&current, &same) {
        if cur == same {
            say(
                "image",
                format!(
                    "already imported: {alias} -> {} (content {})",
                    short(cur),
                    short(&hash)
                ),
            );
            return Ok(());
        }
    }

    let fingerprint = match same {
        Some(fp) => {
            say(
                "image",
                format!(
                    "image with content {} exists as {}; reusing it",
                    short(&hash),
                    short(&fp)
                ),
            );
            fp
        }
        None => import(lxd, &stage, &scratch.0.join("image.tar.gz"), &hash)?,
    };
    let description = format!("botcluster test image, content sha256 {hash}");
    match &current {
        Some(_) => lxd.block_on(
            lxd.writes
                .put_image_alias(&alias, &fingerprint, &description),
        )?,
        None => lxd.block_on(
            lxd.writes
                .create_image_alias(&alias, &fingerprint, &description),
        )?,
    };
    say(
        "image",
        format!(
            "alias {alias} -> {} (content {})",
            short(&fingerprint),
            short(&hash)
        ),
    );

    // The image the alias used to point at goes, unless something else still names it.
    if let Some(old) = current.filter(|old| *old != fingerprint) {
        let left = found(lxd.block_on(lxd.reads.get_image(&old)))?;
        let aliases = left.as_ref().map_or(0, |img| img.aliases.len());
        if left.is_some() && aliases == 0 {
            lxd.block_on(lxd.writes.delete_image(&old))?;
            say("image", format!("deleted superseded image {}", short(&old)));
        }
    }
    Ok(())
}

/// Tars the stage (metadata.yaml, templates/, rootfs/ — a "unified" image) and uploads it.
fn import(lxd: &Lxd, stage: &Path, tarball: &Path, hash: &str) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    write_file(
        &stage.join("metadata.yaml"),
        metadata_yaml(now, hash).as_bytes(),
        0o644,
    )?;
    run(Command::new("tar")
        .args([
            "--create",
            "--gzip",
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--file",
        ])
        .arg(tarball)
        .arg("-C")
        .arg(stage)
        .args(["metadata.yaml", "templates", "rootfs"]))?;
    let bytes = fs::read(tarball)?;
    let t = Instant::now();
    say(
        "image",
        format!(
            "importing {} ({:.1} MB)",
            tarball.display(),
            bytes.len() as f64 / 1e6
        ),
    );
    // No aliases here: the caller points (or moves) the alias once the image is in.
    let fingerprint = lxd.block_on(lxd.writes.import_image(bytes, &ImageImport::default()))?;
    say(
        "image",
        format!(
            "imported {} in {:.2} s",
            short(&fingerprint),
            t.elapsed().as_secs_f64()
        ),
    );
    Ok(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inittab_brings_loopback_up_first() {
        assert_eq!(
            INITTAB.lines().next(),
            Some("::sysinit:/bin/busybox ip link set lo up")
        );
    }

    #[test]
    fn metadata_names_the_hash_and_the_hostname_template() {
        let yaml = metadata_yaml(7, "abc");
        assert!(yaml.contains("architecture: x86_64\n"));
        assert!(yaml.contains("creation_date: 7\n"));
        assert!(yaml.contains("  botcluster.content_hash: \"abc\"\n"));
        assert!(yaml.contains(
            "  /etc/hostname:\n    when:\n    - create\n    - copy\n    template: hostname.tpl\n"
        ));
    }

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libfoo.so.1 => not found"));
    }
}
