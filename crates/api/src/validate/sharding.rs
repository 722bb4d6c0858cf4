//! Rules of `spec.sharding`: the strategy's settings present, and ranges contiguous.

use super::Errors;
use crate::spec::{ShardStrategy, Sharding};

pub(super) fn validate_sharding(sh: &Sharding, e: &mut Errors) {
    let missing = |what: &str| {
        format!(
            "is required with strategy {}; add spec.sharding.{what}",
            sh.strategy.as_str()
        )
    };
    match sh.strategy {
        ShardStrategy::Tenant if sh.tenant.is_none() => {
            e.push("spec.sharding.tenant", missing("tenant"))
        }
        ShardStrategy::Hash if sh.hash.is_none() => e.push("spec.sharding.hash", missing("hash")),
        ShardStrategy::Range if sh.range.is_none() => {
            e.push("spec.sharding.range", missing("range"))
        }
        ShardStrategy::Geo if sh.geo.is_none() => e.push("spec.sharding.geo", missing("geo")),
        _ => {}
    }
    if let Some(t) = &sh.tenant {
        e.check(
            !t.db_prefix.is_empty()
                && t.db_prefix.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && t.db_prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && t.db_prefix.len() <= 40,
            "spec.sharding.tenant.dbPrefix",
            || format!(
                "\"{}\" is not a safe PostgreSQL name prefix; use lowercase letters, digits and '_' (at most 40), e.g. \"gb_tenant_\"",
                t.db_prefix
            ),
        );
    }
    if let Some(h) = &sh.hash {
        e.check(h.shard_count >= 1, "spec.sharding.hash.shardCount", || {
            "must be at least 1".into()
        });
        e.check(!h.key.trim().is_empty(), "spec.sharding.hash.key", || {
            "is empty; name the key, e.g. \"user_id\"".into()
        });
    }
    if let Some(r) = &sh.range {
        e.check(!r.ranges.is_empty(), "spec.sharding.range.ranges", || {
            "is empty; add at least one range".into()
        });
        // Ranges are contiguous: each starts right after the previous one ends; only the last
        // may be unbounded (no `to`).
        let mut next: Option<u64> = None;
        let mut unbounded_before = false;
        for (i, kr) in r.ranges.iter().enumerate() {
            let f = format!("spec.sharding.range.ranges[{i}]");
            e.check(!kr.shard.trim().is_empty(), &format!("{f}.shard"), || {
                "is empty; name the shard".into()
            });
            if unbounded_before {
                e.push(&f, "follows an unbounded range (no `to`), so it can never match; give the earlier range a `to`");
            } else if let Some(n) = next {
                if kr.from < n {
                    e.push(
                        &format!("{f}.from"),
                        format!(
                            "{} overlaps the previous range, which ends at {}; start at {n}",
                            kr.from,
                            n - 1
                        ),
                    );
                } else if kr.from > n {
                    e.push(
                        &format!("{f}.from"),
                        format!(
                            "{} leaves keys {n}-{} unmapped; start at {n}",
                            kr.from,
                            kr.from - 1
                        ),
                    );
                }
            }
            match kr.to {
                Some(to) if to < kr.from => {
                    e.push(
                        &format!("{f}.to"),
                        format!("{to} is below from ({}); swap them", kr.from),
                    );
                    next = None;
                }
                Some(to) => next = to.checked_add(1),
                None => unbounded_before = true,
            }
        }
    }
    if let Some(g) = &sh.geo {
        e.check(!g.regions.is_empty(), "spec.sharding.geo.regions", || {
            "is empty; map at least one region".into()
        });
        for (region, host) in &g.regions {
            e.check(
                !host.trim().is_empty(),
                &format!("spec.sharding.geo.regions.{region}"),
                || "is empty; give a database host".into(),
            );
        }
        e.check(
            !g.default.trim().is_empty(),
            "spec.sharding.geo.default",
            || "is empty; give the database for regions not listed".into(),
        );
    }
}
