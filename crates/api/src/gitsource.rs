//! The `GitSource` kind: a Git repository whose BotCluster documents the operator follows
//! (GitOps), with its defaults, structural validation, status and JSON Schema.
//!
//! What depends on git's own rules (URL forms, ref names, paths) is checked by the
//! `git-client` crate where the spec is stored; here are the checks that need no git.

use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::Condition;
use crate::quantity::Duration;
use crate::status::BackoffStatus;
use crate::validate::{validate_name, FieldError, ValidationErrors};
use crate::yaml::serde_error;
use crate::{ObjectMeta, API_VERSION};

/// The kind name of [`GitSource`].
pub const GITSOURCE_KIND: &str = "GitSource";
/// The finalizer a GitSource carries so that deleting it releases (or, with `--cascade`,
/// deletes) what it applied.
pub const GITSOURCE_FINALIZER: &str = "botcluster.io/gitsource-inventory";
/// The label on every object a GitSource applied: the source's name.
pub const OWNER_LABEL: &str = "botcluster.io/gitsource";
/// The annotation `POST .../sync` sets (an opaque token); a new value triggers a poll now.
pub const SYNC_ANNOTATION: &str = "botcluster.io/sync-requested-at";
/// The annotation DELETE sets: `cascade` (delete what the source applied) or `orphan` (keep it).
pub const DELETE_POLICY_ANNOTATION: &str = "botcluster.io/delete-policy";
/// Longest history kept in status.
pub const HISTORY_LEN: usize = 5;

/// A Git repository the operator follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "GitSource")]
pub struct GitSource {
    /// Always `botcluster.io/v1alpha1`.
    pub api_version: String,
    /// Always `GitSource`.
    pub kind: String,
    /// Name, labels, and server-set metadata.
    pub metadata: ObjectMeta,
    /// What to follow.
    pub spec: GitSourceSpec,
    /// Observed state (set by the operator; ignored on writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GitSourceStatus>,
}

/// What to follow and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceSpec {
    /// The repository: `https://`, `ssh://`, `file://` or an absolute path on the operator's
    /// host. No credentials in it: name a `credentials` directory instead.
    pub url: String,
    /// The branch, tag or commit to follow (default: branch `main`).
    #[serde(default, rename = "ref")]
    pub reference: GitSourceRef,
    /// The directory inside the repository; every `*.yaml`/`*.yml` under it (recursively)
    /// is read. Default: the root.
    #[serde(default = "default_path")]
    pub path: String,
    /// How often to poll (jittered ±10 %). Default 1m.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Delete the objects this source applied when they disappear from Git. Default true.
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Stop polling and applying; nothing changes until it is false again.
    #[serde(default)]
    pub suspend: bool,
    /// Accept a revision that would prune every object this source applied.
    #[serde(default)]
    pub allow_empty: bool,
    /// Report Ready only when every applied BotCluster is Ready.
    #[serde(default)]
    pub wait: bool,
    /// Limit for each git operation. Default 60s.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// The name of a directory under the operator's `<data-dir>/git-credentials/` holding
    /// `identity` and `known_hosts` (SSH) or `token` (HTTPS). Secrets never live in a spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

/// Exactly one of branch, tag or commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceRef {
    /// A branch name, e.g. `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A tag name, e.g. `v1.2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A full commit id (40 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Default for GitSourceRef {
    fn default() -> Self {
        GitSourceRef {
            branch: Some("main".into()),
            tag: None,
            commit: None,
        }
    }
}

/// The one ref a validated [`GitSourceRef`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefKind<'a> {
    /// A branch.
    Branch(&'a str),
    /// A tag.
    Tag(&'a str),
    /// A commit.
    Commit(&'a str),
}

impl GitSourceRef {
    /// The ref named (branch when several are set, which validation refuses).
    pub fn kind(&self) -> RefKind<'_> {
        match (&self.branch, &self.tag, &self.commit) {
            (_, _, Some(c)) => RefKind::Commit(c),
            (_, Some(t), None) => RefKind::Tag(t),
            (Some(b), None, None) => RefKind::Branch(b),
            (None, None, None) => RefKind::Branch("main"),
        }
    }

    /// Flux's revision string for `sha`: `main@sha1:<sha>`, `v1.2.0@sha1:<sha>`, or
    /// `sha1:<sha>` for a commit.
    pub fn revision(&self, sha: &str) -> String {
        match self.kind() {
            RefKind::Branch(b) | RefKind::Tag(b) => format!("{b}@sha1:{sha}"),
            RefKind::Commit(_) => format!("sha1:{sha}"),
        }
    }
}

fn default_path() -> String {
    ".".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}

/// Observed state of a GitSource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSourceStatus {
    /// The generation this status was computed for.
    #[serde(default)]
    pub observed_generation: u64,
    /// `Ready`, `Reconciling`, `Stalled` (kstatus).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The revision last tried, `main@sha1:<40 hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The revision last applied in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// RFC 3339 time of the last full apply of a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<String>,
    /// RFC 3339 time of the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_poll_time: Option<String>,
    /// The last `botcluster.io/sync-requested-at` token handled (`botctl sync` waits for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_sync: Option<String>,
    /// Every object this source applied (and, while a revision is being applied, also those
    /// it is about to apply: the inventory is written ahead, so nothing it created is ever
    /// forgotten by a crash).
    #[serde(default)]
    pub inventory: Vec<InventoryEntry>,
    /// Recent revisions, newest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Error backoff, when failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffStatus>,
}

