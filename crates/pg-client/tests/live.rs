//! Against the real PostgreSQL of `cargo xtask pg-up`: creating a database is idempotent and
//! happens exactly once under concurrency; odd names stay one quoted identifier.

use pg_client::{Ensured, Server};
use test_support::{postgres_url, require};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[tokio::test]
async fn twenty_concurrent_ensures_create_the_database_exactly_once() {
    let Some(url) = require(postgres_url()) else {
        return;
    };
    let server = Server::new(&url, None).unwrap();
    let name = unique("pgc_race");
    // Twenty sessions, as if twenty operators reconciled the same spec at once.
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.connect().await.unwrap());
    }
    let results = futures_util::future::join_all(
        clients
            .iter()
            .map(|c| c.ensure_database(&name, "pg-client test: race")),
    )
    .await;
    let created = results
        .iter()
        .filter(|r| matches!(r, Ok(Ensured::Created)))
        .count();
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(created, 1, "{results:?}");
    let c = &clients[0];
    let db = c
        .databases()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .expect("the database exists");
    assert_eq!(db.comment.as_deref(), Some("pg-client test: race"));
    assert_eq!(
        c.ensure_database(&name, "x").await.unwrap(),
        Ensured::Existed
    );
    assert!(c.drop_database(&name).await.unwrap());
    assert!(!c.drop_database(&name).await.unwrap());
}

#[tokio::test]
async fn a_hostile_name_is_one_quoted_identifier_and_long_names_are_refused() {
    let Some(url) = require(postgres_url()) else {
        return;
    };
    let c = Server::new(&url, None).unwrap().connect().await.unwrap();
    let name = format!("{}\"; DROP DATABASE postgres; --", unique("pgc"));
    assert_eq!(
        c.ensure_database(&name, "it's a 'test'").await.unwrap(),
        Ensured::Created
    );
    let all = c.databases().await.unwrap();
    let db = all
        .iter()
        .find(|d| d.name == name)
        .expect("created as named");
    assert_eq!(db.comment.as_deref(), Some("it's a 'test'"));
    assert!(all.iter().any(|d| d.name == "postgres"));
    assert!(c.drop_database(&name).await.unwrap());
    assert!(c.ensure_database(&"x".repeat(64), "").await.is_err());
}

#[tokio::test]
async fn ten_different_databases_created_at_once_all_succeed() {
    // Each CREATE DATABASE copies template1; several at once (different names, so different
    // advisory locks) must not trip over each other.
    let Some(url) = require(postgres_url()) else {
        return;
    };
    let server = Server::new(&url, None).unwrap();
    let base = unique("pgc_many");
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(server.connect().await.unwrap());
    }
    let names: Vec<String> = (0..10).map(|i| format!("{base}_{i}")).collect();
    let results = futures_util::future::join_all(
        clients
            .iter()
            .zip(&names)
            .map(|(c, n)| c.ensure_database(n, "pg-client test: many")),
    )
    .await;
    for (n, r) in names.iter().zip(&results) {
        assert!(matches!(r, Ok(Ensured::Created)), "{n}: {r:?}");
    }
    for n in &names {
        assert!(clients[0].drop_database(n).await.unwrap());
    }
}
