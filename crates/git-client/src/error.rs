//! What can go wrong, each saying what to do.

use std::time::Duration;

/// A git operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL is not one this client will hand to git.
    #[error("url \"{url}\" {reason}")]
    InvalidUrl {
        /// The URL (control characters replaced).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A ref, commit or path is not acceptable.
    #[error("{what} {reason}")]
    Invalid {
        /// What was checked (`branch`, `tag`, `commit`, `path`).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The `git` program could not be started.
    #[error("cannot run {program}: {source}; install git (apt-get install git) or put it on PATH")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The operation took longer than its timeout; git was killed.
    #[error("git {op} {target} timed out after {after:?}; check that the remote answers, or raise the timeout")]
    Timeout {
        /// `ls-remote`, `fetch`, ...
        op: &'static str,
        /// The URL or cache it worked on.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// git ran and failed.
    #[error("git {op} {target} failed ({status}): {stderr}")]
    Failed {
        /// `ls-remote`, `fetch`, ...
        op: &'static str,
        /// The URL or cache it worked on.
        target: String,
        /// The exit status.
        status: String,
        /// The end of what git printed on stderr.
        stderr: String,
    },
    /// The remote has no such branch or tag.
    #[error("{url} has no {reference}; check the ref's spelling, or push it")]
    RefNotFound {
        /// The URL.
        url: String,
        /// The ref as the user named it.
        reference: String,
    },
    /// The commit is not in the remote (or not reachable).
    #[error("commit {commit} is not in {url}; check the id, or push it")]
    CommitNotFound {
        /// The URL.
        url: String,
        /// The commit.
        commit: String,
    },
    /// The path does not exist at that commit.
    #[error("path \"{path}\" does not exist at commit {commit}; check spec.path")]
    PathNotFound {
        /// The path.
        path: String,
        /// The commit.
        commit: String,
    },
    /// The files to read exceed a limit.
    #[error("{what} at commit {commit}: {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The file, or `the files under PATH`.
        what: String,
        /// The commit.
        commit: String,
        /// Their size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// git printed something this client cannot read.
    #[error("git {op} printed something unexpected: {detail}")]
    Unexpected {
        /// The operation.
        op: &'static str,
        /// What was odd.
        detail: String,
    },
    /// The cache directory could not be prepared.
    #[error("cache directory {path}: {source}")]
    Cache {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl GitError {
    /// Whether retrying later could help (network, timeouts), as opposed to a spec error.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitError::Timeout { .. }
                | GitError::Failed { .. }
                | GitError::Spawn { .. }
                | GitError::Cache { .. }
        )
    }
}
