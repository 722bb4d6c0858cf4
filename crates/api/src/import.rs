//! Imports a General Bots `config.csv` (`name,value` lines and `#` comments) into a BotCluster.
//!
//! Every key of the "Scaling and Load Balancing" chapter maps to a spec field. Keys this
//! importer does not know are reported and kept in the `botcluster.io/unmapped-config`
//! annotation, never dropped silently. A key set twice keeps its last value, with a warning
//! (the chapter's own example sets `shard-strategy` four times).

use std::collections::BTreeMap;

use crate::spec::*;
use crate::validate::{validate, ValidationErrors};
use crate::{BotCluster, Duration};

/// Annotation holding `config.csv` lines the importer could not map.
pub const UNMAPPED_ANNOTATION: &str = "botcluster.io/unmapped-config";

/// What an import produced.
#[derive(Debug)]
pub struct Import {
    /// The BotCluster (validated).
    pub cluster: BotCluster,
    /// Things the user should know: duplicates, translated values, defaults chosen.
    pub warnings: Vec<String>,
    /// `(line, key)` of each key that maps to nothing.
    pub unknown_keys: Vec<(usize, String)>,
}

/// Why an import failed: each problem names the line and key.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Values that could not be read.
    #[error("config.csv has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    BadValues(Vec<String>),
    /// The resulting spec is invalid (e.g. min > max in the CSV).
    #[error("the imported spec is invalid:\n{0}")]
    Invalid(ValidationErrors),
}

struct Entry {
    line: usize,
    value: String,
}

struct Reader {
    entries: BTreeMap<String, Entry>,
    used: std::collections::BTreeSet<String>,
    problems: Vec<String>,
}

