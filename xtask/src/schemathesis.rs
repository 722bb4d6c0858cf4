//! `cargo xtask schemathesis [--seconds N] [--seed N]`: the API checked against its own
//! OpenAPI document. Without `--seed` every run explores new cases; CI passes a fixed seed so
//! that a red CI run is reproducible and never depends on luck (explore locally, then add
//! what a run finds as a test).
//!
//! Idempotent: schemathesis (PyPI) is installed into a venv under `<target>/schemathesis` only
//! when missing. Builds botctl, starts `botctl serve --no-controller` on a free loopback port
//! with a fresh data directory, and runs `schemathesis run` against
//! `/api/v1/openapi.json` with the token: every operation, every check except
//! `positive_data_acceptance` (the JSON Schema cannot say every rule — cross-field limits,
//! the body's name matching the URL's — so a schema-valid body may rightly get 400 `Invalid`),
//! bounded by `--max-time`. Fails on any 5xx, undocumented status, wrong content type or a
//! response that does not match the document.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::project_root;

/// The release checked here (4.x reads OpenAPI 3.1).
const SCHEMATHESIS_VERSION: &str = "4.32.5";

fn ensure_schemathesis(dir: &Path) -> Result<std::path::PathBuf> {
    let st = dir.join("venv/bin/schemathesis");
    if st.exists() {
        println!("==> schemathesis: already installed in {}", dir.display());
        return Ok(st);
    }
    println!(
        "==> schemathesis: installing {SCHEMATHESIS_VERSION} into {}",
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::util::run(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(dir.join("venv")),
    )
    .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    crate::util::run(
        Command::new(dir.join("venv/bin/pip"))
            .args(["install", "--quiet"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")),
    )
    .context("pip install schemathesis")?;
    Ok(st)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[&str]) -> Result<()> {
    let seconds = match args.iter().position(|a| *a == "--seconds") {
        Some(i) => args
            .get(i + 1)
            .context("--seconds takes a number")?
            .parse::<u64>()
            .context("--seconds: not a whole number")?,
        None => 60,
    };
    let target = crate::util::target_dir();
    let dir = target.join("schemathesis");
    let st = ensure_schemathesis(&dir)?;
    println!("==> building botctl");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::util::run(
        Command::new(&cargo)
            .args(["build", "--quiet", "-p", "botctl"])
            .current_dir(project_root()),
    )?;
    let data = dir.join(format!("data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        l.local_addr()?.to_string()
    };
    println!("==> botctl serve --no-controller on {addr}");
    let log = std::fs::File::create(dir.join("serve.log")).context("creating serve.log")?;
    let server = Server(
        Command::new(target.join("debug/botctl"))
            .args(["serve", "--listen", &addr, "--no-controller"])
            .env("BOTCLUSTER_DATA_DIR", &data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting botctl serve")?,
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "botctl serve did not listen on {addr} within 30 s; see {}/serve.log",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seed = match args.iter().position(|a| *a == "--seed") {
        Some(i) => Some(
            args.get(i + 1)
                .context("--seed takes a number")?
                .parse::<u64>()
                .context("--seed: not a whole number")?,
        ),
        None => None,
    };
    let token = std::fs::read_to_string(data.join("token")).context("reading the token")?;
    println!("==> schemathesis run (at most {seconds}s)");
    let status = Command::new(&st)
        .arg("run")
        .arg(format!("http://{addr}/api/v1/openapi.json"))
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(
            seed.map(|s| vec!["--seed".to_string(), s.to_string()])
                .unwrap_or_default(),
        )
        .arg("--max-time")
        .arg(seconds.to_string())
        .arg("--report-dir")
        .arg(dir.join("report"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its example database (.schemathesis/) goes under target/, not into the repo.
        .current_dir(&dir)
        .status()
        .context("running schemathesis")?;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    if !status.success() {
        bail!(
            "schemathesis found problems ({status}); the report is in {}",
            dir.join("report").display()
        );
    }
    Ok(())
}
