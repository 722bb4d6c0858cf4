//! Rules of `spec.sharding`: the strategy's settings present, ranges contiguous, tenant and
//! shard names safe for PostgreSQL (and never truncated by it), server URLs without a
//! password, the map path absolute.

use std::collections::BTreeSet;

use super::Errors;
use crate::spec::{HashAlgorithm, ShardStrategy, Sharding};

/// PostgreSQL's limit on identifiers (NAMEDATALEN - 1): longer names are silently
/// truncated, so two long tenant names could land in one database.
pub const PG_NAME_MAX: usize = 63;
/// The most shards a hash map may have.
pub const MAX_SHARDS: usize = 1024;

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// `postgres://` or `postgresql://` with a host, and no password in it.
fn check_server_url(url: &str, field: &str, e: &mut Errors) {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"));
    let Some(rest) = rest else {
        e.push(
            field,
            "is not a postgres:// URL; write e.g. \"postgres://botcluster@db.example:5432/postgres\"",
        );
        return;
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        e.push(field, "contains spaces or control characters");
        return;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, host)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            e.push(
                field,
                "contains a password; a spec is stored and shown, so leave the password out and \
                 give it to the operator (botctl serve --postgres-password-file FILE)",
            );
        }
        if host.is_empty() {
            e.push(
                field,
                "names no host; write e.g. \"postgres://botcluster@db.example:5432/postgres\"",
            );
        }
    } else if authority.is_empty() {
        e.push(
            field,
            "names no host; write e.g. \"postgres://botcluster@db.example:5432/postgres\"",
        );
    }
    if rest.contains("password=") {
        e.push(
            field,
            "has a password= parameter; give the password to the operator instead \
             (botctl serve --postgres-password-file FILE)",
        );
    }
}

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
        let prefix_ok = !t.db_prefix.is_empty()
            && t.db_prefix
                .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && t.db_prefix.chars().all(is_name_char)
            && t.db_prefix.len() <= 40;
        e.check(prefix_ok, "spec.sharding.tenant.dbPrefix", || {
            format!(
                "\"{}\" is not a safe PostgreSQL name prefix; use lowercase letters, digits and '_' (at most 40), e.g. \"gb_tenant_\"",
                t.db_prefix
            )
        });
        let mut seen = BTreeSet::new();
        for (i, tenant) in t.tenants.iter().enumerate() {
            let f = format!("spec.sharding.tenant.tenants[{i}]");
            if tenant.is_empty() || !tenant.chars().all(is_name_char) {
                e.push(
                    &f,
                    format!(
                        "{tenant:?} is not a tenant name: use lowercase letters, digits and '_' \
                         (it becomes the database {:?})",
                        format!("{}{tenant}", t.db_prefix)
                    ),
                );
                continue;
            }
            let db_len = t.db_prefix.len() + tenant.len();
            if db_len > PG_NAME_MAX {
                e.push(
                    &f,
                    format!(
                        "\"{tenant}\" makes the database name \"{}{tenant}\" {db_len} bytes long; \
                         PostgreSQL keeps only {PG_NAME_MAX} (it would silently truncate it, and two \
                         tenants could share a database): shorten the tenant to at most {} bytes \
                         or the dbPrefix",
                        t.db_prefix,
                        PG_NAME_MAX.saturating_sub(t.db_prefix.len())
                    ),
                );
            }
            if !seen.insert(tenant.as_str()) {
                e.push(&f, format!("\"{tenant}\" is listed twice; remove one"));
            }
        }
        if let Some(url) = &t.server {
            check_server_url(url, "spec.sharding.tenant.server", e);
        }
    }
    if let Some(h) = &sh.hash {
        e.check(
            h.shard_count >= 1 || !h.shards.is_empty(),
            "spec.sharding.hash.shardCount",
            || "must be at least 1 (or name the shards in spec.sharding.hash.shards)".into(),
        );
        e.check(!h.key.trim().is_empty(), "spec.sharding.hash.key", || {
            "is empty; name the key, e.g. \"user_id\"".into()
        });
        e.check(
            (1..=65536).contains(&h.slot_count),
            "spec.sharding.hash.slotCount",
            || {
                format!(
                    "{} is out of range; use 1 to 65536 (default 1024)",
                    h.slot_count
                )
            },
        );
        // Counted, not listed: validation must cost nothing like what the spec asks for
        // (found by the config_csv fuzz target: shard-count 111117114 ran out of memory).
        let n = h.shard_len();
        e.check(n <= MAX_SHARDS, "spec.sharding.hash", || {
            format!("has {n} shards; at most {MAX_SHARDS} are supported")
        });
        if h.algorithm == HashAlgorithm::Slots && n > h.slot_count as usize {
            e.push(
                "spec.sharding.hash.slotCount",
                format!(
                    "{} slots cannot spread over {n} shards; raise slotCount",
                    h.slot_count
                ),
            );
        }
        if !h.shards.is_empty() && h.shard_count != 0 && h.shard_count as usize != h.shards.len() {
            e.push(
                "spec.sharding.hash.shardCount",
                format!(
                    "is {} but {} shards are named; drop shardCount or make them agree",
                    h.shard_count,
                    h.shards.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, s) in h.shards.iter().enumerate() {
            let f = format!("spec.sharding.hash.shards[{i}]");
            let ok = !s.name.is_empty()
                && s.name.len() <= PG_NAME_MAX
                && s.name.chars().all(|c| is_name_char(c) || c == '-');
            e.check(ok, &format!("{f}.name"), || {
                format!(
                    "{:?} is not a shard name: use lowercase letters, digits, '-' and '_' (1 to {PG_NAME_MAX})",
                    s.name
                )
            });
            if ok && !seen.insert(s.name.as_str()) {
                e.push(
                    &format!("{f}.name"),
                    format!("\"{}\" is named twice; shard names are unique", s.name),
                );
            }
            if let Some(b) = &s.backend {
                e.check(
                    !b.trim().is_empty() && !b.chars().any(char::is_control) && b.len() <= 255,
                    &format!("{f}.backend"),
                    || "is empty or has control characters; give a database name or host".into(),
                );
                if b.starts_with("postgres://") || b.starts_with("postgresql://") {
                    check_server_url(b, &format!("{f}.backend"), e);
                }
            }
        }
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
    let path = &sh.map_path;
    let path_ok = path.starts_with('/')
        && !path.ends_with('/')
        && path.len() <= 255
        && !path.split('/').any(|part| part == ".." || part == ".")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'));
    e.check(path_ok, "spec.sharding.mapPath", || {
        format!(
            "{path:?} is not a file path the operator writes: use an absolute path of letters, \
             digits, '/', '_', '-' and '.', without '..' (default {})",
            crate::spec::DEFAULT_MAP_PATH
        )
    });
    if let Some(id) = &sh.approved_rebalance {
        e.check(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "spec.sharding.approvedRebalance",
            || {
                format!(
                    "{id:?} is not a rebalance id (16 hex digits, shown by `botctl shards NAME`)"
                )
            },
        );
    }
}
