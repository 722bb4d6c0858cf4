//! Routing with the shard map the operator writes into the container
//! (`/opt/gbo/conf/shards.json`, `--shard-map`), the way a bot would: an independent
//! implementation of the documented hash (64-bit FNV-1a of the key's bytes), so a test that
//! compares it with the operator's API proves the map file is enough to route.
//!
//! `GET /api/shards` answers the file; `GET /api/shards/route?key=K` (or `tenant=`, `region=`)
//! answers `{shard, backend|database, slot, version}`; `POST /api/shards/route` with one key
//! per line answers `{"version": V, "shards": [...]}` in the same order.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::http::{Request, Response};

/// Where the operator writes the map by default (the seed's config directory).
pub const DEFAULT_MAP_PATH: &str = "/opt/gbo/conf/shards.json";

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn load(path: &Path) -> Result<Value, Response> {
    let text = fs::read(path).map_err(|e| {
        Response::json(
            503,
            &json!({"error": format!("no shard map at {}: {e}", path.display())}),
        )
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        Response::json(
            500,
            &json!({"error": format!("{} is not JSON: {e}", path.display())}),
        )
    })
}

fn backend_of(map: &Value, shard: &str) -> Value {
    map["shards"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["name"] == shard))
        .map_or(Value::Null, |s| s["backend"].clone())
}

/// Routes `key` (hash and range maps) with `map`.
fn route_key(map: &Value, key: &str) -> Result<Value, String> {
    let version = map["version"].clone();
    match map["strategy"].as_str() {
        Some("hash") => {
            let h = fnv1a64(key.as_bytes());
            let shards = map["shards"].as_array().ok_or("the map has no shards")?;
            match map["algorithm"].as_str() {
                Some("modulo") => {
                    if shards.is_empty() {
                        return Err("the map has no shards".into());
                    }
                    let s = &shards[(h % shards.len() as u64) as usize];
                    Ok(json!({"shard": s["name"], "backend": s["backend"], "version": version}))
                }
                Some("slots") => {
                    let count = map["slotCount"]
                        .as_u64()
                        .filter(|c| *c > 0)
                        .ok_or("no slotCount")?;
                    let slot = h % count;
                    let run = map["slots"]
                        .as_array()
                        .and_then(|runs| {
                            runs.iter().find(|r| {
                                r["from"].as_u64().is_some_and(|f| f <= slot)
                                    && r["to"].as_u64().is_some_and(|t| slot <= t)
                            })
                        })
                        .ok_or_else(|| format!("slot {slot} is in no run"))?;
                    let shard = run["shard"].as_str().unwrap_or_default();
                    Ok(
                        json!({"shard": shard, "backend": backend_of(map, shard), "slot": slot, "version": version}),
                    )
                }
                other => Err(format!("unknown algorithm {other:?}")),
            }
        }
        Some("range") => {
            let k: u64 = key
                .trim()
                .parse()
                .map_err(|_| format!("key {key:?} is not a number"))?;
            let range = map["ranges"]
                .as_array()
                .and_then(|rs| {
                    rs.iter().find(|r| {
                        r["from"].as_u64().is_some_and(|f| f <= k)
                            && r["to"].as_u64().is_none_or(|t| k <= t)
                    })
                })
                .ok_or_else(|| format!("no range holds key {k}"))?;
            Ok(json!({"shard": range["shard"], "backend": range["shard"], "version": version}))
        }
        other => Err(format!("a {other:?} map is not routed by key")),
    }
}

fn route_one(map: &Value, req: &Request) -> Result<Value, String> {
    let version = map["version"].clone();
    if let Some(key) = req.query_param("key") {
        return route_key(map, key);
    }
    if let Some(tenant) = req.query_param("tenant") {
        let db = &map["tenants"][tenant]["database"];
        if db.is_null() {
            return Err(format!("tenant {tenant:?} is not in the map"));
        }
        let mut out = json!({"shard": tenant, "database": db, "version": version});
        if !map["server"].is_null() {
            out["backend"] = map["server"].clone();
        }
        return Ok(out);
    }
    if let Some(region) = req.query_param("region") {
        let listed = &map["regions"][region];
        let (shard, backend) = if listed.is_null() {
            ("default", map["default"].clone())
        } else {
            (region, listed.clone())
        };
        return Ok(json!({"shard": shard, "backend": backend, "version": version}));
    }
    Err("ask with ?key=, ?tenant= or ?region=".into())
}

/// Answers `/api/shards` and `/api/shards/route`.
pub fn respond(map_path: &Path, req: &Request) -> Response {
    let map = match load(map_path) {
        Ok(map) => map,
        Err(resp) => return resp,
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/api/shards") => Response::json(200, &map),
        ("GET" | "HEAD", "/api/shards/route") => match route_one(&map, req) {
            Ok(route) => Response::json(200, &route),
            Err(why) => Response::json(400, &json!({"error": why})),
        },
        ("POST", "/api/shards/route") => {
            let text = String::from_utf8_lossy(&req.body);
            let mut shards = Vec::new();
            for key in text.lines().filter(|l| !l.is_empty()) {
                match route_key(&map, key) {
                    Ok(route) => shards.push(route["shard"].clone()),
                    Err(why) => return Response::json(400, &json!({"error": why, "key": key})),
                }
            }
            Response::json(200, &json!({"version": map["version"], "shards": shards}))
        }
        _ => Response::text(405, "use GET /api/shards, GET or POST /api/shards/route\n")
            .with_header("Allow", "GET, HEAD, POST"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a64() {
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn keys_route_through_slot_runs_and_modulo() {
        let map = json!({"version": 3, "strategy": "hash", "algorithm": "slots", "slotCount": 4,
            "shards": [{"name": "a", "backend": "db-a"}, {"name": "b", "backend": "db-b"}],
            "slots": [{"from": 0, "to": 1, "shard": "a"}, {"from": 2, "to": 3, "shard": "b"}]});
        // fnv1a64("a") mod 4 = 0
        let r = route_key(&map, "a").unwrap();
        assert_eq!(
            r,
            json!({"shard": "a", "backend": "db-a", "slot": 0, "version": 3})
        );
        let mut modulo = map.clone();
        modulo["algorithm"] = json!("modulo");
        assert_eq!(route_key(&modulo, "a").unwrap()["shard"], "a");
        let ranges = json!({"version": 1, "strategy": "range",
            "ranges": [{"from": 0, "to": 9, "shard": "low"}, {"from": 10, "shard": "high"}]});
        assert_eq!(route_key(&ranges, "12").unwrap()["shard"], "high");
        assert!(route_key(&ranges, "x").is_err());
    }
}
