//! Semantic validation: every rule a well-typed spec must still satisfy, each failure reported
//! with its field path and what to do about it.
//!
//! This module checks the top level of the spec and calls one module per section that has
//! rules of its own; [`FieldError`] and [`ValidationErrors`] are what every check reports.

mod autoscaling;
mod cache;
pub mod charset;
mod checks;
mod errors;
mod load_balancer;
mod resources;
mod sharding;
mod strings;

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::spec::BotClusterSpec;
use crate::{BotCluster, API_VERSION, BOTCLUSTER_KIND, MAX_NAME_LEN};

use checks::Errors;
pub use checks::MAX_DURATION;
pub use errors::{FieldError, ValidationErrors, MAX_FIELD_ERRORS};
pub use strings::{string_rules, MAX_KEY_BYTES, MAX_LONG_STRING_BYTES, MAX_STRING_BYTES};

/// Most instances one cluster may have.
pub const MAX_INSTANCES: u32 = 1000;

/// Checks an object name: 1-52 characters of `a-z`, `0-9` and `-`, starting with a letter and
/// not ending with `-` (container names derive from it and must satisfy LXD's hostname rules).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; give the cluster a name such as \"support-bots\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "\"{name}\" is {} characters; use at most {MAX_NAME_LEN} (container names add \"-<ordinal>\" and LXD allows 63)",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "\"{name}\" contains {c:?}; use only lowercase letters, digits and '-'"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("\"{name}\" must start with a lowercase letter"));
    }
    if name.ends_with('-') {
        return Err(format!("\"{name}\" must not end with '-'"));
    }
    Ok(())
}

/// Validates a whole BotCluster; returns every problem at once.
pub fn validate(obj: &BotCluster) -> Result<(), ValidationErrors> {
    let mut e = Errors(Vec::new());
    e.check(obj.api_version == API_VERSION, "apiVersion", || {
        format!(
            "\"{}\" is not supported; use \"{API_VERSION}\"",
            obj.api_version
        )
    });
    e.check(obj.kind == BOTCLUSTER_KIND, "kind", || {
        format!(
            "\"{}\" is not {BOTCLUSTER_KIND}; this object must be kind: {BOTCLUSTER_KIND}",
            obj.kind
        )
    });
    if let Err(m) = validate_name(&obj.metadata.name) {
        e.push("metadata.name", m);
    }
    validate_spec(&obj.spec, &mut e);
    if e.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(e.0))
    }
}

