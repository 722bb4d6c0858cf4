//! One pass over one BotCluster: observe → plan → execute → status, and teardown.
//!
//! # Expected flow
//! 1. Read the object. Gone: nothing to do. Deletion requested: tear down (below).
//! 2. [`finalizer::prepare`] puts our finalizer on the object **before** anything is created,
//!    so a delete can never skip teardown.
//! 3. Observe ([`BotClusterReconciler::look`]): the cluster's instances (one filtered list),
//!    probes, load, the autoscaler's count.
//! 4. Plan the whole pass ([`PassPlan`], pure): container actions, the instances to drain,
//!    the load balancer. With `spec.suspend`, stop here: status shows what would be done.
//! 5. Execute: drain, container actions, observe again if anything was done, then the load
//!    balancer from what is ready now.
//! 6. Derive status ([`super::status::derive_status`]), publish metrics, write status and
//!    events; say when to come back.
//!
//! # Guarantees
//! - A pass with nothing to change sends no writes to LXD or the proxy.
//! - Every action is idempotent; a pass interrupted anywhere (even `kill -9`) is finished by
//!   the next one, which plans from what it observes.
//! - Instances without this cluster's ownership keys are never changed.
//! - The pass works on a copy of the cluster's memory and stores it back at the end, even
//!   when the pass fails.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use botcluster_api::spec::BotClusterSpec;
use botcluster_api::{BotClusterStatus, BOTCLUSTER_KIND, FINALIZER};
use botcluster_store::{now_rfc3339, StoredObject};

use super::autoscale::ScaleStep;
use super::balancer::{drain_set, BalancerPlan, ProxyOutcome};
use super::execute::{failures, fold_into_memory, Executed};
use super::observe::Load;
use super::shards::{self, ShardPlan};
use super::status::{derive_status, publish, Facts};
use super::{event, BotClusterReconciler, InFlight, ReconcileError};
use crate::health::{ClusterMemory, HealthChange};
use crate::plan::{plan, Desired, ObservedInstance, Plan};
use crate::runtime::finalizer::{self, Step};
use crate::runtime::Action;

/// What a pass observed, before any action.
pub(crate) struct Look {
    /// The cluster's instances, judged (ready, unhealthy, load); those an earlier pass's
    /// batch still works on are marked busy.
    pub observed: Vec<ObservedInstance>,
    /// Instances an earlier pass's batch is still creating, not in LXD yet: busy stand-ins
    /// that keep their names and ports for the planner.
    pub pending: Vec<ObservedInstance>,
    /// The actions still running in the background, described, with how long they have run.
    pub in_flight: Vec<String>,
    /// Their load.
    pub load: HashMap<String, Load>,
    /// The replica count to aim at.
    pub replicas: u32,
    /// Health transitions (for events).
    pub health: Vec<HealthChange>,
    /// The autoscaler's step, if it took one.
    pub scaled: Option<ScaleStep>,
}

/// The whole pass, planned: what `botctl diff` shows and what a pass does.
#[derive(Clone, Debug, PartialEq)]
pub struct PassPlan {
    /// Container actions.
    pub containers: Plan,
    /// Serving instances taken out of the load balancer before the actions.
    pub drain: BTreeSet<String>,
    /// The load balancer as planned from what is observed now (`Err`: the proxy could not be
    /// read).
    pub balancer: Result<BalancerPlan, String>,
    /// The shard map and tenant databases ([`super::shards`]).
    pub shards: ShardPlan,
}

impl BotClusterReconciler {
    /// One pass. See the module documentation.
    pub async fn reconcile(&self, name: &str) -> Result<Action, ReconcileError> {
        let Some(obj) = self.store.get(BOTCLUSTER_KIND, name).await? else {
            self.forget_memory(name);
            return Ok(Action::AwaitChange);
        };
        let spec: BotClusterSpec = serde_json::from_value(obj.spec.clone())
            .map_err(|e| ReconcileError::Spec(e.to_string()))?;
        let uid = obj.meta.uid.clone().unwrap_or_default();
        match finalizer::prepare(self.store.as_ref(), &obj, FINALIZER).await? {
            Step::Nothing => return Ok(Action::AwaitChange),
            Step::Cleanup => return self.teardown(&obj, &spec, &uid).await,
            Step::Apply => {}
        }
        let mut mem = self.memory_of(name);
        let result = self.apply(&obj, &spec, &uid, &mut mem).await;
        self.keep_memory(name, mem);
        result
    }

