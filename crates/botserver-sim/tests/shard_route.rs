//! The sim's independent implementation of the documented hash routes every key as the
//! operator's shard map does, for slot and modulo maps alike.

use botcluster_shardmap::{layout, Algorithm, Desired, Query, ShardMap, ShardRef};
use botserver_sim::http::Request;
use botserver_sim::Sim;

fn get(sim: &Sim, key: &str) -> serde_json::Value {
    let req = Request {
        method: "GET".into(),
        path: "/api/shards/route".into(),
        query: vec![("key".into(), key.into())],
        headers: vec![],
        body: vec![],
    };
    let resp = sim.route(&req);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    serde_json::from_slice(&resp.body).unwrap()
}

#[test]
fn ten_thousand_keys_route_like_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shards.json");
    for algorithm in [Algorithm::Slots, Algorithm::Modulo] {
        let shards: Vec<ShardRef> = (0..5)
            .map(|i| ShardRef {
                name: format!("shard-{i}"),
                backend: format!("db{i}"),
            })
            .collect();
        let four = layout(
            &Desired::Hash {
                key: "user_id".into(),
                algorithm,
                slot_count: 1024,
                shards: shards[..4].to_vec(),
            },
            None,
        )
        .unwrap();
        let five = layout(
            &Desired::Hash {
                key: "user_id".into(),
                algorithm,
                slot_count: 1024,
                shards,
            },
            Some(&four),
        )
        .unwrap();
        let map = ShardMap::new(7, five);
        std::fs::write(&file, serde_json::to_vec(&map).unwrap()).unwrap();
        let sim = Sim::new("t", dir.path()).with_shard_map(&file);
        for i in 0..10_000u32 {
            let key = format!("{}", i.wrapping_mul(2_654_435_761));
            let ours = map.route(Query::Key(&key)).unwrap();
            let theirs = get(&sim, &key);
            assert_eq!(theirs["shard"], ours.shard.as_str(), "key {key}");
            assert_eq!(theirs["backend"], ours.backend.as_deref().unwrap());
            assert_eq!(theirs["version"], 7);
        }
    }
}
