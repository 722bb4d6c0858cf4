//! Status: derived in one place, as a pure function of the previous status and this pass's
//! facts; metrics are published apart from it.
//!
//! *Why is a cluster Degraded?* Every reason is pushed onto one list in [`derive_status`]:
//! `NameConflict`, `LimitUnsupported`, `Blocked`, `RolloutStalled`, `ActionFailed`,
//! `ProxyNotConfigured`, `ProxyUnavailable`, and the reason of every part's condition
//! (`ShardsReady`, `CacheReady`, derived first and passed in [`Facts::parts`]) that is False
//! for a fault — `RebalancePending` and `ShardSkew` only wait or warn, so they are not; the
//! condition's reason is the sorted set of them, its message all their messages. `Ready`
//! needs every instance ready and no part's fault (reason `PartNotReady` when only a part
//! is wrong). A failed pass ([`failure_status`]) sets
//! `ReconcileError` instead, until a pass succeeds.

use std::collections::{BTreeSet, HashMap};

use botcluster_api::meta::set_condition;
use botcluster_api::spec::BotClusterSpec;
use botcluster_api::status::{InstanceStatus, ProxyStatus, UpstreamStatus};
use botcluster_api::{BotClusterStatus, Condition, ConditionStatus, Event};
use botcluster_autoscale::{Decision, Limit};

use super::balancer::ProxyOutcome;
use super::observe::Load;
use super::BotClusterReconciler;
use crate::metrics::ControllerMetrics;
use crate::plan::{ObservedInstance, Plan, Unhealthy};

/// The condition type a suspended cluster carries.
pub const SUSPENDED: &str = "Suspended";

/// Everything status is derived from.
pub struct Facts<'a> {
    /// The object's generation.
    pub generation: u64,
    /// The time to stamp transitions with (RFC 3339).
    pub now: &'a str,
    /// The spec.
    pub spec: &'a BotClusterSpec,
    /// The object's uid.
    pub uid: &'a str,
    /// The instances as observed after this pass's actions.
    pub observed: &'a [ObservedInstance],
    /// Their load.
    pub load: &'a HashMap<String, Load>,
    /// Per instance: failed probes in a row and the last probe's message.
    pub probes: &'a HashMap<String, (u32, Option<String>)>,
    /// The container plan of this pass.
    pub plan: &'a Plan,
    /// Actions that failed (what and why).
    pub failures: &'a [String],
    /// The replica count this pass aimed at.
    pub desired: u32,
    /// The host applies `limits.disk.priority`.
    pub disk_priority: bool,
    /// The autoscaler's last decision and the time of its last scaling.
    pub autoscaler: Option<(&'a Decision, Option<String>)>,
    /// What became of the load balancer.
    pub proxy: &'a ProxyOutcome,
    /// `spec.suspend`: the plan was not executed.
    pub suspended: bool,
    /// Actions of earlier passes still running in the background, described.
    pub in_flight: &'a [String],
    /// The conditions of the parts reconciled beside the containers (`ShardsReady`,
    /// `CacheReady`), derived first: a fault in one makes the cluster Degraded and not Ready.
    pub parts: &'a [Condition],
}

/// Reasons a part's condition is False that are no fault: a rebalance waiting for a person's
/// approval (the published map keeps serving) and a skewed but working map.
const PART_WAITS: &[&str] = &["RebalancePending", "ShardSkew"];

/// The parts' faults: (reason, "ShardsReady: message") for each False condition that is not
/// only waiting.
fn part_faults(parts: &[Condition]) -> Vec<(String, String)> {
    parts
        .iter()
        .filter(|c| c.status == ConditionStatus::False && !PART_WAITS.contains(&c.reason.as_str()))
        .map(|c| (c.reason.clone(), format!("{}: {}", c.type_, c.message)))
        .collect()
}

fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: u64) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.into(),
        message,
        last_transition_time: String::new(),
        observed_generation: generation,
    }
}