    /// Observes the cluster into `mem`: instances, probes, load, the replica count.
    pub(crate) async fn look(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        mem: &mut ClusterMemory,
    ) -> Result<Look, ReconcileError> {
        let (mut observed, health) = self.observe(name, spec, mem, true).await?;
        let load = self.sample_load(spec, &observed, mem).await;
        let (replicas, scaled) = self
            .desired_replicas(name, spec, &observed, uid, &load, mem)
            .await;
        // Scale-down removes the least loaded; start-up CPU is not load.
        for o in &mut observed {
            o.load = load
                .get(&o.name)
                .filter(|l| !l.warming)
                .and_then(|l| l.cpu_percent);
        }
        let (pending, in_flight) = self.mark_in_flight(name, &mut observed);
        Ok(Look {
            observed,
            pending,
            in_flight,
            load,
            replicas,
            health,
            scaled,
        })
    }

    /// Plans the whole pass from what `look` saw (reads the proxy's copy of the server).
    pub(crate) async fn plan_pass(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        look: &Look,
        shards: ShardPlan,
    ) -> PassPlan {
        let desired = Desired {
            name,
            uid,
            spec,
            replicas: look.replicas,
            deleting: false,
        };
        let mut seen = look.observed.clone();
        seen.extend(look.pending.iter().cloned());
        let containers = plan(&desired, &seen, &self.caps(), &self.pool_for(name));
        let drain = drain_set(&look.observed, &containers);
        let balancer = self
            .plan_proxy(name, uid, spec, &look.observed, &drain)
            .await;
        PassPlan {
            containers,
            drain,
            balancer,
            shards,
        }
    }

    /// Marks the instances earlier batches still work on as busy, and returns stand-ins for
    /// those not created yet and the in-flight actions, described.
    fn mark_in_flight(
        &self,
        name: &str,
        observed: &mut [ObservedInstance],
    ) -> (Vec<ObservedInstance>, Vec<String>) {
        let batches: Vec<InFlight> = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default();
        let mut pending = Vec::new();
        let mut described = Vec::new();
        for b in &batches {
            for a in &b.actions {
                described.push(format!(
                    "{} (running for {:.0?})",
                    a.describe(),
                    b.started.elapsed()
                ));
                let inst = a.instance();
                if let Some(o) = observed.iter_mut().find(|o| o.name == inst) {
                    o.busy = true;
                } else if let crate::plan::Action::Create(n) | crate::plan::Action::Replace(n) = a {
                    pending.push(ObservedInstance {
                        name: n.name.clone(),
                        running: false,
                        status: "Creating".into(),
                        config: n.config.clone(),
                        devices: n.devices.clone(),
                        busy: true,
                        ..Default::default()
                    });
                }
            }
        }
        (pending, described)
    }