impl Reader {
    fn get(&mut self, key: &str) -> Option<(usize, String)> {
        let e = self.entries.get(key)?;
        self.used.insert(key.to_string());
        Some((e.line, e.value.clone()))
    }
    fn has_prefix(&self, prefix: &str) -> bool {
        self.entries.keys().any(|k| k.starts_with(prefix))
    }
    fn problem(&mut self, line: usize, key: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("line {line}: {key}: {msg}"));
    }
    fn string(&mut self, key: &str) -> Option<String> {
        self.get(key).map(|(_, v)| v)
    }
    fn bool(&mut self, key: &str) -> Option<bool> {
        let (line, v) = self.get(key)?;
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => {
                self.problem(line, key, format!("\"{v}\" is not true or false"));
                None
            }
        }
    }
    fn num<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Option<T> {
        let (line, v) = self.get(key)?;
        match v.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.problem(line, key, format!("\"{v}\" is not {what}"));
                None
            }
        }
    }
    /// A duration: a bare number means seconds (the chapter's unit), or "30s"/"5m".
    fn seconds(&mut self, key: &str) -> Option<Duration> {
        let (line, v) = self.get(key)?;
        match v.parse::<Duration>() {
            Ok(d) => Some(d),
            Err(m) => {
                self.problem(line, key, m);
                None
            }
        }
    }
    fn list(&mut self, key: &str) -> Option<Vec<String>> {
        self.string(key).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// Reads `config.csv` text into a BotCluster named `name` that runs `image`.
pub fn import_config_csv(text: &str, name: &str, image: &str) -> Result<Import, ImportError> {
    let mut warnings = Vec::new();
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut order: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim().trim_start_matches('\u{feff}');
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (key, value) = match l.split_once(',') {
            Some((k, v)) => (k.trim().to_string(), v.trim().trim_matches('"').to_string()),
            None => (l.to_string(), String::new()),
        };
        if line == 1 && key == "name" && value == "value" {
            continue; // a header row
        }
        if let Some(prev) = entries.get(&key) {
            warnings.push(format!(
                "line {line}: {key} was already set on line {} to \"{}\"; the last value, \"{value}\", wins",
                prev.line, prev.value
            ));
        } else {
            order.push((line, key.clone()));
        }
        entries.insert(key, Entry { line, value });
    }
    let mut r = Reader {
        entries,
        used: Default::default(),
        problems: Vec::new(),
    };

    let mut spec: BotClusterSpec =
        match serde_json::from_value(serde_json::json!({ "image": image })) {
            Ok(s) => s,
            Err(e) => return Err(ImportError::BadValues(vec![e.to_string()])),
        };

    // Autoscaling.
    let a = &mut spec.autoscaling;
    if let Some(v) = r.bool("scale-enabled") {
        a.enabled = v;
    }
    if let Some(v) = r.num("scale-min-instances", "a whole number") {
        a.min_instances = v;
    }
    if let Some(v) = r.num("scale-max-instances", "a whole number") {
        a.max_instances = v;
    }
    if let Some(v) = r.num("scale-cpu-threshold", "a percentage") {
        a.cpu_threshold = v;
    }
    if let Some(v) = r.num("scale-memory-threshold", "a percentage") {
        a.memory_threshold = v;
    }
    if let Some(v) = r.num("scale-request-threshold", "a number of requests per minute") {
        a.request_threshold = v;
    }
    if let Some(v) = r.seconds("scale-cooldown-seconds") {
        a.cooldown = v;
    }
    if let Some(v) = r.seconds("scale-check-interval") {
        a.check_interval = v;
    }
    // Custom rules: `scale-rule-<name>,<value>` with `scale-rule-<name>-action` (or the
    // chapter's shortened `scale-rule-<first word>-action`).
    let rule_keys: Vec<String> = r
        .entries
        .keys()
        .filter(|k| k.starts_with("scale-rule-") && !k.ends_with("-action"))
        .cloned()
        .collect();
    for key in rule_keys {
        let rule_name = key.trim_start_matches("scale-rule-").to_string();
        let Some((line, _)) = r.entries.get(&key).map(|e| (e.line, ())) else {
            continue;
        };
        let metric = match rule_name.as_str() {
            n if n.starts_with("response") => ScalingMetric::ResponseTimeMs,
            n if n.starts_with("cpu") => ScalingMetric::Cpu,
            n if n.starts_with("memory") || n.starts_with("mem") => ScalingMetric::Memory,
            n if n.starts_with("queue") => ScalingMetric::QueueDepth,
            n if n.starts_with("request") => ScalingMetric::RequestsPerMinute,
            _ => {
                r.problem(
                    line,
                    &key,
                    "names no metric botcluster knows (response…, cpu…, memory…, queue…, request…)",
                );
                r.used.insert(key.clone());
                continue;
            }
        };
        let Some(value) = r.num::<f64>(&key, "a number") else {
            continue;
        };
        let first_word = rule_name
            .split('-')
            .next()
            .unwrap_or(&rule_name)
            .to_string();
        let action_key = [
            format!("scale-rule-{rule_name}-action"),
            format!("scale-rule-{first_word}-action"),
        ]
        .into_iter()
        .find(|k| r.entries.contains_key(k));
        let below = rule_name.ends_with("-low");
        let action = match action_key.and_then(|k| r.get(&k).map(|(l, v)| (k, l, v))) {
            Some((k, l, v)) => match v.as_str() {
                "up" => ScaleAction::Up,
                "down" => ScaleAction::Down,
                _ => {
                    r.problem(l, &k, format!("\"{v}\" is not up or down"));
                    continue;
                }
            },
            None => {
                let default = if below {
                    ScaleAction::Down
                } else {
                    ScaleAction::Up
                };
                warnings.push(format!(
                    "line {line}: {key} has no -action line; using {}",
                    if below { "down" } else { "up" }
                ));
                default
            }
        };
        a.rules.push(ScalingRule {
            name: Some(rule_name),
            metric,
            above: (!below).then_some(value),
            below: below.then_some(value),
            action,
        });
    }

    // Health, circuit breaker.
    let h = &mut spec.health;
    if let Some(v) = r.bool("health-enabled") {
        h.enabled = v;
    }
    if let Some(v) = r.string("health-endpoint") {
        h.endpoint = v;
    }
    if let Some(v) = r.seconds("health-interval") {
        h.interval = v;
    }
    if let Some(v) = r.seconds("health-timeout") {
        h.timeout = v;
    }
    if let Some(v) = r.num("health-retries", "a whole number") {
        h.retries = v;
    }
    let cb = &mut spec.circuit_breaker;
    if let Some(v) = r.bool("circuit-breaker-enabled") {
        cb.enabled = v;
    }
    if let Some(v) = r.num("circuit-breaker-threshold", "a whole number") {
        cb.threshold = v;
    }
    if let Some(v) = r.seconds("circuit-breaker-timeout") {
        cb.timeout = v;
    }
    if let Some(v) = r.num("circuit-breaker-half-open-requests", "a whole number") {
        cb.half_open_requests = v;
    }

    // Rate limiting lives on the load balancer; the chapter's Caddyfile gives its routes.
    if r.has_prefix("rate-limit-") {
        let mut lb: LoadBalancer = match serde_json::from_value(seed_load_balancer()) {
            Ok(lb) => lb,
            Err(e) => return Err(ImportError::BadValues(vec![e.to_string()])),
        };
        warnings.push(format!(
            "rate-limit-* needs a load balancer: added the chapter's routes (/api/health, /ws*, /api/*, default) listening on {}; change spec.loadBalancer.listen and hosts",
            lb.listen
        ));
        let mut rl = RateLimit {
            enabled: r.bool("rate-limit-enabled").unwrap_or(true),
            requests: r
                .num("rate-limit-requests", "a whole number")
                .unwrap_or(100),
            window: r
                .seconds("rate-limit-window")
                .unwrap_or_else(|| Duration::from_secs(60)),
            burst: r.num("rate-limit-burst", "a whole number").unwrap_or(0),
            by: RateLimitKey::Ip,
            endpoints: Vec::new(),
        };
        if let Some((line, by)) = r.get("rate-limit-by") {
            match by.as_str() {
                "ip" => rl.by = RateLimitKey::Ip,
                "header" => rl.by = RateLimitKey::Header,
                _ => r.problem(
                    line,
                    "rate-limit-by",
                    format!("\"{by}\" is not ip or header"),
                ),
            }
        }
        let endpoint_keys: Vec<String> = r
            .entries
            .keys()
            .filter(|k| k.starts_with("rate-limit-api-"))
            .cloned()
            .collect();
        for key in endpoint_keys {
            let endpoint = key.trim_start_matches("rate-limit-api-").to_string();
            if let Some(requests) = r.num(&key, "a whole number") {
                rl.endpoints.push(EndpointRateLimit {
                    path: format!("/api/{endpoint}/*"),
                    requests,
                    window: None,
                });
            }
        }
        lb.rate_limit = Some(rl);
        spec.load_balancer = Some(lb);
    }

    // Sharding: settings of every strategy are kept; `shard-strategy` picks the active one.
    if let Some((line, strategy)) = r.get("shard-strategy") {
        let strategy = match strategy.as_str() {
            "tenant" => Some(ShardStrategy::Tenant),
            "hash" => Some(ShardStrategy::Hash),
            "range" => Some(ShardStrategy::Range),
            "geo" => Some(ShardStrategy::Geo),
            other => {
                r.problem(
                    line,
                    "shard-strategy",
                    format!("\"{other}\" is not tenant, hash, range or geo"),
                );
                None
            }
        };
        if let Some(strategy) = strategy {
            let mut sh = Sharding {
                strategy,
                tenant: None,
                hash: None,
                range: None,
                geo: None,
                map_path: crate::spec::DEFAULT_MAP_PATH.into(),
                rebalance: Default::default(),
                approved_rebalance: None,
            };
            if r.entries.contains_key("shard-tenant-db-prefix")
                || r.entries.contains_key("shard-auto-create")
            {
                sh.tenant = Some(TenantSharding {
                    db_prefix: r
                        .string("shard-tenant-db-prefix")
                        .unwrap_or_else(|| "gb_tenant_".into()),
                    auto_create: r.bool("shard-auto-create").unwrap_or(true),
                    tenants: Vec::new(),
                    server: None,
                    delete_policy: Default::default(),
                });
            }
            if r.entries.contains_key("shard-count") || r.entries.contains_key("shard-key") {
                let algorithm = match r.get("shard-algorithm") {
                    None => HashAlgorithm::Modulo,
                    Some((_, a)) if a == "modulo" => HashAlgorithm::Modulo,
                    Some((_, a)) if a == "slots" || a == "consistent" => HashAlgorithm::Slots,
                    Some((l, a)) => {
                        r.problem(
                            l,
                            "shard-algorithm",
                            format!("\"{a}\" is not modulo or slots"),
                        );
                        HashAlgorithm::Modulo
                    }
                };
                sh.hash = Some(HashSharding {
                    shard_count: r.num("shard-count", "a whole number").unwrap_or(1),
                    shards: Vec::new(),
                    slot_count: 1024,
                    key: r.string("shard-key").unwrap_or_default(),
                    algorithm,
                });
            }
            if let Some((line, ranges)) = r.get("shard-ranges") {
                match parse_ranges(&ranges) {
                    Ok(ranges) => sh.range = Some(RangeSharding { ranges }),
                    Err(m) => r.problem(line, "shard-ranges", m),
                }
            }
            let geo_keys: Vec<String> = r
                .entries
                .keys()
                .filter(|k| k.starts_with("shard-geo-"))
                .cloned()
                .collect();
            if !geo_keys.is_empty() || r.entries.contains_key("shard-default") {
                let mut regions = BTreeMap::new();
                for k in geo_keys {
                    if let Some(v) = r.string(&k) {
                        regions.insert(k.trim_start_matches("shard-geo-").to_string(), v);
                    }
                }
                sh.geo = Some(GeoSharding {
                    regions,
                    default: r.string("shard-default").unwrap_or_default(),
                });
            }
            spec.sharding = Some(sh);
        }
    }

    // Qdrant.
    if r.has_prefix("qdrant-") {
        let mut v = VectorDb {
            shard_count: r.num("qdrant-shard-count", "a whole number").unwrap_or(1),
            replication_factor: r
                .num("qdrant-replication-factor", "a whole number")
                .unwrap_or(1),
            write_consistency_factor: 1,
        };
        if let Some((line, wc)) = r.get("qdrant-write-consistency") {
            match wc.parse::<u32>() {
                Ok(n) => v.write_consistency_factor = n,
                Err(_) if wc == "majority" => {
                    let majority = v.replication_factor / 2 + 1;
                    v.write_consistency_factor = majority;
                    warnings.push(format!(
                        "line {line}: qdrant-write-consistency \"majority\" is not a Qdrant value (write_consistency_factor is an integer); wrote {majority}, the majority of replicationFactor {}",
                        v.replication_factor
                    ));
                }
                Err(_) => r.problem(
                    line,
                    "qdrant-write-consistency",
                    format!("\"{wc}\" is not a whole number"),
                ),
            }
        }
        spec.vector_db = Some(v);
    }

    // Cache.
    if let Some((line, mode)) = r.get("cache-mode") {
        let mode = match mode.as_str() {
            "single" => Some(CacheMode::Single),
            "cluster" => Some(CacheMode::Cluster),
            "sentinel" => Some(CacheMode::Sentinel),
            other => {
                r.problem(
                    line,
                    "cache-mode",
                    format!("\"{other}\" is not single, cluster or sentinel"),
                );
                None
            }
        };
        if let Some(mode) = mode {
            let sentinel = match (
                r.string("cache-sentinel-master"),
                r.list("cache-sentinel-nodes"),
            ) {
                (None, None) => None,
                (m, n) => Some(Sentinel {
                    master: m.unwrap_or_default(),
                    nodes: n.unwrap_or_default(),
                }),
            };
            spec.cache = Some(Cache {
                mode,
                nodes: r.list("cache-nodes").unwrap_or_default(),
                replicas: r.num("cache-replicas", "a whole number"),
                sentinel,
            });
        }
    }

    // Fallbacks.
    if r.has_prefix("fallback-") {
        let mut fb = Fallback::default();
        if r.has_prefix("fallback-llm-") {
            fb.llm = Some(LlmFallback {
                enabled: r.bool("fallback-llm-enabled").unwrap_or(true),
                provider: r.string("fallback-llm-provider").unwrap_or_default(),
                model: r.string("fallback-llm-model").unwrap_or_default(),
            });
        }
        if r.has_prefix("fallback-cache-") {
            fb.cache = Some(ModeFallback {
                enabled: r.bool("fallback-cache-enabled").unwrap_or(true),
                mode: r
                    .string("fallback-cache-mode")
                    .unwrap_or_else(|| "memory".into()),
            });
        }
        if r.has_prefix("fallback-vectordb-") {
            fb.vector_db = Some(ModeFallback {
                enabled: r.bool("fallback-vectordb-enabled").unwrap_or(true),
                mode: r
                    .string("fallback-vectordb-mode")
                    .unwrap_or_else(|| "keyword-search".into()),
            });
        }
        spec.fallback = Some(fb);
    }

    // Metrics toggles.
    let m = &mut spec.metrics;
    if let Some(v) = r.bool("metrics-scaling-enabled") {
        m.scaling = v;
    }
    if let Some(v) = r.bool("metrics-container-count") {
        m.container_count = v;
    }
    if let Some(v) = r.bool("metrics-scaling-events") {
        m.scaling_events = v;
    }
    if let Some(v) = r.bool("metrics-load-distribution") {
        m.load_distribution = v;
    }

    if spec.autoscaling.enabled {
        spec.replicas = spec.autoscaling.min_instances.max(1);
    }
    if !r.problems.is_empty() {
        return Err(ImportError::BadValues(r.problems));
    }
    let unknown_keys: Vec<(usize, String)> = order
        .into_iter()
        .filter(|(_, k)| !r.used.contains(k))
        .collect();
    let mut cluster = BotCluster::new(name, spec);
    if !unknown_keys.is_empty() {
        let kept: Vec<String> = unknown_keys
            .iter()
            .filter_map(|(_, k)| r.entries.get(k).map(|e| format!("{k},{}", e.value)))
            .collect();
        cluster
            .metadata
            .annotations
            .insert(UNMAPPED_ANNOTATION.into(), kept.join("\n"));
    }
    validate(&cluster).map_err(ImportError::Invalid)?;
    Ok(Import {
        cluster,
        warnings,
        unknown_keys,
    })
}

