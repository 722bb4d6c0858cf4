//! BotCluster API types, defaults, validation, JSON Schema and the `config.csv` importer (no I/O).
//!
//! The entry points are [`parse_documents`] (YAML or JSON text → validated objects, reporting
//! every problem with its field path), [`BotCluster`] and its [`BotClusterSpec`], and
//! [`import::import_config_csv`].

pub mod gitsource;
pub mod import;
pub mod json;
pub mod meta;
pub mod ports;
pub mod quantity;
pub mod schema;
pub mod spec;
pub mod status;
pub mod validate;
pub mod yaml;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use gitsource::{GitSource, GitSourceSpec, GitSourceStatus, GITSOURCE_KIND};
pub use meta::{Condition, ConditionStatus, Event, ObjectMeta};
pub use quantity::{BitRate, ByteSize, CpuLimit, Duration};
pub use spec::BotClusterSpec;
pub use status::BotClusterStatus;
pub use validate::{FieldError, ValidationErrors};
pub use yaml::{parse_documents, ParseError};

/// The API group and version of every kind here.
pub const API_VERSION: &str = "botcluster.io/v1alpha1";
/// The kind name of [`BotCluster`].
pub const BOTCLUSTER_KIND: &str = "BotCluster";
/// The finalizer the controller puts on objects it creates resources for.
pub const FINALIZER: &str = "botcluster.io/teardown";
/// Longest BotCluster name: container names are `<name>-<ordinal>` and LXD allows 63
/// characters, so this leaves room for a 10-digit ordinal.
pub const MAX_NAME_LEN: usize = 52;

/// A fleet of botserver containers behind a load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "BotCluster")]
pub struct BotCluster {
    /// Always `botcluster.io/v1alpha1`.
    pub api_version: String,
    /// Always `BotCluster`.
    pub kind: String,
    /// Name, labels, and server-set metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: BotClusterSpec,
    /// Observed state (set by the operator; ignored on writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BotClusterStatus>,
}

impl BotCluster {
    /// A BotCluster with the given name and spec.
    pub fn new(name: impl Into<String>, spec: BotClusterSpec) -> Self {
        BotCluster {
            api_version: API_VERSION.into(),
            kind: BOTCLUSTER_KIND.into(),
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}
