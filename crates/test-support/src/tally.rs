//! What each live or end-to-end test did — ran, or skipped and why — for the line that ends a
//! CI run (`end-to-end tests: 41 ran, 0 skipped`).
//!
//! A test reports through [`require`] (and [`skip`] for a late reason). When the environment
//! names a file in [`TALLY_VAR`], each report appends one line to it:
//!
//! ```text
//! ran\t<test>
//! skipped\t<test>\t<reason>
//! ```
//!
//! `<test>` is `<package> <test binary>::<test name>`. One test may write both lines (a
//! requirement found, then a late one missing): it counts as skipped. Lines are appended with
//! a single write each, so tests running in parallel, in several binaries, share one file.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::ci;

/// The environment variable naming the tally file (`cargo xtask ci` sets it).
pub const TALLY_VAR: &str = "BOTCLUSTER_E2E_TALLY";

/// A real component a test needs and did not find: what is missing, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// "caddy is not on PATH".
    pub what: String,
    /// "run `cargo xtask caddy-up`".
    pub fix: String,
}

impl Missing {
    pub fn new(what: impl Into<String>, fix: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.fix)
    }
}

/// The one gate of a live test: `Some` (and "ran" tallied) when the real components were
/// found, else a skip (see [`skip`]).
///
/// **Expected flow**: the harness looks for what the test needs (a socket, a binary, an
/// image) and returns `Err(Missing)` for the first thing absent; the test does
/// `let Some(x) = require(found) else { return };`.
///
/// # Panics
/// Under a truthy `CI` ([`ci::real_components_required`]) when something is missing.
#[track_caller]
pub fn require<T>(found: Result<T, Missing>) -> Option<T> {
    match found {
        Ok(v) => {
            record(&Outcome::Ran);
            Some(v)
        }
        Err(missing) => {
            skip(missing);
            None
        }
    }
}

/// Skips the calling test: tallies it and prints `skipped: <reason>`. The caller returns.
///
/// # Panics
/// Under a truthy `CI`: there, a missing real component fails the test instead (still
/// tallied as skipped, so the closing count says why it did not run).
#[track_caller]
pub fn skip(missing: Missing) {
    record(&Outcome::Skipped(missing.to_string()));
    if ci::real_components_required() {
        let value = std::env::var(ci::CI_VAR).unwrap_or_default();
        panic!(
            "{}, and CI={value:?} requires the real components: {}",
            missing.what, missing.fix
        );
    }
    eprintln!("skipped: {missing}");
}

/// One tally line's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Skipped(String),
}

/// The tally line for `test`, newline included; tabs and newlines in names and reasons become
/// spaces so that one report is always one line of three fields at most.
pub fn line(test: &str, outcome: &Outcome) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    match outcome {
        Outcome::Ran => format!("ran\t{}\n", clean(test)),
        Outcome::Skipped(reason) => format!("skipped\t{}\t{}\n", clean(test), clean(reason)),
    }
}

/// Appends `line(test, outcome)` to `path` in one write.
pub fn append(path: &Path, test: &str, outcome: &Outcome) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(line(test, outcome).as_bytes())
}

/// Appends the calling test's outcome to the tally file, if there is one. A tally that cannot
/// be written fails the test: a CI log would otherwise count fewer tests than ran.
fn record(outcome: &Outcome) {
    let Some(path) = std::env::var_os(TALLY_VAR).filter(|p| !p.is_empty()) else {
        return;
    };
    let path = Path::new(&path);
    if let Err(e) = append(path, &current_test(), outcome) {
        panic!("could not append to {TALLY_VAR}={}: {e}", path.display());
    }
}

/// `<package> <test binary>::<test name>` for the calling test.
///
/// libtest names each test's thread after the test; `cargo test` sets `CARGO_PKG_NAME` for
/// the binaries it runs, and the binary is `<target>-<hash>`.
fn current_test() -> String {
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "?".into());
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((target, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => target.into(),
            _ => stem,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("{package} {binary}::{test}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_line_even_when_the_reason_has_tabs_and_newlines() {
        assert_eq!(line("p t::a", &Outcome::Ran), "ran\tp t::a\n");
        assert_eq!(
            line("p t::a", &Outcome::Skipped("no LXD\tat\n/x".into())),
            "skipped\tp t::a\tno LXD at /x\n"
        );
    }

    #[test]
    fn reports_append_to_the_tally_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tally");
        append(&path, "p t::a", &Outcome::Ran).unwrap();
        append(&path, "p t::b", &Outcome::Skipped("why".into())).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "ran\tp t::a\nskipped\tp t::b\twhy\n"
        );
    }

    #[test]
    fn the_current_test_is_named_after_its_thread() {
        let name = current_test();
        assert!(
            name.ends_with("::tally::tests::the_current_test_is_named_after_its_thread"),
            "{name}"
        );
    }
}
