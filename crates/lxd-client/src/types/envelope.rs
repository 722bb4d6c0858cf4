//! What every answer is wrapped in: LXD's response envelope, its status codes, and
//! the background [`Operation`] an `async` answer points at.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// LXD's numeric status codes (the stable contract; the `status` strings are for
/// humans). See LXD's `doc/rest-api.md`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 100: operation created.
    pub const OPERATION_CREATED: StatusCode = StatusCode(100);
    /// 101: started.
    pub const STARTED: StatusCode = StatusCode(101);
    /// 102: stopped.
    pub const STOPPED: StatusCode = StatusCode(102);
    /// 103: running.
    pub const RUNNING: StatusCode = StatusCode(103);
    /// 104: cancelling.
    pub const CANCELLING: StatusCode = StatusCode(104);
    /// 105: pending.
    pub const PENDING: StatusCode = StatusCode(105);
    /// 106: starting.
    pub const STARTING: StatusCode = StatusCode(106);
    /// 107: stopping.
    pub const STOPPING: StatusCode = StatusCode(107);
    /// 108: aborting.
    pub const ABORTING: StatusCode = StatusCode(108);
    /// 109: freezing.
    pub const FREEZING: StatusCode = StatusCode(109);
    /// 110: frozen.
    pub const FROZEN: StatusCode = StatusCode(110);
    /// 111: thawed.
    pub const THAWED: StatusCode = StatusCode(111);
    /// 112: error.
    pub const ERROR: StatusCode = StatusCode(112);
    /// 200: success.
    pub const SUCCESS: StatusCode = StatusCode(200);
    /// 400: failure.
    pub const FAILURE: StatusCode = StatusCode(400);
    /// 401: cancelled.
    pub const CANCELLED: StatusCode = StatusCode(401);

    /// True for the codes an operation ends with (success, failure, cancelled).
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The kind of an LXD response envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseType {
    /// Immediate answer; `metadata` is the result.
    Sync,
    /// Background operation started; `metadata` is an [`Operation`].
    Async,
    /// Failure; `error_code` and `error` say why.
    Error,
}

/// LXD's response envelope, common to every JSON answer.
///
/// ```
/// let e: lxd_client::Envelope = serde_json::from_str(
///     r#"{"type":"error","status":"","status_code":0,"operation":"",
///         "error_code":404,"error":"Instance not found","metadata":null}"#,
/// ).unwrap();
/// assert_eq!(e.error_code, 404);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `sync`, `async` or `error`.
    #[serde(rename = "type")]
    pub kind: ResponseType,
    /// Human status, e.g. `Success` or `Operation created`.
    #[serde(default)]
    pub status: String,
    /// Numeric status (200 for sync, 100 for async, 0 for errors).
    #[serde(default)]
    pub status_code: u16,
    /// For async answers, the operation URL (`/1.0/operations/<uuid>`).
    #[serde(default)]
    pub operation: String,
    /// For errors, the HTTP status.
    #[serde(default)]
    pub error_code: u16,
    /// For errors, LXD's message.
    #[serde(default)]
    pub error: String,
    /// The payload: the result, the operation, or `null`.
    #[serde(default)]
    pub metadata: Value,
}

/// A background operation (`/1.0/operations/UUID`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    /// UUID.
    pub id: String,
    /// `task`, `websocket` or `token`.
    pub class: String,
    /// e.g. `Creating instance`.
    pub description: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update time (RFC 3339).
    pub updated_at: String,
    /// Human status: `Running`, `Success`, `Failure`, `Cancelled`…
    pub status: String,
    /// Numeric status; final codes are 200 (success), 400 (failure), 401 (cancelled).
    pub status_code: StatusCode,
    /// Affected objects, by kind (`instances`, `containers`, `images`…), as URLs.
    pub resources: Option<BTreeMap<String, Vec<String>>>,
    /// Operation-specific result, e.g. `{"fingerprint": …}` for image imports.
    pub metadata: Value,
    /// Whether `DELETE /1.0/operations/UUID` can cancel it.
    pub may_cancel: bool,
    /// Failure message when `status_code` is 400.
    pub err: String,
    /// Cluster member running it; `none` when not clustered.
    pub location: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_with_null_resources_decodes() {
        let json = r#"{"id":"57b0","class":"task","description":"Downloading image","created_at":"x","updated_at":"y",
            "status":"Failure","status_code":400,"resources":null,"metadata":{"fingerprint":"741d"},
            "may_cancel":false,"err":"Image with same fingerprint already exists","location":"none"}"#;
        let op: Operation = serde_json::from_str(json).unwrap();
        assert_eq!(op.status_code, StatusCode::FAILURE);
        assert!(op.status_code.is_final());
        assert!(op.resources.is_none());
        assert_eq!(op.metadata["fingerprint"], "741d");
    }
}
