//! `cargo xtask ci`: everything CI checks, in the order a failure is cheapest to find.
//!
//! Steps: `cargo fmt --check`; `cargo clippy -D warnings`; the real daemons the end-to-end
//! tests use (`lxd-up`, `caddy-up`); `cargo test --workspace`. Under `CI=true` the end-to-end tests fail
//! instead of skipping when a daemon is missing.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::project_root;

fn cargo(args: &[&str]) -> Result<()> {
    let started = Instant::now();
    println!("==> cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
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
        "--",
        "-D",
        "warnings",
    ])?;
    if !skip_daemons {
        println!("==> cargo xtask lxd-up");
        crate::lxd::up(&[])?;
        println!("==> cargo xtask caddy-up");
        crate::caddy::up(&[])?;
        ensure_promtool()?;
    }
    cargo(&["test", "--workspace", "--no-fail-fast"])?;
    Ok(())
}

/// `promtool` (Debian's `prometheus` package) checks `manifests/prometheus/alerts.yml`.
fn ensure_promtool() -> Result<()> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if found {
        println!("==> promtool: already installed");
        return Ok(());
    }
    println!("==> promtool: installing Debian's prometheus package");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "prometheus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !install() {
        // A fresh machine may not have package lists yet.
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        if !install() {
            bail!("could not install promtool: run `apt-get install prometheus` as root");
        }
    }
    Ok(())
}
