//! The JSON Schema of the API (from the Rust types, via schemars), and a walk of a document
//! against it that finds every unknown field at once (serde alone stops at the first).

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::validate::{FieldError, MAX_FIELD_ERRORS};
use crate::BotCluster;

/// The JSON Schema of a BotCluster document, as written to `manifests/botcluster.schema.json`.
pub fn botcluster_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(BotCluster)).unwrap_or(Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            Value::String("https://botcluster.io/schemas/botcluster.schema.json".into()),
        );
    }
    schema
}

/// The schema as pretty JSON with a trailing newline (the file's exact content).
pub fn botcluster_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&botcluster_schema()).unwrap_or_default();
    s.push('\n');
    s
}

fn cached_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(botcluster_schema)
}

/// Removes every field the schema does not know from `value` and returns one error per field,
/// with a suggestion when a known field is spelled alike.
pub fn strip_unknown_fields(value: &mut Value) -> Vec<FieldError> {
    strip_unknown_fields_with(cached_schema(), value)
}

/// [`strip_unknown_fields`] against another kind's schema.
pub fn strip_unknown_fields_with(root: &Value, value: &mut Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(root, root, value, "", &mut errors);
    errors
}

fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let ptr = r.trim_start_matches('#');
                match root.pointer(ptr) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            }
            None => return schema,
        }
    }
    schema
}

/// Finds the branch of `schema` that describes objects (following $ref, anyOf, oneOf, allOf).
fn object_schema<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(root, schema);
    if schema.get("properties").is_some() || schema.get("additionalProperties").is_some() {
        return Some(schema);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            if let Some(found) = branches.iter().find_map(|b| object_schema(root, b)) {
                return Some(found);
            }
        }
    }
    None
}

fn array_items<'a>(root: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(root, schema);
    if let Some(items) = schema.get("items") {
        return Some(items);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            if let Some(found) = branches.iter().find_map(|b| array_items(root, b)) {
                return Some(found);
            }
        }
    }
    None
}

fn walk(root: &Value, schema: &Value, value: &mut Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            let Some(obj_schema) = object_schema(root, schema) else {
                return;
            };
            let props = obj_schema.get("properties").and_then(Value::as_object);
            let additional = obj_schema.get("additionalProperties");
            let closed = matches!(additional, Some(Value::Bool(false)));
            if let (Some(p), true) = (props, closed) {
                let known: Vec<&str> = p.keys().map(String::as_str).collect();
                // `retain`, not `remove` per key: removing from an ordered map shifts the rest,
                // quadratic in the number of unknown keys a hostile body can hold.
                map.retain(|key, _| {
                    if p.contains_key(key) {
                        return true;
                    }
                    // Suggestions cost an edit distance per known field: only for the errors
                    // an answer lists, and only for keys of a plausible length.
                    let message = if errors.len() < MAX_FIELD_ERRORS && key.len() <= 64 {
                        unknown_message(key, &known)
                    } else {
                        "unknown field".to_string()
                    };
                    errors.push(FieldError::new(join(path, key), message));
                    false
                });
            }
            walk_children(root, props, additional, map, path, errors);
        }
        Value::Array(items) => {
            if let Some(item_schema) = array_items(root, schema) {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(root, item_schema, item, &format!("{path}[{i}]"), errors);
                }
            } else if object_schema(root, schema).is_some() {
                // serde reads a struct from a list of its fields in order (`[null, null]`
                // for `fallback` was stored as the defaults): a mapping is the only form.
                errors.push(FieldError::new(
                    path.to_string(),
                    "must be a mapping of fields (key: value), not a list",
                ));
            }
        }
        _ => {}
    }
}

fn walk_children(
    root: &Value,
    props: Option<&Map<String, Value>>,
    additional: Option<&Value>,
    map: &mut Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for (key, child) in map.iter_mut() {
        let child_schema = props
            .and_then(|p| p.get(key))
            .or(additional.filter(|a| a.is_object()));
        if let Some(cs) = child_schema {
            walk(root, cs, child, &join(path, key), errors);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_message(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), *k))
        .min();
    match best {
        Some((d, k)) if d <= 2 || (d <= 3 && key.len() > 8) => {
            format!("unknown field; did you mean `{k}`?")
        }
        _ if known.is_empty() => "unknown field".into(),
        _ => format!("unknown field; known fields here: {}", known.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
