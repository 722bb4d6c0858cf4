//! Async, typed client for the LXD REST API: instances, files, images, operations, events and metrics.
//!
//! The client talks to LXD over its unix socket (the default) or, with the `https`
//! cargo feature, to a remote LXD over HTTPS with a client certificate and a pinned
//! server certificate fingerprint. It knows nothing about what runs inside the
//! instances; it is a thin, honest layer over `/1.0`.
//!
//! # What it does for you
//!
//! - **Envelopes.** LXD answers with a `sync`, `async` or `error` envelope. Sync
//!   metadata is decoded into typed structs; async answers are followed to the end
//!   of their [`Operation`] (via `/1.0/operations/UUID/wait`) before the call
//!   returns; error envelopes and failed operations become an [`Error`].
//! - **Typed failures.** The failures a reconciler has to tell apart are variants of
//!   [`Error`]: [`Error::NotFound`], [`Error::AlreadyExists`],
//!   [`Error::AlreadyRunning`], [`Error::AlreadyStopped`],
//!   [`Error::PreconditionFailed`] (ETag mismatch) and [`Error::InstanceRunning`].
//!   Every error names the request (method and path) that failed and LXD's message.
//! - **Optimistic concurrency.** [`Client::get_instance`] returns the instance's
//!   [`ETag`]; [`Client::patch_instance`] and [`Client::put_instance`] accept it as
//!   `If-Match`.
//! - **Events.** [`Client::events`] streams `/1.0/events`;
//!   [`Client::watch_events`] reconnects with capped exponential backoff and tells
//!   you when to re-list ([`WatchItem::Reconnected`]).
//! - **Observability without dependencies.** Plug a [`RequestObserver`] to count
//!   requests and latency; [`Client::write_count`] counts the writes issued.
//!
//! # Example
//!
//! ```no_run
//! use lxd_client::{Client, Filter, InstanceStatePut, InstancesPost, InstanceSource};
//!
//! # async fn demo() -> Result<(), lxd_client::Error> {
//! let lxd = Client::from_env()?;
//! let mut post = InstancesPost::container("web-0", InstanceSource::image_alias("busybox"));
//! post.config.insert("user.app".into(), "demo".into());
//! lxd.create_instance(&post).await?;
//! lxd.change_state("web-0", &InstanceStatePut::start()).await?;
//!
//! let mine = lxd.list_instances(Some(&Filter::new().eq("config.user.app", "demo"))).await?;
//! assert_eq!(mine.len(), 1);
//! # Ok(()) }
//! ```
//!
//! # Compatibility
//!
//! Written and tested against LXD 5.0.2. Newer servers keep the same `/1.0` shapes;
//! fields this crate does not know are ignored, and fields older servers do not
//! send default to empty values.

#![warn(missing_docs)]

mod client;
mod error;
mod events;
mod filter;
pub mod metrics;
#[cfg(feature = "https")]
mod tls;
mod types;

pub use client::{path_kind, Client, FilePush, ImageImport, RequestObserver, WriteMode};
pub use error::{Error, Request};
pub use events::{Backoff, Event, EventStream, EventType, LifecycleEvent, WatchItem, WatchStream};
pub use filter::Filter;
pub use metrics::{InstanceMetrics, Metrics};
#[cfg(feature = "https")]
pub use tls::install_default_crypto_provider;
pub use types::{
    CpuState, Devices, ETag, Envelope, Image, ImageAlias, ImageAliasRef, Instance, InstancePatch,
    InstancePut, InstanceSource, InstanceState, InstanceStatePut, InstancesPost, MemoryState,
    NetworkAddress, NetworkCounters, NetworkState, Operation, Profile, ResponseType, Server,
    ServerEnvironment, StateAction, StatusCode, StoragePool,
};

// Compile the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
