//! Reading a JSON body within the same budget as YAML ([`Limits`]): size, nesting depth and
//! node count are counted while the value is built, and a key given twice in one object is
//! refused (serde_json alone keeps the last one silently, and nests as deep as 128).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::yaml::{Limits, ParseError};

/// Parses one JSON document within `limits` (`max_bytes`, `max_depth`, `max_nodes`).
pub fn parse_json(text: &str, limits: Limits) -> Result<Value, ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let nodes = Cell::new(0usize);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Bounded {
        limits: &limits,
        nodes: &nodes,
        depth: 0,
    };
    let value = seed
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| ParseError::Syntax(format!("not valid JSON: {e}")))?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct Bounded<'a> {
    limits: &'a Limits,
    nodes: &'a Cell<usize>,
    depth: usize,
}

impl Bounded<'_> {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.nodes.get() + 1;
        self.nodes.set(n);
        if n > self.limits.max_nodes {
            return Err(E::custom(format_args!(
                "more than {} values; a BotCluster has far fewer, so check what is being sent",
                self.limits.max_nodes
            )));
        }
        Ok(())
    }
    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= self.limits.max_depth {
            return Err(E::custom(format_args!(
                "nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(Bounded {
            depth: self.depth + 1,
            ..*self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.count()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            inner.count()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object; keep one"
                )));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_like_serde_json_within_the_budget() {
        let text = r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}}"#;
        assert_eq!(
            parse_json(text, Limits::default()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        let err = parse_json(
            r#"{"spec": {"image": "a", "image": "b"}}"#,
            Limits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"image\" appears twice"), "{err}");
    }

    #[test]
    fn depth_and_node_count_are_bounded() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(parse_json(&deep, Limits::default())
            .unwrap_err()
            .to_string()
            .contains("deeper than 32"));
        let wide = format!("[{}0]", "0,".repeat(300_000));
        assert!(parse_json(&wide, Limits::default())
            .unwrap_err()
            .to_string()
            .contains("more than 200000 values"));
        assert!(matches!(
            parse_json(&"1".repeat(2 << 20), Limits::default()),
            Err(ParseError::TooLarge { .. })
        ));
    }
}
