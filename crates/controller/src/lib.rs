//! The reconcile loop: observe LXD, plan with a pure function, execute idempotent actions, report status.
//!
//! - [`model`]: names, ownership keys, config and devices derived from a spec.
//! - [`plan`]: the pure planner and the simulation its property tests check it against.
//! - [`backend`]: the container backend trait, the LXD implementation and an in-memory fake.
//! - [`breaker`]: a circuit breaker around the backend.
//! - [`proxy`]: the load-balancer backend trait, Caddy and in-memory implementations.
//! - [`reconcile`]: one pass over one cluster (observe → plan → execute → status).
//! - [`controller`]: the work queue, triggers (store watch, LXD events, resync), backoff and
//!   concurrency bounds.

pub mod backend;
pub mod breaker;
pub mod controller;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod probe;
pub mod proxy;
pub mod reconcile;

pub use controller::{Controller, ControllerConfig};
