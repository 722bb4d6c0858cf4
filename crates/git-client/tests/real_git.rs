//! Against the real git: temp repositories, file:// and local-path URLs. Without git these
//! fail under a truthy `CI` and are skipped otherwise (`test_support::require`).

use std::time::{Duration, Instant};

use git_client::{Git, GitCli, GitError, GitRef, Remote, RepoUrl};
use test_support::git::git;
use test_support::{git_cli, require, GitRepo};

/// The real git, or why it is missing.
fn real_git() -> Option<()> {
    require(git_cli())
}

/// The repository as a `file://` remote.
fn remote(up: &GitRepo) -> Remote {
    Remote::new(RepoUrl::parse(&up.url()).unwrap(), Duration::from_secs(20))
}

fn branch() -> GitRef {
    GitRef::Branch("main".into())
}

#[tokio::test]
async fn resolve_fetch_and_read_the_yaml_under_a_path() {
    if real_git().is_none() {
        return;
    }
    let up = GitRepo::new();
    let first = up.commit(
        &[
            ("clusters/a.yaml", Some("a: 1\n")),
            ("clusters/sub/b.yml", Some("b: 2\n")),
            ("clusters/notes.md", Some("no")),
            ("other/c.yaml", Some("c: 3\n")),
            ("clusters-old.yaml", Some("x: 1\n")),
        ],
        "one",
    );
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let remote = remote(&up);
    assert_eq!(git.resolve(&remote, &branch()).await.unwrap(), first);
    assert_eq!(git.fetch(&remote, &branch()).await.unwrap(), first);
    let files = git
        .read_files(&remote, &first, "clusters", &[".yaml", ".yml"])
        .await
        .unwrap();
    let got: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("clusters/a.yaml", &b"a: 1\n"[..]),
            ("clusters/sub/b.yml", &b"b: 2\n"[..])
        ]
    );

    // A new commit: resolve sees it without fetching; the old commit stays readable.
    let second = up.commit(&[("clusters/a.yaml", None)], "two");
    assert_eq!(git.resolve(&remote, &branch()).await.unwrap(), second);
    assert_eq!(git.fetch(&remote, &branch()).await.unwrap(), second);
    let files = git
        .read_files(&remote, &second, "clusters", &[".yaml"])
        .await
        .unwrap();
    assert!(files.is_empty(), "{files:?}");
    let root = git
        .read_files(&remote, &second, "", &[".yaml"])
        .await
        .unwrap();
    assert_eq!(
        root.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["clusters-old.yaml", "other/c.yaml"]
    );
    assert!(matches!(
        git.read_files(&remote, &second, "nowhere", &[".yaml"])
            .await,
        Err(GitError::PathNotFound { .. })
    ));
}

#[tokio::test]
async fn a_local_path_tags_and_commits_work_too() {
    if real_git().is_none() {
        return;
    }
    let up = GitRepo::new();
    let first = up.commit(&[("a.yaml", Some("a: 1\n"))], "one");
    git(&up.work, &["tag", "-a", "v1", "-m", "v1"]);
    up.push("v1");
    let _second = up.commit(&[("a.yaml", Some("a: 2\n"))], "two");
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let remote = Remote::new(
        RepoUrl::parse(up.bare.to_str().unwrap()).unwrap(),
        Duration::from_secs(20),
    );
    let tag = GitRef::Tag("v1".into());
    // An annotated tag resolves to its commit, not the tag object.
    assert_eq!(git.resolve(&remote, &tag).await.unwrap(), first);
    assert_eq!(git.fetch(&remote, &tag).await.unwrap(), first);
    let pinned = GitRef::Commit(first.clone());
    assert_eq!(git.fetch(&remote, &pinned).await.unwrap(), first);
    let files = git
        .read_files(&remote, &first, ".", &[".yaml"])
        .await
        .unwrap();
    assert_eq!(files[0].content, b"a: 1\n");
}

