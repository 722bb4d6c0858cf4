//! A typed async client for Caddy's admin API, built to own one part of a shared Caddy config.
//!
//! ```no_run
//! # async fn demo() -> caddy_client::Result<()> {
//! use caddy_client::{Applied, Client};
//! use serde_json::json;
//!
//! let caddy = Client::from_url("http://127.0.0.1:2019")?; // or "unix:///run/caddy/admin.sock"
//! let server = json!({
//!     "listen": ["127.0.0.1:8080"],
//!     "automatic_https": {"disable": true},
//!     "routes": [{"handle": [{
//!         "handler": "reverse_proxy",
//!         "upstreams": [{"dial": "127.0.0.1:9001"}, {"dial": "127.0.0.1:9002"}]
//!     }]}]
//! });
//! // Reads `apps/http/servers/fleet`, writes it only if it differs, leaves every other
//! // server alone.
//! let applied = caddy.ensure_server("fleet", &server).await?;
//! if applied != Applied::Unchanged {
//!     println!("pushed a new config for fleet: {applied:?}");
//! }
//! for upstream in caddy.upstreams().await? {
//!     println!("{} in flight: {}", upstream.address, upstream.num_requests);
//! }
//! // Requests proxied by `fleet` so far (the server needs `"metrics": {}` in Caddy 2.6+).
//! if let Some(traffic) = caddy_client::ServerTraffic::from_metrics(&caddy.metrics().await?, "fleet") {
//!     println!("fleet proxied {} requests", traffic.requests_total);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! What was verified against Caddy 2.6.2 (Debian's package), and so shapes this API:
//! - ETags arrive as an HTTP *trailer* (a header from 2.8 on); the client reads either, and
//!   [`compute_etag`] reproduces them from the body for `/config/` paths.
//! - On a unix socket, Caddy before 2.10 checks the Host header and accepts only an empty one;
//!   the client sends `Host:` empty there.
//! - Status codes are coarse (missing and existing keys are both 500), so errors are sorted by
//!   Caddy's error text into [`Error::NotFound`], [`Error::AlreadyExists`] and
//!   [`Error::PreconditionFailed`].
//! - Every accepted change reloads the whole config; writing an unchanged value does not.
//! - HTTP metrics are opt-in per server (`"metrics": {}`), and every handler in a chain counts
//!   each request; [`ServerTraffic`] sums only a server's `reverse_proxy` series.

#![warn(missing_docs)]

mod client;
mod endpoint;
mod error;
mod etag;
mod metrics;
mod subtree;

pub use client::{Client, RequestObserver, Upstream, DEFAULT_TIMEOUT, DEFAULT_UNREACHABLE_HINT};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use etag::{compute_etag, Etag};
pub use metrics::{ServerTraffic, PROXY_HANDLER};
pub use subtree::{semantically_equal, server_path, Applied};

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
