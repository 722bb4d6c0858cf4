//! The Prometheus alerting rules in `manifests/prometheus/` (the seed's HighCPUUsage,
//! MaxInstancesReached and ScalingFailed on the operator's metric names) are valid and behave as
//! their unit tests say: `promtool check rules` and `promtool test rules`.
//!
//! Needs `promtool` (Debian: `apt-get install prometheus`). Without it the test is skipped,
//! except when `CI` is set to a truthy value (`true`, `1`...), where it fails
//! (`test_support::require`).

use std::path::PathBuf;
use std::process::Command;

use test_support::{require, Missing};

/// The workspace root: the rules' paths below are relative to it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn promtool_installed() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn promtool(args: &[&str]) {
    let dir = workspace_root();
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {} failed in {}:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn the_scaling_alerts_are_valid_and_pass_their_unit_tests() {
    let found = if promtool_installed() {
        Ok(())
    } else {
        Err(Missing::new(
            "promtool not found",
            "install Debian's prometheus package: apt-get install prometheus",
        ))
    };
    let Some(()) = require(found) else { return };
    promtool(&["check", "rules", "manifests/prometheus/alerts.yml"]);
    promtool(&["test", "rules", "manifests/prometheus/alerts_test.yml"]);
}
