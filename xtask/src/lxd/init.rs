//! Initialising LXD: a `default` storage pool and a root disk in the default profile, with
//! `lxd init --preseed` when either is missing.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};

use super::{found, has, Lxd};
use crate::util::say;

const PRESEED_POOL: &str = "\
storage_pools:
- name: default
  driver: dir
";
const PRESEED_REST: &str = "\
config:
  images.auto_update_interval: \"0\"
networks: []
profiles:
- name: default
  description: Default LXD profile (botcluster xtask lxd-up)
  devices:
    root:
      path: /
      pool: default
      type: disk
";

pub(super) fn ensure_initialised(lxd: &Lxd) -> Result<()> {
    let pool = found(lxd.block_on(lxd.reads.get_storage_pool("default")))?;
    let profile = found(lxd.block_on(lxd.reads.get_profile("default")))?
        .context("LXD has no default profile")?;
    let devices = profile.devices;
    let has_root = devices
        .values()
        .any(|d| has(d, "type", "disk") && has(d, "path", "/"));
    if let (Some(pool), true) = (&pool, has_root) {
        say(
            "lxd-up",
            format!(
                "init: already initialised (pool default, driver {}; default profile has a root disk)",
                Some(pool.driver.as_str()).filter(|d| !d.is_empty()).unwrap_or("?")
            ),
        );
        let nics: Vec<&String> = devices
            .iter()
            .filter(|(_, d)| has(d, "type", "nic"))
            .map(|(name, _)| name)
            .collect();
        if !nics.is_empty() {
            say(
                "lxd-up",
                format!(
                    "init: note: the default profile has NIC device(s) {nics:?}; left as they are"
                ),
            );
        }
        return Ok(());
    }
    // An existing pool is left alone (its driver cannot change); only what is missing is added.
    let preseed = if pool.is_none() {
        format!("{PRESEED_POOL}{PRESEED_REST}")
    } else {
        PRESEED_REST.to_string()
    };
    say(
        "lxd-up",
        "init: lxd init --preseed (pool default on dir, root disk in the default profile, no network)",
    );
    let mut child = Command::new("lxd")
        .args(["init", "--preseed"])
        .env("LXD_DIR", &lxd.dir)
        .stdin(Stdio::piped())
        .spawn()
        .context("running lxd init --preseed")?;
    child
        .stdin
        .take()
        .context("lxd init has no stdin")?
        .write_all(preseed.as_bytes())?;
    let status = child.wait()?;
    ensure!(status.success(), "lxd init --preseed failed: {status}");
    Ok(())
}
