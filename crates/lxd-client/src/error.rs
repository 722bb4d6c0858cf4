//! Errors: which request failed, and what LXD said about it.

use std::fmt;
use std::time::Duration;

/// The request an [`Error`] is about: its method, its path (with query) and, when
/// the failure happened inside a background operation, that operation's id.
///
/// Displays as `POST /1.0/instances` or
/// `PUT /1.0/instances/web-0/state (operation 1b6e…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// Path and query as sent, e.g. `/1.0/instances/web-0?project=demo`.
    pub path: String,
    /// The operation id, when the failure was reported by an operation.
    pub operation: Option<String>,
}

impl Request {
    pub(crate) fn new(method: &str, path: impl Into<String>) -> Self {
        Request {
            method: method.to_owned(),
            path: path.into(),
            operation: None,
        }
    }

    pub(crate) fn with_operation(mut self, id: &str) -> Self {
        self.operation = Some(id.to_owned());
        self
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(op) = &self.operation {
            write!(f, " (operation {op})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to LXD.
///
/// The first six variants are the failures a reconciler must tell apart; each
/// carries the failing [`Request`] and LXD's own `message`. Note that LXD reports
/// many of them *inside an operation* (HTTP 202, then `status: Failure` with an
/// `err` string), not as an HTTP error; this crate classifies both paths the same
/// way, so `create_instance` on an existing name gives [`Error::AlreadyExists`]
/// even though LXD 5.0.2 never answers 409 for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// HTTP 404: the instance, image alias, project or operation does not exist.
    #[error("{request} failed: not found: {message}")]
    NotFound {
        /// The failing request.
        request: Request,
        /// LXD's message, e.g. `Instance not found`.
        message: String,
    },

    /// The object already exists (LXD's message contains `already exists`).
    #[error("{request} failed: already exists: {message}")]
    AlreadyExists {
        /// The failing request.
        request: Request,
        /// LXD's message.
        message: String,
    },

    /// A start was asked of an instance that is already running.
    #[error("{request} failed: the instance is already running: {message}")]
    AlreadyRunning {
        /// The failing request.
        request: Request,
        /// LXD's message, `The instance is already running`.
        message: String,
    },

    /// A stop was asked of an instance that is already stopped.
    #[error("{request} failed: the instance is already stopped: {message}")]
    AlreadyStopped {
        /// The failing request.
        request: Request,
        /// LXD's message, `The instance is already stopped`.
        message: String,
    },

    /// HTTP 412: the `If-Match` ETag no longer matches; somebody (often LXD itself,
    /// through `volatile.*` keys on start/stop) changed the object. Re-read and retry.
    #[error("{request} failed: precondition failed (the object changed since it was read; read it again and retry): {message}")]
    PreconditionFailed {
        /// The failing request.
        request: Request,
        /// LXD's message, `ETag doesn't match: <server> vs <client>`.
        message: String,
    },

    /// HTTP 400 `Instance is running`: deleting a running instance. Stop it first.
    #[error("{request} failed: the instance is running (stop it first): {message}")]
    InstanceRunning {
        /// The failing request.
        request: Request,
        /// LXD's message.
        message: String,
    },

    /// Any other failure LXD reported, with its status: the HTTP status for an
    /// error envelope, or the operation's status code (400 failure, 401 cancelled).
    #[error("{request} failed: LXD answered {status}: {message}")]
    Other {
        /// The failing request.
        request: Request,
        /// HTTP status or operation status code.
        status: u16,
        /// LXD's message.
        message: String,
    },

    /// The request never got an HTTP answer: socket missing, connection refused,
    /// TLS failure, timeout.
    #[error("{request} failed: could not talk to LXD at {endpoint}: {}", cause_chain(.source))]
    Transport {
        /// The failing request.
        request: Request,
        /// Where the client was talking to, e.g. `unix:/var/lib/lxd/unix.socket`.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The events websocket could not be opened or broke.
    #[error("{request} failed: events websocket at {endpoint}: {message}")]
    WebSocket {
        /// The failing request.
        request: Request,
        /// Where the client was talking to.
        endpoint: String,
        /// What went wrong.
        message: String,
    },

    /// LXD answered something this crate could not understand (not JSON, missing
    /// header, unexpected envelope type).
    #[error("{request} failed: unexpected answer from LXD: {message}")]
    Protocol {
        /// The failing request.
        request: Request,
        /// What was unexpected.
        message: String,
    },

    /// An operation did not finish within the time the caller allowed. The
    /// operation keeps running in LXD.
    #[error("{request} did not finish within {after:?}; the operation is still running in LXD")]
    Timeout {
        /// The request whose operation was waited on.
        request: Request,
        /// How long the client waited.
        after: Duration,
    },

    /// The caller passed something that cannot be sent (relative file path, filter
    /// key with spaces, malformed URL or fingerprint).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The client could not be constructed (bad TLS identity, feature not compiled in).
    #[error("cannot build LXD client: {0}")]
    Config(String),
}

/// `outer: inner: innermost`, skipping causes already quoted by their parent.
pub(crate) fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

impl Error {
    /// The request this error is about, if it is about one.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Error::NotFound { request, .. }
            | Error::AlreadyExists { request, .. }
            | Error::AlreadyRunning { request, .. }
            | Error::AlreadyStopped { request, .. }
            | Error::PreconditionFailed { request, .. }
            | Error::InstanceRunning { request, .. }
            | Error::Other { request, .. }
            | Error::Transport { request, .. }
            | Error::WebSocket { request, .. }
            | Error::Protocol { request, .. }
            | Error::Timeout { request, .. } => Some(request),
            Error::InvalidArgument(_) | Error::Config(_) => None,
        }
    }

    /// LXD's own message, when LXD sent one.
    pub fn lxd_message(&self) -> Option<&str> {
        match self {
            Error::NotFound { message, .. }
            | Error::AlreadyExists { message, .. }
            | Error::AlreadyRunning { message, .. }
            | Error::AlreadyStopped { message, .. }
            | Error::PreconditionFailed { message, .. }
            | Error::InstanceRunning { message, .. }
            | Error::Other { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Classify an LXD failure from its status (HTTP status, or operation status
    /// code for failed operations) and message.
    ///
    /// The string matches are LXD 5.0.2's wording; LXD has no stable error codes
    /// for these cases (a duplicate create is a *failed operation*, not a 409).
    pub(crate) fn from_lxd(request: Request, status: u16, message: String) -> Error {
        let lower = message.to_ascii_lowercase();
        if status == 404 {
            Error::NotFound { request, message }
        } else if status == 412 {
            Error::PreconditionFailed { request, message }
        } else if lower.contains("instance is already running") {
            Error::AlreadyRunning { request, message }
        } else if lower.contains("instance is already stopped") {
            Error::AlreadyStopped { request, message }
        } else if lower.contains("already exists") {
            Error::AlreadyExists { request, message }
        } else if status == 400 && lower.contains("instance is running") {
            Error::InstanceRunning { request, message }
        } else {
            Error::Other {
                request,
                status,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request::new("POST", "/1.0/instances")
    }

    #[test]
    fn duplicate_create_operation_failure_is_already_exists() {
        let e = Error::from_lxd(
            req().with_operation("abc"),
            400,
            "Failed creating instance record: Add instance info to the database: This \"instances\" entry already exists".into(),
        );
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("POST /1.0/instances (operation abc) failed"),
            "{text}"
        );
        assert!(text.contains("entry already exists"), "{text}");
    }

    #[test]
    fn state_change_noops_are_classified() {
        let e = Error::from_lxd(req(), 400, "The instance is already running".into());
        assert!(matches!(e, Error::AlreadyRunning { .. }));
        let e = Error::from_lxd(req(), 400, "The instance is already stopped".into());
        assert!(matches!(e, Error::AlreadyStopped { .. }));
    }

    #[test]
    fn http_statuses_are_classified() {
        assert!(Error::from_lxd(req(), 404, "Instance not found".into()).is_not_found());
        assert!(matches!(
            Error::from_lxd(req(), 412, "ETag doesn't match: a vs b".into()),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            Error::from_lxd(
                Request::new("DELETE", "/1.0/instances/x"),
                400,
                "Instance is running".into()
            ),
            Error::InstanceRunning { .. }
        ));
        let e = Error::from_lxd(
            req(),
            500,
            "Invalid config: Unknown configuration key: limits.bogus".into(),
        );
        assert!(matches!(e, Error::Other { status: 500, .. }));
        assert_eq!(
            e.to_string(),
            "POST /1.0/instances failed: LXD answered 500: Invalid config: Unknown configuration key: limits.bogus"
        );
        assert_eq!(
            e.lxd_message(),
            Some("Invalid config: Unknown configuration key: limits.bogus")
        );
    }

    #[test]
    fn instance_running_needs_status_400() {
        // A 500 mentioning a running instance is not the delete-while-running case.
        let e = Error::from_lxd(req(), 500, "Instance is running, cannot resize".into());
        assert!(matches!(e, Error::Other { .. }));
    }

    #[test]
    fn image_with_same_fingerprint_is_already_exists() {
        let e = Error::from_lxd(
            Request::new("POST", "/1.0/images"),
            400,
            "Image with same fingerprint already exists".into(),
        );
        assert!(matches!(e, Error::AlreadyExists { .. }));
    }
}
