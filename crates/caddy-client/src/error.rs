//! Errors, with Caddy's own error text and what to do next.

use std::time::Duration;

/// The result of a call to Caddy's admin API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to Caddy's admin API.
///
/// Every variant that comes from a request names the HTTP method and the path, and the ones
/// Caddy answered carry its `{"error": "..."}` text. Caddy's status codes are coarse (a missing
/// key and an existing key are both 500), so the client sorts answers into variants by that
/// text too: match on [`Error::NotFound`], [`Error::AlreadyExists`] and
/// [`Error::PreconditionFailed`] rather than on status codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint string that [`crate::Client::from_url`] cannot use.
    #[error("invalid Caddy admin endpoint `{input}`: {reason}")]
    InvalidEndpoint {
        /// The string as given.
        input: String,
        /// Why it was rejected, and the accepted forms.
        reason: String,
    },

    /// A config path or `@id` that cannot be sent as one.
    #[error("invalid config path `{path}`: {reason}")]
    InvalidPath {
        /// The path or id as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Nothing accepted the connection at the admin address (refused, or the socket file
    /// missing).
    #[error(
        "{method} {path}: cannot connect to Caddy's admin API at {endpoint}: {source}; \
         is Caddy running with that admin address? {hint}"
    )]
    Unreachable {
        /// The admin endpoint, e.g. `http://127.0.0.1:2019` or `unix:///run/caddy/admin.sock`.
        endpoint: String,
        /// HTTP method of the request.
        method: String,
        /// Request path, e.g. `/config/apps/http/servers/edge`.
        path: String,
        /// What to do about it (see [`crate::Client::with_unreachable_hint`]).
        hint: String,
        /// The underlying connection error.
        #[source]
        source: reqwest::Error,
    },

    /// The request timed out, the connection broke, or the answer could not be read.
    #[error("{method} {path} on Caddy's admin API at {endpoint}: {source}{}", timeout_note(.timeout))]
    Transport {
        /// The admin endpoint.
        endpoint: String,
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// The request timeout, when that is what expired.
        timeout: Option<Duration>,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// Caddy answered 412: the `If-Match` tag no longer matches the config at its path.
    /// Someone changed it since it was read; read it again and decide again.
    #[error("{method} {path}: precondition failed (412): {message}; re-read the config and retry")]
    PreconditionFailed {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// Caddy's error text.
        message: String,
    },

    /// The path or `@id` does not exist: 404 `unknown object ID`, 500 `key does not exist`
    /// (a PATCH to a missing key) or 400 `invalid traversal path` (a parent is missing).
    #[error("{method} {path}: not found ({status}): {message}")]
    NotFound {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// Caddy's status code.
        status: u16,
        /// Caddy's error text.
        message: String,
    },

    /// Caddy answered 500 `key already exists`: a PUT (strict create) to a key that exists.
    /// Use PATCH or POST to replace it.
    #[error("{method} {path}: already exists ({status}): {message}; PATCH or POST replaces it")]
    AlreadyExists {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// Caddy's status code.
        status: u16,
        /// Caddy's error text.
        message: String,
    },

    /// Any other error answer. A config that does not load gives 500 with
    /// `loading new config: ...`; Caddy then keeps running the previous config.
    #[error("{method} {path}: Caddy answered {status}: {message}")]
    Api {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// Caddy's status code.
        status: u16,
        /// Caddy's error text (or the raw body when it was not `{"error": "..."}`).
        message: String,
    },

    /// A success answer whose body was not the JSON expected.
    #[error("{method} {path}: cannot decode Caddy's answer: {source}; body starts with {body:?}")]
    Decode {
        /// HTTP method of the request.
        method: String,
        /// Request path.
        path: String,
        /// The first 200 bytes of the body, lossily decoded.
        body: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },

    /// Building the HTTP client failed.
    #[error("cannot build the HTTP client for Caddy's admin API: {0}")]
    Client(#[source] reqwest::Error),
}

fn timeout_note(timeout: &Option<Duration>) -> String {
    match timeout {
        Some(t) => format!(" (no answer within {:.1} s)", t.as_secs_f64()),
        None => String::new(),
    }
}

impl Error {
    /// Sorts one error answer from Caddy into a variant.
    pub(crate) fn from_answer(method: &str, path: &str, status: u16, body: &[u8]) -> Error {
        let message = error_text(body);
        let (method, path) = (method.to_string(), path.to_string());
        match status {
            412 => Error::PreconditionFailed {
                method,
                path,
                message,
            },
            404 => Error::NotFound {
                method,
                path,
                status,
                message,
            },
            _ if message.contains("key does not exist")
                || message.contains("invalid traversal path") =>
            {
                Error::NotFound {
                    method,
                    path,
                    status,
                    message,
                }
            }
            _ if message.contains("key already exists") => Error::AlreadyExists {
                method,
                path,
                status,
                message,
            },
            _ => Error::Api {
                method,
                path,
                status,
                message,
            },
        }
    }

    /// The HTTP status Caddy answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::PreconditionFailed { .. } => Some(412),
            Error::NotFound { status, .. }
            | Error::AlreadyExists { status, .. }
            | Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Caddy's own error text, if it answered with one.
    pub fn caddy_message(&self) -> Option<&str> {
        match self {
            Error::PreconditionFailed { message, .. }
            | Error::NotFound { message, .. }
            | Error::AlreadyExists { message, .. }
            | Error::Api { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Caddy's `{"error": "..."}` text, or the trimmed body when it is something else.
fn error_text(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct CaddyError {
        error: String,
    }
    match serde_json::from_slice::<CaddyError>(body) {
        Ok(e) => e.error,
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                "(empty body)".to_string()
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddy_answers_are_sorted_by_their_text_not_only_their_status() {
        let err = |status, text: &str| {
            Error::from_answer(
                "PATCH",
                "/config/x",
                status,
                serde_json::json!({ "error": text }).to_string().as_bytes(),
            )
        };
        assert!(matches!(
            err(412, "If-Match header did not match current config hash"),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            err(500, "[/config/x] key does not exist: x"),
            Error::NotFound { status: 500, .. }
        ));
        assert!(matches!(
            err(400, "invalid traversal path at: config/apps/http"),
            Error::NotFound { status: 400, .. }
        ));
        assert!(matches!(
            err(404, "unknown object ID 'nope'"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            err(500, "[/config/x] key already exists: x"),
            Error::AlreadyExists { .. }
        ));
        let load = err(500, "loading new config: http: unknown field \"zz\"");
        assert!(matches!(load, Error::Api { status: 500, .. }));
        assert_eq!(
            load.to_string(),
            "PATCH /config/x: Caddy answered 500: loading new config: http: unknown field \"zz\""
        );
        assert_eq!(load.status(), Some(500));
    }

    #[test]
    fn a_body_that_is_not_caddy_json_is_kept_as_text() {
        let e = Error::from_answer("GET", "/config/", 502, b"  Bad Gateway\n");
        assert_eq!(e.caddy_message(), Some("Bad Gateway"));
        let e = Error::from_answer("GET", "/config/", 500, b"");
        assert_eq!(e.caddy_message(), Some("(empty body)"));
    }
}
