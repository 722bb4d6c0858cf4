//! The settings the bots themselves act on, rendered into every container next to the shard
//! map: `/opt/gbo/conf/botcluster.json` with the spec's `cache` (Redis single, cluster or
//! sentinel nodes), `vectorDb` (Qdrant shard count, replication factor, write consistency),
//! `fallback` and the load balancer's `rateLimit` (botserver's own `config.csv` keys in the
//! seed, so the bots can enforce them where the Caddy in front cannot). Pure.
//!
//! The file is one of the containers' pushed files (in the files hash): written at create,
//! pushed again only when it changes. Nothing here is checked against a live Redis or Qdrant.

use botcluster_api::spec::{BotClusterSpec, FileSpec};
use serde_json::{json, Map, Value};

/// Where the bots find their settings (the seed's config directory).
pub const BOT_CONFIG_PATH: &str = botcluster_api::validate::charset::BOT_CONFIG_PATH;

/// The file, when the spec has any of these settings.
pub fn bot_config(spec: &BotClusterSpec) -> Option<FileSpec> {
    let mut doc = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            doc.insert(key.into(), v);
        }
    };
    put(
        "cache",
        spec.cache
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
    );
    put(
        "vectorDb",
        spec.vector_db
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok()),
    );
    put(
        "fallback",
        spec.fallback
            .as_ref()
            .and_then(|f| serde_json::to_value(f).ok()),
    );
    put(
        "rateLimit",
        spec.load_balancer
            .as_ref()
            .and_then(|lb| lb.rate_limit.as_ref())
            .and_then(|r| serde_json::to_value(r).ok()),
    );
    if doc.is_empty() {
        return None;
    }
    let mut content = serde_json::to_string_pretty(&json!(doc)).unwrap_or_default();
    content.push('\n');
    Some(FileSpec {
        path: BOT_CONFIG_PATH.into(),
        content,
        mode: "0644".into(),
    })
}

/// The spec with the bots' settings file added to its files (so the files hash covers it).
pub fn with_bot_config(spec: BotClusterSpec) -> BotClusterSpec {
    let mut out = spec;
    if let Some(file) = bot_config(&out) {
        out.files.retain(|f| f.path != file.path);
        out.files.push(file);
    }
    out
}

/// The Redis nodes and sentinels of `spec.cache`, with their role.
pub fn cache_targets(spec: &BotClusterSpec) -> Vec<(String, &'static str)> {
    let Some(c) = &spec.cache else {
        return Vec::new();
    };
    let mut out: Vec<(String, &'static str)> =
        c.nodes.iter().map(|n| (n.clone(), "node")).collect();
    if let Some(s) = &c.sentinel {
        out.extend(s.nodes.iter().map(|n| (n.clone(), "sentinel")));
    }
    out
}

/// The condition type for the cache nodes.
pub const CACHE_READY: &str = "CacheReady";

/// Puts the ping results into `status`: `cacheNodes` and the `CacheReady` condition (pure).
pub fn report_cache(
    status: &mut botcluster_api::BotClusterStatus,
    nodes: Vec<botcluster_api::status::CacheNodeStatus>,
    now: &str,
    generation: u64,
) {
    if nodes.is_empty() {
        status.cache_nodes.clear();
        status.conditions.retain(|c| c.type_ != CACHE_READY);
        return;
    }
    let bad: Vec<String> = nodes
        .iter()
        .filter(|n| !n.ok)
        .map(|n| {
            format!(
                "{} {} {}",
                n.role,
                n.address,
                n.message.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let (ok, reason, message) = if bad.is_empty() {
        (
            true,
            "AllAnswer",
            format!("{} cache node(s) answer PING", nodes.len()),
        )
    } else {
        (false, "NodeUnreachable", bad.join("; "))
    };
    botcluster_api::meta::set_condition(
        &mut status.conditions,
        botcluster_api::Condition {
            type_: CACHE_READY.into(),
            status: if ok {
                botcluster_api::ConditionStatus::True
            } else {
                botcluster_api::ConditionStatus::False
            },
            reason: reason.into(),
            message,
            last_transition_time: String::new(),
            observed_generation: generation,
        },
        now,
    );
    status.cache_nodes = nodes;
}

/// Pings every cache node and sentinel (at once, 1 s each).
pub async fn probe_cache(spec: &BotClusterSpec) -> Vec<botcluster_api::status::CacheNodeStatus> {
    let targets = cache_targets(spec);
    let pings = targets
        .iter()
        .map(|(addr, _)| crate::cacheprobe::ping(addr, std::time::Duration::from_secs(1)));
    let results = futures_util::future::join_all(pings).await;
    targets
        .into_iter()
        .zip(results)
        .map(
            |((address, role), r)| botcluster_api::status::CacheNodeStatus {
                address,
                role: role.into(),
                ok: r.is_ok(),
                message: r.err(),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bots_get_cache_vector_db_fallback_and_rate_limit_settings() {
        let spec: BotClusterSpec = serde_json::from_value(json!({
            "image": "x",
            "cache": {"mode": "sentinel", "sentinel": {"master": "m", "nodes": ["10.0.0.1:26379"]}},
            "vectorDb": {"shardCount": 6, "replicationFactor": 2, "writeConsistencyFactor": 2},
        }))
        .unwrap();
        let f = bot_config(&spec).expect("a file");
        assert_eq!(f.path, BOT_CONFIG_PATH);
        let v: Value = serde_json::from_str(&f.content).unwrap();
        assert_eq!(v["cache"]["mode"], "sentinel");
        assert_eq!(v["cache"]["sentinel"]["nodes"][0], "10.0.0.1:26379");
        assert_eq!(v["vectorDb"]["shardCount"], 6);
        assert_eq!(v["vectorDb"]["writeConsistencyFactor"], 2);
        assert!(v.get("fallback").is_none());
        let bare: BotClusterSpec = serde_json::from_value(json!({"image": "x"})).unwrap();
        assert!(bot_config(&bare).is_none());
    }
}
