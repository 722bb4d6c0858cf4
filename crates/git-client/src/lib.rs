//! A small, hardened async wrapper over the `git` CLI: resolve a ref, fetch it into a persistent bare cache, read the files under a path at a commit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), git_client::GitError> {
//! use git_client::{Git, GitCli, GitRef, Remote, RepoUrl};
//! use std::time::Duration;
//!
//! let git = GitCli::new("/var/lib/botcluster/git-cache");
//! let remote = Remote::new(RepoUrl::parse("https://git.example.com/ops/bots.git")?, Duration::from_secs(60));
//! let main = GitRef::Branch("main".into());
//! let tip = git.resolve(&remote, &main).await?;           // git ls-remote: no objects move
//! let fetched = git.fetch(&remote, &main).await?;         // only when `tip` is new to you
//! let files = git.read_files(&remote, &fetched, "clusters", &[".yaml", ".yml"]).await?;
//! # let _ = (tip, files); Ok(())
//! # }
//! ```
//!
//! # Guarantees
//! - git runs without a shell, with arguments only, in a clean environment:
//!   `GIT_TERMINAL_PROMPT=0`, no system or global config (`GIT_CONFIG_NOSYSTEM`,
//!   `GIT_CONFIG_GLOBAL=/dev/null`), no credential helpers, no hooks, and
//!   `GIT_ALLOW_PROTOCOL` set to the one protocol the URL's scheme needs (never `ext`).
//! - URLs, refs and paths are checked first ([`RepoUrl::parse`], [`check_ref_name`],
//!   [`check_repo_path`]); user values follow `--` or `--end-of-options`, so none is read as
//!   an option.
//! - Every call has a timeout; on expiry git and everything it started (its process group)
//!   are killed.
//! - The cache survives restarts, is rebuilt when broken, and is cleaned of what a killed
//!   fetch leaves behind.
//!
//! Knows nothing of what the files mean.

mod client;
mod command;
mod error;
mod url;

pub use client::{File, Git, GitCli, ReadLimits, Remote};
pub use command::Credentials;
pub use error::GitError;
pub use url::{check_commit, check_ref_name, check_repo_path, GitRef, RepoUrl, Scheme};