/// One applied object.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// Its kind (`BotCluster`).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The file it came from.
    #[serde(default)]
    pub file: String,
}

/// One revision seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// `main@sha1:<40 hex>`.
    pub revision: String,
    /// `Applied` or `Failed`.
    pub result: String,
    /// RFC 3339 time first seen with this result.
    pub time: String,
    /// Objects in the revision.
    #[serde(default)]
    pub objects: u32,
    /// Why it failed, or what changed.
    #[serde(default)]
    pub message: String,
}

/// The JSON Schema of a GitSource document.
pub fn gitsource_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(GitSource)).unwrap_or(Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            Value::String("https://botcluster.io/schemas/gitsource.schema.json".into()),
        );
    }
    schema
}

/// The schema as pretty JSON with a trailing newline (`manifests/gitsource.schema.json`).
pub fn gitsource_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&gitsource_schema()).unwrap_or_default();
    s.push('\n');
    s
}

fn cached_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(gitsource_schema)
}

/// Turns one JSON value into a structurally valid [`GitSource`] with defaults applied,
/// reporting every unknown field, the first type error and every rule broken, with paths.
pub fn gitsource_from_value(mut value: Value) -> Result<GitSource, ValidationErrors> {
    if !value.is_object() {
        return Err(ValidationErrors(vec![FieldError::new(
            "",
            "the document is not a mapping; a GitSource has apiVersion, kind, metadata and spec",
        )]));
    }
    let mut errors = crate::schema::strip_unknown_fields_with(cached_schema(), &mut value);
    // Length bounds and no control characters, as for every document (docs/security.md).
    errors.extend(crate::validate::string_rules(&value));
    let obj: GitSource = match serde_path_to_error::deserialize(&value) {
        Ok(o) => o,
        Err(err) => {
            errors.push(serde_error(&err));
            return Err(ValidationErrors(errors));
        }
    };
    errors.extend(validate_gitsource(&obj));
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(ValidationErrors(errors))
    }
}

/// The rules of a GitSource that need no git.
pub fn validate_gitsource(obj: &GitSource) -> Vec<FieldError> {
    let mut e = Vec::new();
    let mut push = |f: &str, m: String| e.push(FieldError::new(f, m));
    if obj.api_version != API_VERSION {
        push(
            "apiVersion",
            format!(
                "\"{}\" is not supported; use \"{API_VERSION}\"",
                obj.api_version
            ),
        );
    }
    if obj.kind != GITSOURCE_KIND {
        push("kind", format!("\"{}\" is not {GITSOURCE_KIND}", obj.kind));
    }
    if let Err(m) = validate_name(&obj.metadata.name) {
        push("metadata.name", m);
    }
    let s = &obj.spec;
    if s.url.is_empty() {
        push(
            "spec.url",
            "is empty; give the repository, e.g. https://git.example.com/ops/bots.git".into(),
        );
    }
    let r = &s.reference;
    let set = [r.branch.is_some(), r.tag.is_some(), r.commit.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set != 1 {
        push(
            "spec.ref",
            format!("names {set} refs; give exactly one of branch, tag or commit"),
        );
    }
    for (field, d, min) in [
        (
            "spec.interval",
            &s.interval,
            std::time::Duration::from_secs(1),
        ),
        (
            "spec.timeout",
            &s.timeout,
            std::time::Duration::from_secs(1),
        ),
    ] {
        match d.parse() {
            Ok(v) if v < min => push(
                field,
                format!("\"{d}\" is shorter than 1s; use e.g. \"1m\""),
            ),
            Ok(v) if v > std::time::Duration::from_secs(24 * 3600) => push(
                field,
                format!("\"{d}\" is longer than 24h; use e.g. \"1h\""),
            ),
            Ok(_) => {}
            Err(m) => push(field, m),
        }
    }
    if let Some(c) = &s.credentials {
        if let Err(m) = validate_name(c) {
            push(
                "spec.credentials",
                format!("{m} (it names a directory under the operator's git-credentials/)"),
            );
        }
    }
    e
}
