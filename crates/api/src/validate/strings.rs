//! Rules for every string of a document, checked on the JSON value before it is typed, so no
//! field is forgotten: a length bound (a 900 KB image name would otherwise be stored and sent
//! back in every list), with room where a field needs it, and no control characters (ESC, BEL,
//! NUL, CR, LF...: they reach terminals, logs, LXD config and files). `spec.files[].content` is
//! exempt from both (it is file content, bounded by the request size); annotations may hold
//! line breaks and tabs. Per-destination charsets are in [`super::charset`].

use serde_json::Value;

use super::FieldError;

/// Longest string in most fields, bytes (names, addresses, paths, header values).
pub const MAX_STRING_BYTES: usize = 4096;
/// Longest `spec.env` value or annotation, bytes (certificates, JSON blobs).
pub const MAX_LONG_STRING_BYTES: usize = 64 << 10;
/// Longest map key, bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// One error per string or key over its bound or holding a control character, with its
/// field path. `spec.files[i].content`
/// is bounded only by the request size.
pub fn string_rules(value: &Value) -> Vec<FieldError> {
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
            let Some(max) = bound_for(path) else {
                return;
            };
            if s.len() > max {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "is {} bytes long; the most this field takes is {max}",
                        s.len()
                    ),
                ));
            }
            let multiline = path.starts_with("metadata.annotations.");
            if let Some(c) = s
                .chars()
                .find(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
            {
                errors.push(FieldError::new(
                    path,
                    format!("contains the control character {c:?}; write printable text"),
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                if k.chars().any(char::is_control) {
                    errors.push(FieldError::new(
                        path,
                        format!(
                            "has a key with a control character ({k:?}); keys are printable text"
                        ),
                    ));
                    continue;
                }
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
