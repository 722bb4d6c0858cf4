//! End-to-end against the real LXD daemon: a real `botctl serve` process reconciling real
//! containers built from the test image (`cargo xtask lxd-up` makes both). One test binary,
//! one module per concept; the harness is in `operator` (this binary's) and `../support`
//! (shared with the other botctl test binaries).
//!
//! Without LXD (or Caddy, for the load-balancer tests) these tests fail when `CI` is set to a
//! truthy value (`true`, `1`...) and are skipped (with a message) otherwise
//! (`test_support::require`).
//! Cluster names carry this process's pid (`e2e-<pid>-...`), and each test deletes what it
//! made; containers left by a killed run (whose pid is gone) are swept at start.

#[path = "../support/mod.rs"]
mod support;

mod lb;
mod observe;
mod operator;

mod balancer;
mod budget;
mod converge;
mod healing;
mod lxd_outage;
mod ownership;
mod rolling;
mod scaling;
mod suspend;
