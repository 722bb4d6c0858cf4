//! The shard sub-resource of a pass, planned beside containers and the load balancer: the
//! shard map (published, or waiting for approval), the map file every container gets, and
//! tenant databases on PostgreSQL.
//!
//! # Expected flow
//! 1. Observe: with strategy `tenant` and a server (the spec's `tenant.server` with the
//!    operator's password, or `botctl serve --postgres`), list the server's databases
//!    ([`BotClusterReconciler::observe_databases`]).
//! 2. Plan ([`plan`], pure): the layout the spec wants (keeping the published slot table),
//!    [`botcluster_shardmap::decide`] (publish now, or wait for approval under
//!    `rebalance: manual`), which databases to create, keep or drop.
//! 3. The map in force after the pass is written into every container as a pushed file
//!    ([`with_map_file`]), so it is in the files hash: pushed only when it changed, and to
//!    every new container before its first start.
//! 4. Execute the database actions ([`BotClusterReconciler::execute_databases`]), then put
//!    the map, the pending plan, the balance and the databases in status ([`report`]).
//!
//! # Guarantees
//! - A database is never dropped unless `deletePolicy: Delete` and its comment says this
//!   cluster created it; a removed tenant's database is kept and listed as retained.
//! - Under `rebalance: manual`, a change that moves keys publishes nothing (status, map file
//!   and `/shards` keep the old map) until `spec.sharding.approvedRebalance` names its id.
//! - A second pass with nothing changed makes no write: the map's digest is unchanged, the
//!   file hash matches, every database exists.

use std::collections::{BTreeMap, BTreeSet};

use botcluster_api::meta::set_condition;
use botcluster_api::spec::{
    BotClusterSpec, DeletePolicy, FileSpec, HashAlgorithm, Rebalance as RebalancePolicy,
    ShardStrategy, Sharding,
};
use botcluster_api::status::{ShardStatus, TenantDatabasesStatus};
use botcluster_api::{BotClusterStatus, Condition, ConditionStatus, Event};
use botcluster_shardmap::{
    balance, decide, layout, Algorithm, Decision, Desired, KeyRange, Policy, ShardMap, ShardRef,
};

use super::{event, BotClusterReconciler};

/// The condition type this sub-resource reports.
pub const SHARDS_READY: &str = "ShardsReady";

/// Where tenant databases live, as the operator was started (`--postgres`,
/// `--postgres-password-file`).
#[derive(Clone, Debug, Default)]
pub struct PostgresSettings {
    /// The operator's server (may carry a password).
    pub url: Option<String>,
    /// The password for servers named in specs (whose URLs carry none).
    pub password: Option<String>,
}

/// What the server holds, as observed (`None`: not asked: no tenant strategy).
pub type DbObservation = Option<Result<Vec<pg_client::Database>, String>>;

/// The tenant databases' part of the plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantPlan {
    /// The server, safe to show (`host:port`); `None`: none configured.
    pub server: Option<String>,
    /// Why the server could not be read.
    pub error: Option<String>,
    /// Databases to create.
    pub create: Vec<String>,
    /// Databases to drop (`deletePolicy: Delete`, ours, tenant removed).
    pub drop: Vec<String>,
    /// Listed tenants' databases that exist.
    pub ready: Vec<String>,
    /// Ours, tenant removed, kept.
    pub retained: Vec<String>,
    /// Listed, missing, and not to be created (`autoCreate: false`) or not creatable now.
    pub missing: Vec<String>,
}

/// The shard part of a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardPlan {
    /// `None`: the spec has no sharding.
    pub decision: Option<Result<Decision, String>>,
    /// The map in force after this pass (published now, or before).
    pub in_force: Option<ShardMap>,
    /// Tenant databases (strategy `tenant`).
    pub tenants: Option<TenantPlan>,
    /// Where the map file goes.
    pub map_path: String,
}

/// The comment that marks a database as created by botcluster for `cluster`.
pub fn ownership_comment(cluster: &str) -> String {
    format!("botcluster: tenant database of cluster {cluster}")
}

