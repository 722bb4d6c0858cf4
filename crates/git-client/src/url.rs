//! Remote URLs, refs and paths, checked before they reach git.
//!
//! git reads some values as options (`-u...`, `--upload-pack=...`) or as transports
//! (`ext::sh -c ...` runs a command); nothing that could be either gets through here.

use std::fmt;

use crate::GitError;

/// How a remote is reached; decides `GIT_ALLOW_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `https://host/path`.
    Https,
    /// `ssh://[user@]host[:port]/path`.
    Ssh,
    /// `file:///abs/path`.
    File,
    /// `/abs/path` (git's local transport).
    Local,
}

impl Scheme {
    /// The value of `GIT_ALLOW_PROTOCOL` for this scheme: only what it needs.
    pub fn allowed_protocol(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Ssh => "ssh",
            Scheme::File | Scheme::Local => "file",
        }
    }
}

/// A checked remote URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    url: String,
    scheme: Scheme,
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn bad(url: &str, reason: impl Into<String>) -> GitError {
    GitError::InvalidUrl {
        url: printable(url),
        reason: reason.into(),
    }
}

/// `s` with control characters replaced, safe to print.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl RepoUrl {
    /// Checks `url`: `https://`, `ssh://`, `file://` or an absolute local path; never a value
    /// git could read as an option, a `transport::address` (such as `ext::`), a URL with a
    /// password in it, or one with spaces or control characters.
    pub fn parse(url: &str) -> Result<RepoUrl, GitError> {
        if url.is_empty() {
            return Err(bad(url, "is empty"));
        }
        if url.len() > 2048 {
            return Err(bad(url, "is over 2048 characters"));
        }
        if url.starts_with('-') {
            return Err(bad(
                url,
                "starts with '-', which git would read as an option",
            ));
        }
        if let Some(c) = url.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(
                url,
                format!("contains {c:?}; URLs have no spaces or control characters"),
            ));
        }
        let scheme = if let Some(rest) = url.strip_prefix("https://") {
            Self::check_authority(url, rest, false)?;
            Scheme::Https
        } else if let Some(rest) = url.strip_prefix("ssh://") {
            Self::check_authority(url, rest, true)?;
            Scheme::Ssh
        } else if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    url,
                    "a file:// URL needs an absolute path: file:///srv/git/bots.git",
                ));
            }
            Scheme::File
        } else if url.starts_with('/') {
            Scheme::Local
        } else if url.contains("::") {
            return Err(bad(url, "transport::address URLs (such as ext::) are refused; use https://, ssh://, file:// or an absolute path"));
        } else if url.starts_with("http://") || url.starts_with("git://") {
            return Err(bad(
                url,
                "plain-text transports are refused; use https:// or ssh://",
            ));
        } else if url.contains(':') {
            return Err(bad(
                url,
                "scp-like addresses are refused; write ssh://user@host/path instead",
            ));
        } else {
            return Err(bad(
                url,
                "is not https://, ssh://, file:// or an absolute path",
            ));
        };
        if url.contains("/../") || url.ends_with("/..") {
            return Err(bad(url, "contains '..'; name the repository directly"));
        }
        Ok(RepoUrl {
            url: url.to_string(),
            scheme,
        })
    }

    fn check_authority(url: &str, rest: &str, ssh: bool) -> Result<(), GitError> {
        let authority = rest.split('/').next().unwrap_or("");
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad(url, "has no host"));
        }
        // ssh would read a host starting with '-' as an option (CVE-2017-1000117).
        if host.starts_with('-') || userinfo.is_some_and(|u| u.starts_with('-')) {
            return Err(bad(
                url,
                "the host or user starts with '-', which ssh would read as an option",
            ));
        }
        if userinfo.is_some_and(|u| u.contains(':')) {
            return Err(bad(url, "holds a password; keep credentials out of the URL and name a credentials file of the operator instead"));
        }
        if userinfo.is_some() && !ssh {
            return Err(bad(url, "holds a user name; keep credentials out of the URL and name a credentials file of the operator instead"));
        }
        if rest[authority.len()..].len() <= 1 {
            return Err(bad(url, "has no repository path after the host"));
        }
        Ok(())
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// How it is reached.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

/// What to follow in the remote.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GitRef {
    /// The tip of a branch (`refs/heads/<name>`).
    Branch(String),
    /// A tag (`refs/tags/<name>`), annotated tags peeled to their commit.
    Tag(String),
    /// One commit, 40 hex digits.
    Commit(String),
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitRef::Branch(b) => write!(f, "branch {b}"),
            GitRef::Tag(t) => write!(f, "tag {t}"),
            GitRef::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

