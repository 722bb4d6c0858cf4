//! PostgreSQL chores for development and tests: `pg-up` and `pg-down`.
//!
//! `pg-up` installs Debian's `postgresql` when it is missing, creates a private cluster with
//! `initdb` in `target/postgres/data` (`$CARGO_TARGET_DIR/postgres/data`), starts it with
//! `pg_ctl` (no systemd), listening on 127.0.0.1 only and on a unix socket in
//! `target/postgres/run`, creates the operator's role, and prints the connection URL as the
//! **last line** of its output, so `URL=$(cargo xtask pg-up | tail -n1)` works. As root the
//! server runs as the `postgres` user (PostgreSQL refuses to run as root). `pg-down` stops the
//! cluster that `pg-up` started, and nothing else.
//!
//! The port is fixed (`54329`, or `$BOTCLUSTER_PG_PORT`) and so are the role and its
//! password (`botcluster` / `botcluster`): this is a throw-away cluster for tests on loopback,
//! and a fixed URL lets every checkout's tests find it. Programs run with fixed argument
//! vectors; no value reaches a shell.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::util::{apt_install, is_debian, is_root, output, say, tail, target_dir};

/// The port when `BOTCLUSTER_PG_PORT` is not set.
pub const DEFAULT_PORT: u16 = 54329;
const PORT_ENV: &str = "BOTCLUSTER_PG_PORT";
/// The operator's role; a dev-only password, documented in `docs/sharding.md`.
pub const ROLE: &str = "botcluster";
const PASSWORD: &str = "botcluster";
const UP: &str = "pg-up";
const DOWN: &str = "pg-down";

/// The URL the operator and the tests connect with.
pub fn url(port: u16) -> String {
    format!("postgres://{ROLE}:{PASSWORD}@127.0.0.1:{port}/postgres")
}

fn port() -> Result<u16> {
    crate::util::port_from_env(PORT_ENV, DEFAULT_PORT)
}

struct Paths {
    dir: PathBuf,
    data: PathBuf,
    run: PathBuf,
    log: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let dir = target_dir().join("postgres");
        Paths {
            data: dir.join("data"),
            run: dir.join("run"),
            log: dir.join("postgres.log"),
            dir,
        }
    }
}

/// The server's binaries (`initdb`, `pg_ctl`, `psql`…) of the newest installed major version.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn ensure_installed() -> Result<PathBuf> {
    if let Some(bin) = bin_dir() {
        say(UP, format!("binaries: {}", bin.display()));
        return Ok(bin);
    }
    if !(is_debian() && is_root()) {
        bail!(
            "PostgreSQL's server is not installed. Install it with `sudo apt-get install \
             postgresql` (Debian/Ubuntu), then run `cargo xtask pg-up` again"
        );
    }
    say(
        UP,
        "binaries: none in /usr/lib/postgresql; running apt-get install postgresql (its \
         systemd unit and default cluster are not used)",
    );
    apt_install(UP, "binaries", &["--no-install-recommends", "postgresql"])?;
    let bin = bin_dir()
        .context("apt-get installed postgresql, but /usr/lib/postgresql/*/bin/initdb is missing")?;
    say(UP, format!("binaries: {}", bin.display()));
    Ok(bin)
}

