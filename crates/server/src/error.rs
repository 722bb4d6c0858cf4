//! The one error shape every endpoint returns: `{"code", "message", "fieldErrors"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use botcluster_api::validate::MAX_FIELD_ERRORS;
use botcluster_api::{FieldError, ValidationErrors};
use botcluster_store::StoreError;
use serde::{Deserialize, Serialize};

/// The JSON body of every error response. `code` is stable; `message` is for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// `Invalid`, `NotFound`, `Conflict`, `TooLarge`, `Unauthorized`, `BadRequest`, `Internal`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// One entry per problem in the object, when the object was invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    /// Problems found but not listed: `fieldErrors` holds at most
    /// [`botcluster_api::validate::MAX_FIELD_ERRORS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_field_errors: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An error an endpoint returns.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Body.
    pub body: ErrorBody,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                field_errors: Vec::new(),
                omitted_field_errors: 0,
            },
        }
    }
    /// 400 with field errors, at most [`MAX_FIELD_ERRORS`] of them listed (the message says
    /// how many were left out).
    pub fn invalid(message: impl Into<String>, field_errors: Vec<FieldError>) -> Self {
        let (listed, omitted) = ValidationErrors(field_errors).capped(MAX_FIELD_ERRORS);
        let mut message = message.into();
        if omitted > 0 {
            message.push_str(&format!(
                "; the first {MAX_FIELD_ERRORS} are listed, {omitted} more are not"
            ));
        }
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "Invalid", message);
        e.body.field_errors = listed.0;
        e.body.omitted_field_errors = omitted;
        e
    }
    /// 400 for malformed requests.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.to_string())
            }
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::Terminating { .. } => {
                ApiError::new(StatusCode::CONFLICT, "Terminating", e.to_string())
            }
            StoreError::Backend(_) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// What a panic in a handler becomes: a logged 500 in the one error shape, never a dropped
/// connection. The panic's text goes to the log only (it may quote internals).
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %what, "a request handler panicked; answered 500");
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "Internal",
        "the server failed while handling this request (a bug, logged on the server); nothing more was done for it, and what was already stored is intact",
    )
    .into_response()
}

/// Gives every error response the one shape, whoever produced it: axum's own rejections (405
/// for a method a route lacks, 400 for a path segment that is not UTF-8 or a bad query, 415,
/// 413) are plain text or empty; this rewrites them as `{code, message}` JSON, keeping the
/// status and the text as the message.
pub(crate) async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (code, fallback) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "MethodNotAllowed",
            "this endpoint does not take that method; docs/api.md lists each endpoint's methods",
        ),
        StatusCode::NOT_FOUND => ("NotFound", "no such endpoint"),
        StatusCode::PAYLOAD_TOO_LARGE => ("TooLarge", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "UnsupportedMediaType",
            "send the body as application/json or application/yaml",
        ),
        s if s.is_server_error() => ("Internal", "the server failed"),
        _ => ("BadRequest", "the request is malformed"),
    };
    let message = match (text.is_empty(), status) {
        (true, _) => fallback.to_string(),
        (false, StatusCode::METHOD_NOT_ALLOWED) => format!("{fallback} ({text})"),
        (false, _) => text,
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    out
}
