//! Length bounds on every string of a document, checked on the JSON value before it is typed:
//! one rule for all fields (a 900 KB image name would otherwise be stored and sent back in
//! every list), with room where a field needs it.

use serde_json::Value;

use super::FieldError;

/// Longest string in most fields, bytes (names, addresses, paths, header values).
pub const MAX_STRING_BYTES: usize = 4096;
/// Longest `spec.env` value or annotation, bytes (certificates, JSON blobs).
pub const MAX_LONG_STRING_BYTES: usize = 64 << 10;
/// Longest map key, bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// One error per string or key over its bound, with its field path. `spec.files[i].content`
/// is bounded only by the request size.
pub fn string_lengths(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(value, "", &mut errors);
    errors
}

fn bound_for(path: &str) -> Option<usize> {
    let in_files_content = path.starts_with("spec.files[") && path.ends_with("].content");
    if in_files_content {
        None
    } else if path.starts_with("spec.env.") || path.starts_with("metadata.annotations.") {
        Some(MAX_LONG_STRING_BYTES)
    } else {
        Some(MAX_STRING_BYTES)
    }
}

fn walk(v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => {
            if let Some(max) = bound_for(path) {
                if s.len() > max {
                    errors.push(FieldError::new(
                        path,
                        format!(
                            "is {} bytes long; the most this field takes is {max}",
                            s.len()
                        ),
                    ));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                if k.len() > MAX_KEY_BYTES {
                    let shown: String = k.chars().take(32).collect();
                    errors.push(FieldError::new(
                        path,
                        format!(
                            "has a key of {} bytes ({shown:?}...); keys are at most {MAX_KEY_BYTES}",
                            k.len()
                        ),
                    ));
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(child, &p, errors);
            }
        }
        _ => {}
    }
}
