//! [`Git`], the small trait a GitOps controller needs, and [`GitCli`], its implementation
//! over the `git` program with a persistent bare cache per remote.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::command::{Call, Credentials};
use crate::url::{check_commit, check_ref_name, check_repo_path, GitRef, RepoUrl};
use crate::GitError;

/// A remote and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The checked URL.
    pub url: RepoUrl,
    /// Operator-side credentials (none for public or local repositories).
    pub credentials: Credentials,
    /// The limit for each git operation.
    pub timeout: Duration,
}

impl Remote {
    /// A remote without credentials.
    pub fn new(url: RepoUrl, timeout: Duration) -> Self {
        Remote {
            url,
            credentials: Credentials::default(),
            timeout,
        }
    }
}

/// One file read at a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Its path from the repository root, `/`-separated.
    pub path: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// Bounds on what [`Git::read_files`] reads.
#[derive(Clone, Copy, Debug)]
pub struct ReadLimits {
    /// Largest single file, bytes.
    pub max_file: u64,
    /// Largest total, bytes.
    pub max_total: u64,
    /// Most files.
    pub max_files: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file: 1 << 20,
            max_total: 16 << 20,
            max_files: 1000,
        }
    }
}

/// What a GitOps controller asks of git.
///
/// # Guarantees
/// - `resolve` reads only the remote's refs (cheap: no objects move).
/// - `fetch` brings the ref's commit (and what it needs) into a local cache that survives
///   restarts, and returns the commit it fetched, which may be newer than what `resolve`
///   said a moment before.
/// - `read_files` reads from that cache only, never the network.
#[async_trait]
pub trait Git: Send + Sync + 'static {
    /// The commit `reference` points at in the remote (a commit ref is returned as is).
    async fn resolve(&self, remote: &Remote, reference: &GitRef) -> Result<String, GitError>;
    /// Fetches `reference` into the cache; returns its commit.
    async fn fetch(&self, remote: &Remote, reference: &GitRef) -> Result<String, GitError>;
    /// The files under `path` at `commit` (fetched before) whose names end with one of
    /// `extensions`, sorted by path. Symlinks and submodules are skipped.
    async fn read_files(
        &self,
        remote: &Remote,
        commit: &str,
        path: &str,
        extensions: &[&str],
    ) -> Result<Vec<File>, GitError>;
}

