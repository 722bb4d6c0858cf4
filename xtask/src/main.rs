//! Project chores, run with `cargo xtask <chore>` (see `cargo xtask help`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

mod bench;
mod bench_api;
mod bench_react;
mod caddy;
mod ci;
mod demo;
mod fuzz;
mod lxd;
mod openapi;
mod pg;
mod redis;
mod schema;
mod schemathesis;
mod util;

const HELP: &str = "\
cargo xtask <chore>

Chores:
  demo            LXD and Caddy up, the operator started, examples/minimal.yaml applied
                  and Ready; prints status, instance URLs and the load balancer's URL;
                  Ctrl-C tears it all down
  bench converge  time from asking for N containers to all serving: the LXD floor, the
                  chapter's sequential lxc loop, and botctl apply (--runs N, --sizes 1,5,10)
  bench react     simulated time to react to load steps: the autoscaler vs the seed's loop
  bench api       HTTP API speed on a release `botctl serve --no-controller` with 1/100/1000
                  clusters: wrk req/s and p50/p99 of reads vs /healthz, write → watcher latency,
                  memory (--sizes 1,100,1000, --seconds 5; installs wrk if missing)
  ci              what CI runs: fmt --check, clippy -D warnings, lxd-up, caddy-up, pg-up, redis-up, all tests
                  (--no-daemons: skip starting LXD)
  fuzz            a bounded run of every fuzz target in fuzz/ (--seconds N each, default 10;
                  or name targets); installs cargo-fuzz into target/tools when missing
  openapi         write manifests/openapi.json (what /api/v1/openapi.json serves)
  openapi --check fail if manifests/openapi.json is stale
  schemathesis    schemathesis (PyPI, in a venv under target/) against a live
                  `botctl serve --no-controller`, every operation, with the token
                  (--seconds N, default 60)
  schema          write manifests/{botcluster,gitsource}.schema.json from the API types
  schema --check  fail if either is stale
  lxd-up          install, start and initialise LXD (no systemd needed), then `image`
  lxd-down        stop the LXD daemon that lxd-up started
  image           build and import the botserver-sim test image into LXD
                  (alias $BOTCLUSTER_TEST_IMAGE, default botcluster-botserver)
  caddy-up        install and run Caddy detached, admin API only ($BOTCLUSTER_CADDY_ADMIN)
  caddy-down      stop the Caddy that caddy-up started
  pg-up           install PostgreSQL if missing, run a private cluster on 127.0.0.1
                  ($BOTCLUSTER_PG_PORT, default 54329); prints its URL as the last line
  pg-down         stop the PostgreSQL that pg-up started
  redis-up        install redis-server if missing, run a private one on 127.0.0.1
                  ($BOTCLUSTER_REDIS_PORT, default 56379); prints host:port as the last line
  redis-down      stop the redis-server that redis-up started
  help            this text
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("ci") => ci::run(&rest),
        Some("schema") => schema::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("openapi") => openapi::run(&rest),
        Some("schemathesis") => schemathesis::run(&rest),
        Some("lxd-up") => lxd::up(&rest),
        Some("lxd-down") => lxd::down(&rest),
        Some("image") => lxd::image(&rest),
        Some("caddy-up") => caddy::up(&rest),
        Some("caddy-down") => caddy::down(&rest),
        Some("pg-up") => pg::up(&rest),
        Some("pg-down") => pg::down(&rest),
        Some("redis-up") => redis::up(&rest),
        Some("redis-down") => redis::down(&rest),
        None | Some("help") | Some("--help") | Some("-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown chore `{other}`\n\n{HELP}"),
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
        .unwrap_or_else(|_| PathBuf::from("."))
}
