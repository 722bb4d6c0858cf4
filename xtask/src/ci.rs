//! `cargo xtask ci`: everything CI checks, in the order a failure is cheapest to find.
//!
//! Steps: `cargo fmt --check`; `cargo clippy --all-features -D warnings`; the real daemons the
//! end-to-end tests use (`lxd-up`, `caddy-up`, `pg-up`; `promtool` and `git` installed when
//! missing); `cargo test --workspace`, then
//! `cargo test -p lxd-client --all-features`; `cargo xtask fuzz --seconds 6` (every fuzz
//! target, bounded; installs cargo-fuzz when missing); `cargo xtask schemathesis --seconds 45 --seed 20261202`
//! (the live API against its OpenAPI document); then
//! the tally line `end-to-end tests: N ran, M skipped` (with each skip's reason). Under a truthy
//! `CI` (`true`, `1`...: `test_support::ci`) the end-to-end tests fail instead of skipping when
//! a daemon is missing.
//!
//! `--all-features` because lxd-client's `https` transport (TLS, pinned fingerprints) is
//! behind a feature: without it, neither its code nor its live test is ever compiled. Its
//! tests run in lxd-client alone: the feature switches reqwest to `rustls-no-provider` for the
//! whole build, so in a workspace-wide `--all-features` test build every other crate's
//! `reqwest::Client::new()` would panic for want of a process-wide crypto provider.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::project_root;

/// The variable the live tests' harness (`botcluster-test-support`) appends its tally to.
const TALLY_VAR: &str = "BOTCLUSTER_E2E_TALLY";

fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

fn cargo_with_env(args: &[&str], env: &[(&str, &Path)]) -> Result<()> {
    let started = Instant::now();
    println!("==> cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(project_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    println!("    ok in {:.0?}", started.elapsed());
    Ok(())
}

pub fn run(args: &[&str]) -> Result<()> {
    let skip_daemons = args.contains(&"--no-daemons");
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    if !skip_daemons {
        println!("==> cargo xtask lxd-up");
        crate::lxd::up(&[])?;
        println!("==> cargo xtask caddy-up");
        crate::caddy::up(&[])?;
        println!("==> cargo xtask pg-up");
        crate::pg::up(&[])?;
        println!("==> cargo xtask redis-up");
        crate::redis::up(&[])?;
        ensure_promtool()?;
        ensure_git()?;
    }
    let tally = tally_path();
    if let Some(dir) = tally.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Fresh for this run: the tests append to it.
    std::fs::write(&tally, "").with_context(|| format!("creating {}", tally.display()))?;
    let workspace = cargo_with_env(
        &["test", "--workspace", "--no-fail-fast"],
        &[(TALLY_VAR, &tally)],
    );
    let https = cargo_with_env(
        &[
            "test",
            "-p",
            "lxd-client",
            "--all-features",
            "--no-fail-fast",
        ],
        &[(TALLY_VAR, &tally)],
    );
    let tested = workspace.and(https);
    // A short coverage-guided run of every fuzz target (docs/security.md): tens of seconds in
    // all once the fuzz build is cached.
    let fuzzed = crate::fuzz::run(&["--seconds", FUZZ_SECONDS]);
    // The API against its own OpenAPI document, on a live server: no 5xx, every response as
    // documented.
    let contract = crate::schemathesis::run(&[
        "--seconds",
        SCHEMATHESIS_SECONDS,
        "--seed",
        SCHEMATHESIS_SEED,
    ]);
    // The count goes out also when a test failed: it is what the CI log is read for.
    let text = std::fs::read_to_string(&tally)
        .with_context(|| format!("reading the end-to-end tally {}", tally.display()))?;
    println!("{}", Tally::parse(&text).report());
    tested.and(fuzzed).and(contract)
}

/// The seed CI's schemathesis run uses (see `schemathesis.rs`: reproducible CI).
const SCHEMATHESIS_SEED: &str = "20261202";

/// Seconds schemathesis may take in CI.
const SCHEMATHESIS_SECONDS: &str = "45";

/// Seconds each fuzz target runs in CI.
const FUZZ_SECONDS: &str = "6";

/// `target/e2e-tally.txt` (or under `CARGO_TARGET_DIR`).
fn tally_path() -> PathBuf {
    crate::util::target_dir().join("e2e-tally.txt")
}

/// What the live and end-to-end tests reported, one line each (`ran\t<test>` or
/// `skipped\t<test>\t<reason>`, written by `botcluster-test-support`).
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Test → why it was skipped (`None`: it ran).
    tests: BTreeMap<String, Option<String>>,
}

impl Tally {
    /// A test that reported both (a requirement found, a later one missing) was skipped.
    fn parse(text: &str) -> Tally {
        let mut tally = Tally::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.splitn(3, '\t');
            let (verdict, test) = (fields.next().unwrap_or(""), fields.next().unwrap_or(line));
            let slot = tally.tests.entry(test.to_owned()).or_insert(None);
            if verdict != "ran" {
                let reason = fields.next().unwrap_or("no reason given");
                *slot = Some(reason.to_owned());
            }
        }
        tally
    }

    /// `end-to-end tests: 41 ran, 2 skipped`, then one line per skipped test with its reason.
    fn report(&self) -> String {
        let skipped: Vec<_> = self
            .tests
            .iter()
            .filter_map(|(test, why)| why.as_ref().map(|why| (test, why)))
            .collect();
        let ran = self.tests.len() - skipped.len();
        let mut out = format!("end-to-end tests: {ran} ran, {} skipped", skipped.len());
        for (test, why) in skipped {
            out.push_str(&format!("\n    skipped {test}: {why}"));
        }
        out
    }
}

/// `promtool` (Debian's `prometheus` package) checks `manifests/prometheus/alerts.yml`.
fn ensure_promtool() -> Result<()> {
    ensure_program("promtool", "prometheus")
}

/// The git CLI the GitSource tests (and the operator) run.
fn ensure_git() -> Result<()> {
    ensure_program("git", "git")?;
    // A private sshd on loopback serves `ssh://` to git-client's test (the package's own
    // service is not started: no systemd, and Debian's policy-rc.d in images like this one).
    ensure_program("/usr/sbin/sshd", "openssh-server")
}

/// Installs Debian's `package` when `program --version` does not run.
fn ensure_program(program: &str, package: &str) -> Result<()> {
    let found = Command::new(program).arg("--version").output().is_ok();
    if found {
        println!("==> {program}: already installed");
        return Ok(());
    }
    println!("==> {program}: installing Debian's {package} package");
    crate::util::apt_install("ci", package, &[package]).with_context(|| {
        format!("could not install {program}: run `apt-get install {package}` as root")
    })
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn the_tally_counts_each_test_once_and_a_late_skip_wins() {
        let text = "ran\tbotctl lxd_e2e::a\n\
                    ran\tbotctl lxd_e2e::b\n\
                    ran\tbotctl lxd_e2e::freeze\n\
                    skipped\tbotctl lxd_e2e::freeze\tno pid file (run lxd-up)\n\
                    skipped\tcaddy-client live::c\tcaddy is not on PATH (install it)\n";
        assert_eq!(
            Tally::parse(text).report(),
            "end-to-end tests: 2 ran, 2 skipped\n    \
             skipped botctl lxd_e2e::freeze: no pid file (run lxd-up)\n    \
             skipped caddy-client live::c: caddy is not on PATH (install it)"
        );
    }

    #[test]
    fn no_reports_count_zero() {
        assert_eq!(
            Tally::parse("").report(),
            "end-to-end tests: 0 ran, 0 skipped"
        );
    }
}
