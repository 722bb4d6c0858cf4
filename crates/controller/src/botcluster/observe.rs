//! Observation: the cluster's instances from the backend, their probes, their load, and the
//! load balancer's traffic, folded into the pass's copy of the cluster's memory.
//!
//! Nothing here writes anywhere (no events, no metrics, no store): the pass records what
//! came of it, and a preview drops it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use botcluster_api::spec::BotClusterSpec;

use super::{BotClusterReconciler, ReconcileError};
use crate::backend::Instance;
use crate::health::{ClusterMemory, HealthChange, TrafficRate};
use crate::plan::ObservedInstance;

/// One instance's load in this pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    /// CPU use as % of its `limits.cpu` since the last pass.
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    pub memory_bytes: Option<u64>,
    /// Sampled for less than [`crate::health::CPU_WARMUP`]: its CPU is start-up, not load.
    pub warming: bool,
}

/// The planner's view of a backend instance, before any verdict: not ready, not unhealthy.
pub fn observed(i: Instance) -> ObservedInstance {
    ObservedInstance {
        name: i.name,
        running: i.running,
        status: i.status,
        config: i.config,
        devices: i.devices,
        ready: false,
        unhealthy: Default::default(),
        busy: i.busy,
        load: None,
    }
}

impl BotClusterReconciler {
    /// Lists the cluster's instances and probes the running ones, folding the probes into
    /// `mem`. With `count_failures`, failed probes count towards `health.retries` (once per
    /// pass); the second look after executing actions only notices instances that came up.
    pub(crate) async fn observe(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        mem: &mut ClusterMemory,
        count_failures: bool,
    ) -> Result<(Vec<ObservedInstance>, Vec<HealthChange>), ReconcileError> {
        let mut observed: Vec<ObservedInstance> = self
            .backend
            .list(name)
            .await?
            .into_iter()
            .map(observed)
            .collect();
        if !spec.health.enabled {
            // No health checks asked for: running counts as ready.
            for o in &mut observed {
                o.ready = o.running;
            }
            return Ok((observed, Vec::new()));
        }
        let probes = observed.iter().map(|o| {
            let port = o.host_port();
            let running = o.running;
            let probe = self.probe.clone();
            let host = spec.listen_address.clone();
            let path = spec.health.endpoint.clone();
            async move {
                match (running, port) {
                    (true, Some(p)) => Some(probe.probe(&host, p, &path).await),
                    _ => None,
                }
            }
        });
        let results = futures_util::future::join_all(probes).await;
        let changes = mem.judge(
            spec,
            &mut observed,
            &results,
            Instant::now(),
            count_failures,
        );
        Ok((observed, changes))
    }

    /// CPU % of the limit (from the change in CPU seconds since the last sample in `mem`) and
    /// memory in use, per running and ready instance, from its `GET /1.0/instances/NAME/state`.
    pub(crate) async fn sample_load(
        &self,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        mem: &mut ClusterMemory,
    ) -> HashMap<String, Load> {
        // Only instances that finished starting (see ContainerBackend::usage).
        let names: Vec<String> = observed
            .iter()
            .filter(|o| o.running && o.ready)
            .map(|o| o.name.clone())
            .collect();
        let usage = if names.is_empty() {
            HashMap::new()
        } else {
            self.backend.usage(&names).await.unwrap_or_default()
        };
        let cpus = spec
            .resources
            .cpu
            .as_ref()
            .and_then(|c| c.count().ok())
            .unwrap_or(1)
            .max(1) as f64;
        let now = Instant::now();
        let mut out = HashMap::new();
        for o in observed.iter().filter(|o| o.running) {
            let Some(u) = usage.get(&o.name) else {
                continue;
            };
            let prev = mem.cpu.insert(o.name.clone(), (now, u.cpu_seconds));
            let first = *mem.first_sample.entry(o.name.clone()).or_insert(now);
            let cpu_percent = prev.and_then(|(t0, c0)| {
                let dt = now.duration_since(t0).as_secs_f64();
                (dt > 0.2 && u.cpu_seconds >= c0)
                    .then(|| ((u.cpu_seconds - c0) / dt / cpus * 100.0 * 10.0).round() / 10.0)
            });
            out.insert(
                o.name.clone(),
                Load {
                    cpu_percent,
                    memory_bytes: (u.memory_bytes > 0).then_some(u.memory_bytes),
                    warming: now.duration_since(first) < crate::health::CPU_WARMUP,
                },
            );
        }
        out
    }

    /// The cluster's request rate through its Caddy server over the last window (at least one
    /// check interval). `None`: not collected (no load balancer, or Caddy did not answer);
    /// `Some(None)`: collected, but the first window is not complete yet.
    pub(crate) async fn sample_traffic(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        mem: &mut ClusterMemory,
    ) -> Option<Option<TrafficRate>> {
        let proxy = self.proxy.as_ref()?;
        spec.load_balancer.as_ref().filter(|lb| lb.enabled)?;
        let server = botcluster_proxy::server_name(name);
        let sample = match proxy.traffic(&server).await {
            // Caddy creates the series with the first request: none yet is zero so far.
            Ok(t) => t.unwrap_or_default(),
            Err(e) => {
                tracing::debug!(cluster = name, error = %e, "no request rate from the load balancer");
                return None;
            }
        };
        let window = spec
            .autoscaling
            .check_interval
            .get()
            .max(Duration::from_secs(1));
        Some(mem.fold_traffic(Instant::now(), sample, window))
    }
}
