//! Process helpers the daemon chores share: running commands, finding programs, apt-get,
//! and the pid files that let `*-down` stop only what `*-up` started.
//!
//! Commands always run with fixed argument vectors, never through a shell.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::project_root;

/// Prints one progress line, prefixed with the chore's name.
pub fn say(chore: &str, msg: impl AsRef<str>) {
    println!("{chore}: {}", msg.as_ref());
}

/// Runs `cmd`, failing with its name and exit status when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    ensure!(status.success(), "{shown} failed: {status}");
    Ok(())
}

/// Runs `cmd` and returns its stdout, failing with its stderr when it fails.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    ensure!(
        out.status.success(),
        "{shown} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The full path of `program` on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A port from environment variable `var` (1024 to 65535), or `default` when unset or empty.
pub fn port_from_env(var: &str, default: u16) -> Result<u16> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p >= 1024)
            .with_context(|| format!("{var}={v}: expected a port number from 1024 to 65535")),
        _ => Ok(default),
    }
}

/// Whether this is a Debian-like system (where the chores may use apt-get).
pub fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists()
}

/// `apt-get install -y -q ARGS…`; when that fails, `apt-get update` and one retry, because a
/// fresh machine may not have package lists yet. `step` prefixes the retry message.
pub fn apt_install(chore: &str, step: &str, args: &[&str]) -> Result<()> {
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if install().is_err() {
        say(
            chore,
            format!("{step}: install failed; running apt-get update and retrying"),
        );
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install()?;
    }
    Ok(())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace when relative,
/// as cargo reads it), else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| project_root().join("target"), |d| project_root().join(d))
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Pid files and the processes they name

/// Records `pid` in `path`, as `*-up` does for the daemon it starts.
pub fn write_pid(path: &Path, pid: u32) -> Result<()> {
    fs::write(path, format!("{pid}\n")).with_context(|| format!("writing {}", path.display()))
}

/// The pid recorded in `path`: `Ok(None)` when there is no such file, an error when it
/// holds something else than a pid.
pub fn read_pid(path: &Path) -> Result<Option<u32>> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(None);
    };
    let pid = text
        .trim()
        .parse::<u32>()
        .with_context(|| format!("{} does not hold a pid", path.display()))?;
    Ok(Some(pid))
}

/// The command line of process `pid`, split at its NULs, or `None` when there is no such
/// process. A pid file can outlive its process and the pid can be reused, so callers check
/// what runs under it; a zombie (which this machine's init may never reap) has an empty
/// command line, so it matches no program.
pub fn cmdline(pid: u32) -> Option<Vec<Vec<u8>>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect())
}

/// Whether `argv0` is `program`, bare or as a path ending in `/program`.
pub fn is_program(argv0: &[u8], program: &str) -> bool {
    let name = program.as_bytes();
    argv0 == name || (argv0.ends_with(name) && argv0[..argv0.len() - name.len()].ends_with(b"/"))
}

/// Sends `signal` (`TERM`, `KILL`…) to `pid` with kill(1).
pub fn kill(pid: u32, signal: &str) -> Result<()> {
    run(Command::new("kill").args([format!("-{signal}"), pid.to_string()]))
}

/// Polls `alive` every `poll` until it says no (→ `true`) or `limit` passes (→ `false`).
pub fn wait_until_gone(limit: Duration, poll: Duration, mut alive: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if !alive() {
            return true;
        }
        sleep(poll);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_match_bare_or_as_a_path_and_nothing_else() {
        assert!(is_program(b"lxd", "lxd"));
        assert!(is_program(b"/usr/bin/caddy", "caddy"));
        assert!(!is_program(b"/usr/bin/notcaddy", "caddy"));
        assert!(!is_program(b"", "lxd"));
    }

    #[test]
    fn a_missing_pid_file_is_none_and_garbage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("xtask-util-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.pid");
        assert!(read_pid(&file).unwrap().is_none());
        write_pid(&file, 42).unwrap();
        assert_eq!(read_pid(&file).unwrap(), Some(42));
        fs::write(&file, "nope").unwrap();
        assert!(read_pid(&file).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