/// The `postgres` user's uid and gid when we are root (the server refuses to run as root).
fn server_user() -> Result<Option<(u32, u32)>> {
    if !is_root() {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("running as root, but there is no `postgres` user to run the server as; install Debian's postgresql package (it creates one)")?;
    let fields: Vec<&str> = line.split(':').collect();
    let uid = fields.get(2).and_then(|v| v.parse().ok());
    let gid = fields.get(3).and_then(|v| v.parse().ok());
    match (uid, gid) {
        (Some(u), Some(g)) => Ok(Some((u, g))),
        _ => bail!("/etc/passwd: cannot read the postgres user's uid and gid from `{line}`"),
    }
}

/// `program` from `bin`, run as the server's user when we are root.
fn pg_command(bin: &Path, program: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn chown(path: &Path, user: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown postgres {}", path.display()))?;
    }
    Ok(())
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The pid in the data directory's `postmaster.pid`, when that process still runs postgres.
fn running_pid(paths: &Paths) -> Option<u32> {
    let text = fs::read_to_string(paths.data.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let argv0 = crate::util::cmdline(pid)?.into_iter().next()?;
    crate::util::is_program(&argv0, "postgres").then_some(pid)
}

// ---------------------------------------------------------------------------------------------
// pg-up

/// `cargo xtask pg-up`: a private PostgreSQL on 127.0.0.1, its URL on the last line.
pub fn up(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "pg-up takes no arguments, got {args:?}");
    let port = port()?;
    let paths = Paths::new();
    let bin = ensure_installed()?;
    let user = server_user()?;

    if let Some(pid) = running_pid(&paths) {
        say(
            UP,
            format!("already running: pid {pid} serves {}", paths.data.display()),
        );
    } else if answers(port) {
        // Another checkout's pg-up (same fixed port and credentials), or a stranger: the role
        // check below tells which.
        say(
            UP,
            format!(
                "127.0.0.1:{port} already answers, not from {}; checking it takes the operator's role",
                paths.data.display()
            ),
        );
        check_role(&bin, port)?;
        println!("{}", url(port));
        return Ok(());
    } else {
        init(&bin, user, &paths, port)?;
        start(&bin, user, &paths, port)?;
    }
    ensure_role(&bin, user, &paths, port)?;
    check_role(&bin, port)?;
    println!("{}", url(port));
    Ok(())
}

/// `initdb` once; the listening settings are rewritten on every start.
fn init(bin: &Path, user: Option<(u32, u32)>, paths: &Paths, port: u16) -> Result<()> {
    for dir in [&paths.dir, &paths.run] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        chown(dir, user)?;
    }
    fs::set_permissions(&paths.run, fs::Permissions::from_mode(0o700))?;
    if paths.data.join("PG_VERSION").is_file() {
        say(UP, format!("cluster: {} exists", paths.data.display()));
    } else {
        fs::create_dir_all(&paths.data)?;
        chown(&paths.data, user)?;
        fs::set_permissions(&paths.data, fs::Permissions::from_mode(0o700))?;
        let t = Instant::now();
        output(
            pg_command(bin, "initdb", user)
                .arg("--pgdata")
                .arg(&paths.data)
                .args(["--username=postgres", "--encoding=UTF8", "--locale=C"])
                // The superuser only over the unix socket (mode 0700 directory); everyone
                // else with a password over TCP on loopback.
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"]),
        )?;
        say(
            UP,
            format!(
                "cluster: initdb {} in {:.1} s",
                paths.data.display(),
                t.elapsed().as_secs_f64()
            ),
        );
        let conf = paths.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)?;
        text.push_str("\n# Added by cargo xtask pg-up\ninclude_if_exists = 'botcluster.conf'\n");
        fs::write(&conf, text)?;
    }
    let ours = format!(
        "# Written by cargo xtask pg-up on every start.\nlisten_addresses = '127.0.0.1'\n\
         port = {port}\nunix_socket_directories = '{}'\n",
        paths.run.display().to_string().replace('\'', "''")
    );
    let file = paths.data.join("botcluster.conf");
    fs::write(&file, ours)?;
    chown(&file, user)?;
    Ok(())
}

