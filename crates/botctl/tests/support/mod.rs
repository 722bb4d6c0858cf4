//! The harness the botctl integration tests share (each test binary has `mod support;` and
//! uses the part it needs): `botctl serve` as a child process with its own data dir
//! ([`serve`]), and the real LXD with the test image for the live tests ([`lxd`]).
//!
//! Live tests gate on what they need with `test_support::require` (skipped, or failed under a
//! truthy `CI`), use names carrying this process's pid (`e2e-<pid>-...`) and delete what they
//! made.

// Each test binary compiles this module for the few helpers it uses.
#![allow(dead_code)]

pub mod lxd;
pub mod serve;

use std::path::{Path, PathBuf};

pub use serve::Serve;

/// The repository's root: `botctl` runs there, so `examples/...` paths resolve.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test image's alias (`cargo xtask lxd-up` builds it), or `BOTCLUSTER_TEST_IMAGE`.
pub fn image() -> String {
    std::env::var("BOTCLUSTER_TEST_IMAGE").unwrap_or_else(|_| "botcluster-botserver".into())
}

/// A BotCluster document: `name`, `image`, then `spec` (lines indented under `spec:`).
pub fn cluster_yaml(name: &str, image: &str, spec: &str) -> String {
    format!(
        "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n{spec}"
    )
}

/// A range of `len` (at most 40) host ports nobody listens on right now, below Linux's
/// ephemeral range (32768+), where outgoing connections could take a port between the check
/// and LXD's bind. Calls of one process take consecutive slots of 50 ports, so two ranges of
/// one run never overlap; each run starts at a random slot.
pub fn port_range(len: u16) -> (u16, u16) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    assert!((1..=40).contains(&len), "a port range of {len} ports");
    let base = *BASE.get_or_init(rand_u32);
    for _ in 0..200 {
        let slot = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 200;
        let start = 22000 + slot as u16 * 50;
        if (start..start + len).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return (start, start + len - 1);
        }
    }
    panic!("no free range of {len} host ports in 22000-31999");
}

/// `start-end`, as `botctl serve --port-range` takes it.
pub fn port_range_arg(len: u16) -> String {
    let (start, end) = port_range(len);
    format!("{start}-{end}")
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    t ^ std::process::id().rotate_left(16)
}
