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
use super::balancer::{drain_set, plan_balancer, BalancerPlan, ProxyOutcome};
use super::execute::{failures, Executed};
use super::observe::Load;
use super::status::{derive_status, publish, Facts};
use super::{event, BotClusterReconciler, ReconcileError};
use crate::health::{ClusterMemory, HealthChange};
use crate::plan::{plan, Desired, ObservedInstance, Plan};
use crate::runtime::finalizer::{self, Step};
use crate::runtime::Action;

/// What a pass observed, before any action.
pub(crate) struct Look {
    /// The cluster's instances, judged (ready, unhealthy, load).
    pub observed: Vec<ObservedInstance>,
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
        Ok(Look {
            observed,
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
    ) -> PassPlan {
        let desired = Desired {
            name,
            uid,
            spec,
            replicas: look.replicas,
            deleting: false,
        };
        let containers = plan(&desired, &look.observed, &self.caps(), &self.pool_for(name));
        let drain = drain_set(&look.observed, &containers);
        let balancer = self
            .view_proxy(name, spec)
            .await
            .map(|view| plan_balancer(name, uid, spec, &look.observed, &drain, view.as_ref()));
        PassPlan {
            containers,
            drain,
            balancer,
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
        let look = self.look(name, uid, spec, mem).await?;
        self.remember_ports(name, &look.observed);
        self.record_look(name, &look).await;
        let pass = self.plan_pass(name, uid, spec, &look).await;
        let suspended = spec.suspend;
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
            if !pass.containers.actions.is_empty() {
                self.drain(name, uid, spec, &observed, &pass.drain).await;
                done = self.execute(name, spec, &pass.containers, mem).await;
                let (again, _) = self.observe(name, spec, mem, false).await?;
                observed = again;
                self.remember_ports(name, &observed);
            }
            // From what is ready now (new instances join, drained ones stay out).
            self.converge_proxy(name, uid, spec, &observed, &BTreeSet::new())
                .await
        };
        let failed = failures(&done);
        let previous: BotClusterStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
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
        let facts = Facts {
            generation: obj.meta.generation.unwrap_or(0),
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
        };
        let (status, events) = derive_status(&previous, &facts);
        publish(&self.metrics, name, &previous, &status, &facts);
        self.write_status(name, &status, events).await?;
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
        let mut mem = self.memory_of(name);
        let (observed, _) = {
            let list = self.backend.list(name).await?;
            (
                list.into_iter()
                    .map(super::observe::observed)
                    .collect::<Vec<_>>(),
                (),
            )
        };
        let desired = Desired {
            name,
            uid,
            spec,
            replicas: 0,
            deleting: true,
        };
        let p = plan(&desired, &observed, &self.caps(), &self.pool_for(name));
        let done = self.execute(name, spec, &p, &mut mem).await;
        let failed = failures(&done);
        if !failed.is_empty() {
            return Err(ReconcileError::Actions(failed));
        }
        let left = self.backend.list(name).await?;
        let mine = left
            .iter()
            .filter(|o| o.config.get(crate::model::KEY_UID).map(String::as_str) == Some(uid))
            .count();
        if mine > 0 {
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
