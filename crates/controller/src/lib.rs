//! The reconcile loop: observe LXD, plan with a pure function, execute idempotent actions, report status.
//!
//! - [`runtime`]: the generic part — [`runtime::Reconcile`], the [`Controller`] (triggers →
//!   work queue → workers, backoff), the finalizer helper. Knows no BotCluster.
//! - [`botcluster`]: the BotCluster reconciler — one pass (observe → plan → execute →
//!   status), dry runs, status derivation, the load balancer's part of the plan.
//! - [`gitsource`]: the GitSource reconciler — follow a Git repository, apply the
//!   BotClusters in it, prune what left it (GitOps).
//! - [`model`]: names, ownership keys, config and devices derived from a spec.
//! - [`plan`]: the pure container planner and the simulation its property tests check it against.
//! - [`backend`]: the container backend trait, the LXD implementation and an in-memory fake.
//! - [`breaker`]: a circuit breaker around the backends.
//! - [`proxy`]: the load-balancer backend trait, Caddy and in-memory implementations.
//! - [`probe`]: the health probe trait and its HTTP implementation.
//! - [`health`]: what is remembered per cluster between passes (rebuildable).

pub mod backend;
pub mod botcluster;
pub mod breaker;
pub mod cacheprobe;
pub mod gitsource;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod probe;
pub mod proxy;
pub mod runtime;

pub use botcluster::{BotClusterReconciler, ReconcilerConfig};
pub use gitsource::{GitSourceMetrics, GitSourceReconciler};
pub use runtime::Controller;
