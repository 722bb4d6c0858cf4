//! A private `caddy run`: its admin endpoint on a free loopback port (or a unix socket), its
//! data in a temp dir, killed with its test.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::tally::Missing;
use crate::{free_loopback_addr, which, Daemon};

/// Where the admin endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// A free port on 127.0.0.1.
    Tcp,
    /// A unix socket in the temp dir.
    Unix,
}

/// A `caddy run` child of this test.
///
/// **Guarantees**: the admin endpoint answers when [`Caddy::start`] returns; Caddy writes
/// nothing outside its temp dir (certificates, autosave); it is killed when dropped, or when
/// the thread that started it dies.
///
/// **Caveat**: what a test loads may still make Caddy reach out (ACME): render servers with
/// automatic HTTPS off and listen on 127.0.0.1.
pub struct Caddy {
    daemon: Daemon,
    admin_url: String,
    admin_listen: String,
    log: PathBuf,
    // Dropped after `daemon` (fields drop in order): Caddy is dead before its files go.
    _dir: tempfile::TempDir,
}

/// How to get Caddy when it is missing.
const INSTALL_CADDY: &str = "install it with `apt-get install caddy` or `cargo xtask caddy-up`";

impl Caddy {
    /// Starts `caddy` from `PATH`, or says it is missing (feed that to [`crate::require`]).
    ///
    /// # Panics
    /// When Caddy is there but exits at start-up or its admin endpoint is not up within 10 s;
    /// the message carries Caddy's log.
    pub fn start(admin: Admin) -> Result<Caddy, Missing> {
        let bin =
            which("caddy").ok_or_else(|| Missing::new("caddy is not on PATH", INSTALL_CADDY))?;
        let dir = tempfile::tempdir().expect("temp dir");
        let (admin_url, admin_listen) = match admin {
            Admin::Tcp => {
                let addr = free_loopback_addr();
                (format!("http://{addr}"), addr)
            }
            Admin::Unix => {
                let sock = dir.path().join("admin.sock");
                (
                    format!("unix://{}", sock.display()),
                    format!("unix/{}", sock.display()),
                )
            }
        };
        let boot = dir.path().join("bootstrap.json");
        fs::write(&boot, bootstrap(&admin_listen).to_string()).expect("write bootstrap");
        let log = dir.path().join("caddy.log");
        let out = fs::File::create(&log).expect("log file");
        let daemon = Daemon::spawn(
            "caddy",
            Command::new(bin)
                .arg("run")
                .arg("--config")
                .arg(&boot)
                // Caddy's data and config dirs (certificates, autosave) stay in the temp dir.
                .env("HOME", dir.path())
                .env("XDG_CONFIG_HOME", dir.path().join("config"))
                .env("XDG_DATA_HOME", dir.path().join("data"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out),
        );
        let mut caddy = Caddy {
            daemon,
            admin_url,
            admin_listen,
            log,
            _dir: dir,
        };
        let log_text = {
            let log = caddy.log.clone();
            move || fs::read_to_string(&log).unwrap_or_default()
        };
        let timeout = Duration::from_secs(10);
        match admin {
            Admin::Tcp => {
                let addr = caddy.admin_listen.clone();
                caddy.daemon.wait_listening(&addr, timeout, log_text);
            }
            Admin::Unix => {
                let sock = PathBuf::from(&caddy.admin_url["unix://".len()..]);
                caddy.daemon.wait_unix_listening(&sock, timeout, log_text);
            }
        }
        Ok(caddy)
    }

    /// `http://127.0.0.1:PORT` or `unix:///path`: what a client of the admin API takes.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Caddy's `admin.listen` value: `127.0.0.1:PORT` or `unix//path`.
    pub fn admin_listen(&self) -> &str {
        &self.admin_listen
    }

    /// The config with only this admin endpoint: what "empty" means without losing the API.
    pub fn empty_config(&self) -> Value {
        bootstrap(&self.admin_listen)
    }

    /// Everything Caddy has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A config holding only an admin endpoint at `admin_listen`, not persisted.
pub fn bootstrap(admin_listen: &str) -> Value {
    json!({"admin": {"listen": admin_listen, "config": {"persist": false}}})
}
