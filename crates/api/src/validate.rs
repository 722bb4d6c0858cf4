//! Semantic validation: every rule a well-typed spec must still satisfy, each failure reported
//! with its field path and what to do about it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::spec::*;
use crate::{BotCluster, API_VERSION, BOTCLUSTER_KIND, MAX_NAME_LEN};

/// Most instances one cluster may have.
pub const MAX_INSTANCES: u32 = 1000;

/// One problem in an object, at a field path such as `spec.autoscaling.minInstances`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where: a dotted path with `[i]` for list items, in the YAML's own field names.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

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

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    fn check(&mut self, ok: bool, field: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.push(field, message());
        }
    }
    fn duration(&mut self, field: &str, d: &crate::Duration) -> Option<std::time::Duration> {
        match d.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }
    fn positive_duration(
        &mut self,
        field: &str,
        d: &crate::Duration,
    ) -> Option<std::time::Duration> {
        let v = self.duration(field, d)?;
        if v.is_zero() {
            self.push(field, "must be longer than 0; use e.g. \"10s\"");
            return None;
        }
        Some(v)
    }
    fn path(&mut self, field: &str, p: &str) {
        self.check(p.starts_with('/'), field, || {
            format!("\"{p}\" must start with '/', e.g. \"/api/health\"")
        });
        self.check(
            !p.chars().any(|c| c.is_whitespace() || c.is_control()),
            field,
            || format!("\"{p}\" contains whitespace or control characters"),
        );
    }
    fn host_port(&mut self, field: &str, addr: &str) {
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                self.check(
                    is_hostname(host) || host.parse::<IpAddr>().is_ok(),
                    field,
                    || format!("\"{addr}\": \"{host}\" is not a host name or IP address"),
                )
            }
            _ => self.push(
                field,
                format!("\"{addr}\" is not host:port; write e.g. \"redis-1:6379\""),
            ),
        }
    }
}

fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
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
    e.check(!s.image.trim().is_empty(), "spec.image", || {
        "is empty; name an LXD image alias or fingerprint, e.g. \"botcluster-botserver\"".into()
    });
    e.check(
        !s.image.chars().any(char::is_whitespace),
        "spec.image",
        || {
            format!(
                "\"{}\" contains whitespace; image aliases and fingerprints have none",
                s.image
            )
        },
    );
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
        if r.start == 0 || r.start > r.end {
            e.push(
                "spec.hostPorts",
                format!(
                    "start ({}) must be at least 1 and not above end ({})",
                    r.start, r.end
                ),
            );
        } else {
            let size = u32::from(r.end - r.start) + 1;
            let need = most + s.update_strategy.max_surge;
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
        e.check(
            !p.is_empty() && !p.contains('/') && !p.chars().any(char::is_whitespace),
            &f,
            || format!("\"{p}\" is not a profile name"),
        );
        e.check(profiles.insert(p), &f, || {
            format!("\"{p}\" is listed twice")
        });
    }
    validate_resources(&s.resources, e);
    let mut paths = BTreeSet::new();
    for (i, file) in s.files.iter().enumerate() {
        let f = format!("spec.files[{i}].path");
        e.check(file.path.starts_with('/'), &f, || {
            format!(
                "\"{}\" must be an absolute path inside the container",
                file.path
            )
        });
        e.check(!file.path.split('/').any(|c| c == ".."), &f, || {
            format!("\"{}\" must not contain \"..\"", file.path)
        });
        e.check(!file.path.ends_with('/'), &f, || {
            format!("\"{}\" names a directory; name a file", file.path)
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
    for k in s.env.keys() {
        e.check(
            !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            &format!("spec.env.{k}"),
            || format!("\"{k}\" is not an environment variable name; use letters, digits and '_'"),
        );
    }
    e.check(
        s.update_strategy.max_unavailable + s.update_strategy.max_surge >= 1,
        "spec.updateStrategy",
        || "maxUnavailable and maxSurge are both 0, so no replacement could ever start; set one to at least 1".into(),
    );
    validate_autoscaling(a, e);
    if let Some(lb) = &s.load_balancer {
        validate_load_balancer(lb, e);
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
        validate_cache(c, e);
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
        validate_sharding(sh, e);
    }
}

fn validate_resources(r: &Resources, e: &mut Errors) {
    if let Some(cpu) = &r.cpu {
        if let Err(m) = cpu.count() {
            e.push("spec.resources.cpu", m);
        }
    }
    if let Some(mem) = &r.memory {
        match mem.bytes() {
            Err(m) => e.push("spec.resources.memory", m),
            Ok(b) => e.check(b >= 16 << 20, "spec.resources.memory", || {
                format!("\"{mem}\" is below 16MiB, too little to start a container; raise it")
            }),
        }
    }
    if let Some(p) = r.disk_priority {
        e.check(p <= 10, "spec.resources.diskPriority", || {
            format!("{p} is above 10; use 0 to 10")
        });
    }
    if let Some(p) = r.processes {
        e.check(p >= 1, "spec.resources.processes", || {
            "must be at least 1".into()
        });
    }
    if let Some(n) = &r.network {
        for (f, rate) in [
            ("spec.resources.network.ingress", &n.ingress),
            ("spec.resources.network.egress", &n.egress),
        ] {
            if let Some(rate) = rate {
                if let Err(m) = rate.bits_per_second() {
                    e.push(f, m);
                }
            }
        }
    }
}

fn validate_autoscaling(a: &Autoscaling, e: &mut Errors) {
    e.check(
        a.max_instances >= 1,
        "spec.autoscaling.maxInstances",
        || "must be at least 1".into(),
    );
    e.check(
        a.max_instances <= MAX_INSTANCES,
        "spec.autoscaling.maxInstances",
        || {
            format!(
                "{} is more than {MAX_INSTANCES}; lower maxInstances",
                a.max_instances
            )
        },
    );
    e.check(
        a.min_instances <= a.max_instances,
        "spec.autoscaling.minInstances",
        || {
            format!(
                "{} is greater than maxInstances ({}); lower minInstances or raise maxInstances",
                a.min_instances, a.max_instances
            )
        },
    );
    for (f, v) in [
        ("spec.autoscaling.cpuThreshold", a.cpu_threshold),
        ("spec.autoscaling.memoryThreshold", a.memory_threshold),
    ] {
        e.check(v > 0.0 && v <= 100.0, f, || {
            format!("{v} is not a percentage between 0 and 100")
        });
    }
    e.check(
        a.request_threshold > 0.0,
        "spec.autoscaling.requestThreshold",
        || {
            format!(
                "{} must be above 0 requests per minute",
                a.request_threshold
            )
        },
    );
    e.duration("spec.autoscaling.cooldown", &a.cooldown);
    if let Some(i) = e.positive_duration("spec.autoscaling.checkInterval", &a.check_interval) {
        e.check(
            i >= std::time::Duration::from_secs(1),
            "spec.autoscaling.checkInterval",
            || {
                format!(
                    "{} is shorter than 1s; metrics are not that fresh",
                    a.check_interval
                )
            },
        );
    }
    for (i, r) in a.rules.iter().enumerate() {
        let f = format!("spec.autoscaling.rules[{i}]");
        match (r.above, r.below) {
            (Some(_), Some(_)) => e.push(&f, "sets both above and below; split it into two rules"),
            (None, None) => e.push(
                &f,
                "sets neither above nor below; say when the rule fires, e.g. above: 2000",
            ),
            (Some(v), None) | (None, Some(v)) => {
                if matches!(r.metric, ScalingMetric::Cpu | ScalingMetric::Memory) {
                    e.check((0.0..=100.0).contains(&v), &f, || {
                        format!("{v} is not a percentage between 0 and 100")
                    });
                } else {
                    e.check(v >= 0.0, &f, || format!("{v} must not be negative"));
                }
            }
        }
    }
}

fn validate_load_balancer(lb: &LoadBalancer, e: &mut Errors) {
    let listen_ok = lb.listen.parse::<SocketAddr>().is_ok()
        || lb
            .listen
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
        || lb
            .listen
            .rsplit_once(':')
            .is_some_and(|(h, p)| h == "localhost" && p.parse::<u16>().is_ok_and(|p| p > 0));
    e.check(listen_ok, "spec.loadBalancer.listen", || {
        format!(
            "\"{}\" is not an address to listen on; write e.g. \"127.0.0.1:8443\" or \":443\"",
            lb.listen
        )
    });
    for (i, h) in lb.hosts.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        e.check(
            is_hostname(bare) || bare.parse::<IpAddr>().is_ok(),
            &format!("spec.loadBalancer.hosts[{i}]"),
            || format!("\"{h}\" is not a host name"),
        );
    }
    e.check(!lb.routes.is_empty(), "spec.loadBalancer.routes", || {
        "is empty; add at least one route, e.g. {name: default}".into()
    });
    let mut names = BTreeSet::new();
    for (i, r) in lb.routes.iter().enumerate() {
        let f = format!("spec.loadBalancer.routes[{i}]");
        if let Err(m) = validate_name(&r.name) {
            e.push(&format!("{f}.name"), m);
        }
        e.check(names.insert(&r.name), &format!("{f}.name"), || {
            format!(
                "\"{}\" is used by an earlier route; route names must be unique",
                r.name
            )
        });
        if let Some(p) = &r.path {
            e.path(&format!("{f}.path"), p);
        }
        if let Some(d) = &r.try_duration {
            e.duration(&format!("{f}.tryDuration"), d);
        }
        if let Some(d) = &r.fail_duration {
            e.duration(&format!("{f}.failDuration"), d);
        }
        if let Some(h) = &r.health_check {
            validate_proxy_health(&format!("{f}.healthCheck"), h, e);
        }
    }
    if let Some(i) = lb.routes.iter().position(|r| r.path.is_none()) {
        e.check(i == lb.routes.len() - 1, &format!("spec.loadBalancer.routes[{i}].path"), || {
            "is absent (matches every path) but routes follow it that could never match; move this route last".into()
        });
    }
    if let Some(h) = &lb.health_check {
        validate_proxy_health("spec.loadBalancer.healthCheck", h, e);
    }
    e.duration("spec.loadBalancer.drainTimeout", &lb.drain_timeout);
    let mut encodings = BTreeSet::new();
    for (i, enc) in lb.encodings.iter().enumerate() {
        e.check(
            encodings.insert(format!("{enc:?}")),
            &format!("spec.loadBalancer.encodings[{i}]"),
            || "is listed twice".into(),
        );
    }
    for k in lb.security_headers.headers.keys() {
        e.check(
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            &format!("spec.loadBalancer.securityHeaders.headers.{k}"),
            || format!("\"{k}\" is not a header name"),
        );
    }
    if let Some(rl) = &lb.rate_limit {
        e.check(
            rl.requests >= 1,
            "spec.loadBalancer.rateLimit.requests",
            || "must be at least 1".into(),
        );
        e.positive_duration("spec.loadBalancer.rateLimit.window", &rl.window);
        for (i, ep) in rl.endpoints.iter().enumerate() {
            let f = format!("spec.loadBalancer.rateLimit.endpoints[{i}]");
            e.path(&format!("{f}.path"), &ep.path);
            e.check(ep.requests >= 1, &format!("{f}.requests"), || {
                "must be at least 1".into()
            });
            if let Some(w) = &ep.window {
                e.positive_duration(&format!("{f}.window"), w);
            }
        }
    }
}

fn validate_proxy_health(f: &str, h: &ProxyHealthCheck, e: &mut Errors) {
    e.path(&format!("{f}.uri"), &h.uri);
    e.positive_duration(&format!("{f}.interval"), &h.interval);
    e.positive_duration(&format!("{f}.timeout"), &h.timeout);
}

fn validate_cache(c: &Cache, e: &mut Errors) {
    for (i, n) in c.nodes.iter().enumerate() {
        e.host_port(&format!("spec.cache.nodes[{i}]"), n);
    }
    match c.mode {
        CacheMode::Single => e.check(c.nodes.len() == 1, "spec.cache.nodes", || {
            format!("mode single needs exactly one node, found {}", c.nodes.len())
        }),
        CacheMode::Cluster => e.check(c.nodes.len() >= 3, "spec.cache.nodes", || {
            format!("mode cluster needs at least 3 nodes (Redis Cluster's minimum of masters), found {}", c.nodes.len())
        }),
        CacheMode::Sentinel => match &c.sentinel {
            None => e.push("spec.cache.sentinel", "is required with mode sentinel; give master and nodes"),
            Some(s) => {
                e.check(!s.master.trim().is_empty(), "spec.cache.sentinel.master", || {
                    "is empty; name the master group, e.g. \"mymaster\"".into()
                });
                e.check(!s.nodes.is_empty(), "spec.cache.sentinel.nodes", || "is empty; list the sentinels".into());
                for (i, n) in s.nodes.iter().enumerate() {
                    e.host_port(&format!("spec.cache.sentinel.nodes[{i}]"), n);
                }
            }
        },
    }
}

fn validate_sharding(sh: &Sharding, e: &mut Errors) {
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
