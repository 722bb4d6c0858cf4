//! A real git repository for tests: a bare "remote" on disk (reached as `file://`) and a work
//! tree that commits and pushes to it, with no system or global git config read.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Missing;

/// The git CLI, or why it is missing (for [`crate::require`]).
pub fn git_cli() -> Result<(), Missing> {
    match Command::new("git").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(Missing::new(
            "git is not on PATH",
            "install git (`cargo xtask ci` does)",
        )),
    }
}

/// Runs git in `dir` with a fixed identity and `main` as the default branch; panics with
/// git's stderr on failure; returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository and a work tree pushing to its `main`; removed when dropped.
pub struct GitRepo {
    _tmp: tempfile::TempDir,
    /// The work tree.
    pub work: PathBuf,
    /// The bare repository (the "remote").
    pub bare: PathBuf,
}

impl GitRepo {
    /// An empty bare repository and work tree.
    pub fn new() -> GitRepo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let work = tmp.path().join("work");
        let bare = tmp.path().join("remote.git");
        std::fs::create_dir_all(&work).expect("work dir");
        git(
            tmp.path(),
            &["init", "-q", "--bare", &bare.display().to_string()],
        );
        git(&work, &["init", "-q"]);
        GitRepo {
            _tmp: tmp,
            work,
            bare,
        }
    }

    /// Writes (`Some`) or removes (`None`) files, commits everything, pushes to `main`;
    /// returns the commit id.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let full = self.work.join(path);
            match content {
                Some(c) => {
                    if let Some(dir) = full.parent() {
                        std::fs::create_dir_all(dir).expect("dir");
                    }
                    std::fs::write(&full, c).expect("write");
                }
                None => {
                    let _ = std::fs::remove_file(&full);
                }
            }
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        self.push("HEAD:refs/heads/main");
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Pushes `refspec` (a branch or a tag) to the bare repository.
    pub fn push(&self, refspec: &str) {
        git(
            &self.work,
            &["push", "-q", &self.bare.display().to_string(), refspec],
        );
    }

    /// `file://<bare>`.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}
