//! Shards end-to-end: real `botctl serve` processes, the real PostgreSQL of `cargo xtask pg-up`
//! and, for the map file, the real LXD with the test image (`cargo xtask lxd-up`).
//!
//! - tenant databases: listed tenants get one, two operators racing create each exactly once,
//!   a removed tenant keeps its database, a bad tenant name is a field error that stores
//!   nothing;
//! - the map: in every container, equal to the API's; 10,000 random keys route to the same
//!   shard through the API and through the bot inside a container; a manual rebalance
//!   publishes nothing until approved;
//! - the bots' settings file: the rate limit reaches the bot, which enforces it behind a Caddy
//!   that has no rate-limit module (429s through Caddy past the limit);
//! - cache nodes: each is pinged (a real `redis-server` from `cargo xtask redis-up`) and
//!   reported in status; a dead one makes the cluster Degraded and not Ready.
//!
//! Names carry this process's pid (`e2e-<pid>-...`); each test deletes what it made.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use support::Serve;
use test_support::{free_port, postgres_url, redis_addr, require, Admin, Caddy};

mod support;

/// One container test at a time in this binary (LXD 5.0.2 is happier that way).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `botctl serve` with a tenant PostgreSQL (`BOTCLUSTER_POSTGRES`) and 20 host ports.
struct Operator(Serve);

impl std::ops::Deref for Operator {
    type Target = Serve;
    fn deref(&self) -> &Serve {
        &self.0
    }
}

impl Operator {
    fn start(postgres: &str) -> Operator {
        Self::start_with(postgres, "none")
    }

    fn start_with(postgres: &str, caddy_admin: &str) -> Operator {
        let ports = support::port_range_arg(20);
        let args = [
            "--resync",
            "1s",
            "--caddy-admin",
            caddy_admin,
            "--port-range",
            &ports,
        ];
        Operator(
            Serve::new(&args)
                .env("BOTCLUSTER_POSTGRES", postgres)
                .started(),
        )
    }

    fn apply(&self, name: &str, spec: &str) -> Output {
        let yaml = support::cluster_yaml(name, &support::image(), spec);
        self.apply_file(&format!("{name}.yaml"), &yaml, &[])
    }