/// The chapter's Caddyfile as a load balancer spec.
fn seed_load_balancer() -> serde_json::Value {
    serde_json::json!({
        "listen": "127.0.0.1:8000",
        "routes": [
            {"name": "health", "path": "/api/health", "policy": "first"},
            {"name": "websocket", "path": "/ws*", "policy": "cookie", "tryDuration": "5s",
             "healthCheck": {"uri": "/api/health", "interval": "10s", "timeout": "5s"}},
            {"name": "api", "path": "/api/*", "policy": "round_robin", "tryDuration": "5s", "failDuration": "30s",
             "healthCheck": {"uri": "/api/health", "interval": "10s", "timeout": "5s"}},
            {"name": "default", "policy": "first"}
        ]
    })
}

/// Parses `0-999999:shard1,1000000-1999999:shard2,2000000-:shard3`.
fn parse_ranges(text: &str) -> Result<Vec<KeyRange>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let bad =
                || format!("\"{part}\" is not FROM-TO:SHARD (TO may be empty for no upper bound)");
            let (range, shard) = part.split_once(':').ok_or_else(bad)?;
            let (from, to) = range.split_once('-').ok_or_else(bad)?;
            Ok(KeyRange {
                from: from.trim().parse().map_err(|_| bad())?,
                to: match to.trim() {
                    "" => None,
                    t => Some(t.parse().map_err(|_| bad())?),
                },
                shard: shard.trim().to_string(),
            })
        })
        .collect()
}
