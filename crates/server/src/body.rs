//! The body-reading path of writes: bytes within [`MAX_BODY_BYTES`], then parsing (JSON or
//! YAML, both within the same [`Limits`]) and validation on a blocking thread, so a hostile
//! body costs bounded CPU and never stalls the async workers that answer `/healthz`.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use botcluster_api::json::parse_json;
use botcluster_api::yaml::{botcluster_from_value, parse_values, Limits, ParseError};
use botcluster_api::{BotCluster, ValidationErrors};
use serde_json::{json, Value};

use crate::{ApiError, MAX_BODY_BYTES};

/// What a well-formed body turned into: a valid object, or every problem with it.
pub(crate) type Decoded = Result<BotCluster, ValidationErrors>;

/// Reads the body of a PUT for object `name` and decodes it off the async workers.
/// `Err` is a malformed request (too large, not UTF-8, not JSON/YAML, several documents, a
/// name that differs from the URL's); `Ok(Err(_))` an object with problems.
pub(crate) async fn read_object(
    headers: &HeaderMap,
    body: Body,
    name: &str,
) -> Result<Decoded, ApiError> {
    read_object_as(headers, body, name, botcluster_from_value).await
}

/// [`read_object`] for any kind: `from_value` turns the document into a valid object.
pub(crate) async fn read_object_as<T: Send + 'static>(
    headers: &HeaderMap,
    body: Body,
    name: &str,
    from_value: fn(Value) -> Result<T, ValidationErrors>,
) -> Result<Result<T, ValidationErrors>, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TooLarge",
            format!("the request body is over {MAX_BODY_BYTES} bytes; an object is far smaller, so check what is being sent"),
        )
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let name = name.to_string();
    match tokio::task::spawn_blocking(move || decode(json, &bytes, &name, from_value)).await {
        Ok(r) => r,
        // A panic while decoding is a bug: let the CatchPanic layer answer it as a 500.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            format!("the server is shutting down ({e}); send the request again"),
        )),
    }
}

/// Parses and validates one document (blocking: CPU-bound).
pub(crate) fn decode<T>(
    json: bool,
    bytes: &[u8],
    name: &str,
    from_value: fn(Value) -> Result<T, ValidationErrors>,
) -> Result<Result<T, ValidationErrors>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let too_large = |e: ParseError| match e {
        ParseError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "TooLarge", e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    };
    let mut values = if json {
        vec![parse_json(text, Limits::default()).map_err(too_large)?]
    } else {
        parse_values(text, Limits::default()).map_err(too_large)?
    };
    let mut doc = match values.len() {
        1 => values.remove(0),
        0 => return Err(ApiError::bad_request("the body is empty; send one document")),
        n => return Err(ApiError::bad_request(format!(
            "the body holds {n} documents; PUT takes one (botctl apply sends each document separately)"
        ))),
    };
    // The path names the object; a body without a name takes it, a different name is an error.
    match doc.get("metadata") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "metadata must be an object, e.g. {\"name\": \"...\"}",
            ))
        }
    }
    match doc.pointer("/metadata/name") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "metadata.name must be a string (the name in the URL, {name:?})"
            )))
        }
    }
    match doc.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "metadata.name {n:?} differs from the name in the URL {name:?}; make them the same"
            )))
        }
        Some(_) => {}
        None => {
            if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(name.to_string()));
            } else if let Some(obj) = doc.as_object_mut() {
                obj.insert("metadata".into(), json!({"name": name}));
            }
        }
    }
    // Status is the controller's; a client's status is ignored, as in Kubernetes.
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("status");
    }
    Ok(from_value(doc))
}