fn validate_spec(s: &BotClusterSpec, e: &mut Errors) {
    e.rule("spec.image", charset::image_ref(&s.image));
    e.check(s.replicas <= MAX_INSTANCES, "spec.replicas", || {
        format!(
            "{} is more than {MAX_INSTANCES}; lower replicas",
            s.replicas
        )
    });
    e.check(s.container_port != 0, "spec.containerPort", || {
        "0 is not a port; use the port the botserver listens on, e.g. 8080".into()
    });
    if let Err(err) = s.listen_address.parse::<IpAddr>() {
        e.push(
            "spec.listenAddress",
            format!(
                "\"{}\" is not an IP address ({err}); use e.g. \"127.0.0.1\"",
                s.listen_address
            ),
        );
    }
    let a = &s.autoscaling;
    let most = if a.enabled {
        a.max_instances.max(s.replicas)
    } else {
        s.replicas
    };
    if let Some(r) = &s.host_ports {
        if r.start < 1024 && r.start != 0 && !s.privileged_ports {
            e.push(
                "spec.hostPorts",
                format!(
                    "start ({}) is a privileged port (below 1024), usually the host's own services'; use ports from 1024 up, or set spec.privilegedPorts: true",
                    r.start
                ),
            );
        }
        if r.start == 0 || r.start > r.end {
            e.push(
                "spec.hostPorts",
                format!(
                    "start ({}) must be at least 1 and not above end ({})",
                    r.start, r.end
                ),
            );
        } else {
            // u64: user numbers never meet in u32 arithmetic, which a large maxSurge overflows.
            let size = u64::from(r.end - r.start) + 1;
            let need = u64::from(most) + u64::from(s.update_strategy.max_surge);
            e.check(size >= need, "spec.hostPorts", || {
                format!(
                    "{}-{} holds {size} ports but up to {need} instances can exist (instances + maxSurge); widen the range",
                    r.start, r.end
                )
            });
        }
    }
    let mut profiles = BTreeSet::new();
    for (i, p) in s.profiles.iter().enumerate() {
        let f = format!("spec.profiles[{i}]");
        e.rule(&f, charset::lxd_name(p, 63));
        e.check(profiles.insert(p), &f, || {
            format!("\"{p}\" is listed twice")
        });
    }
    resources::validate_resources(&s.resources, e);
    let mut paths = BTreeSet::new();
    for (i, file) in s.files.iter().enumerate() {
        let f = format!("spec.files[{i}].path");
        e.rule(&f, charset::container_file_path(&file.path));
        // The other files the operator writes itself, when it writes them.
        let writes_bot_config = s.cache.is_some()
            || s.vector_db.is_some()
            || s.fallback.is_some()
            || s.load_balancer
                .as_ref()
                .is_some_and(|lb| lb.rate_limit.is_some());
        e.check(
            !(writes_bot_config && file.path == charset::BOT_CONFIG_PATH),
            &f,
            || format!("{:?} is the bots' settings file the operator writes from cache, vectorDb, fallback and rateLimit; use another path", file.path),
        );
        let map_path = s.sharding.as_ref().map(|sh| sh.map_path.as_str());
        e.check(map_path != Some(file.path.as_str()), &f, || {
            format!("{:?} is spec.sharding.mapPath, the shard map the operator writes; use another path or move mapPath", file.path)
        });
        e.check(paths.insert(&file.path), &f, || {
            format!("\"{}\" is listed twice", file.path)
        });
        e.check(
            u32::from_str_radix(&file.mode, 8).is_ok_and(|m| m <= 0o7777),
            &format!("spec.files[{i}].mode"),
            || {
                format!(
                    "\"{}\" is not an octal file mode; write e.g. \"0644\"",
                    file.mode
                )
            },
        );
    }
    for (k, v) in &s.env {
        let f = format!("spec.env.{k}");
        e.rule(&f, charset::env_name(k));
        e.rule(&f, charset::env_value(v));
    }
    for (f, v) in [
        (
            "spec.updateStrategy.maxUnavailable",
            s.update_strategy.max_unavailable,
        ),
        ("spec.updateStrategy.maxSurge", s.update_strategy.max_surge),
    ] {
        e.check(v <= MAX_INSTANCES, f, || {
            format!("{v} is more than {MAX_INSTANCES} (the most instances a cluster may have); lower it")
        });
    }
    e.check(
        s.update_strategy.max_unavailable > 0 || s.update_strategy.max_surge > 0,
        "spec.updateStrategy",
        || "maxUnavailable and maxSurge are both 0, so no replacement could ever start; set one to at least 1".into(),
    );
    autoscaling::validate_autoscaling(a, e);
    if let Some(lb) = &s.load_balancer {
        load_balancer::validate_load_balancer(lb, s, e);
    }
    let h = &s.health;
    e.path("spec.health.endpoint", &h.endpoint);
    let interval = e.positive_duration("spec.health.interval", &h.interval);
    let timeout = e.positive_duration("spec.health.timeout", &h.timeout);
    if let (Some(i), Some(t)) = (interval, timeout) {
        e.check(t <= i, "spec.health.timeout", || {
            format!(
                "{} is longer than interval ({}); probes would overlap; shorten timeout",
                h.timeout, h.interval
            )
        });
    }
    e.check(h.retries >= 1, "spec.health.retries", || {
        "must be at least 1".into()
    });
    let cb = &s.circuit_breaker;
    e.check(cb.threshold >= 1, "spec.circuitBreaker.threshold", || {
        "must be at least 1".into()
    });
    e.positive_duration("spec.circuitBreaker.timeout", &cb.timeout);
    e.check(
        cb.half_open_requests >= 1,
        "spec.circuitBreaker.halfOpenRequests",
        || "must be at least 1 (the trial calls made when half-open)".into(),
    );
    if let Some(fb) = &s.fallback {
        if let Some(llm) = &fb.llm {
            e.check(
                !llm.provider.trim().is_empty(),
                "spec.fallback.llm.provider",
                || "is empty; e.g. \"local\"".into(),
            );
            e.check(
                !llm.model.trim().is_empty(),
                "spec.fallback.llm.model",
                || "is empty; name the fallback model".into(),
            );
        }
        for (f, m) in [
            ("spec.fallback.cache.mode", &fb.cache),
            ("spec.fallback.vectorDb.mode", &fb.vector_db),
        ] {
            if let Some(m) = m {
                e.check(!m.mode.trim().is_empty(), f, || {
                    "is empty; e.g. \"memory\" or \"keyword-search\"".into()
                });
            }
        }
    }
    if let Some(c) = &s.cache {
        cache::validate_cache(c, e);
    }
    if let Some(v) = &s.vector_db {
        e.check(v.shard_count >= 1, "spec.vectorDb.shardCount", || {
            "must be at least 1".into()
        });
        e.check(
            v.replication_factor >= 1,
            "spec.vectorDb.replicationFactor",
            || "must be at least 1".into(),
        );
        e.check(
            v.write_consistency_factor >= 1 && v.write_consistency_factor <= v.replication_factor,
            "spec.vectorDb.writeConsistencyFactor",
            || format!(
                "{} must be between 1 and replicationFactor ({}); for a majority of {} replicas write {}",
                v.write_consistency_factor,
                v.replication_factor,
                v.replication_factor,
                v.replication_factor / 2 + 1
            ),
        );
    }
    if let Some(sh) = &s.sharding {
        sharding::validate_sharding(sh, e);
    }
}