    /// Runs the plan, waiting at most `action_budget`. A batch that takes longer goes on in
    /// the background: its actions are in flight (later passes plan nothing for their
    /// instances and report them), and its outcomes reach the next pass, which the
    /// controller runs as soon as the batch ends.
    async fn run_batch(&self, name: &str, spec: &BotClusterSpec, p: &Plan) -> Vec<Executed> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let registration = Registration::new(
            self.in_flight.clone(),
            name,
            InFlight {
                id,
                started: std::time::Instant::now(),
                actions: p.actions.clone(),
            },
        );
        let exec = self.executor();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let (key, spec, plan) = (name.to_string(), spec.clone(), p.clone());
        let finished = self.finished.clone();
        let notify = self.finished_tx.clone();
        tokio::spawn(async move {
            let out = exec.execute(&key, &spec, &plan).await;
            // No longer in flight before anyone can see the outcome.
            drop(registration);
            if let Err(out) = tx.send(out) {
                // The pass stopped waiting: the next one reports it.
                finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key.clone())
                    .or_default()
                    .extend(out);
                let _ = notify.send(key);
            }
        });
        match tokio::time::timeout(self.config.action_budget, &mut rx).await {
            Ok(Ok(out)) => out,
            // The batch's task panicked; its registration is gone, the next pass re-plans.
            Ok(Err(_)) => Vec::new(),
            Err(_) => {
                // From here on the batch reports to the next pass; take what came before.
                rx.close();
                let out = rx.try_recv().unwrap_or_default();
                if out.is_empty() {
                    tracing::info!(
                        cluster = name,
                        budget = ?self.config.action_budget,
                        "actions still running; status is written now and they go on in the background"
                    );
                }
                out
            }
        }
    }

    async fn record_look(&self, name: &str, look: &Look) {
        for c in &look.health {
            match c {
                HealthChange::BecameUnhealthy { message, .. } => {
                    self.metrics
                        .health_failures
                        .with_label_values(&[name])
                        .inc();
                    self.record(name, event("Warning", "Unhealthy", message.clone()))
                        .await
                }
                HealthChange::Recovered { name: inst } => {
                    self.record(
                        name,
                        event(
                            "Normal",
                            "Recovered",
                            format!("{inst} passes its health checks again"),
                        ),
                    )
                    .await
                }
            }
        }
        if let Some(step) = &look.scaled {
            self.metrics
                .scaling_events
                .with_label_values(&[name, step.direction()])
                .inc();
            let message = step.decision.event_message(step.from);
            tracing::info!(cluster = name, %message, "autoscaler");
            self.record(name, event("Normal", step.reason(), message))
                .await;
        }
    }

    async fn apply(
        &self,
        obj: &StoredObject,
        spec: &BotClusterSpec,
        uid: &str,
        mem: &mut ClusterMemory,
    ) -> Result<Action, ReconcileError> {
        let name = obj.meta.name.as_str();
        // What background batches of earlier passes did.
        let earlier: Vec<Executed> = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .unwrap_or_default();
        fold_into_memory(&earlier, mem);
        let previous: BotClusterStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        // The shard map in force after this pass goes into every container's files.
        let shard_plan = self.plan_shards(name, spec, &previous).await;
        let suspended = spec.suspend;
        // Databases before bots (a bot routed to a tenant finds its database), and before
        // LXD is asked anything: a slow LXD does not hold tenant databases back.
        let db_outcome = match (&shard_plan.tenants, suspended) {
            (Some(t), false) => self.execute_databases(name, spec, t).await,
            _ => Default::default(),
        };
        let effective = super::botconfig::with_bot_config(shards::with_map_file(spec, &shard_plan));
        let spec = &effective;
        let look = self.look(name, uid, spec, mem).await?;
        self.remember_ports(name, &look.observed);
        self.record_look(name, &look).await;
        let pass = self.plan_pass(name, uid, spec, &look, shard_plan).await;
        let mut observed = look.observed;
        let mut done: Vec<Executed> = Vec::new();
        let proxy = if suspended {
            // Observe and report, change nothing: the load balancer stays as it is too.
            match &pass.balancer {
                Ok(BalancerPlan::NotConfigured) => ProxyOutcome::NotConfigured,
                Ok(_) => previous_proxy(obj),
                Err(e) => ProxyOutcome::Failed(e.clone()),
            }
        } else {
            if pass.containers.actions.is_empty() {
                // Nothing changed since the plan (nothing to drain either): apply the load
                // balancer's part of it rather than asking the proxy a second time.
                match pass.balancer.clone() {
                    Ok(plan) => self.apply_balancer(name, spec, plan).await,
                    Err(e) => ProxyOutcome::Failed(e),
                }
            } else {
                self.drain(name, uid, spec, &observed, &pass.drain).await;
                done = self.run_batch(name, spec, &pass.containers).await;
                fold_into_memory(&done, mem);
                let (mut again, _) = self.observe(name, spec, mem, false).await?;
                self.mark_in_flight(name, &mut again);
                observed = again;
                self.remember_ports(name, &observed);
                // From what is ready now (new instances join, drained ones stay out).
                self.converge_proxy(name, uid, spec, &observed, &BTreeSet::new())
                    .await
            }
        };
        let mut failed = failures(&earlier);
        failed.extend(failures(&done));
        let in_flight = self.mark_in_flight(name, &mut observed).1;
        let probes: HashMap<String, (u32, Option<String>)> = mem
            .health
            .iter()
            .map(|(n, h)| {
                (
                    n.clone(),
                    (h.fails, h.last.as_ref().and_then(|p| p.message.clone())),
                )
            })
            .collect();
        let now = now_rfc3339();
        let generation = obj.meta.generation.unwrap_or(0);
        // The parts first (shards, cache), then everything else from them: Degraded and
        // Ready have one writer, `derive_status`.
        let mut base = previous.clone();
        let mut events = shards::report(
            &mut base,
            &previous,
            &pass.shards,
            &db_outcome,
            !suspended,
            &now,
            generation,
        );
        super::botconfig::report_cache(
            &mut base,
            super::botconfig::probe_cache(spec).await,
            &now,
            generation,
        );
        let parts: Vec<_> = base
            .conditions
            .iter()
            .filter(|c| {
                [shards::SHARDS_READY, super::botconfig::CACHE_READY].contains(&c.type_.as_str())
            })
            .cloned()
            .collect();
        let facts = Facts {
            generation,
            now: &now,
            spec,
            uid,
            observed: &observed,
            load: &look.load,
            probes: &probes,
            plan: &pass.containers,
            failures: &failed,
            desired: look.replicas,
            disk_priority: self.caps().disk_priority,
            autoscaler: mem.decision.as_ref().map(|d| (d, mem.last_scale.clone())),
            proxy: &proxy,
            suspended,
            in_flight: &in_flight,
            parts: &parts,
        };
        let (status, more) = derive_status(&base, &facts);
        events.extend(more);
        publish(&self.metrics, name, &previous, &status, &facts);
        shards::publish(&self.metrics, name, &status);
        self.write_status(name, &status, events).await?;
        failed.extend(db_outcome.failed.iter().cloned());
        if !failed.is_empty() {
            return Err(ReconcileError::Actions(failed));
        }
        // An unreachable proxy is a condition (written above) and a backoff, not a hot loop.
        if let ProxyOutcome::Failed(e) = proxy {
            return Err(ReconcileError::Proxy(e));
        }
        Ok(Action::Requeue(self.requeue_after(
            spec,
            &pass,
            &status,
            !done.is_empty(),
        )))
    }

    /// 0.5 s while converging, else the shortest of the resync period, `health.interval` and
    /// `autoscaling.checkInterval`. A stalled rollout waits for a new spec, and a suspended
    /// cluster for `suspend: false`: health-check cadence, not converge polling.
    fn requeue_after(
        &self,
        spec: &BotClusterSpec,
        pass: &PassPlan,
        status: &BotClusterStatus,
        acted: bool,
    ) -> Duration {
        let p = &pass.containers;
        let rolling = p.pending_replacements > 0 && p.stalled.is_empty();
        let converging =
            !spec.suspend && (acted || status.ready_replicas < status.desired_replicas || rolling);
        let mut period = self.config.resync;
        if spec.health.enabled {
            period = period.min(spec.health.interval.get().max(Duration::from_millis(200)));
        }
        if spec.autoscaling.enabled {
            period = period.min(
                spec.autoscaling
                    .check_interval
                    .get()
                    .max(Duration::from_millis(200)),
            );
        }
        if converging {
            self.config.converge_poll.min(period)
        } else {
            period
        }
    }

    /// Deletion requested: out of the load balancer, every owned instance deleted, then the
    /// finalizer removed (the store then drops the object and its events).
    async fn teardown(
        &self,
        obj: &StoredObject,
        spec: &BotClusterSpec,
        uid: &str,
    ) -> Result<Action, ReconcileError> {
        let name = obj.meta.name.as_str();
        if let Some(proxy) = &self.proxy {
            // Out of the load balancer first, so no request is sent to a container being stopped.
            if let Err(e) = proxy
                .remove_server(&botcluster_proxy::server_name(name))
                .await
            {
                return Err(ReconcileError::Backend(
                    crate::backend::BackendError::Unavailable(format!(
                        "removing the load balancer: {e}"
                    )),
                ));
            }
        }
        let mut observed: Vec<ObservedInstance> = self
            .backend
            .list(name)
            .await?
            .into_iter()
            .map(super::observe::observed)
            .collect();
        // An instance a background batch still works on waits for it.
        let (pending, _) = self.mark_in_flight(name, &mut observed);
        observed.extend(pending);
        let desired = Desired {
            name,
            uid,
            spec,
            replicas: 0,
            deleting: true,
        };
        let p = plan(&desired, &observed, &self.caps(), &self.pool_for(name));
        let done = self.executor().execute(name, spec, &p).await;
        let failed = failures(&done);
        if !failed.is_empty() {
            return Err(ReconcileError::Actions(failed));
        }
        let left = self.backend.list(name).await?;
        let mine = left
            .iter()
            .filter(|o| o.config.get(crate::model::KEY_UID).map(String::as_str) == Some(uid))
            .count();
        if mine > 0 || !observed.iter().all(|o| !o.busy) {
            return Ok(Action::Requeue(self.config.converge_poll));
        }
        self.forget_ports(name);
        self.forget_memory(name);
        finalizer::complete(self.store.as_ref(), obj, FINALIZER).await?;
        super::status::forget(&self.metrics, name);
        tracing::info!(cluster = name, "torn down");
        Ok(Action::AwaitChange)
    }
}

/// A suspended pass leaves the load balancer alone and reports it as last seen.
fn previous_proxy(obj: &StoredObject) -> ProxyOutcome {
    let previous: BotClusterStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
    match previous.proxy {
        Some(p) if p.synced => ProxyOutcome::Synced {
            hash: p.config_hash.unwrap_or_default(),
            url: p.url.unwrap_or_default(),
            upstreams: p.upstreams.iter().map(|u| u.address.clone()).collect(),
            notices: Vec::new(),
            live: Vec::new(),
        },
        Some(p) => ProxyOutcome::Failed(p.last_error.unwrap_or_default()),
        None => ProxyOutcome::Disabled,
    }
}

/// An in-flight batch's entry, removed when dropped (also if its task panics).
struct Registration {
    map: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<InFlight>>>>,
    key: String,
    id: u64,
}

impl Registration {
    fn new(
        map: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<InFlight>>>>,
        key: &str,
        batch: InFlight,
    ) -> Self {
        let id = batch.id;
        map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .push(batch);
        Registration {
            map,
            key: key.to_string(),
            id,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = m.get_mut(&self.key) {
            v.retain(|b| b.id != self.id);
            if v.is_empty() {
                m.remove(&self.key);
            }
        }
    }
}