/// [`Git`] over the `git` program.
///
/// Each remote gets a bare repository under the cache root, named by a hash of its URL; it
/// is checked before use and rebuilt when broken, and calls on one cache are serialized.
pub struct GitCli {
    program: PathBuf,
    cache_root: PathBuf,
    limits: ReadLimits,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// Most bytes `ls-remote` or `ls-tree` may print.
const MAX_LISTING: usize = 8 << 20;

impl GitCli {
    /// A client keeping its caches under `cache_root`, running `git` from PATH.
    pub fn new(cache_root: impl Into<PathBuf>) -> Self {
        GitCli {
            program: PathBuf::from("git"),
            cache_root: cache_root.into(),
            limits: ReadLimits::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Runs this program instead of `git` from PATH.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Other read limits.
    pub fn with_limits(mut self, limits: ReadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bare cache repository of `url`.
    pub fn cache_dir(&self, url: &RepoUrl) -> PathBuf {
        let digest = Sha256::digest(url.as_str().as_bytes());
        self.cache_root
            .join(format!("{}.git", hex::encode(&digest[..12])))
    }

    fn lock_for(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(dir.to_path_buf()).or_default().clone()
    }

    fn call<'a>(
        &'a self,
        remote: &'a Remote,
        op: &'static str,
        dir: &'a Path,
        args: Vec<OsString>,
    ) -> Call<'a> {
        Call {
            program: &self.program,
            op,
            target: remote.url.to_string(),
            args,
            dir: Some(dir),
            scheme: Some(remote.url.scheme()),
            credentials: Some(&remote.credentials),
            stdin: None,
            timeout: remote.timeout,
            max_stdout: MAX_LISTING,
        }
    }

    /// Makes sure `dir` is a healthy bare repository: creates it, or rebuilds it when it is
    /// not one (a crash, a full disk, a hand edit). Also removes what a killed fetch leaves
    /// behind: stale lock files and `tmp_pack_*` files git never cleans up.
    async fn ensure_cache(&self, remote: &Remote, dir: &Path) -> Result<(), GitError> {
        let healthy = dir.join("HEAD").is_file()
            && self
                .call(
                    remote,
                    "rev-parse",
                    dir,
                    args(["rev-parse", "--is-bare-repository"]),
                )
                .run()
                .await
                .map(|o| o.trim_ascii() == b"true")
                .unwrap_or(false);
        if !healthy {
            self.rebuild(remote, dir).await?;
        }
        clean_leftovers(dir);
        Ok(())
    }

    async fn rebuild(&self, remote: &Remote, dir: &Path) -> Result<(), GitError> {
        let cache_err = |source| GitError::Cache {
            path: dir.display().to_string(),
            source,
        };
        if dir.exists() {
            tracing::warn!(cache = %dir.display(), "git cache is broken; rebuilding it");
            tokio::fs::remove_dir_all(dir).await.map_err(cache_err)?;
        }
        tokio::fs::create_dir_all(&self.cache_root)
            .await
            .map_err(cache_err)?;
        let mut a = args(["init", "--bare", "-q", "--"]);
        a.push(dir.as_os_str().to_owned());
        let root = self.cache_root.clone();
        Call {
            dir: Some(&root),
            ..self.call(remote, "init", dir, a)
        }
        .run()
        .await?;
        Ok(())
    }

    async fn rev_parse(&self, remote: &Remote, dir: &Path, rev: &str) -> Result<String, GitError> {
        let mut a = args(["rev-parse", "--verify", "--quiet", "--end-of-options"]);
        a.push(rev.into());
        let out = self.call(remote, "rev-parse", dir, a).run().await?;
        let sha = String::from_utf8_lossy(&out).trim().to_string();
        check_commit(&sha).map_err(|detail| GitError::Unexpected {
            op: "rev-parse",
            detail,
        })?;
        Ok(sha)
    }

    async fn has_commit(&self, remote: &Remote, dir: &Path, sha: &str) -> bool {
        let a = args(["cat-file", "-e", "--end-of-options"])
            .into_iter()
            .chain([OsString::from(format!("{sha}^{{commit}}"))])
            .collect();
        self.call(remote, "cat-file", dir, a).run().await.is_ok()
    }

    async fn fetch_once(
        &self,
        remote: &Remote,
        dir: &Path,
        reference: &GitRef,
    ) -> Result<String, GitError> {
        let url = remote.url.as_str();
        let (refspec, local) = match reference {
            GitRef::Branch(b) => (
                format!("+refs/heads/{b}:refs/botcluster/heads/{b}"),
                format!("refs/botcluster/heads/{b}"),
            ),
            GitRef::Tag(t) => (
                format!("+refs/tags/{t}:refs/botcluster/tags/{t}"),
                format!("refs/botcluster/tags/{t}"),
            ),
            GitRef::Commit(c) => {
                if self.has_commit(remote, dir, c).await {
                    return Ok(c.clone());
                }
                (c.clone(), String::new())
            }
        };
        let mut a = args([
            "fetch",
            "--no-tags",
            "--force",
            "--depth=1",
            "--no-write-fetch-head",
            "--quiet",
            "--",
        ]);
        a.push(url.into());
        a.push(refspec.into());
        match self.call(remote, "fetch", dir, a).run().await {
            Ok(_) => {}
            Err(GitError::Failed { stderr, .. }) if not_found(&stderr) => {
                return Err(match reference {
                    GitRef::Commit(c) => GitError::CommitNotFound {
                        url: url.into(),
                        commit: c.clone(),
                    },
                    r => GitError::RefNotFound {
                        url: url.into(),
                        reference: r.to_string(),
                    },
                })
            }
            Err(e) => return Err(e),
        }
        match reference {
            GitRef::Commit(c) => {
                if self.has_commit(remote, dir, c).await {
                    Ok(c.clone())
                } else {
                    Err(GitError::CommitNotFound {
                        url: url.into(),
                        commit: c.clone(),
                    })
                }
            }
            _ => {
                self.rev_parse(remote, dir, &format!("{local}^{{commit}}"))
                    .await
            }
        }
    }
}

fn not_found(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("couldn't find remote ref")
        || s.contains("not our ref")
        || s.contains("no such remote ref")
        || s.contains("unadvertised object")
}

/// Whether a failure means the cache itself is damaged.
fn corrupt(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "corrupt",
        "bad object",
        "not a git repository",
        "loose object",
        "unable to read",
        "missing blob",
        "missing tree",
        "invalid object",
        "fatal: bad",
    ]
    .iter()
    .any(|k| s.contains(k))
}

fn args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// Removes what a killed git leaves in a cache it alone uses: `*.lock` files at the top and
/// under `refs/`, and `objects/pack/tmp_*` files.
fn clean_leftovers(dir: &Path) {
    fn walk(d: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() && depth > 0 {
                walk(&p, depth - 1);
            } else if name.ends_with(".lock") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    walk(dir, 0);
    walk(&dir.join("refs"), 16);
    if let Ok(entries) = std::fs::read_dir(dir.join("objects/pack")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("tmp_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn check_reference(reference: &GitRef) -> Result<(), GitError> {
    match reference {
        GitRef::Branch(b) => check_ref_name(b).map_err(|reason| GitError::Invalid {
            what: "branch",
            reason,
        }),
        GitRef::Tag(t) => check_ref_name(t).map_err(|reason| GitError::Invalid {
            what: "tag",
            reason,
        }),
        GitRef::Commit(c) => check_commit(c).map_err(|reason| GitError::Invalid {
            what: "commit",
            reason,
        }),
    }
}

#[async_trait]
impl Git for GitCli {
    async fn resolve(&self, remote: &Remote, reference: &GitRef) -> Result<String, GitError> {
        check_reference(reference)?;
        let full = match reference {
            GitRef::Commit(c) => return Ok(c.to_ascii_lowercase()),
            GitRef::Branch(b) => format!("refs/heads/{b}"),
            GitRef::Tag(t) => format!("refs/tags/{t}"),
        };
        let dir = self.cache_dir(&remote.url);
        let lock = self.lock_for(&dir);
        let _held = lock.lock().await;
        // Run inside our own cache so no repository around the operator's cwd is read.
        self.ensure_cache(remote, &dir).await?;
        let mut a = args(["ls-remote", "--"]);
        a.push(remote.url.as_str().into());
        a.push(full.clone().into());
        a.push(format!("{full}^{{}}").into());
        let out = self.call(remote, "ls-remote", &dir, a).run().await?;
        let text = String::from_utf8_lossy(&out);
        let mut direct = None;
        let mut peeled = None;
        for line in text.lines() {
            let Some((sha, name)) = line.split_once('\t') else {
                continue;
            };
            if check_commit(sha).is_err() {
                continue;
            }
            if name == full {
                direct = Some(sha.to_string());
            } else if name == format!("{full}^{{}}") {
                peeled = Some(sha.to_string());
            }
        }
        peeled.or(direct).ok_or_else(|| GitError::RefNotFound {
            url: remote.url.to_string(),
            reference: reference.to_string(),
        })
    }

    async fn fetch(&self, remote: &Remote, reference: &GitRef) -> Result<String, GitError> {
        check_reference(reference)?;
        let reference = match reference {
            GitRef::Commit(c) => GitRef::Commit(c.to_ascii_lowercase()),
            r => r.clone(),
        };
        let dir = self.cache_dir(&remote.url);
        let lock = self.lock_for(&dir);
        let _held = lock.lock().await;
        self.ensure_cache(remote, &dir).await?;
        match self.fetch_once(remote, &dir, &reference).await {
            Err(GitError::Failed { stderr, .. }) if corrupt(&stderr) => {
                // A damaged cache is rebuilt once; the remote is the truth.
                self.rebuild(remote, &dir).await?;
                self.fetch_once(remote, &dir, &reference).await
            }
            r => r,
        }
    }

    async fn read_files(
        &self,
        remote: &Remote,
        commit: &str,
        path: &str,
        extensions: &[&str],
    ) -> Result<Vec<File>, GitError> {
        check_commit(commit).map_err(|reason| GitError::Invalid {
            what: "commit",
            reason,
        })?;
        let path = check_repo_path(path).map_err(|reason| GitError::Invalid {
            what: "path",
            reason,
        })?;
        let dir = self.cache_dir(&remote.url);
        let lock = self.lock_for(&dir);
        let _held = lock.lock().await;
        if !path.is_empty() {
            let a = vec![
                OsString::from("cat-file"),
                "-e".into(),
                "--end-of-options".into(),
                format!("{commit}:{path}").into(),
            ];
            if self.call(remote, "cat-file", &dir, a).run().await.is_err() {
                return Err(GitError::PathNotFound {
                    path,
                    commit: commit.into(),
                });
            }
        }
        let mut a = args([
            "ls-tree",
            "-r",
            "-l",
            "-z",
            "--full-tree",
            "--end-of-options",
        ]);
        a.push(commit.into());
        if !path.is_empty() {
            a.push("--".into());
            a.push(path.clone().into());
        }
        let out = self.call(remote, "ls-tree", &dir, a).run().await?;
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut wanted: Vec<(String, String, u64)> = Vec::new();
        let mut total = 0u64;
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let (head, file) = entry.split_once('\t').ok_or_else(|| GitError::Unexpected {
                op: "ls-tree",
                detail: format!("an entry without a tab: {entry:?}"),
            })?;
            let fields: Vec<&str> = head.split_whitespace().collect();
            let [mode, kind, oid, size] = fields[..] else {
                return Err(GitError::Unexpected {
                    op: "ls-tree",
                    detail: format!("entry {head:?}"),
                });
            };
            // Regular files only: no symlinks (120000), no submodules (160000).
            if kind != "blob" || !(mode == "100644" || mode == "100755") {
                continue;
            }
            if !(file == path || file.starts_with(&prefix)) {
                continue;
            }
            if !extensions.iter().any(|e| file.ends_with(e)) {
                continue;
            }
            let size: u64 = size.parse().map_err(|_| GitError::Unexpected {
                op: "ls-tree",
                detail: format!("size {size:?}"),
            })?;
            if size > self.limits.max_file {
                return Err(GitError::TooLarge {
                    what: file.to_string(),
                    commit: commit.into(),
                    size,
                    limit: self.limits.max_file,
                });
            }
            total += size;
            wanted.push((file.to_string(), oid.to_string(), size));
        }
        if wanted.len() > self.limits.max_files {
            return Err(GitError::TooLarge {
                what: format!("the {} files under \"{path}\" (count)", wanted.len()),
                commit: commit.into(),
                size: wanted.len() as u64,
                limit: self.limits.max_files as u64,
            });
        }
        if total > self.limits.max_total {
            return Err(GitError::TooLarge {
                what: format!("the files under \"{path}\""),
                commit: commit.into(),
                size: total,
                limit: self.limits.max_total,
            });
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = wanted
            .iter()
            .map(|(_, oid, _)| format!("{oid}\n"))
            .collect();
        let call = Call {
            stdin: Some(input.into_bytes()),
            max_stdout: (total as usize) + wanted.len() * 128 + 1024,
            ..self.call(remote, "cat-file", &dir, args(["cat-file", "--batch"]))
        };
        let out = call.run().await?;
        let mut files = Vec::with_capacity(wanted.len());
        let mut at = 0usize;
        for (file, oid, size) in wanted {
            let nl =
                out[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .ok_or_else(|| GitError::Unexpected {
                        op: "cat-file",
                        detail: "a truncated header".into(),
                    })?;
            let header = String::from_utf8_lossy(&out[at..at + nl]).to_string();
            if header != format!("{oid} blob {size}") {
                return Err(GitError::Unexpected {
                    op: "cat-file",
                    detail: format!("header {header:?} for {file}"),
                });
            }
            let start = at + nl + 1;
            let end = start + size as usize;
            if out.get(end) != Some(&b'\n') {
                return Err(GitError::Unexpected {
                    op: "cat-file",
                    detail: format!("truncated content of {file}"),
                });
            }
            files.push(File {
                path: file,
                content: out[start..end].to_vec(),
            });
            at = end + 1;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}