/// Checks a branch or tag name by git's `check-ref-format` rules, and refuses a leading `-`.
pub fn check_ref_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 255 {
        return Err("is over 255 characters".into());
    }
    if name.starts_with('-') {
        return Err(format!(
            "\"{}\" starts with '-', which git would read as an option",
            printable(name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(*c))
    {
        return Err(format!(
            "\"{}\" contains {c:?}, which git does not allow in a ref name",
            printable(name)
        ));
    }
    let bad_shape = name.contains("..")
        || name.contains("@{")
        || name.contains("//")
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.ends_with(".lock")
        || name == "@"
        || name.split('/').any(|c| c.starts_with('.'));
    if bad_shape {
        return Err(format!(
            "\"{}\" is not a valid git ref name (see git check-ref-format)",
            printable(name)
        ));
    }
    Ok(())
}

/// Checks a commit id: exactly 40 hex digits (SHA-1).
pub fn check_commit(sha: &str) -> Result<(), String> {
    if sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a full commit id (40 hex digits)",
            printable(sha)
        ))
    }
}

/// Checks a directory inside the repository: relative, `/`-separated, no `..`, no `.git`.
/// `""` and `"."` mean the root. Returns the normalized path (no leading `./`, no trailing `/`).
pub fn check_repo_path(path: &str) -> Result<String, String> {
    if let Some(c) = path.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(format!("contains {c:?}; use '/'-separated names"));
    }
    if path.starts_with('/') {
        return Err(format!(
            "\"{}\" is absolute; give a directory inside the repository, such as clusters",
            printable(path)
        ));
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "\"{}\" contains '..'; give a directory inside the repository",
                    printable(path)
                ))
            }
            ".git" => {
                return Err(format!(
                    "\"{}\" names .git, which is not part of a commit",
                    printable(path)
                ))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_accepted_forms_parse_with_their_protocol() {
        for (u, p) in [
            ("https://git.example.com/ops/bots.git", "https"),
            ("ssh://git@git.example.com:2222/ops/bots.git", "ssh"),
            ("file:///srv/git/bots.git", "file"),
            ("/srv/git/bots.git", "file"),
        ] {
            assert_eq!(
                RepoUrl::parse(u).unwrap().scheme().allowed_protocol(),
                p,
                "{u}"
            );
        }
    }

    #[test]
    fn urls_git_could_run_or_read_as_options_are_refused() {
        for u in [
            "",
            "-uecho",
            "--upload-pack=touch /tmp/x",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::3",
            "ssh://-oProxyCommand=touch/x/y",
            "ssh://-x@host/repo",
            "https://user:token@github.com/o/r",
            "https://user@github.com/o/r",
            "http://example.com/r.git",
            "git://example.com/r.git",
            "git@github.com:o/r.git",
            "relative/path",
            "file://relative",
            "https://host/a b",
            "https://host/a\nb",
            "https://",
            "/srv/../etc",
        ] {
            assert!(RepoUrl::parse(u).is_err(), "{u:?} was accepted");
        }
    }

    #[test]
    fn ref_names_follow_check_ref_format_and_never_look_like_options() {
        for ok in ["main", "release/1.2", "v1.2.0", "feature-x"] {
            assert!(check_ref_name(ok).is_ok(), "{ok}");
        }
        for no in [
            "", "-f", "--force", "a..b", "a b", "a:b", "a^", "a~1", "/a", "a/", "a.lock",
            ".hidden", "a/.b", "@", "a@{1}", "a//b", "a*",
        ] {
            assert!(check_ref_name(no).is_err(), "{no:?} was accepted");
        }
        assert!(check_commit(&"a".repeat(40)).is_ok());
        assert!(check_commit("abc").is_err());
        assert!(check_commit(&format!("-{}", "a".repeat(39))).is_err());
    }

    #[test]
    fn repo_paths_stay_inside_the_repository() {
        assert_eq!(check_repo_path("").unwrap(), "");
        assert_eq!(check_repo_path(".").unwrap(), "");
        assert_eq!(check_repo_path("./clusters/").unwrap(), "clusters");
        assert_eq!(check_repo_path("a//b").unwrap(), "a/b");
        for no in ["/etc", "../x", "a/../../b", ".git", "a/.git/config", "a\\b"] {
            assert!(check_repo_path(no).is_err(), "{no:?} was accepted");
        }
    }
}
