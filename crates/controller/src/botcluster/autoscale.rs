//! The replica count of a pass: `spec.replicas`, or the autoscaler's decision over this
//! pass's load, probes and traffic.
//!
//! Pure apart from the proxy's traffic reading; what it decides is folded into the pass's
//! copy of the cluster's memory, and the pass (not this module) records events and metrics.

use std::collections::HashMap;
use std::time::Instant;

use botcluster_api::spec::BotClusterSpec;
use botcluster_autoscale::{Decision, Scale};

use super::observe::Load;
use super::BotClusterReconciler;
use crate::health::ClusterMemory;
use crate::plan::ObservedInstance;

/// A scaling step the autoscaler took this pass (for its event and metric).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleStep {
    /// The count before.
    pub from: u32,
    /// The decision (its `desired` is the count after).
    pub decision: Decision,
}

impl ScaleStep {
    /// `up` or `down` (the metric's label).
    pub fn direction(&self) -> &'static str {
        if self.decision.desired > self.from {
            "up"
        } else {
            "down"
        }
    }
    /// `ScaledUp` or `ScaledDown` (the event's reason).
    pub fn reason(&self) -> &'static str {
        if self.decision.desired > self.from {
            "ScaledUp"
        } else {
            "ScaledDown"
        }
    }
}

/// The count the autoscaler starts from when it remembers nothing (after an operator
/// restart): what exists, not `spec.replicas`, so a cluster scaled up is not cut back the
/// moment the operator comes back; a scale-down then waits out its stabilization window
/// like any other.
pub fn starting_count(spec: &BotClusterSpec, uid: &str, observed: &[ObservedInstance]) -> u32 {
    let a = &spec.autoscaling;
    let existing = observed
        .iter()
        .filter(|o| o.owner_uid() == Some(uid))
        .count() as u32;
    let start = if existing == 0 {
        spec.replicas
    } else {
        existing
    };
    start.clamp(a.min_instances, a.max_instances.max(a.min_instances))
}

impl BotClusterReconciler {
    /// The autoscaler's count for this pass (the spec's `replicas` when autoscaling is off),
    /// and the scaling step it took, if any.
    pub(crate) async fn desired_replicas(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        uid: &str,
        load: &HashMap<String, Load>,
        mem: &mut ClusterMemory,
    ) -> (u32, Option<ScaleStep>) {
        let a = &spec.autoscaling;
        if !a.enabled {
            mem.desired = None;
            mem.decision = None;
            return (spec.replicas, None);
        }
        let limit_bytes = spec
            .resources
            .memory
            .as_ref()
            .and_then(|m| m.bytes().ok())
            .filter(|b| *b > 0);
        let traffic = self.sample_traffic(name, spec, mem).await;
        let now = Instant::now();
        let since_epoch = now.duration_since(self.epoch);
        let ready = observed
            .iter()
            .filter(|o| o.owner_uid() == Some(uid) && o.running && o.ready)
            .count()
            .max(1) as f64;
        let mut instances = Vec::new();
        for o in observed
            .iter()
            .filter(|o| o.owner_uid() == Some(uid) && o.running)
        {
            let l = load.get(&o.name);
            let probe = mem.health.get(&o.name).and_then(|h| h.last.clone());
            // Caddy counts the cluster's requests, not each upstream's (2.6.2 has no
            // per-upstream metrics): the instances in the pool share them.
            let served = traffic.flatten().filter(|_| o.ready);
            instances.push(botcluster_autoscale::InstanceMetrics {
                // Start-up CPU is not load.
                cpu_percent: l.filter(|l| !l.warming).and_then(|l| l.cpu_percent),
                memory_percent: match (l.and_then(|l| l.memory_bytes), limit_bytes) {
                    (Some(b), Some(lim)) => Some(b as f64 / lim as f64 * 100.0),
                    _ => None,
                },
                requests_per_minute: served.map(|t| t.requests_per_minute / ready),
                // What clients waited, when requests went through Caddy in the window; else
                // the operator's own probe latency.
                response_time_ms: served
                    .and_then(|t| t.response_time_ms)
                    .or_else(|| probe.as_ref().filter(|p| p.ready).map(|p| p.latency_ms)),
                queue_depth: probe.as_ref().and_then(|p| p.queue_depth),
            });
        }
        let snapshot = botcluster_autoscale::MetricsSnapshot {
            instances,
            // Without a load balancer (or while Caddy does not answer) there is no request rate
            // at all: uncollected, so it neither holds nor causes a scale-down.
            uncollected: if traffic.is_none() {
                vec![botcluster_api::spec::ScalingMetric::RequestsPerMinute]
            } else {
                Vec::new()
            },
        };
        let current = mem
            .desired
            .unwrap_or_else(|| starting_count(spec, uid, observed))
            .clamp(a.min_instances, a.max_instances.max(a.min_instances));
        let (decision, history) =
            botcluster_autoscale::decide(a, current, &snapshot, &mem.history, since_epoch);
        mem.history = history;
        mem.desired = Some(decision.desired);
        mem.decision = Some(decision.clone());
        let step = (decision.scale != Scale::None).then(|| {
            mem.last_scale = Some(botcluster_store::now_rfc3339());
            ScaleStep {
                from: current,
                decision: decision.clone(),
            }
        });
        (decision.desired, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KEY_CLUSTER, KEY_UID};

    fn spec(replicas: u32, min: u32, max: u32) -> BotClusterSpec {
        serde_json::from_value(serde_json::json!({
            "image": "img", "replicas": replicas,
            "autoscaling": {"enabled": true, "minInstances": min, "maxInstances": max}
        }))
        .expect("spec")
    }

    fn ours(n: usize, uid: &str) -> Vec<ObservedInstance> {
        (0..n)
            .map(|i| {
                let mut o = ObservedInstance {
                    name: format!("web-{i}"),
                    running: true,
                    ..Default::default()
                };
                o.config.insert(KEY_UID.into(), uid.into());
                o.config.insert(KEY_CLUSTER.into(), "web".into());
                o
            })
            .collect()
    }

    #[test]
    fn after_a_restart_the_autoscaler_starts_from_what_exists_not_from_replicas() {
        assert_eq!(starting_count(&spec(2, 1, 10), "u", &ours(6, "u")), 6);
        // Strangers do not count; nothing of ours yet: the spec's count.
        assert_eq!(starting_count(&spec(2, 1, 10), "u", &ours(6, "other")), 2);
        // Still within the bounds.
        assert_eq!(starting_count(&spec(2, 1, 4), "u", &ours(6, "u")), 4);
        assert_eq!(starting_count(&spec(2, 3, 10), "u", &ours(1, "u")), 3);
    }
}
