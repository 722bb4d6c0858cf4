//! Images and their aliases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An image (`GET /1.0/images?recursion=1`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Image {
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Aliases pointing at this image.
    pub aliases: Vec<ImageAliasRef>,
    /// Architecture.
    pub architecture: String,
    /// Image properties (`os`, `description`…).
    pub properties: BTreeMap<String, String>,
    /// Whether untrusted clients may use it.
    pub public: bool,
    /// Size in bytes.
    pub size: i64,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub image_type: String,
    /// Original filename.
    pub filename: String,
    /// Whether LXD refreshes it from its source.
    pub auto_update: bool,
    /// Whether it was cached from a remote.
    pub cached: bool,
    /// Profiles applied to instances created from it.
    pub profiles: Vec<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Upload time (RFC 3339).
    pub uploaded_at: String,
    /// Last use (RFC 3339).
    pub last_used_at: String,
    /// Expiry time (RFC 3339).
    pub expires_at: String,
}

/// An alias as listed inside an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasRef {
    /// Alias name.
    pub name: String,
    /// Alias description.
    pub description: String,
}

/// `GET /1.0/images/aliases/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAlias {
    /// Alias name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Target image fingerprint.
    pub target: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub image_type: String,
}
