//! A private `sshd` on a free loopback port (Debian's `openssh-server`; `cargo xtask ci`
//! installs it): its own host key, one client key allowed, strict settings, no PAM, gone when
//! dropped. For testing `ssh://` clients with a real server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, Daemon, Missing};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd that lets the current user in with [`Sshd::identity`].
pub struct Sshd {
    _daemon: Daemon,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The user to log in as (the one running the test).
    pub user: String,
}

impl Sshd {
    /// The client's private key.
    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("id")
    }
    /// A `known_hosts` file naming this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }
    /// The server's sshd log (`-E`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "botcluster-test",
            "-f",
        ])
        .arg(path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a private sshd, or says what is missing (for [`crate::require`]).
pub fn sshd() -> Result<Sshd, Missing> {
    if !Path::new(SSHD).exists() || crate::which("ssh-keygen").is_none() {
        return Err(Missing::new(
            "no sshd (Debian's openssh-server) or ssh-keygen",
            "run `apt-get install openssh-server` (`cargo xtask ci` does)",
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    keygen(&d.join("host"));
    keygen(&d.join("id"));
    std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).expect("authorized_keys");
    let port = free_port();
    let host_pub = std::fs::read_to_string(d.join("host.pub")).expect("host key");
    let mut fields = host_pub.split_whitespace();
    let (kind, key) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {kind} {key}\n"),
    )
    .expect("known_hosts");
    let config = format!(
        "ListenAddress 127.0.0.1:{port}\nHostKey {host}\nAuthorizedKeysFile {keys}\nPidFile none\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         PermitRootLogin prohibit-password\nStrictModes no\nAllowTcpForwarding no\n\
         X11Forwarding no\nPrintMotd no\n",
        host = d.join("host").display(),
        keys = d.join("authorized_keys").display(),
    );
    std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
    // sshd refuses to start without its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let mut daemon = Daemon::spawn(
        "sshd",
        Command::new(SSHD)
            .arg("-D")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log")),
    );
    let log_path = d.join("sshd.log");
    daemon.wait_listening(
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(10),
        || std::fs::read_to_string(&log_path).unwrap_or_default(),
    );
    Ok(Sshd {
        _daemon: daemon,
        dir,
        port,
        user,
    })
}
