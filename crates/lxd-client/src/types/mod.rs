//! Serde types for the parts of the LXD API this crate covers.
//!
//! Field names follow LXD's JSON (see `shared/api/*.go` in LXD). Every field that
//! LXD may omit has a serde default, and unknown fields are ignored, so the types
//! read answers from newer servers too.
//!
//! One module per endpoint group, like the client: `envelope` (response envelopes,
//! status codes, operations), `instances`, `state`, `server`, `images`,
//! `profiles`, `storage`.

mod envelope;
mod images;
mod instances;
mod profiles;
mod server;
mod state;
mod storage;

pub use envelope::{Envelope, Operation, ResponseType, StatusCode};
pub use images::{Image, ImageAlias, ImageAliasRef};
pub use instances::{
    Devices, ETag, Instance, InstancePatch, InstancePut, InstanceSource, InstancesPost,
};
pub use profiles::Profile;
pub use server::{Server, ServerEnvironment};
pub use state::{
    CpuState, InstanceState, InstanceStatePut, MemoryState, NetworkAddress, NetworkCounters,
    NetworkState, StateAction,
};
pub use storage::StoragePool;
