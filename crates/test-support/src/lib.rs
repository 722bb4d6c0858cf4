//! Harness for live and end-to-end tests: real components found or skipped by one CI policy, each outcome tallied, and the processes they start.
//!
//! Used only as a `[dev-dependencies]` entry. It knows nothing of bots: it starts processes
//! (a private [`Caddy`], any [`Daemon`]), makes real git repositories ([`GitRepo`]), runs a private sshd ([`Sshd`]), finds
//! free loopback ports, and decides what a missing
//! real component means ([`require`]):
//!
//! - under a truthy `CI` ([`ci::real_components_required`]) the test fails, so CI cannot go
//!   green while proving nothing;
//! - otherwise it is skipped with its reason on stderr.
//!
//! Either way the outcome ("ran" or "skipped (reason)") is appended to the tally file named by
//! `BOTCLUSTER_E2E_TALLY` ([`tally`]), which `cargo xtask ci` counts at the end of the run.

pub mod caddy;
pub mod ci;
pub mod git;
pub mod net;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod ssh;
pub mod tally;

pub use caddy::{Admin, Caddy};
pub use git::{git_cli, GitRepo};
pub use net::{free_loopback_addr, free_port};
pub use postgres::postgres_url;
pub use process::{dies_with_this_test, which, Daemon};
pub use redis::redis_addr;
pub use ssh::{sshd, Sshd};
pub use tally::{require, skip, Missing};
