//! Child processes that belong to one test: found on `PATH`, killed when dropped, and killed
//! by the kernel when the test's thread dies.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// The full path of `program` in one of `PATH`'s directories, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Makes the process `cmd` spawns die (SIGKILL) with the thread that spawns it, so a killed
/// test run leaves nothing behind (an operator recreating what the next run sweeps away, a
/// Caddy holding ports).
///
/// **Caveat**: Linux's `PR_SET_PDEATHSIG` fires when the spawning *thread* ends, not the
/// process: spawn from the test's own thread (a `#[tokio::test]` body runs on it), not from a
/// task that may run on a short-lived worker.
pub fn dies_with_this_test(cmd: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// A child process owned by a test: spawned with [`dies_with_this_test`], SIGKILLed and
/// reaped when dropped (also when the test panics).
pub struct Daemon {
    name: String,
    child: Child,
}

impl Daemon {
    /// Spawns `cmd`; `name` is what failure messages call it.
    ///
    /// # Panics
    /// When the program cannot be started (not found, not executable).
    pub fn spawn(name: &str, cmd: &mut Command) -> Daemon {
        let child = dies_with_this_test(cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({cmd:?}): {e}"));
        Daemon {
            name: name.to_owned(),
            child,
        }
    }

    /// Waits until `ready()` holds, checking every 20 ms.
    ///
    /// # Panics
    /// When the process exits first, or after `timeout`; the message ends with `log()` (the
    /// process's output, say).
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
        log: impl Fn() -> String,
    ) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                panic!("{} exited at start-up ({status}):\n{}", self.name, log());
            }
            if ready() {
                return;
            }
            if started.elapsed() > timeout {
                panic!(
                    "{}: {what} did not happen within {timeout:?}:\n{}",
                    self.name,
                    log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `addr` (HOST:PORT) accepts TCP connections; see [`Daemon::wait_until`].
    pub fn wait_listening(&mut self, addr: &str, timeout: Duration, log: impl Fn() -> String) {
        let what = format!("listening on {addr}");
        self.wait_until(&what, timeout, || TcpStream::connect(addr).is_ok(), log);
    }

    /// Waits until the unix socket at `path` accepts connections (the file appears at bind(),
    /// a moment before listen(), so existing is not enough); see [`Daemon::wait_until`].
    pub fn wait_unix_listening(
        &mut self,
        path: &Path,
        timeout: Duration,
        log: impl Fn() -> String,
    ) {
        let what = format!("listening on {}", path.display());
        let ready = || std::os::unix::net::UnixStream::connect(path).is_ok();
        self.wait_until(&what, timeout, ready, log);
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process's id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
