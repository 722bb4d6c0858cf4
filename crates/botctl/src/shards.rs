//! `botctl shards NAME` (the published map, its version, the balance, a pending rebalance)
//! and `botctl shards approve NAME` (publish the pending rebalance).

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::Conn;

/// `botctl shards NAME` / `botctl shards approve NAME`.
pub async fn run(conn: &Conn, args: &[String]) -> Result<u8> {
    match args {
        [name] => show(conn, name).await,
        [verb, name] if verb == "approve" => approve(conn, name).await,
        _ => bail!("usage: botctl shards NAME | botctl shards approve NAME"),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

async fn show(conn: &Conn, name: &str) -> Result<u8> {
    let client = Client::new(conn)?;
    let s = client
        .get(&format!("/api/v1/botclusters/{name}/shards"))
        .await?;
    print!("{}", render(&s));
    Ok(0)
}

/// The text `botctl shards NAME` prints.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let map = &s["map"];
    if map.is_null() {
        out.push_str("map: not published yet\n");
    } else {
        let strategy = map["strategy"].as_str().unwrap_or("?");
        let detail = match strategy {
            "hash" => format!(
                "hash {} of {} ({}{})",
                map["algorithm"].as_str().unwrap_or("?"),
                map["key"].as_str().unwrap_or("?"),
                map["hash"].as_str().unwrap_or("?"),
                map["slotCount"]
                    .as_u64()
                    .map(|n| format!(", {n} slots"))
                    .unwrap_or_default()
            ),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "map: v{} ({}), {detail}\n",
            map["version"].as_u64().unwrap_or(0),
            map["digest"].as_str().unwrap_or("?")
        ));
    }
    if let Some(b) = s["balance"].as_object() {
        let unit = b.get("unit").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("balance ({unit}):\n"));
        if let Some(units) = b.get("units").and_then(Value::as_object) {
            for (shard, n) in units {
                let share = b
                    .get("shares")
                    .and_then(|s| s.get(shard))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                out.push_str(&format!("  {shard:<24} {:>8}  {:>7}\n", n, pct(share)));
            }
        }
        if let Some(skew) = b.get("skew").and_then(Value::as_str) {
            out.push_str(&format!("  skew: {skew}\n"));
        }
    }
    if let Some(d) = s["databases"].as_object() {
        let list = |k: &str| {
            d.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "databases on {}:\n  ready:    {}\n  missing:  {}\n  retained: {}\n",
            d.get("server").and_then(Value::as_str).unwrap_or("?"),
            list("ready"),
            list("missing"),
            list("retained")
        ));
    }
    let p = &s["pending"];
    if p.is_null() {
        out.push_str("pending rebalance: none\n");
    } else {
        out.push_str(&format!(
            "pending rebalance {}: v{} → v{}, moves {} of the keys\n",
            p["id"].as_str().unwrap_or("?"),
            p["fromVersion"].as_u64().unwrap_or(0),
            p["toVersion"].as_u64().unwrap_or(0),
            pct(p["movedFraction"].as_f64().unwrap_or(0.0))
        ));
        for m in p["moves"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<20} {} → {}  ({})\n",
                m["keys"].as_str().unwrap_or("?"),
                m["from"].as_str().unwrap_or("?"),
                m["to"].as_str().unwrap_or("?"),
                pct(m["fraction"].as_f64().unwrap_or(0.0))
            ));
        }
        if let Some(more) = p["moreMoves"].as_u64() {
            out.push_str(&format!("  … and {more} more\n"));
        }
        out.push_str(
            "  publish it with `botctl shards approve NAME`; moving the rows is the \
             application's job (docs/sharding.md)\n",
        );
    }
    out
}

async fn approve(conn: &Conn, name: &str) -> Result<u8> {
    let client = Client::new(conn)?;
    let s = client
        .get(&format!("/api/v1/botclusters/{name}/shards"))
        .await?;
    let Some(id) = s["pending"]["id"].as_str() else {
        println!("botcluster/{name}: no rebalance is pending; nothing to approve");
        return Ok(0);
    };
    let mut doc = client.get(&format!("/api/v1/botclusters/{name}")).await?;
    if let Some(o) = doc.as_object_mut() {
        o.remove("status");
    }
    let sharding = doc
        .pointer_mut("/spec/sharding")
        .and_then(Value::as_object_mut)
        .context("the stored spec has no spec.sharding")?;
    sharding.insert("approvedRebalance".into(), Value::String(id.to_string()));
    // resourceVersion stays in metadata: a spec changed meanwhile is a conflict, not an
    // approval of a plan nobody saw.
    client
        .send(
            Method::PUT,
            &format!("/api/v1/botclusters/{name}"),
            Some(&doc),
        )
        .await
        .context("approving (if the spec changed meanwhile, look at `botctl shards` again)")?;
    println!(
        "botcluster/{name}: rebalance {id} approved; the operator publishes it on its next pass"
    );
    Ok(0)
}
