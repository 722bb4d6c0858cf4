//! How evenly a map spreads the data: slots per shard, range widths, tenants per server,
//! and a skew verdict when one shard holds far more than its share.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::map::{Algorithm, Layout};

/// A shard holding more than this many times its fair share is skewed.
pub const SKEW_FACTOR: f64 = 1.5;

/// The spread of a map.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    /// What `units` counts: `slots`, `keys`, `tenants`, `regions`, `hash share`.
    pub unit: String,
    /// Shard (or server, or backend) → how many units it holds.
    pub units: BTreeMap<String, u64>,
    /// Shard → its share of the keys (0..1).
    pub shares: BTreeMap<String, f64>,
    /// Set when a shard holds more than 1.5× its fair share: which one, and how much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew: Option<String>,
}

/// The spread of `layout`.
pub fn balance(layout: &Layout) -> Balance {
    let mut b = Balance::default();
    match layout {
        Layout::Hash(h) => {
            for s in &h.shards {
                b.units.insert(s.name.clone(), 0);
            }
            match h.algorithm {
                Algorithm::Slots => {
                    b.unit = "slots".into();
                    for r in &h.slots {
                        *b.units.entry(r.shard.clone()).or_default() +=
                            u64::from(r.to - r.from + 1);
                    }
                }
                Algorithm::Modulo => {
                    b.unit = "hash residues".into();
                    for s in &h.shards {
                        *b.units.entry(s.name.clone()).or_default() += 1;
                    }
                }
            }
        }
        Layout::Range(r) => {
            b.unit = "keys".into();
            for kr in &r.ranges {
                let width = kr
                    .to
                    .map_or(u64::MAX - kr.from, |to| to - kr.from)
                    .saturating_add(1);
                let e = b.units.entry(kr.shard.clone()).or_default();
                *e = e.saturating_add(width);
            }
        }
        Layout::Tenant(t) => {
            b.unit = "tenants".into();
            let server = t
                .server
                .clone()
                .unwrap_or_else(|| "operator's server".into());
            b.units.insert(server, t.tenants.len() as u64);
        }
        Layout::Geo(g) => {
            b.unit = "regions".into();
            for backend in g.regions.values() {
                *b.units.entry(backend.clone()).or_default() += 1;
            }
            b.units.entry(g.default.clone()).or_default();
        }
    }
    let total: f64 = b.units.values().map(|v| *v as f64).sum();
    if total > 0.0 {
        b.shares = b
            .units
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / total))
            .collect();
    }
    // Skew only means something where keys spread over several shards by the map.
    let spread = matches!(layout, Layout::Hash(_) | Layout::Range(_));
    if spread && b.shares.len() > 1 {
        let fair = 1.0 / b.shares.len() as f64;
        if let Some((name, share)) = b
            .shares
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .filter(|(_, s)| **s > fair * SKEW_FACTOR)
        {
            b.skew = Some(format!(
                "shard {name} holds {:.1} % of the keys, more than {SKEW_FACTOR}× its fair share ({:.1} %)",
                share * 100.0,
                fair * 100.0
            ));
        }
    }
    b
}
