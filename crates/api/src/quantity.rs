//! Durations, byte sizes, bit rates and CPU limits as users write them ("30s", "8GB", "100Mbit", "2").
//!
//! Each type keeps the text the user wrote (so a spec round-trips unchanged) and parses it on
//! demand. Validation (`crate::validate`) calls the parsers and reports a field-path error for
//! every value that does not parse, so a stored spec always holds parseable quantities.

use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize};

/// A duration written as `500ms`, `30s`, `5m`, `1h`, `1m30s`, or a bare integer meaning seconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Duration(String);

impl Duration {
    /// A duration of whole seconds, written as `"{secs}s"`.
    pub fn from_secs(secs: u64) -> Self {
        Duration(format!("{secs}s"))
    }

    /// The text as written (integers given in YAML/JSON become `"{n}s"`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text. Validated specs always parse; this returns an error message otherwise.
    pub fn parse(&self) -> Result<std::time::Duration, String> {
        parse_duration(&self.0)
    }

    /// The parsed duration, or zero for a value that validation would have rejected.
    pub fn get(&self) -> std::time::Duration {
        self.parse().unwrap_or_default()
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    /// Parses and keeps the text; a bare integer becomes `"{n}s"`.
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s)?;
        Ok(match s.trim().parse::<u64>() {
            Ok(n) => Duration::from_secs(n),
            Err(_) => Duration(s.trim().to_string()),
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration such as \"30s\", \"5m\" or a number of seconds",
            )
        })? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(s) => Ok(Duration(s)),
        }
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"500ms\", \"30s\", \"5m\", \"1h\", \"1m30s\", or an integer number of seconds.",
            "anyOf": [
                {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

/// Longest duration any setting takes (intervals, timeouts, cooldowns, windows): a week.
/// Longer values are typos, and would overflow clock arithmetic in the controller;
/// validation refuses them.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m`, `90` (seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty; write a duration such as \"30s\" or \"5m\"".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "\"{text}\" is not a duration; write a number followed by ms, s, m or h, e.g. \"30s\""
            ));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("\"{text}\" has a number that is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let millis = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(format!(
                    "\"{text}\" is missing a unit after {n}; use ms, s, m or h"
                ))
            }
            other => {
                return Err(format!(
                    "\"{text}\" has an unknown unit \"{other}\"; use ms, s, m or h"
                ))
            }
        };
        total = total.saturating_add(n.saturating_mul(millis));
        rest = &rest[unit_len..];
    }
    let millis = u64::try_from(total).map_err(|_| {
        format!(
            "\"{text}\" is far longer than {}h, the longest duration any setting takes",
            MAX_DURATION.as_secs() / 3600
        )
    })?;
    Ok(std::time::Duration::from_millis(millis))
}

macro_rules! text_quantity {
    ($(#[$doc:meta])* $name:ident, $schema_desc:expr, $pattern:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps text; validation decides whether it parses.
            pub fn new(text: impl Into<String>) -> Self {
                $name(text.into())
            }
            /// The text as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "description": $schema_desc, "pattern": $pattern})
            }
        }
    };
}

text_quantity!(
    /// A byte size as LXD reads it: `512MiB`, `8GB`, `1GiB`, `100000B` (kB/MB/GB/TB are powers of
    /// 1000, KiB/MiB/GiB/TiB powers of 1024).
    ByteSize,
    "A byte size with a unit: \"512MiB\", \"8GB\", \"1GiB\" (KB/MB/GB/TB = 1000^n, KiB/MiB/GiB/TiB = 1024^n).",
    "^[0-9]+(\\.[0-9]+)?\\s*(B|[kKMGTP]B|[KMGTP]iB)$"
);

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(&self) -> Result<u64, String> {
        parse_with_units(
            &self.0,
            &[
                ("B", 1),
                ("kB", 1_000),
                ("KB", 1_000),
                ("MB", 1_000_000),
                ("GB", 1_000_000_000),
                ("TB", 1_000_000_000_000),
                ("PB", 1_000_000_000_000_000),
                ("KiB", 1 << 10),
                ("MiB", 1 << 20),
                ("GiB", 1 << 30),
                ("TiB", 1 << 40),
                ("PiB", 1 << 50),
            ],
            "a byte size such as \"512MiB\" or \"8GB\"",
        )
    }
}

text_quantity!(
    /// A bit rate as LXD reads it: `100Mbit`, `1Gbit`, `500kbit`.
    BitRate,
    "A bit rate with a unit: \"100Mbit\", \"1Gbit\", \"500kbit\".",
    "^[0-9]+(\\.[0-9]+)?\\s*(bit|kbit|Mbit|Gbit|Tbit)$"
);