    /// Applies `spec` to `name` and waits (up to 300 s) until it is Ready.
    fn apply_ready(&self, name: &str, spec: &str) {
        let o = self.apply(name, spec);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = self.botctl(&[
            "wait",
            name,
            "--for",
            "condition=Ready",
            "--timeout",
            "300s",
        ]);
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    async fn events(&self, name: &str) -> Vec<Value> {
        let (_, v) = self
            .api(&format!("/api/v1/botclusters/{name}/events?limit=500"))
            .await;
        v["events"].as_array().cloned().unwrap_or_default()
    }

    async fn shards(&self, name: &str) -> Value {
        self.api(&format!("/api/v1/botclusters/{name}/shards"))
            .await
            .1
    }

    async fn delete(&self, name: &str) {
        // LXD 5.0.2 here can take a minute to delete a stopped container.
        let o = self.botctl(&["delete", name, "--wait", "--timeout", "300s"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

async fn databases(url: &str) -> BTreeMap<String, Option<String>> {
    let c = pg_client::Server::new(url, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    c.databases()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.comment))
        .collect()
}

async fn drop_databases(url: &str, prefix: &str) {
    let c = pg_client::Server::new(url, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for d in c.databases().await.unwrap() {
        if d.name.starts_with(prefix) {
            let _ = c.drop_database(&d.name).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_get_databases_once_even_with_two_operators_and_keep_them_when_removed() {
    let Some(pg) = require(postgres_url()) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let pid = std::process::id();
    let name = format!("e2e-{pid}-tenants");
    let prefix = format!("t{pid}_");
    let spec = |tenants: &str| {
        format!(
            "  replicas: 0\n  sharding:\n    strategy: tenant\n    tenant:\n      dbPrefix: {prefix}\n      tenants: [{tenants}]\n"
        )
    };
    // Two operators with stores of their own, reconciling the same spec at once.
    let a = Operator::start(&pg);
    let b = Operator::start(&pg);
    let (oa, ob) = (
        a.apply(&name, &spec("acme, globex, initech")),
        b.apply(&name, &spec("acme, globex, initech")),
    );
    assert!(oa.status.success() && ob.status.success());
    let wanted = ["acme", "globex", "initech"].map(|t| format!("{prefix}{t}"));
    for op in [&a, &b] {
        op.wait_for(
            "all three databases ready",
            Duration::from_secs(60),
            || async {
                let s = op.shards(&name).await;
                s["databases"]["ready"].as_array().map(Vec::len) == Some(3)
            },
        )
        .await;
    }
    let dbs = databases(&pg).await;
    for db in &wanted {
        assert!(dbs.contains_key(db), "{db} missing: {dbs:?}");
    }
    // Exactly once: the two operators' Created events add up to one per database.
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for op in [&a, &b] {
        for e in op.events(&name).await {
            if e["reason"] == "TenantDatabaseCreated" {
                let msg = e["message"].as_str().unwrap_or_default().to_string();
                *created.entry(msg).or_default() += 1;
            }
        }
    }
    assert_eq!(created.len(), 3, "{created:?}");
    assert!(created.values().all(|n| *n == 1), "{created:?}");
    let (_, route) = a
        .api(&format!(
            "/api/v1/botclusters/{name}/shards/route?tenant=globex"
        ))
        .await;
    assert_eq!(route["database"], format!("{prefix}globex"));
    assert!(route["version"].as_u64().is_some());
    drop(b);

    // A bad tenant name is a field error and stores nothing.
    let before = a.api(&format!("/api/v1/botclusters/{name}")).await.1;
    let bad = a.apply(
        &name,
        &spec("acme, globex, initech, \"Robert'); DROP DATABASE x;--\""),
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("spec.sharding.tenant.tenants[3]"), "{err}");
    let after = a.api(&format!("/api/v1/botclusters/{name}")).await.1;
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );

    // A removed tenant keeps its database, listed as retained.
    assert!(a.apply(&name, &spec("acme, globex")).status.success());
    a.wait_for("initech retained", Duration::from_secs(30), || async {
        let s = a.shards(&name).await;
        s["databases"]["retained"] == json!([format!("{prefix}initech")])
    })
    .await;
    assert!(databases(&pg)
        .await
        .contains_key(&format!("{prefix}initech")));
    let out = a.botctl(&["shards", &name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("retained:") && text.contains("initech"),
        "{text}"
    );

    a.delete(&name).await;
    // Deleting the cluster keeps the data too.
    assert!(databases(&pg).await.contains_key(&format!("{prefix}acme")));
    drop_databases(&pg, &prefix).await;
}

/// The map file inside a container.
async fn map_in(lxd: &lxd_client::Client, instance: &str) -> Option<Value> {
    let bytes = lxd
        .pull_file(instance, "/opt/gbo/conf/shards.json")
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_is_in_every_container_routes_like_the_api_and_waits_for_approval() {
    let Some(pg) = require(postgres_url()) else {
        return;
    };
    let Some(lxd) = require(support::lxd::connect().await) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let name = format!("e2e-{}-shardmap", std::process::id());
    let op = Operator::start(&pg);
    let spec = |count: u32| {
        format!(
            "  replicas: 2\n  sharding:\n    strategy: hash\n    hash:\n      key: user_id\n      algorithm: slots\n      shardCount: {count}\n"
        )
    };
    op.apply_ready(&name, &spec(4));
    let api_map = op.shards(&name).await["map"].clone();
    assert_eq!(api_map["version"], 1);
    let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
    let instances: Vec<(String, String)> = obj["status"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(instances.len(), 2);
    for (inst, _) in &instances {
        assert_eq!(map_in(&lxd, inst).await.as_ref(), Some(&api_map), "{inst}");
    }
    // Passes with nothing changed (resync 1 s) push no map and write nothing to LXD.
    let writes = op.lxd_writes().await;
    assert!(writes > 0, "the metric counts the creates");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        op.lxd_writes().await,
        writes,
        "an idle pass wrote to LXD\n{}",
        op.log()
    );
    assert_eq!(op.shards(&name).await["map"]["version"], 1);

    // 10,000 random keys: the API and the bot inside a container answer the same shard.
    let mut seed = std::process::id() as u64 | 1;
    let keys: Vec<String> = (0..10_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            format!("user-{}", seed % 1_000_000_000)
        })
        .collect();
    let (_, bot_url) = &instances[0];
    let bot: Value = reqwest::Client::new()
        .post(format!(
            "{}/api/shards/route",
            bot_url.trim_end_matches('/')
        ))
        .body(keys.join("\n"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bot["version"], 1);
    let bot_shards = bot["shards"].as_array().unwrap();
    assert_eq!(bot_shards.len(), keys.len());
    for (key, bot_shard) in keys.iter().zip(bot_shards) {
        let (code, r) = op
            .api(&format!(
                "/api/v1/botclusters/{name}/shards/route?key={key}"
            ))
            .await;
        assert_eq!(code, 200, "{r}");
        assert_eq!(&r["shard"], bot_shard, "key {key}");
    }

    // 4 → 5 shards under rebalance: manual: a plan, and nothing published until approved.
    let file = op.dir.path().join("five.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: {name}\nspec:\n  image: {}\n{}",
            support::image(),
            spec(5)
        ),
    )
    .unwrap();
    let diff = op.botctl(&["diff", "-f", file.to_str().unwrap()]);
    let diff_text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff_text.contains("waits for approval") && diff_text.contains("19.9 %"),
        "{diff_text}"
    );
    assert!(op.apply(&name, &spec(5)).status.success());
    op.wait_for("a pending rebalance", Duration::from_secs(30), || async {
        !op.shards(&name).await["pending"].is_null()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = op.shards(&name).await;
    assert_eq!(s["map"]["version"], 1, "nothing published before approval");
    let moved = s["pending"]["movedFraction"].as_f64().unwrap();
    assert!((moved - 204.0 / 1024.0).abs() < 1e-9, "{moved}");
    for (inst, _) in &instances {
        assert_eq!(map_in(&lxd, inst).await.unwrap()["version"], 1, "{inst}");
    }
    let shown = op.botctl(&["shards", &name]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("pending rebalance") && text.contains("19.9 %"),
        "{text}"
    );

    let approved = op.botctl(&["shards", "approve", &name]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    op.wait_for(
        "map v2 in every container",
        Duration::from_secs(60),
        || async {
            let mut all = true;
            for (inst, _) in &instances {
                all &= map_in(&lxd, inst).await.is_some_and(|m| m["version"] == 2);
            }
            all && op.shards(&name).await["map"]["version"] == 2
        },
    )
    .await;
    let s = op.shards(&name).await;
    assert!(s["pending"].is_null());
    // Replaced by a rename: the new file was written beside the old and moved over it.
    for (inst, _) in &instances {
        assert!(lxd
            .pull_file(inst, "/opt/gbo/conf/shards.json.botcluster-new")
            .await
            .is_err_and(|e| e.is_not_found()));
    }
    let metrics = op.metrics().await;
    assert!(
        metrics.contains(&format!(
            "botcluster_shard_map_version{{cluster=\"{name}\"}} 2"
        )),
        "{metrics}"
    );
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("botcluster_shard_share{") && l.contains(&name))
            .count(),
        5
    );
    assert_eq!(map_in(&lxd, &instances[1].0).await.unwrap(), s["map"]);
    op.delete(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_enforce_the_rate_limit_behind_a_caddy_without_the_module() {
    let Some(pg) = require(postgres_url()) else {
        return;
    };
    let Some(lxd) = require(support::lxd::connect().await) else {
        return;
    };
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let name = format!("e2e-{}-ratelimit", std::process::id());
    let op = Operator::start_with(&pg, caddy.admin_url());
    let listen = free_port();
    let spec = format!(
        "  replicas: 1\n  loadBalancer:\n    listen: 127.0.0.1:{listen}\n    healthCheck: {{uri: /api/health, interval: 1s, timeout: 1s}}\n    rateLimit: {{requests: 5, window: 60s}}\n"
    );
    op.apply_ready(&name, &spec);
    let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
    let cond = obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "RateLimitUnsupported")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bots enforce"),
        "{cond}"
    );
    let inst = obj["status"]["instances"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let conf: Value = serde_json::from_slice(
        &lxd.pull_file(&inst, "/opt/gbo/conf/botcluster.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(conf["rateLimit"]["requests"], 5);
    let lb = format!("http://127.0.0.1:{listen}");
    let http = reqwest::Client::new();
    // Caddy may need a moment to see the instance healthy.
    op.wait_for(
        "the load balancer serving",
        Duration::from_secs(60),
        || async {
            http.get(format!("{lb}/api/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..8 {
        let r = http.get(format!("{lb}/api/chat")).send().await.unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(
        codes,
        vec![200, 200, 200, 200, 200, 429, 429, 429],
        "{codes:?}"
    );
    // Health checks are never limited: the instance stays in the pool.
    assert!(http
        .get(format!("{lb}/api/health"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    op.delete(&name).await;
    drop(caddy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_nodes_are_pinged_and_a_dead_one_is_reported() {
    let Some(pg) = require(postgres_url()) else {
        return;
    };
    let Some(redis) = require(redis_addr()) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let name = format!("e2e-{}-cache", std::process::id());
    let op = Operator::start(&pg);
    let spec = |node: &str| {
        format!("  replicas: 0\n  cache:\n    mode: single\n    nodes: [\"{node}\"]\n")
    };
    assert!(op.apply(&name, &spec(&redis)).status.success());
    let condition = |obj: &Value, t: &str| {
        obj["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
            .unwrap_or(Value::Null)
    };
    let cond = |obj: &Value| condition(obj, "CacheReady");
    op.wait_for("CacheReady=True", Duration::from_secs(30), || async {
        cond(&op.api(&format!("/api/v1/botclusters/{name}")).await.1)["status"] == "True"
    })
    .await;
    let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
    assert_eq!(condition(&obj, "Degraded")["status"], "False", "{obj}");
    let dead = format!("127.0.0.1:{}", free_port());
    assert!(op.apply(&name, &spec(&dead)).status.success());
    op.wait_for("CacheReady=False", Duration::from_secs(30), || async {
        let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
        cond(&obj)["status"] == "False"
            && obj["status"]["cacheNodes"][0]["ok"] == false
            && cond(&obj)["message"]
                .as_str()
                .is_some_and(|m| m.contains(&dead))
    })
    .await;
    // A dead cache node is a fault of the cluster: Degraded, and not Ready.
    let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
    assert_eq!(
        condition(&obj, "Degraded")["reason"],
        "NodeUnreachable",
        "{obj}"
    );
    assert_eq!(condition(&obj, "Ready")["reason"], "PartNotReady", "{obj}");
    op.delete(&name).await;
}

/// Range and geo maps (the hash and tenant strategies are tested above): the bot inside a
/// container and the API route every probe the same, boundaries and the default included,
/// and a strategy change with `rebalance: auto` reaches the container without approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_and_geo_maps_route_the_same_in_the_bot_and_the_api() {
    let Some(pg) = require(postgres_url()) else {
        return;
    };
    let Some(lxd) = require(support::lxd::connect().await) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let name = format!("e2e-{}-rangegeo", std::process::id());
    let op = Operator::start(&pg);
    let range = "  replicas: 1\n  sharding:\n    strategy: range\n    rebalance: auto\n    range:\n      ranges:\n        - {from: 0, to: 999, shard: low}\n        - {from: 1000, to: 99999, shard: mid}\n        - {from: 100000, shard: high}\n";
    op.apply_ready(&name, range);
    let obj = op.api(&format!("/api/v1/botclusters/{name}")).await.1;
    let inst = obj["status"]["instances"][0].clone();
    let (instance, url) = (
        inst["name"].as_str().unwrap().to_string(),
        inst["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_string(),
    );
    let http = reqwest::Client::new();
    let bot = |q: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .get(format!("{url}/api/shards/route?{q}"))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    for (key, shard) in [
        ("0", "low"),
        ("999", "low"),
        ("1000", "mid"),
        ("99999", "mid"),
        ("100000", "high"),
        ("18446744073709551615", "high"),
    ] {
        let (code, api) = op
            .api(&format!(
                "/api/v1/botclusters/{name}/shards/route?key={key}"
            ))
            .await;
        assert_eq!(code, 200, "{api}");
        assert_eq!(api["shard"], shard, "API, key {key}: {api}");
        let (code, b) = bot(format!("key={key}")).await;
        assert_eq!(code, 200, "{b}");
        assert_eq!(b["shard"], api["shard"], "bot vs API, key {key}");
        assert_eq!(b["version"], api["version"], "key {key}");
    }

    // To geo, published at once (auto), and in the container.
    let geo = "  replicas: 1\n  sharding:\n    strategy: geo\n    rebalance: auto\n    geo:\n      regions: {eu: db-eu, us: db-us}\n      default: eu\n";
    let o = op.apply(&name, geo);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let map = map_in(&lxd, &instance).await;
        if map.as_ref().is_some_and(|m| m["strategy"] == "geo") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the geo map never reached {instance}: {map:?}\n{}",
            op.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for region in ["eu", "us", "mars"] {
        let (code, api) = op
            .api(&format!(
                "/api/v1/botclusters/{name}/shards/route?region={region}"
            ))
            .await;
        let (bcode, b) = bot(format!("region={region}")).await;
        assert_eq!(bcode, code, "region {region}: bot {b}, API {api}");
        if code == 200 {
            assert_eq!(b["shard"], api["shard"], "region {region}");
            assert_eq!(b["backend"], api["backend"], "region {region}");
        }
    }
    let (_, us) = op
        .api(&format!(
            "/api/v1/botclusters/{name}/shards/route?region=us"
        ))
        .await;
    assert_eq!(us["backend"], "db-us", "{us}");
    op.delete(&name).await;
}
