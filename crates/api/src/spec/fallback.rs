//! Graceful degradation settings passed to the bots (`spec.fallback`, the seed's `fallback-*`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::yes;

/// Graceful degradation (`fallback-*`), passed to the bots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fallback {
    /// `fallback-llm-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmFallback>,
    /// `fallback-cache-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ModeFallback>,
    /// `fallback-vectordb-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_db: Option<ModeFallback>,
}

/// Fallback LLM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmFallback {
    /// `fallback-llm-enabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `fallback-llm-provider`, e.g. "local".
    pub provider: String,
    /// `fallback-llm-model`.
    pub model: String,
}

/// A fallback that is a mode name ("memory", "keyword-search").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeFallback {
    /// Whether the fallback is on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The mode, e.g. "memory" for the cache or "keyword-search" for the vector DB.
    pub mode: String,
}
