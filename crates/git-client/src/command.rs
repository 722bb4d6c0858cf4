//! Running git: never through a shell, with a clean environment, a timeout that kills the
//! whole process group, and stderr kept for the error.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::url::{printable, Scheme};
use crate::GitError;

/// Configuration every git call gets (`-c` before the subcommand): no hooks, no credential
/// helpers, no detached background maintenance that would outlive the call.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "credential.helper=",
    "gc.autoDetach=false",
    "maintenance.autoDetach=false",
    "protocol.version=2",
    "core.fsmonitor=false",
    "advice.detachedHead=false",
];

/// How a call authenticates; paths are on the operator's side, never from a spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// An SSH private key (`ssh -i`), used with `known_hosts` and `BatchMode`.
    pub ssh_key: Option<std::path::PathBuf>,
    /// The `known_hosts` file for SSH (strict host key checking); required with `ssh_key`.
    pub known_hosts: Option<std::path::PathBuf>,
    /// A bearer token for HTTPS, sent as an `Authorization` header through the environment
    /// (never on the command line, where `ps` would show it).
    pub https_token: Option<String>,
}

impl Credentials {
    /// Whether any credential is set.
    pub fn is_empty(&self) -> bool {
        self.ssh_key.is_none() && self.known_hosts.is_none() && self.https_token.is_none()
    }
}

/// One git invocation.
pub(crate) struct Call<'a> {
    pub program: &'a Path,
    pub op: &'static str,
    pub target: String,
    pub args: Vec<OsString>,
    pub dir: Option<&'a Path>,
    pub scheme: Option<Scheme>,
    pub credentials: Option<&'a Credentials>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub max_stdout: usize,
}

/// The last `n` characters of stderr, on one line, printable.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let s = printable(&joined.join(" | "));
    let n = s.chars().count();
    if n > 600 {
        s.chars().skip(n - 600).collect()
    } else {
        s
    }
}

fn shell_safe(p: &Path) -> Result<String, GitError> {
    let s = p.to_string_lossy().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        Ok(s)
    } else {
        Err(GitError::Invalid {
            what: "credentials path",
            reason: format!(
                "\"{}\" may hold only letters, digits and /._-+",
                printable(&s)
            ),
        })
    }
}

impl Call<'_> {
    /// Runs the call; returns stdout on exit status 0.
    pub async fn run(self) -> Result<Vec<u8>, GitError> {
        let mut cmd = tokio::process::Command::new(self.program);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("LANG", "C")
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env(
                "GIT_ALLOW_PROTOCOL",
                self.scheme.map(Scheme::allowed_protocol).unwrap_or("file"),
            )
            .env("GIT_ASKPASS", "/bin/false")
            .env("SSH_ASKPASS", "/bin/false");
        if self.scheme == Some(Scheme::Ssh) {
            // GIT_SSH_COMMAND goes through a shell: only operator-side paths of safe characters.
            let mut ssh = String::from("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes");
            if let Some(c) = self.credentials {
                if let Some(k) = &c.ssh_key {
                    ssh.push_str(&format!(" -o IdentitiesOnly=yes -i {}", shell_safe(k)?));
                }
                if let Some(h) = &c.known_hosts {
                    ssh.push_str(&format!(" -o UserKnownHostsFile={}", shell_safe(h)?));
                }
            }
            cmd.env("GIT_SSH_COMMAND", ssh)
                .env("GIT_SSH_VARIANT", "ssh");
        }
        if self.scheme == Some(Scheme::Https) {
            if let Some(t) = self.credentials.and_then(|c| c.https_token.as_deref()) {
                if t.chars().any(|c| c.is_control()) {
                    return Err(GitError::Invalid {
                        what: "https token",
                        reason: "contains control characters".into(),
                    });
                }
                cmd.env("GIT_CONFIG_COUNT", "1")
                    .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                    .env("GIT_CONFIG_VALUE_0", format!("Authorization: Bearer {t}"));
            }
        }
        for c in CONFIG {
            cmd.arg("-c").arg(c);
        }
        if let Some(d) = self.dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| GitError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        let pid = child.id();
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let input = self.stdin;
        let max = self.max_stdout;
        let work = async move {
            let feed = async {
                if let (Some(mut w), Some(data)) = (stdin.take(), input) {
                    let _ = w.write_all(&data).await;
                    let _ = w.shutdown().await;
                }
            };
            let read_out = async {
                let mut buf = Vec::new();
                if let Some(r) = stdout.as_mut() {
                    let mut limited = r.take(max as u64 + 1);
                    let _ = limited.read_to_end(&mut buf).await;
                }
                buf
            };
            let read_err = async {
                let mut buf = Vec::new();
                if let Some(r) = stderr.as_mut() {
                    let mut limited = r.take(64 * 1024);
                    let _ = limited.read_to_end(&mut buf).await;
                }
                buf
            };
            let ((), out, err) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await;
            (status, out, err)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => {
                kill_group(pid);
                Err(GitError::Timeout {
                    op: self.op,
                    target: self.target,
                    after: self.timeout,
                })
            }
            Ok((status, out, err)) => {
                let status = status.map_err(|source| GitError::Spawn {
                    program: self.program.display().to_string(),
                    source,
                })?;
                if !status.success() {
                    return Err(GitError::Failed {
                        op: self.op,
                        target: self.target,
                        status: status.to_string(),
                        stderr: tail(&err),
                    });
                }
                if out.len() > max {
                    kill_group(pid);
                    return Err(GitError::Unexpected {
                        op: self.op,
                        detail: format!("more than {max} bytes of output"),
                    });
                }
                Ok(out)
            }
        }
    }
}

/// Kills git and everything it started (upload-pack, ssh): it leads its own process group.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) {
        // SAFETY: kill(2) with a negative pid signals the group `pid` leads; no memory is shared.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}
