//! Shared arrangement for the in-memory reconcile tests: a store, the fake backend, a
//! reconciler over them, and helpers to apply specs and read status.
#![allow(dead_code)]

use std::sync::Arc;

use botcluster_api::{ObjectMeta, BOTCLUSTER_KIND};
use botcluster_controller::backend::FakeBackend;
use botcluster_controller::metrics::ControllerMetrics;
use botcluster_controller::{BotClusterReconciler as Reconciler, ReconcilerConfig};
use botcluster_store::{SpecWrite, SqliteStore, Store};
use serde_json::{json, Value};

pub struct World {
    pub store: Arc<SqliteStore>,
    pub fake: FakeBackend,
    pub rec: Reconciler,
}

pub fn world() -> World {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let fake = FakeBackend::new();
    let rec = reconciler(&store, &fake);
    World { store, fake, rec }
}

/// A world whose in-memory starts take `start_delay`, reconciled with `config` (host-port
/// checks off).
pub fn slow_world(start_delay: std::time::Duration, config: ReconcilerConfig) -> World {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let fake = FakeBackend::new();
    *fake.start_delay.lock().unwrap() = start_delay;
    let rec = reconciler_with(
        &store,
        &fake,
        ReconcilerConfig {
            check_host_ports: false,
            ..config
        },
    );
    World { store, fake, rec }
}

/// A fresh reconciler over `store` and `fake` (a new one is an operator restart: its memory is
/// empty), with no host-port checks and ports from 21000-21099.
pub fn reconciler(store: &Arc<SqliteStore>, fake: &FakeBackend) -> Reconciler {
    reconciler_with(
        store,
        fake,
        ReconcilerConfig {
            check_host_ports: false,
            port_range: (21000, 21099),
            ..Default::default()
        },
    )
}

/// A reconciler over `store` and `fake` with `config`.
pub fn reconciler_with(
    store: &Arc<SqliteStore>,
    fake: &FakeBackend,
    config: ReconcilerConfig,
) -> Reconciler {
    Reconciler::new(
        store.clone(),
        Arc::new(fake.clone()),
        ControllerMetrics::new(&prometheus::Registry::new()),
        config,
    )
}

pub async fn apply(w: &World, name: &str, spec: Value) {
    let mut full: Value = json!({"image": "img"});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    let spec: botcluster_api::BotClusterSpec = serde_json::from_value(full).unwrap();
    w.store
        .apply(SpecWrite {
            kind: BOTCLUSTER_KIND.into(),
            meta: ObjectMeta::named(name),
            spec: serde_json::to_value(spec).unwrap(),
            expected_resource_version: None,
            manager: None,
            dry_run: false,
        })
        .await
        .unwrap();
}

pub fn names(w: &World) -> Vec<String> {
    w.fake.all().into_iter().map(|o| o.name).collect()
}

pub async fn status(w: &World, name: &str) -> Value {
    w.store
        .get(BOTCLUSTER_KIND, name)
        .await
        .unwrap()
        .unwrap()
        .status
}

pub fn with_proxy(w: World) -> (World, botcluster_controller::proxy::FakeProxy) {
    let proxy = botcluster_controller::proxy::FakeProxy::new();
    let rec = reconciler(&w.store, &w.fake).with_proxy(Arc::new(proxy.clone()));
    (World { rec, ..w }, proxy)
}
