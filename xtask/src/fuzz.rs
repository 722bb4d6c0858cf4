//! `cargo xtask fuzz [--seconds N] [TARGET...]`: a bounded, coverage-guided run of each fuzz
//! target in `fuzz/` (libFuzzer through `cargo fuzz run -s none`, on the stable toolchain).
//!
//! Idempotent: `cargo-fuzz` is installed from crates.io into `<target>/tools` only when missing;
//! the fuzz build lives in `<target>/fuzz`. Each target starts from the corpus kept in the repo
//! (`fuzz/corpus/TARGET`, read only) plus what earlier runs found (`<target>/fuzz-corpus/TARGET`,
//! where new inputs go, so the repo stays clean); a crash is written to
//! `<target>/fuzz-artifacts/TARGET/` and fails the chore. Builds with debug assertions (`-a`),
//! so integer overflow panics as in a debug build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::project_root;

/// Every target in `fuzz/fuzz_targets`.
pub const TARGETS: &[&str] = &[
    "spec_yaml",
    "spec_json",
    "http_body",
    "config_csv",
    "caddy_render",
];

/// The cargo-fuzz release checked to work here with `-s none` on stable Rust.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `<target>/tools/bin`, holding `cargo-fuzz` (installed when missing).
fn ensure_cargo_fuzz(tools: &Path) -> Result<PathBuf> {
    let bin = tools.join("bin");
    if bin.join("cargo-fuzz").exists() {
        println!("==> cargo-fuzz: already installed in {}", bin.display());
        return Ok(bin);
    }
    println!(
        "==> cargo-fuzz: installing {CARGO_FUZZ_VERSION} into {}",
        tools.display()
    );
    let status = Command::new(cargo())
        .args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
            "--root",
        ])
        .arg(tools)
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status}); it needs crates.io");
    }
    Ok(bin)
}

pub fn run(args: &[&str]) -> Result<()> {
    let mut seconds = 10u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--seconds" => {
                let v = it.next().context("--seconds takes a number")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds {v}: not a whole number"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown argument `{other}`; targets are {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let target = crate::util::target_dir();
    let bin = ensure_cargo_fuzz(&target.join("tools"))?;
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin.clone()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).context("building PATH")?
        }
        None => bin.clone().into_os_string(),
    };
    let fuzz_dir = project_root().join("fuzz");
    let build_dir = target.join("fuzz");
    let fuzz = |extra: &[&str]| {
        let mut cmd = Command::new(cargo());
        cmd.arg("fuzz")
            .args(extra)
            .current_dir(project_root())
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", &build_dir);
        cmd
    };
    let started = Instant::now();
    println!("==> cargo fuzz build -s none -a (all targets)");
    let status = fuzz(&["build", "-s", "none", "-a"]).status()?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    println!("    built in {:.0?}", started.elapsed());
    let mut failed = Vec::new();
    for t in targets {
        let corpus = target.join("fuzz-corpus").join(t);
        let artifacts = target.join("fuzz-artifacts").join(t);
        for d in [&corpus, &artifacts] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let seeds = fuzz_dir.join("corpus").join(t);
        println!("==> fuzz {t} for {seconds}s");
        let status = fuzz(&["run", "-s", "none", "-a", t])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .status()
            .with_context(|| format!("running cargo fuzz run {t}"))?;
        if status.success() {
            println!("    {t}: no crash in {seconds}s");
        } else {
            println!("    {t}: FAILED; the input is in {}", artifacts.display());
            failed.push(t);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {}; reproduce with `cargo fuzz run -s none -a TARGET ARTIFACT`",
            failed.join(", ")
        );
    }
    Ok(())
}