/// The spec's sharding in the map's terms.
pub fn desired(sh: &Sharding, operator_server: Option<&str>) -> Option<Desired> {
    Some(match sh.strategy {
        ShardStrategy::Hash => {
            let h = sh.hash.as_ref()?;
            Desired::Hash {
                key: h.key.clone(),
                algorithm: match h.algorithm {
                    HashAlgorithm::Modulo => Algorithm::Modulo,
                    HashAlgorithm::Slots => Algorithm::Slots,
                },
                slot_count: h.slot_count,
                shards: h
                    .shard_list()
                    .into_iter()
                    .map(|(name, backend)| ShardRef { name, backend })
                    .collect(),
            }
        }
        ShardStrategy::Range => {
            let r = sh.range.as_ref()?;
            Desired::Range {
                key: "key".into(),
                ranges: r
                    .ranges
                    .iter()
                    .map(|k| KeyRange {
                        from: k.from,
                        to: k.to,
                        shard: k.shard.clone(),
                    })
                    .collect(),
            }
        }
        ShardStrategy::Tenant => {
            let t = sh.tenant.as_ref()?;
            Desired::Tenant {
                server: t
                    .server
                    .clone()
                    .or_else(|| operator_server.map(without_password)),
                tenants: t
                    .tenants
                    .iter()
                    .map(|n| (n.clone(), format!("{}{n}", t.db_prefix)))
                    .collect(),
            }
        }
        ShardStrategy::Geo => {
            let g = sh.geo.as_ref()?;
            Desired::Geo {
                regions: g.regions.clone(),
                default: g.default.clone(),
            }
        }
    })
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Plans the tenant databases from what the server holds.
pub fn plan_tenants(
    cluster: &str,
    sh: &Sharding,
    server: Option<String>,
    observed: &DbObservation,
) -> Option<TenantPlan> {
    let t = sh
        .tenant
        .as_ref()
        .filter(|_| sh.strategy == ShardStrategy::Tenant)?;
    let wanted: BTreeSet<String> = t
        .tenants
        .iter()
        .map(|n| format!("{}{n}", t.db_prefix))
        .collect();
    let mut p = TenantPlan {
        server,
        ..Default::default()
    };
    let dbs = match observed {
        Some(Ok(dbs)) => dbs,
        Some(Err(e)) => {
            p.error = Some(e.clone());
            p.missing = wanted.into_iter().collect();
            return Some(p);
        }
        None => {
            p.missing = wanted.into_iter().collect();
            return Some(p);
        }
    };
    let mark = ownership_comment(cluster);
    let existing: BTreeMap<&str, Option<&str>> = dbs
        .iter()
        .map(|d| (d.name.as_str(), d.comment.as_deref()))
        .collect();
    for db in &wanted {
        if existing.contains_key(db.as_str()) {
            p.ready.push(db.clone());
        } else if t.auto_create {
            p.create.push(db.clone());
        } else {
            p.missing.push(db.clone());
        }
    }
    for (name, comment) in &existing {
        let ours = *comment == Some(mark.as_str());
        if ours && !wanted.contains(*name) {
            match t.delete_policy {
                DeletePolicy::Retain => p.retained.push(name.to_string()),
                DeletePolicy::Delete => p.drop.push(name.to_string()),
            }
        }
    }
    Some(p)
}

/// Plans the shard sub-resource (pure).
pub fn plan(
    cluster: &str,
    spec: &BotClusterSpec,
    previous: &BotClusterStatus,
    operator_server: Option<&str>,
    server_shown: Option<String>,
    observed: &DbObservation,
) -> ShardPlan {
    let published = previous
        .shard_map
        .as_ref()
        .and_then(|s| s.published.clone());
    let Some(sh) = &spec.sharding else {
        return ShardPlan {
            decision: None,
            in_force: None,
            tenants: None,
            map_path: String::new(),
        };
    };
    let decision = desired(sh, operator_server)
        .ok_or_else(|| {
            format!(
                "spec.sharding.{} is missing for strategy {}",
                sh.strategy.as_str(),
                sh.strategy.as_str()
            )
        })
        .and_then(|d| layout(&d, published.as_ref().map(|m| &m.layout)).map_err(|e| e.to_string()))
        .map(|wanted| {
            let policy = match sh.rebalance {
                RebalancePolicy::Manual => Policy::Manual,
                RebalancePolicy::Auto => Policy::Auto,
            };
            decide(
                wanted,
                published.as_ref(),
                policy,
                sh.approved_rebalance.as_deref(),
            )
        });
    let in_force = match &decision {
        Ok(d) => d.publish.clone().or(published),
        Err(_) => published,
    };
    ShardPlan {
        decision: Some(decision),
        in_force,
        tenants: plan_tenants(cluster, sh, server_shown, observed),
        map_path: sh.map_path.clone(),
    }
}

/// The spec with the map file added to its files (so the files hash covers it).
pub fn with_map_file(spec: &BotClusterSpec, plan: &ShardPlan) -> BotClusterSpec {
    let mut out = spec.clone();
    if let Some(map) = &plan.in_force {
        let mut content = serde_json::to_string_pretty(map).unwrap_or_default();
        content.push('\n');
        out.files.retain(|f| f.path != plan.map_path);
        out.files.push(FileSpec {
            path: plan.map_path.clone(),
            content,
            mode: "0644".into(),
        });
    }
    out
}

/// Sentences for `botctl diff` and dry runs: (actions, notes).
pub fn describe(plan: &ShardPlan, previous: &BotClusterStatus) -> (Vec<String>, Vec<String>) {
    let (mut actions, mut notes) = (Vec::new(), Vec::new());
    let published_version = previous
        .shard_map
        .as_ref()
        .and_then(|s| s.published.as_ref())
        .map(|m| m.version);
    match &plan.decision {
        Some(Ok(d)) => {
            if let Some(m) = &d.publish {
                let moved = if published_version.is_none() {
                    "the first map".to_string()
                } else if d.moved.moves.is_empty() {
                    "moves no keys".to_string()
                } else {
                    format!("moves {} of the keys", d.moved.percent())
                };
                actions.push(format!(
                    "publish shard map v{} ({}, {moved}) and write it to {} in every container",
                    m.version,
                    m.layout.strategy(),
                    plan.map_path
                ));
            }
            if let Some(r) = &d.pending {
                let first: Vec<String> = r
                    .movement
                    .moves
                    .iter()
                    .take(3)
                    .map(|m| format!("{} {} → {}", m.keys, m.from, m.to))
                    .collect();
                notes.push(format!(
                    "rebalance {} waits for approval (botctl shards approve): map v{} → v{} moves {} of the keys ({}{})",
                    r.id,
                    r.from_version,
                    r.to_version,
                    r.movement.percent(),
                    first.join(", "),
                    if r.movement.moves.len() > 3 { ", …" } else { "" }
                ));
            }
        }
        Some(Err(e)) => notes.push(format!("the shard map cannot be built: {e}")),
        None => {}
    }
    if let Some(t) = &plan.tenants {
        let server = t.server.as_deref().unwrap_or("(no server)");
        for db in &t.create {
            actions.push(format!("create database {db} on {server}"));
        }
        for db in &t.drop {
            actions.push(format!(
                "drop database {db} on {server} (deletePolicy: Delete)"
            ));
        }
        if !t.retained.is_empty() {
            notes.push(format!(
                "keep databases of removed tenants: {}",
                t.retained.join(", ")
            ));
        }
        if let Some(e) = &t.error {
            notes.push(format!("tenant databases cannot be read: {e}"));
        } else if t.server.is_none() && !t.missing.is_empty() {
            notes.push(no_server_message());
        }
    }
    (actions, notes)
}

fn no_server_message() -> String {
    "tenant databases need a PostgreSQL server: start the operator with `botctl serve --postgres URL` \
     (or BOTCLUSTER_POSTGRES), or name one in spec.sharding.tenant.server"
        .to_string()
}

/// What became of the database actions.
#[derive(Clone, Debug, Default)]
pub struct DbOutcome {
    /// Created by this pass.
    pub created: Vec<String>,
    /// Found existing by this pass (another operator created it meanwhile).
    pub existed: Vec<String>,
    /// Dropped by this pass.
    pub dropped: Vec<String>,
    /// What failed, with PostgreSQL's error.
    pub failed: Vec<String>,
}

/// Puts the shard part into `status` (after `derive_status`); returns the events it deserves.
pub fn report(
    status: &mut BotClusterStatus,
    previous: &BotClusterStatus,
    plan: &ShardPlan,
    db: &DbOutcome,
    applied: bool,
    now: &str,
    generation: u64,
) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(decision) = &plan.decision else {
        status.shard_map = None;
        status.shards.clear();
        status.conditions.retain(|c| c.type_ != SHARDS_READY);
        return events;
    };
    let mut state = previous.shard_map.clone().unwrap_or_default();
    let mut problems: Vec<(&str, String)> = Vec::new();
    match decision {
        Ok(d) => {
            if applied {
                if let Some(m) = &d.publish {
                    let moved = if d.moved.moves.is_empty() {
                        "no keys move".to_string()
                    } else {
                        format!("{} of the keys move", d.moved.percent())
                    };
                    events.push(event(
                        "Normal",
                        "ShardMapPublished",
                        format!("published shard map v{} ({}): {moved}", m.version, m.digest),
                    ));
                    state.published = Some(m.clone());
                }
                let was = state.pending.as_ref().map(|r| r.id.clone());
                if let Some(r) = &d.pending {
                    if was.as_deref() != Some(r.id.as_str()) {
                        events.push(event(
                            "Normal",
                            "RebalancePending",
                            format!(
                                "map v{} → v{} would move {} of the keys; approve with `botctl shards approve` (id {})",
                                r.from_version,
                                r.to_version,
                                r.movement.percent(),
                                r.id
                            ),
                        ));
                    }
                }
                state.pending = d.pending.clone();
            }
            if let Some(r) = &state.pending {
                problems.push((
                    "RebalancePending",
                    format!(
                        "rebalance {} (v{} → v{}, moves {} of the keys) waits for approval: botctl shards approve NAME",
                        r.id,
                        r.from_version,
                        r.to_version,
                        r.movement.percent()
                    ),
                ));
            }
        }
        Err(e) => problems.push(("ShardMapInvalid", e.clone())),
    }
    state.balance = state.published.as_ref().map(|m| balance(&m.layout));
    status.shards = state
        .balance
        .as_ref()
        .map(|b| {
            b.units
                .iter()
                .map(|(name, units)| ShardStatus {
                    name: name.clone(),
                    ready: true,
                    keys: Some(*units),
                    message: Some(format!(
                        "{units} {} ({:.1} % of the keys)",
                        b.unit,
                        b.shares.get(name).copied().unwrap_or(0.0) * 100.0
                    )),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(skew) = state.balance.as_ref().and_then(|b| b.skew.clone()) {
        problems.push(("ShardSkew", skew));
    }
    if let Some(t) = &plan.tenants {
        let mut ready: BTreeSet<String> = t.ready.iter().cloned().collect();
        ready.extend(db.created.iter().cloned());
        ready.extend(db.existed.iter().cloned());
        let missing: Vec<String> = t
            .create
            .iter()
            .chain(&t.missing)
            .filter(|d| !ready.contains(*d))
            .cloned()
            .collect();
        let before: BTreeSet<&String> = previous
            .shard_map
            .as_ref()
            .and_then(|s| s.databases.as_ref())
            .map(|d| d.retained.iter().collect())
            .unwrap_or_default();
        for d in t.retained.iter().filter(|d| !before.contains(d)) {
            events.push(event(
                "Normal",
                "TenantDatabaseRetained",
                format!("kept database {d}: its tenant left the spec (deletePolicy: Retain)"),
            ));
        }
        if let Some(e) = &t.error {
            problems.push(("DatabaseUnavailable", e.clone()));
        } else if t.server.is_none() && !missing.is_empty() {
            problems.push(("PostgresNotConfigured", no_server_message()));
        } else if !db.failed.is_empty() {
            problems.push(("DatabaseFailed", db.failed.join("; ")));
        } else if !missing.is_empty() && applied {
            problems.push((
                "DatabaseMissing",
                format!(
                    "missing: {} (autoCreate is false: create them, or set autoCreate)",
                    missing.join(", ")
                ),
            ));
        }
        state.databases = Some(TenantDatabasesStatus {
            server: t.server.clone().unwrap_or_default(),
            ready: ready.into_iter().collect(),
            retained: t.retained.clone(),
            missing,
        });
    } else {
        state.databases = None;
    }
    let (ok, reason, message) = match problems.first() {
        None => (
            true,
            "Published".to_string(),
            state
                .published
                .as_ref()
                .map(|m| format!("shard map v{} ({}) in force", m.version, m.digest))
                .unwrap_or_default(),
        ),
        Some((reason, _)) => (
            false,
            reason.to_string(),
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    set_condition(
        &mut status.conditions,
        Condition {
            type_: SHARDS_READY.into(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason,
            message,
            last_transition_time: String::new(),
            observed_generation: generation,
        },
        now,
    );
    status.shard_map = Some(state);
    events
}

/// Publishes the shard gauges from `status` (apart from deriving it).
pub fn publish(m: &crate::metrics::ControllerMetrics, name: &str, status: &BotClusterStatus) {
    let Some(state) = &status.shard_map else {
        let _ = m.shard_map_version.remove_label_values(&[name]);
        let _ = m.shard_rebalance_pending.remove_label_values(&[name]);
        forget_shares(m, name);
        return;
    };
    let version = state.published.as_ref().map_or(0, |p| p.version);
    m.shard_map_version
        .with_label_values(&[name])
        .set(i64::try_from(version).unwrap_or(i64::MAX));
    m.shard_rebalance_pending
        .with_label_values(&[name])
        .set(i64::from(state.pending.is_some()));
    forget_shares(m, name);
    if let Some(b) = &state.balance {
        for (shard, share) in &b.shares {
            m.shard_share.with_label_values(&[name, shard]).set(*share);
        }
    }
}

/// Drops a cluster's `botcluster_shard_share` series (shards come and go).
pub fn forget_shares(m: &crate::metrics::ControllerMetrics, name: &str) {
    use prometheus::core::Collector;
    for family in m.shard_share.collect() {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            let of = |k: &str| {
                labels
                    .iter()
                    .find(|l| l.name() == k)
                    .map(|l| l.value().to_string())
            };
            if of("cluster").as_deref() == Some(name) {
                if let Some(shard) = of("shard") {
                    let _ = m.shard_share.remove_label_values(&[name, &shard]);
                }
            }
        }
    }
}

impl BotClusterReconciler {
    /// Observes the tenant server and plans the shard sub-resource.
    pub(crate) async fn plan_shards(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        previous: &BotClusterStatus,
    ) -> ShardPlan {
        let (observed, shown) = self.observe_databases(spec).await;
        plan(
            name,
            spec,
            previous,
            self.postgres.url.as_deref(),
            shown,
            &observed,
        )
    }

    /// The server tenant databases of `spec` live on, and its shown form (`host:port`).
    pub(crate) fn tenant_server(
        &self,
        spec: &BotClusterSpec,
    ) -> Option<Result<pg_client::Server, String>> {
        let sh = spec.sharding.as_ref()?;
        let t = sh
            .tenant
            .as_ref()
            .filter(|_| sh.strategy == ShardStrategy::Tenant)?;
        let pg = &self.postgres;
        let url = t.server.as_deref().or(pg.url.as_deref())?;
        Some(pg_client::Server::new(url, pg.password.as_deref()).map_err(|e| e.to_string()))
    }

    /// Lists the tenant server's databases (`None`: nothing to ask, or no server).
    pub(crate) async fn observe_databases(
        &self,
        spec: &BotClusterSpec,
    ) -> (DbObservation, Option<String>) {
        match self.tenant_server(spec) {
            None => (None, None),
            Some(Err(e)) => (Some(Err(e)), Some("(invalid URL)".into())),
            Some(Ok(server)) => {
                let shown = server.target().to_string();
                let listed = async {
                    let c = server.connect().await.map_err(|e| e.to_string())?;
                    c.databases().await.map_err(|e| e.to_string())
                }
                .await;
                (Some(listed), Some(shown))
            }
        }
    }

    /// Creates and drops what the plan says.
    pub(crate) async fn execute_databases(
        &self,
        cluster: &str,
        spec: &BotClusterSpec,
        plan: &TenantPlan,
    ) -> DbOutcome {
        let mut out = DbOutcome::default();
        if plan.create.is_empty() && plan.drop.is_empty() {
            return out;
        }
        let Some(Ok(server)) = self.tenant_server(spec) else {
            return out;
        };
        let client = match server.connect().await {
            Ok(c) => c,
            Err(e) => {
                out.failed.push(e.to_string());
                return out;
            }
        };
        let mark = ownership_comment(cluster);
        for db in &plan.create {
            match client.ensure_database(db, &mark).await {
                Ok(pg_client::Ensured::Created) => {
                    tracing::info!(cluster, database = %db, "created tenant database");
                    // Recorded now: the rest of the pass (LXD) may fail before status.
                    self.record(
                        cluster,
                        event(
                            "Normal",
                            "TenantDatabaseCreated",
                            format!("created database {db}"),
                        ),
                    )
                    .await;
                    out.created.push(db.clone())
                }
                Ok(pg_client::Ensured::Existed) => out.existed.push(db.clone()),
                Err(e) => out.failed.push(format!("creating database {db}: {e}")),
            }
        }
        for db in &plan.drop {
            match client.drop_database(db).await {
                Ok(_) => {
                    self.record(
                        cluster,
                        event(
                            "Normal",
                            "TenantDatabaseDropped",
                            format!("dropped database {db} (deletePolicy: Delete)"),
                        ),
                    )
                    .await;
                    out.dropped.push(db.clone())
                }
                Err(e) => out.failed.push(format!("dropping database {db}: {e}")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