#[tokio::test]
async fn unknown_refs_and_commits_are_named_in_the_error() {
    if real_git().is_none() {
        return;
    }
    let up = GitRepo::new();
    up.commit(&[("a.yaml", Some("a: 1\n"))], "one");
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let remote = remote(&up);
    let nope = GitRef::Branch("nope".into());
    let e = git.resolve(&remote, &nope).await.unwrap_err();
    assert!(matches!(e, GitError::RefNotFound { .. }), "{e}");
    assert!(e.to_string().contains("branch nope"), "{e}");
    let e = git.fetch(&remote, &nope).await.unwrap_err();
    assert!(matches!(e, GitError::RefNotFound { .. }), "{e}");
    let e = git
        .fetch(&remote, &GitRef::Commit("0".repeat(40)))
        .await
        .unwrap_err();
    assert!(matches!(e, GitError::CommitNotFound { .. }), "{e}");
    let e = git
        .fetch(&remote, &GitRef::Branch("--upload-pack=touch".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, GitError::Invalid { what: "branch", .. }), "{e}");
}

#[tokio::test]
async fn an_unreachable_remote_fails_with_git_s_reason() {
    if real_git().is_none() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let remote = Remote::new(
        RepoUrl::parse("file:///nonexistent/repo.git").unwrap(),
        Duration::from_secs(20),
    );
    let e = git.resolve(&remote, &branch()).await.unwrap_err();
    assert!(matches!(e, GitError::Failed { .. }), "{e}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("/nonexistent/repo.git"), "{e}");
}

#[tokio::test]
async fn a_broken_cache_is_rebuilt_and_the_fetch_succeeds() {
    if real_git().is_none() {
        return;
    }
    let up = GitRepo::new();
    let first = up.commit(&[("a.yaml", Some("a: 1\n"))], "one");
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let remote = remote(&up);
    git.fetch(&remote, &branch()).await.unwrap();
    let dir = git.cache_dir(&remote.url);
    // What a crash or a full disk may leave: a truncated HEAD, an objects dir gone, stale locks.
    std::fs::write(dir.join("HEAD"), "garbage").unwrap();
    std::fs::remove_dir_all(dir.join("objects")).unwrap();
    assert_eq!(git.fetch(&remote, &branch()).await.unwrap(), first);
    std::fs::write(dir.join("shallow.lock"), "").unwrap();
    std::fs::create_dir_all(dir.join("refs/botcluster/heads")).unwrap();
    std::fs::write(dir.join("refs/botcluster/heads/main.lock"), "").unwrap();
    let second = up.commit(&[("a.yaml", Some("a: 2\n"))], "two");
    assert_eq!(git.fetch(&remote, &branch()).await.unwrap(), second);
    let files = git
        .read_files(&remote, &second, "", &[".yaml"])
        .await
        .unwrap();
    assert_eq!(files[0].content, b"a: 2\n");
}

#[tokio::test]
async fn a_hanging_git_is_killed_at_the_timeout_with_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("child-alive");
    let fake = tmp.path().join("fake-git");
    // A "git" that starts a child and hangs; the child would write the marker after 3 s.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n(sleep 3; touch {}) &\nsleep 30\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let git = GitCli::new(tmp.path().join("cache")).with_program(&fake);
    let remote = Remote::new(
        RepoUrl::parse("https://git.example.com/o/r.git").unwrap(),
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let e = git.resolve(&remote, &branch()).await.unwrap_err();
    assert!(matches!(e, GitError::Timeout { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!marker.exists(), "a child of the timed-out git lived on");
}

#[tokio::test]
async fn git_never_sees_a_refused_url_and_env_stays_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let fake = tmp.path().join("fake-git");
    // Records its arguments and environment, then answers like ls-remote.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\nenv >> {log}\necho true\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for bad in ["ext::sh -c touch% /tmp/x", "-uecho", "--upload-pack=x"] {
        assert!(RepoUrl::parse(bad).is_err());
    }
    let git = GitCli::new(tmp.path().join("cache")).with_program(&fake);
    std::fs::create_dir_all(git.cache_dir(&RepoUrl::parse("https://h/o/r").unwrap())).unwrap();
    std::fs::write(
        git.cache_dir(&RepoUrl::parse("https://h/o/r").unwrap())
            .join("HEAD"),
        "",
    )
    .unwrap();
    let remote = Remote::new(
        RepoUrl::parse("https://h/o/r").unwrap(),
        Duration::from_secs(5),
    );
    let _ = git.resolve(&remote, &branch()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("ls-remote -- https://h/o/r refs/heads/main"),
        "{text}"
    );
    for want in [
        "GIT_TERMINAL_PROMPT=0",
        "GIT_CONFIG_NOSYSTEM=1",
        "GIT_CONFIG_GLOBAL=/dev/null",
        "GIT_ALLOW_PROTOCOL=https",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(!text.contains("HOME="), "{text}");
}

#[tokio::test]
async fn an_https_token_travels_in_the_environment_never_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let fake = tmp.path().join("fake-git");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"ARGS $@\" >> {log}\nenv >> {log}\necho true\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let git = GitCli::new(tmp.path().join("cache")).with_program(&fake);
    let url = RepoUrl::parse("https://git.example.com/o/r.git").unwrap();
    std::fs::create_dir_all(git.cache_dir(&url)).unwrap();
    std::fs::write(git.cache_dir(&url).join("HEAD"), "").unwrap();
    let mut remote = Remote::new(url, Duration::from_secs(5));
    remote.credentials.https_token = Some("s3cret-token".into());
    let _ = git.resolve(&remote, &branch()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("GIT_CONFIG_VALUE_0=Authorization: Bearer s3cret-token"),
        "{text}"
    );
    for line in text.lines().filter(|l| l.starts_with("ARGS ")) {
        assert!(
            !line.contains("s3cret"),
            "the token is on a command line: {line}"
        );
    }
}

/// `ssh://` with the operator's key and known_hosts against a real sshd on loopback (the
/// credentials path had only unit tests): resolve, fetch and read work; a server whose host
/// key is not in known_hosts is refused at once (strict checking, BatchMode: no prompt, no
/// hang); and without the key the server refuses.
#[tokio::test]
async fn ssh_with_the_operators_key_and_known_hosts_against_a_real_sshd() {
    if real_git().is_none() {
        return;
    }
    let Some(sshd) = require(test_support::sshd()) else {
        return;
    };
    let up = GitRepo::new();
    let sha = up.commit(&[("clusters/a.yaml", Some("a: 1\n"))], "one");
    let url = RepoUrl::parse(&format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        up.bare.display()
    ))
    .unwrap();
    let with = |creds: git_client::Credentials| Remote {
        url: url.clone(),
        credentials: creds,
        timeout: Duration::from_secs(20),
    };
    let cache = tempfile::tempdir().unwrap();
    let git = GitCli::new(cache.path());
    let good = with(git_client::Credentials {
        ssh_key: Some(sshd.identity()),
        known_hosts: Some(sshd.known_hosts()),
        https_token: None,
    });
    let got = git.resolve(&good, &branch()).await;
    assert_eq!(
        got.as_deref().ok(),
        Some(sha.as_str()),
        "{got:?}\n{}",
        sshd.log()
    );
    assert_eq!(git.fetch(&good, &branch()).await.unwrap(), sha);
    let files = git
        .read_files(&good, &sha, "clusters", &[".yaml"])
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].content, b"a: 1\n");

    // A known_hosts that does not name this server: refused without prompting.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let stranger = with(git_client::Credentials {
        ssh_key: Some(sshd.identity()),
        known_hosts: Some(empty.path().to_path_buf()),
        https_token: None,
    });
    let started = Instant::now();
    let e = git.resolve(&stranger, &branch()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{e}");
    assert!(
        e.to_string().to_lowercase().contains("host key"),
        "the error says why: {e}"
    );

    // The right host, no key of ours: the server refuses.
    let keyless = with(git_client::Credentials {
        ssh_key: None,
        known_hosts: Some(sshd.known_hosts()),
        https_token: None,
    });
    assert!(git.resolve(&keyless, &branch()).await.is_err());
}