fn start(bin: &Path, user: Option<(u32, u32)>, paths: &Paths, port: u16) -> Result<()> {
    let t = Instant::now();
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("opening {}", paths.log.display()))?;
    chown(&paths.log, user)?;
    say(
        UP,
        format!(
            "start: pg_ctl start on 127.0.0.1:{port}, logging to {}",
            paths.log.display()
        ),
    );
    let status = pg_command(bin, "pg_ctl", user)
        .arg("--pgdata")
        .arg(&paths.data)
        .arg("--log")
        .arg(&paths.log)
        .args(["--wait", "--timeout=30", "start"])
        // Its own process group: Ctrl-C on the xtask does not reach the server.
        .process_group(0)
        .stdout(Stdio::null())
        .status()
        .context("running pg_ctl start")?;
    if !status.success() {
        bail!(
            "pg_ctl start failed ({status}); last lines of {}:\n{}",
            paths.log.display(),
            tail(&paths.log, 10)
        );
    }
    say(
        UP,
        format!("ready after {:.2} s", t.elapsed().as_secs_f64()),
    );
    Ok(())
}

/// Creates (or repairs) the operator's role over the superuser's unix socket.
fn ensure_role(bin: &Path, user: Option<(u32, u32)>, paths: &Paths, port: u16) -> Result<()> {
    // Constants only: no user value is pasted into this SQL.
    let sql = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN \
             CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'; \
             RAISE NOTICE 'created'; \
           ELSE \
             ALTER ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'; \
           END IF; END $$;"
    );
    let out = pg_command(bin, "psql", user)
        .arg("--host")
        .arg(&paths.run)
        .args(["--port", &port.to_string()])
        .args([
            "--username=postgres",
            "--dbname=postgres",
            "--no-psqlrc",
            "--quiet",
        ])
        .args(["--set=ON_ERROR_STOP=1", "--command", &sql])
        .output()
        .context("running psql to create the operator's role")?;
    ensure!(
        out.status.success(),
        "creating role {ROLE} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let created = String::from_utf8_lossy(&out.stderr).contains("created");
    say(
        UP,
        format!(
            "role: {ROLE} (LOGIN CREATEDB) {}",
            if created { "created" } else { "exists" }
        ),
    );
    Ok(())
}

/// Logs in over TCP as the operator would.
fn check_role(bin: &Path, port: u16) -> Result<()> {
    let out = Command::new(bin.join("psql"))
        .arg(url(port))
        .args(["--no-psqlrc", "--tuples-only", "--no-align"])
        .args(["--command", "SELECT current_user, version()"])
        .stdin(Stdio::null())
        .output()
        .context("running psql to check the operator's login")?;
    ensure!(
        out.status.success(),
        "127.0.0.1:{port} does not take the operator's login ({ROLE}): {}; stop whatever holds \
         the port or choose another with {PORT_ENV}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split('|')
        .nth(1)
        .and_then(|v| v.split(" on ").next())
        .unwrap_or("?");
    say(UP, format!("login: {ROLE} over TCP works ({version})"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// pg-down

/// `cargo xtask pg-down`: stops the cluster in `target/postgres/data`, and nothing else.
pub fn down(args: &[&str]) -> Result<()> {
    ensure!(args.is_empty(), "pg-down takes no arguments, got {args:?}");
    let paths = Paths::new();
    let Some(pid) = running_pid(&paths) else {
        say(
            DOWN,
            format!("already down: no server runs from {}", paths.data.display()),
        );
        return Ok(());
    };
    let bin = bin_dir().context("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")?;
    let t = Instant::now();
    say(
        DOWN,
        format!("stopping postgres (pid {pid}) with pg_ctl stop -m fast"),
    );
    let out = pg_command(&bin, "pg_ctl", server_user()?)
        .arg("--pgdata")
        .arg(&paths.data)
        .args(["--mode=fast", "--wait", "--timeout=30", "stop"])
        .output()
        .context("running pg_ctl stop")?;
    ensure!(
        out.status.success(),
        "pg_ctl stop failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    say(
        DOWN,
        format!(
            "stopped in {:.2} s (data kept in {})",
            t.elapsed().as_secs_f64(),
            paths.data.display()
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_url_names_the_role_loopback_and_the_port() {
        assert_eq!(
            super::url(54329),
            "postgres://botcluster:botcluster@127.0.0.1:54329/postgres"
        );
    }
}
