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
