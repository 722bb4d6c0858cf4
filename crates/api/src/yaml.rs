//! Reading objects from YAML or JSON text, safely: input size, nesting depth, node count and
//! alias expansion are bounded before anything is built, because specs arrive over HTTP and
//! from Git. See `docs/yaml.md` for why serde-saphyr.

use serde_json::Value;

use crate::schema::strip_unknown_fields;
use crate::validate::{validate, FieldError, ValidationErrors};
use crate::{BotCluster, BOTCLUSTER_KIND};

/// Bounds on what one request or file may cost to parse.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest input, bytes.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes (scalars, mappings, sequences) in all documents.
    pub max_nodes: usize,
    /// Most alias references (`*name`).
    pub max_aliases: usize,
    /// Most events replayed through aliases (what an alias bomb inflates).
    pub max_alias_replay: usize,
    /// Most documents in one stream.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 32,
            max_nodes: 200_000,
            max_aliases: 256,
            max_alias_replay: 10_000,
            max_documents: 1_000,
        }
    }
}

/// Why text could not become objects.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input exceeds [`Limits::max_bytes`].
    #[error("input is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not well-formed YAML/JSON, or over a parse limit (depth, aliases, nodes).
    #[error("{0}")]
    Syntax(String),
    /// A document is not a mapping, or is of a kind this server does not know.
    #[error("document {index}: {message}")]
    NotAnObject {
        /// 0-based document index.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A document is an object with problems.
    #[error("{}", describe_invalid(*.index, .name.as_deref(), .errors))]
    Invalid {
        /// 0-based document index.
        index: usize,
        /// The object's name, when it has one.
        name: Option<String>,
        /// Every problem found.
        errors: ValidationErrors,
    },
}

fn describe_invalid(index: usize, name: Option<&str>, errors: &ValidationErrors) -> String {
    let what = match name {
        Some(n) => format!("BotCluster \"{n}\""),
        None => format!("document {index}"),
    };
    let mut s = format!(
        "{what} is invalid ({} problem{}):",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        s.push_str("\n  - ");
        s.push_str(&e.to_string());
    }
    s
}

/// Reads every document of a YAML (or JSON) stream into JSON values, within `limits`.
/// Empty documents are skipped.
pub fn parse_values(text: &str, limits: Limits) -> Result<Vec<Value>, ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_aliases = limits.max_aliases;
    budget.max_documents = limits.max_documents;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_alias_replay;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| ParseError::Syntax(format!("not valid YAML: {e}")))?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}

/// Turns one JSON value into a validated [`BotCluster`], reporting every unknown field, the
/// first type error (serde stops there) and every semantic problem, each with its path.
pub fn botcluster_from_value(mut value: Value) -> Result<BotCluster, ValidationErrors> {
    let mut errors: Vec<FieldError> = Vec::new();
    if !value.is_object() {
        return Err(ValidationErrors(vec![FieldError::new(
            "",
            "the document is not a mapping; a BotCluster has apiVersion, kind, metadata and spec",
        )]));
    }
    errors.extend(strip_unknown_fields(&mut value));
    errors.extend(crate::validate::string_rules(&value));
    let obj: BotCluster = match serde_path_to_error::deserialize(&value) {
        Ok(o) => o,
        Err(err) => {
            errors.push(serde_error(&err));
            return Err(ValidationErrors(errors));
        }
    };
    if let Err(ValidationErrors(more)) = validate(&obj) {
        errors.extend(more);
    }
    if errors.is_empty() {
        Ok(obj)
    } else {
        Err(ValidationErrors(errors))
    }
}

pub(crate) fn serde_error(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let msg = err.inner().to_string();
    // serde_json appends " at line L column C", meaningless for a value built from YAML.
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        let full = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return FieldError::new(full, "is required");
    }
    FieldError::new(path, msg)
}

/// Reads a YAML/JSON stream of BotClusters, validating each; stops at the first bad document.
pub fn parse_documents(text: &str) -> Result<Vec<BotCluster>, ParseError> {
    parse_values(text, Limits::default())?
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
            if !v.is_object() {
                return Err(ParseError::NotAnObject {
                    index,
                    message: "is not a mapping".into(),
                });
            }
            if kind != BOTCLUSTER_KIND {
                return Err(ParseError::NotAnObject {
                    index,
                    message: format!(
                        "kind \"{kind}\" is not known; this server stores kind: {BOTCLUSTER_KIND}"
                    ),
                });
            }
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            botcluster_from_value(v).map_err(|errors| ParseError::Invalid {
                index,
                name,
                errors,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_bombs_are_refused_quickly() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + (i - 1) as u8) as char;
            let cur = (b'a' + i as u8) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse_values(&bomb, Limits::default()).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(matches!(err, ParseError::Syntax(_)), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse_values(&deep, Limits::default()),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = "a: b\n".repeat(300_000);
        assert!(matches!(
            parse_values(&big, Limits::default()),
            Err(ParseError::TooLarge { .. })
        ));
    }
}
