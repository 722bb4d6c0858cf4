//! How replacements roll out (`spec.updateStrategy`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::one;

/// Rolling update settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStrategy {
    /// How many instances may be unavailable during a replacement.
    #[serde(default = "one")]
    pub max_unavailable: u32,
    /// How many extra instances may exist during a replacement.
    #[serde(default = "one")]
    pub max_surge: u32,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_unavailable: 1,
            max_surge: 1,
        }
    }
}