fn warning(reason: &str, message: &str, now: &str) -> Event {
    Event {
        time: now.to_string(),
        type_: "Warning".into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// Why a rolling update stopped, and what to do about it.
fn stalled_message(p: &Plan, probes: &HashMap<String, (u32, Option<String>)>) -> String {
    let why: Vec<String> = p
        .stalled
        .iter()
        .map(|n| match probes.get(n).and_then(|(_, m)| m.clone()) {
            Some(m) => format!("{n} ({m})"),
            None => n.clone(),
        })
        .collect();
    format!(
        "rolling update stopped: the new spec's instance(s) {} never passed a health check, even after a restart; {} instance(s) of the previous spec keep serving. Fix the spec (image, files, limits) and apply it again, or apply the previous spec to roll back",
        why.join(", "),
        p.pending_replacements
    )
}

fn instance_status(f: &Facts<'_>, o: &ObservedInstance) -> InstanceStatus {
    let l = f.load.get(&o.name);
    let (fails, probe_msg) = f.probes.get(&o.name).cloned().unwrap_or((0, None));
    let port = o.host_port();
    InstanceStatus {
        name: o.name.clone(),
        ordinal: o.ordinal().unwrap_or(0),
        state: o.status.clone(),
        host_port: port,
        url: port.map(|p| {
            format!(
                "http://{}",
                crate::model::host_port(&f.spec.listen_address, p)
            )
        }),
        ready: o.running && o.ready,
        health: Some(
            if !o.running {
                "stopped"
            } else if o.unhealthy != Unhealthy::No {
                "unhealthy"
            } else if o.ready {
                "healthy"
            } else if fails > 0 {
                "failing"
            } else {
                "starting"
            }
            .into(),
        ),
        cpu_percent: l.and_then(|l| l.cpu_percent),
        memory_bytes: l.and_then(|l| l.memory_bytes),
        message: if !o.running {
            Some(format!("LXD reports {}", o.status))
        } else if o.ready {
            None
        } else {
            probe_msg.map(|m| format!("{m} ({fails} failed in a row)"))
        },
    }
}

/// The load balancer's status and the problem it adds to Degraded, if any.
fn proxy_status(
    previous: Option<ProxyStatus>,
    outcome: &ProxyOutcome,
) -> (
    Option<ProxyStatus>,
    Option<(String, String)>,
    Option<String>,
) {
    match outcome {
        ProxyOutcome::Disabled => (None, None, None),
        ProxyOutcome::NotConfigured => {
            let message = "spec.loadBalancer is set but this operator runs without a load balancer (`botctl serve --caddy-admin none`); start it with `--caddy-admin http://127.0.0.1:2019` (Caddy's admin address) or remove spec.loadBalancer".to_string();
            (
                Some(ProxyStatus {
                    synced: false,
                    last_error: Some(message.clone()),
                    ..Default::default()
                }),
                Some(("ProxyNotConfigured".into(), message)),
                None,
            )
        }
        ProxyOutcome::Failed(e) => (
            Some(ProxyStatus {
                synced: false,
                last_error: Some(e.clone()),
                ..previous.unwrap_or_default()
            }),
            Some(("ProxyUnavailable".into(), e.clone())),
            None,
        ),
        ProxyOutcome::Synced {
            hash,
            url,
            upstreams,
            notices,
            live,
        } => (
            Some(ProxyStatus {
                synced: true,
                config_hash: Some(hash.clone()),
                url: Some(url.clone()),
                last_error: None,
                upstreams: upstreams
                    .iter()
                    .map(|a| {
                        let l = live.iter().find(|u| &u.address == a);
                        UpstreamStatus {
                            address: a.clone(),
                            num_requests: l.map(|u| u.num_requests).unwrap_or(0),
                            fails: l.map(|u| u.fails).unwrap_or(0),
                        }
                    })
                    .collect(),
            }),
            None,
            (!notices.is_empty()).then(|| notices.join("; ")),
        ),
    }
}

/// Derives the new status and the events its changes deserve. Pure: the same inputs give
/// the same status.
pub fn derive_status(previous: &BotClusterStatus, f: &Facts<'_>) -> (BotClusterStatus, Vec<Event>) {
    let (p, spec, generation, now) = (f.plan, f.spec, f.generation, f.now);
    let mut events = Vec::new();
    let mut instances: Vec<InstanceStatus> = f
        .observed
        .iter()
        .filter(|o| o.owner_uid() == Some(f.uid))
        .map(|o| instance_status(f, o))
        .collect();
    instances.sort_by_key(|i| i.ordinal);
    let ready = instances.iter().filter(|i| i.ready).count() as u32;
    let replicas = instances.len() as u32;
    let desired = f.desired;
    let template = crate::model::template_hash(spec);
    let updated = f
        .observed
        .iter()
        .filter(|o| {
            o.owner_uid() == Some(f.uid)
                && o.config.get(crate::model::KEY_TEMPLATE) == Some(&template)
        })
        .count() as u32;
    let instances_ready = ready == desired && replicas == desired && p.pending_replacements == 0;
    let faults = part_faults(f.parts);
    let all_ready = instances_ready && faults.is_empty();

    // Every reason for Degraded, in one list.
    let mut problems: Vec<(String, String)> = Vec::new();
    if !p.conflicts.is_empty() {
        problems.push((
            "NameConflict".into(),
            p.conflicts
                .iter()
                .map(|c| format!("{} exists and is {}; botcluster leaves it alone (rename or delete it to let the cluster use the name)", c.name, c.owner))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    if spec.resources.disk_priority.is_some() && !f.disk_priority {
        problems.push((
            "LimitUnsupported".into(),
            "limits.disk.priority is not applied: this LXD host lacks the blkio cgroup controller (cgroup v1 without blkio.weight); the other limits are applied".into(),
        ));
    }
    if spec
        .resources
        .network
        .as_ref()
        .is_some_and(|n| n.nic.is_none() && (n.ingress.is_some() || n.egress.is_some()))
    {
        problems.push((
            "LimitUnsupported".into(),
            "resources.network ingress/egress are not applied: LXD shapes traffic only on a NIC; set resources.network.nic to an LXD network".into(),
        ));
    }
    for b in &p.blocked {
        problems.push(("Blocked".into(), b.clone()));
    }
    let stall = (!p.stalled.is_empty()).then(|| stalled_message(p, f.probes));
    if let Some(m) = &stall {
        problems.push(("RolloutStalled".into(), m.clone()));
    }
    if !f.failures.is_empty() {
        problems.push(("ActionFailed".into(), f.failures.join("; ")));
    }
    let (proxy, proxy_problem, rate_limit) = proxy_status(previous.proxy.clone(), f.proxy);
    problems.extend(proxy_problem);
    problems.extend(faults.iter().cloned());

    let mut conditions = previous.conditions.clone();
    set_condition(
        &mut conditions,
        condition(
            "Ready",
            all_ready,
            if all_ready {
                "AllReady"
            } else if instances_ready {
                "PartNotReady"
            } else {
                "NotAllReady"
            },
            if faults.is_empty() {
                format!("{ready}/{desired} instances ready")
            } else {
                format!(
                    "{ready}/{desired} instances ready; {}",
                    faults
                        .iter()
                        .map(|(_, m)| m.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            },
            generation,
        ),
        now,
    );
    // Like a Deployment past its progress deadline: a stalled rollout is not progressing, and
    // neither is a suspended cluster.
    let stalled = stall.is_some();
    let pending = !all_ready || !p.actions.is_empty() || !f.in_flight.is_empty();
    let progressing = pending && !stalled && !f.suspended;
    let (reason, message) = if let Some(m) = stall {
        ("RolloutStalled", m)
    } else if f.suspended && pending {
        (
            SUSPENDED,
            format!(
                "spec.suspend is true: {} action(s) wait until it is false",
                p.actions.len()
            ),
        )
    } else if p.pending_replacements > 0 {
        ("RollingUpdate", format!(
            "rolling update: {updated}/{desired} instances on the current spec, {ready} ready; {} waiting for new ones to get ready",
            p.pending_replacements
        ))
    } else if progressing {
        (
            "Converging",
            format!(
                "{} action(s) this pass; {replicas} exist, {ready} ready, {desired} wanted",
                p.actions.len()
            ),
        )
    } else {
        ("Converged", "every instance matches the spec".into())
    };
    let message = if f.in_flight.is_empty() {
        message
    } else {
        format!("{message}; still running: {}", f.in_flight.join("; "))
    };
    set_condition(
        &mut conditions,
        condition("Progressing", progressing, reason, message, generation),
        now,
    );
    if f.suspended {
        let waiting: Vec<String> = p.actions.iter().map(|a| a.describe()).collect();
        set_condition(
            &mut conditions,
            condition(
                SUSPENDED,
                true,
                "SuspendedBySpec",
                if waiting.is_empty() {
                    "spec.suspend is true: the operator observes and reports but changes nothing; nothing would change now".into()
                } else {
                    format!(
                        "spec.suspend is true: the operator observes and reports but changes nothing; waiting: {}",
                        waiting.join("; ")
                    )
                },
                generation,
            ),
            now,
        );
    } else {
        conditions.retain(|c| c.type_ != SUSPENDED);
    }

    match &rate_limit {
        None => conditions.retain(|c| c.type_ != "RateLimitUnsupported"),
        Some(message) => {
            let before = conditions
                .iter()
                .any(|c| c.type_ == "RateLimitUnsupported" && &c.message == message);
            set_condition(
                &mut conditions,
                condition(
                    "RateLimitUnsupported",
                    true,
                    "NoRateLimitModule",
                    message.clone(),
                    generation,
                ),
                now,
            );
            if !before {
                events.push(warning("RateLimitUnsupported", message, now));
            }
        }
    }

    let degraded = !problems.is_empty();
    let (reason, message) = if degraded {
        (
            problems
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(","),
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        ("AsExpected".to_string(), "no problems".to_string())
    };
    let before = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| (c.status, c.message.clone()));
    set_condition(
        &mut conditions,
        condition("Degraded", degraded, &reason, message.clone(), generation),
        now,
    );
    if degraded && before != Some((ConditionStatus::True, message.clone())) {
        events.push(warning(&reason, &message, now));
    }

    let mut status = previous.clone();
    status.observed_generation = generation;
    status.conditions = conditions;
    status.replicas = replicas;
    status.ready_replicas = ready;
    status.desired_replicas = desired;
    status.updated_replicas = updated;
    status.instances = instances;
    status.backoff = None;
    status.proxy = proxy;
    autoscaler_status(&mut status, f);
    (status, events)
}

/// The autoscaler's view and its conditions.
fn autoscaler_status(status: &mut BotClusterStatus, f: &Facts<'_>) {
    let a = &f.spec.autoscaling;
    let (generation, now) = (f.generation, f.now);
    let Some((d, last_scale)) = f.autoscaler.as_ref().filter(|_| a.enabled) else {
        status.autoscaler = None;
        status
            .conditions
            .retain(|c| c.type_ != "MaxInstancesReached" && c.type_ != "ScalingFailed");
        return;
    };
    status.autoscaler = Some(botcluster_api::status::AutoscalerStatus {
        current_metrics: d
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), (v * 10.0).round() / 10.0))
            .collect(),
        desired_replicas: d.desired,
        decided_by: d.decided_by.clone(),
        last_scale_time: last_scale.clone(),
        message: Some(d.reason.clone()),
    });
    let at_max = d.limited_by == Some(Limit::MaxInstances);
    set_condition(
        &mut status.conditions,
        condition(
            "MaxInstancesReached",
            at_max,
            if at_max {
                "AtMaxInstances"
            } else {
                "BelowMaxInstances"
            },
            if at_max {
                format!("the load asks for more than maxInstances ({}): {}; raise spec.autoscaling.maxInstances", a.max_instances, d.reason)
            } else {
                format!("{} of at most {} instances", d.desired, a.max_instances)
            },
            generation,
        ),
        now,
    );
    let failed = scaling_failed(status, f);
    set_condition(
        &mut status.conditions,
        condition(
            "ScalingFailed",
            failed,
            if failed {
                "ActionsFailed"
            } else {
                "AsExpected"
            },
            if failed {
                format!("scaling to {} failed: {}", f.desired, f.failures.join("; "))
            } else {
                "no scaling errors".into()
            },
            generation,
        ),
        now,
    );
}

fn scaling_failed(status: &BotClusterStatus, f: &Facts<'_>) -> bool {
    !f.failures.is_empty() && status.replicas != f.desired
}

/// The status of a pass that failed: the previous status with a backoff and
/// `Degraded`/`ReconcileError`, and an event when it starts failing.
pub fn failure_status(
    previous: &BotClusterStatus,
    generation: u64,
    failures: u32,
    retry_after: std::time::Duration,
    error: &str,
    now: &str,
) -> (BotClusterStatus, Vec<Event>) {
    let mut status = previous.clone();
    status.backoff = Some(botcluster_api::status::BackoffStatus {
        failures,
        retry_after_seconds: retry_after.as_secs_f64(),
        last_error: error.to_string(),
    });
    let was_failing = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Degraded" && c.reason == "ReconcileError");
    set_condition(
        &mut status.conditions,
        condition(
            "Degraded",
            true,
            "ReconcileError",
            format!("{error} (attempt {failures}, retrying in {retry_after:.0?})"),
            generation,
        ),
        now,
    );
    let events = if was_failing {
        Vec::new()
    } else {
        vec![warning("ReconcileError", error, now)]
    };
    (status, events)
}

/// Publishes the cluster's gauges from its new status (apart from deriving it).
pub fn publish(
    m: &ControllerMetrics,
    name: &str,
    previous: &BotClusterStatus,
    status: &BotClusterStatus,
    f: &Facts<'_>,
) {
    for g in [&m.instance_cpu, &m.instance_memory] {
        for i in &previous.instances {
            let _ = g.remove_label_values(&[name, &i.name]);
        }
    }
    for i in &status.instances {
        if let Some(c) = i.cpu_percent {
            m.instance_cpu.with_label_values(&[name, &i.name]).set(c);
        }
        if let Some(b) = i.memory_bytes {
            m.instance_memory
                .with_label_values(&[name, &i.name])
                .set(b as f64);
        }
    }
    for (gauge, value) in [
        (&m.instances, status.replicas),
        (&m.ready_instances, status.ready_replicas),
        (&m.desired_instances, status.desired_replicas),
        (&m.updated_instances, status.updated_replicas),
        (&m.rollout_stalled, u32::from(!f.plan.stalled.is_empty())),
    ] {
        gauge.with_label_values(&[name]).set(i64::from(value));
    }
    forget_autoscaler_metrics(m, name);
    match f.autoscaler.as_ref().filter(|_| f.spec.autoscaling.enabled) {
        Some((d, _)) => {
            m.max_instances
                .with_label_values(&[name])
                .set(f.spec.autoscaling.max_instances as i64);
            for (metric, v) in &d.metrics {
                m.autoscaler_metric
                    .with_label_values(&[name, metric])
                    .set(*v);
            }
            // Create the series at 0, so the first error is an increase alerts can see.
            let errors = m.scaling_errors.with_label_values(&[name]);
            if scaling_failed(status, f) {
                errors.inc();
            }
        }
        None => {
            let _ = m.max_instances.remove_label_values(&[name]);
        }
    }
}

/// Drops the cluster's `botcluster_autoscaler_metric` series (a metric can stop being
/// reported, and a deleted cluster leaves none behind).
pub fn forget_autoscaler_metrics(m: &ControllerMetrics, name: &str) {
    for metric in botcluster_autoscale::METRICS {
        let _ = m
            .autoscaler_metric
            .remove_label_values(&[name, botcluster_autoscale::metric_name(metric)]);
    }
}

/// Drops every series of a deleted cluster.
pub fn forget(m: &ControllerMetrics, name: &str) {
    for g in [
        &m.instances,
        &m.ready_instances,
        &m.desired_instances,
        &m.updated_instances,
        &m.rollout_stalled,
        &m.shard_map_version,
        &m.shard_rebalance_pending,
    ] {
        let _ = g.remove_label_values(&[name]);
    }
    forget_autoscaler_metrics(m, name);
    super::shards::forget_shares(m, name);
}

impl BotClusterReconciler {
    /// Writes `status` (a write that changes nothing writes nothing) and records `events`.
    pub(crate) async fn write_status(
        &self,
        name: &str,
        status: &BotClusterStatus,
        events: Vec<Event>,
    ) -> Result<(), super::ReconcileError> {
        for e in events {
            self.record(name, e).await;
        }
        let v =
            serde_json::to_value(status).map_err(|e| super::ReconcileError::Spec(e.to_string()))?;
        match self
            .store
            .update_status(botcluster_api::BOTCLUSTER_KIND, name, v, None)
            .await
        {
            Ok(_) | Err(botcluster_store::StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a failed pass in status: backoff and a Degraded condition.
    pub async fn report_failure(
        &self,
        name: &str,
        failures: u32,
        retry_after: std::time::Duration,
        error: &str,
    ) {
        let Ok(Some(obj)) = self.store.get(botcluster_api::BOTCLUSTER_KIND, name).await else {
            return;
        };
        let previous: BotClusterStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        let (status, events) = failure_status(
            &previous,
            obj.meta.generation.unwrap_or(0),
            failures,
            retry_after,
            error,
            &botcluster_store::now_rfc3339(),
        );
        let _ = self.write_status(name, &status, events).await;
    }
}