impl BitRate {
    /// The rate in bits per second.
    pub fn bits_per_second(&self) -> Result<u64, String> {
        parse_with_units(
            &self.0,
            &[
                ("bit", 1),
                ("kbit", 1_000),
                ("Mbit", 1_000_000),
                ("Gbit", 1_000_000_000),
                ("Tbit", 1_000_000_000_000),
            ],
            "a bit rate such as \"100Mbit\"",
        )
    }
}

fn parse_with_units(text: &str, units: &[(&str, u64)], example: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() {
        return Err(format!("\"{text}\" is not {example}"));
    }
    let Some(&(_, mult)) = units.iter().find(|(u, _)| *u == unit) else {
        let known: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        return Err(if unit.is_empty() {
            format!(
                "\"{text}\" has no unit; write {example} (units: {})",
                known.join(", ")
            )
        } else {
            format!(
                "\"{text}\" has an unknown unit \"{unit}\"; use one of {}",
                known.join(", ")
            )
        });
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not {example}"))?;
    let total = value * mult as f64;
    if !total.is_finite() || total >= u64::MAX as f64 {
        return Err(format!("\"{text}\" is too large"));
    }
    Ok(total.round() as u64)
}

/// Most CPUs a limit may name (Linux's `NR_CPUS` ceiling); CPU numbers go from 0 to one less.
pub const MAX_CPUS: u32 = 8192;

/// A CPU limit as LXD reads `limits.cpu`: a count of CPUs (`"4"`, or the integer 4) or a CPU set
/// (`"0-1"`, `"0,2"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CpuLimit(String);

impl CpuLimit {
    /// Wraps text; validation decides whether it parses.
    pub fn new(text: impl Into<String>) -> Self {
        CpuLimit(text.into())
    }
    /// The text as written (an integer becomes its decimal text).
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The number of CPUs this limit allows.
    pub fn count(&self) -> Result<u32, String> {
        let t = self.0.trim();
        let bad = || {
            format!(
                "\"{t}\" is not a CPU limit; write a count such as \"4\" or a CPU set such as \"0-1\" or \"0,2\""
            )
        };
        let too_many = || {
            format!(
                "\"{t}\" names more than {MAX_CPUS} CPUs or a CPU above {}; Linux has at most {MAX_CPUS}",
                MAX_CPUS - 1
            )
        };
        if let Ok(n) = t.parse::<u32>() {
            return match n {
                0 => Err("0 CPUs would stop the container; use at least 1".into()),
                n if n > MAX_CPUS => Err(too_many()),
                n => Ok(n),
            };
        }
        let cpu = |s: &str| -> Result<u32, String> {
            let s = s.trim();
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            // A number too large for u32 is still a CPU number, just an impossible one.
            match s.parse::<u32>() {
                Ok(n) if n < MAX_CPUS => Ok(n),
                _ => Err(too_many()),
            }
        };
        let mut count = 0u32;
        for part in t.split(',') {
            let span = match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (cpu(a)?, cpu(b)?);
                    if b < a {
                        return Err(bad());
                    }
                    b - a + 1
                }
                None => {
                    cpu(part)?;
                    1
                }
            };
            count = count
                .checked_add(span)
                .filter(|c| *c <= MAX_CPUS)
                .ok_or_else(too_many)?;
        }
        Ok(count)
    }
}

impl<'de> Deserialize<'de> for CpuLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a CPU count such as 4 or a CPU set such as \"0-1\"")
        })? {
            Raw::N(n) => Ok(CpuLimit(n.to_string())),
            Raw::Text(s) => Ok(CpuLimit(s)),
        }
    }
}

impl JsonSchema for CpuLimit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CpuLimit".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "CPU limit (LXD limits.cpu): a count of CPUs such as 4, or a CPU set such as \"0-1\" or \"0,2\".",
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_written_form() {
        assert_eq!(
            parse_duration("30s"),
            Ok(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("5m"),
            Ok(std::time::Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("90"), Ok(std::time::Duration::from_secs(90)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes_follow_lxd_units() {
        assert_eq!(ByteSize::new("8GB").bytes(), Ok(8_000_000_000));
        assert_eq!(ByteSize::new("512MiB").bytes(), Ok(512 << 20));
        assert!(ByteSize::new("8").bytes().unwrap_err().contains("no unit"));
        assert!(ByteSize::new("8GiG")
            .bytes()
            .unwrap_err()
            .contains("unknown unit"));
        assert_eq!(BitRate::new("100Mbit").bits_per_second(), Ok(100_000_000));
        assert!(BitRate::new("100MB").bits_per_second().is_err());
    }

    #[test]
    fn cpu_limits_count_cpus() {
        assert_eq!(CpuLimit::new("4").count(), Ok(4));
        assert_eq!(CpuLimit::new("0-1").count(), Ok(2));
        assert_eq!(CpuLimit::new("0,2-3").count(), Ok(3));
        assert!(CpuLimit::new("0").count().is_err());
        assert!(CpuLimit::new("four").count().is_err());
    }
}
