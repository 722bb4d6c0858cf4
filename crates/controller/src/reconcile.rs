//! One reconcile pass over one BotCluster: observe → plan → execute → status.
//!
//! # Expected flow
//! 1. Read the object. Gone: nothing to do. Deletion requested: plan a teardown, run it, and
//!    remove our finalizer once no container is left (the store then drops the object).
//! 2. Make sure our finalizer is on the object **before** creating anything, so a delete can
//!    never skip teardown.
//! 3. Observe this cluster's instances (one filtered list request) and probe the running
//!    ones' health endpoints.
//! 4. Plan (a pure function), execute the actions, observe again if anything was done.
//! 5. Write status (conditions, instances) and events; return when to come back.
//!
//! # Guarantees
//! - A pass with nothing to change sends no writes to LXD.
//! - Every action is idempotent: "already running", "not found" on delete are success, and a
//!   pass interrupted anywhere (even `kill -9`) is finished by the next one, which plans from
//!   what it observes.
//! - Instances without this cluster's ownership keys are never changed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use botcluster_api::meta::set_condition;
use botcluster_api::spec::BotClusterSpec;
use botcluster_api::status::InstanceStatus;
use botcluster_api::{
    BotCluster, BotClusterStatus, Condition, ConditionStatus, Event, BOTCLUSTER_KIND, FINALIZER,
};
use botcluster_store::{now_rfc3339, Store, StoreError, StoredObject};
use tokio::sync::Semaphore;

use crate::backend::{BackendError, ContainerBackend};
use crate::health::{ClusterMemory, HealthChange};
use crate::metrics::ControllerMetrics;
use crate::model::{Capabilities, KEY_FILES};
use crate::plan::{plan, Action, Desired, NewInstance, ObservedInstance, Plan, PortPool};
use crate::probe::Prober;
use crate::proxy::ProxyBackend;

/// Why a pass failed; the controller backs off and retries.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// LXD failed.
    #[error("LXD: {0}")]
    Backend(#[from] BackendError),
    /// The stored spec does not parse (should not happen: the server validates).
    #[error("the stored spec is unreadable: {0}")]
    Spec(String),
}

/// What a pass asks of the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Come back after this long (short while converging, the resync period when done).
    pub requeue_after: Duration,
}

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Host ports handed out when a spec has no `hostPorts`.
    pub port_range: (u16, u16),
    /// Bound on concurrent LXD creates across all clusters.
    pub max_concurrent_creates: usize,
    /// Readiness probe timeout.
    pub probe_timeout: Duration,
    /// Check that a host port is free before creating a container on it (LXD on this host).
    pub check_host_ports: bool,
    /// Period of the "nothing to do" requeue.
    pub resync: Duration,
    /// Period of the requeue while converging.
    pub converge_poll: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            port_range: (20000, 20999),
            max_concurrent_creates: 8,
            probe_timeout: Duration::from_secs(2),
            check_host_ports: true,
            resync: Duration::from_secs(30),
            converge_poll: Duration::from_millis(500),
        }
    }
}

/// Reconciles BotClusters against a container backend.
pub struct Reconciler {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) backend: Arc<dyn ContainerBackend>,
    pub(crate) metrics: ControllerMetrics,
    config: ReconcilerConfig,
    caps: Mutex<Capabilities>,
    /// Host ports in use, per cluster (learned from observation), and ports found busy.
    ports: Mutex<PortBook>,
    creates: Arc<Semaphore>,
    prober: Prober,
    memory: Mutex<HashMap<String, ClusterMemory>>,
    epoch: Instant,
    proxy: Option<Arc<dyn ProxyBackend>>,
}

#[derive(Default)]
struct PortBook {
    by_cluster: HashMap<String, BTreeSet<u16>>,
    busy: BTreeSet<u16>,
}

fn event(type_: &str, reason: &str, message: impl Into<String>) -> Event {
    Event {
        time: now_rfc3339(),
        type_: type_.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

fn action_kind(a: &Action) -> &'static str {
    match a {
        Action::Create(_) => "create",
        Action::Replace(_) => "replace",
        Action::Start { .. } => "start",
        Action::Restart { .. } => "restart",
        Action::Patch { .. } => "patch",
        Action::PushFiles { .. } => "push_files",
        Action::Delete { .. } => "delete",
    }
}

impl Reconciler {
    /// A reconciler over `store` and `backend`, registering metrics in `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        backend: Arc<dyn ContainerBackend>,
        metrics: ControllerMetrics,
        config: ReconcilerConfig,
    ) -> Self {
        Reconciler {
            store,
            backend,
            metrics,
            creates: Arc::new(Semaphore::new(config.max_concurrent_creates.max(1))),
            prober: Prober::new(config.probe_timeout),
            config,
            caps: Mutex::new(Capabilities::default()),
            ports: Mutex::new(PortBook::default()),
            memory: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            proxy: None,
        }
    }

    /// Manages each cluster's load balancer through `proxy`.
    pub fn with_proxy(mut self, proxy: Arc<dyn ProxyBackend>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The resync period.
    pub fn resync(&self) -> Duration {
        self.config.resync
    }

    /// Learns which host ports every managed instance holds (call once at start).
    pub async fn learn_ports(&self) -> Result<(), ReconcileError> {
        let all = self.backend.list_managed().await?;
        let mut book = self
            .ports
            .lock()
            .map_err(|_| ReconcileError::Spec("port book poisoned".into()))?;
        for o in all {
            if let (Some(c), Some(p)) = (o.config.get(crate::model::KEY_CLUSTER), o.host_port()) {
                book.by_cluster.entry(c.clone()).or_default().insert(p);
            }
        }
        Ok(())
    }

    fn pool_for(&self, cluster: &str) -> PortPool {
        let book = self.ports.lock();
        let mut taken = BTreeSet::new();
        if let Ok(book) = book {
            for (c, ports) in &book.by_cluster {
                if c != cluster {
                    taken.extend(ports.iter().copied());
                }
            }
            taken.extend(book.busy.iter().copied());
        }
        PortPool {
            start: self.config.port_range.0,
            end: self.config.port_range.1,
            taken,
        }
    }

    fn remember_ports(&self, cluster: &str, observed: &[ObservedInstance]) {
        if let Ok(mut book) = self.ports.lock() {
            let ports: BTreeSet<u16> = observed
                .iter()
                .filter_map(ObservedInstance::host_port)
                .collect();
            if ports.is_empty() {
                book.by_cluster.remove(cluster);
            } else {
                book.by_cluster.insert(cluster.to_string(), ports);
            }
        }
    }

    fn caps(&self) -> Capabilities {
        self.caps.lock().map(|c| c.clone()).unwrap_or_default()
    }

    async fn record(&self, name: &str, e: Event) {
        if let Err(err) = self.store.record_event(BOTCLUSTER_KIND, name, e).await {
            tracing::warn!(cluster = name, error = %err, "recording an event failed");
        }
    }

    /// Observes and probes.
    fn with_memory<T>(&self, name: &str, f: impl FnOnce(&mut ClusterMemory) -> T) -> T {
        let mut all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(name.to_string()).or_default())
    }

    /// Observes and probes. With `judge`, failed probes count towards `health.retries` (once
    /// per pass); the second look after executing actions only notices instances that came up.
    async fn observe(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        judge: bool,
    ) -> Result<Vec<ObservedInstance>, ReconcileError> {
        let mut observed = self.backend.list(name).await?;
        if !spec.health.enabled {
            // No health checks asked for: running counts as ready.
            for o in &mut observed {
                o.ready = o.running;
            }
            return Ok(observed);
        }
        let probes = observed.iter().map(|o| {
            let port = o.host_port();
            let running = o.running;
            let prober = self.prober.clone();
            let host = spec.listen_address.clone();
            let path = spec.health.endpoint.clone();
            async move {
                match (running, port) {
                    (true, Some(p)) => Some(prober.probe(&host, p, &path).await),
                    _ => None,
                }
            }
        });
        let results = futures_util::future::join_all(probes).await;
        let changes = self.with_memory(name, |m| {
            m.judge(spec, &mut observed, &results, Instant::now(), judge)
        });
        for c in changes {
            match c {
                HealthChange::BecameUnhealthy { message, .. } => {
                    self.metrics
                        .health_failures
                        .with_label_values(&[name])
                        .inc();
                    self.record(name, event("Warning", "Unhealthy", message))
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
        Ok(observed)
    }

    /// CPU % of the limit (from the change in CPU seconds since the last pass) and memory in
    /// use, per running and ready instance, from its `GET /1.0/instances/NAME/state`.
    async fn sample_load(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
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
        self.with_memory(name, |m| {
            let mut out = HashMap::new();
            for o in observed.iter().filter(|o| o.running) {
                let Some(u) = usage.get(&o.name) else {
                    continue;
                };
                let prev = m.cpu.insert(o.name.clone(), (now, u.cpu_seconds));
                let first = *m.first_sample.entry(o.name.clone()).or_insert(now);
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
        })
    }

    /// The cluster's request rate through its Caddy server over the last window (at least one
    /// check interval). `None`: not collected (no load balancer, or Caddy did not answer);
    /// `Some(None)`: collected, but the first window is not complete yet.
    async fn sample_traffic(
        &self,
        name: &str,
        spec: &BotClusterSpec,
    ) -> Option<Option<crate::health::TrafficRate>> {
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
        Some(self.with_memory(name, |m| m.fold_traffic(Instant::now(), sample, window)))
    }

    /// The autoscaler's count for this pass (the spec's `replicas` when autoscaling is off).
    async fn desired_replicas(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        uid: &str,
        load: &HashMap<String, Load>,
    ) -> u32 {
        let a = &spec.autoscaling;
        if !a.enabled {
            self.with_memory(name, |m| {
                m.desired = None;
                m.decision = None;
            });
            return spec.replicas;
        }
        let limit_bytes = spec
            .resources
            .memory
            .as_ref()
            .and_then(|m| m.bytes().ok())
            .filter(|b| *b > 0);
        let traffic = self.sample_traffic(name, spec).await;
        let now = Instant::now();
        let since_epoch = now.duration_since(self.epoch);
        let ready = observed
            .iter()
            .filter(|o| o.owner_uid() == Some(uid) && o.running && o.ready)
            .count()
            .max(1) as f64;
        let (decision, current) = self.with_memory(name, |m| {
            let mut instances = Vec::new();
            for o in observed
                .iter()
                .filter(|o| o.owner_uid() == Some(uid) && o.running)
            {
                let l = load.get(&o.name);
                let probe = m.health.get(&o.name).and_then(|h| h.last.clone());
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
                    // What clients waited, when requests went through Caddy in the window;
                    // else the operator's own probe latency.
                    response_time_ms: served
                        .and_then(|t| t.response_time_ms)
                        .or_else(|| probe.as_ref().filter(|p| p.ready).map(|p| p.latency_ms)),
                    queue_depth: probe.as_ref().and_then(|p| p.queue_depth),
                });
            }
            let snapshot = botcluster_autoscale::MetricsSnapshot {
                instances,
                // Without a load balancer (or while Caddy does not answer) there is no request
                // rate at all: uncollected, so it neither holds nor causes a scale-down.
                uncollected: if traffic.is_none() {
                    vec![botcluster_api::spec::ScalingMetric::RequestsPerMinute]
                } else {
                    Vec::new()
                },
            };
            let current = m
                .desired
                .unwrap_or(spec.replicas)
                .clamp(a.min_instances, a.max_instances.max(a.min_instances));
            let (decision, history) =
                botcluster_autoscale::decide(a, current, &snapshot, &m.history, since_epoch);
            m.history = history;
            m.desired = Some(decision.desired);
            if decision.scale != botcluster_autoscale::Scale::None {
                m.last_scale = Some(now_rfc3339());
            }
            m.decision = Some(decision.clone());
            (decision, current)
        });
        if decision.scale != botcluster_autoscale::Scale::None {
            let (dir, reason) = if decision.desired > current {
                ("up", "ScaledUp")
            } else {
                ("down", "ScaledDown")
            };
            self.metrics
                .scaling_events
                .with_label_values(&[name, dir])
                .inc();
            let message = decision.event_message(current);
            tracing::info!(cluster = name, %message, "autoscaler");
            self.record(name, event("Normal", reason, message)).await;
        }
        decision.desired
    }

    /// One pass. See the module documentation.
    pub async fn reconcile(&self, name: &str) -> Result<Outcome, ReconcileError> {
        let Some(obj) = self.store.get(BOTCLUSTER_KIND, name).await? else {
            return Ok(Outcome {
                requeue_after: Duration::MAX,
            });
        };
        let spec: BotClusterSpec = serde_json::from_value(obj.spec.clone())
            .map_err(|e| ReconcileError::Spec(e.to_string()))?;
        let uid = obj.meta.uid.clone().unwrap_or_default();
        if obj.is_deleting() {
            return self.teardown(&obj, &spec, &uid).await;
        }
        if !obj.meta.finalizers.iter().any(|f| f == FINALIZER) {
            let mut f = obj.meta.finalizers.clone();
            f.push(FINALIZER.into());
            self.store.set_finalizers(BOTCLUSTER_KIND, name, f).await?;
        }
        let mut observed = self.observe(name, &spec, true).await?;
        self.remember_ports(name, &observed);
        let load = self.sample_load(name, &spec, &observed).await;
        let replicas = self
            .desired_replicas(name, &spec, &observed, &uid, &load)
            .await;
        let caps = self.caps();
        // Scale-down removes the least loaded; start-up CPU is not load.
        for o in &mut observed {
            o.load = load
                .get(&o.name)
                .filter(|l| !l.warming)
                .and_then(|l| l.cpu_percent);
        }
        let desired = Desired {
            name,
            uid: &uid,
            spec: &spec,
            replicas,
            deleting: false,
        };
        let p = plan(&desired, &observed, &caps, &self.pool_for(name));
        let mut failures: Vec<String> = Vec::new();
        let mut acted = false;
        if !p.actions.is_empty() {
            acted = true;
            self.drain(name, &spec, &observed, &p).await;
            failures = self.execute(name, &spec, &p).await;
            observed = self.observe(name, &spec, false).await?;
            self.remember_ports(name, &observed);
        }
        let proxy = self
            .converge_proxy(name, &uid, &spec, &observed, &BTreeSet::new())
            .await;
        let mut status = self
            .status(
                &obj,
                &spec,
                &observed,
                &Pass {
                    plan: &p,
                    failures: &failures,
                    desired: replicas,
                    load: &load,
                },
            )
            .await;
        self.proxy_status(name, &mut status, proxy).await;
        // A stalled rollout waits for a new spec: health-check cadence, not converge polling.
        let rolling = p.pending_replacements > 0 && p.stalled.is_empty();
        let converging = acted || status.ready_replicas < status.desired_replicas || rolling;
        // Health checks and the autoscaler need passes at their own cadence.
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
        self.write_status(&obj, status).await?;
        // Actions that failed for reasons other than a refused limit or a busy port: back off.
        let hard: Vec<&str> = failures
            .iter()
            .filter(|f| !f.is_empty())
            .map(String::as_str)
            .collect();
        if !hard.is_empty() {
            return Err(ReconcileError::Backend(BackendError::Other(
                hard.join("; "),
            )));
        }
        Ok(Outcome {
            requeue_after: if converging {
                self.config.converge_poll.min(period)
            } else {
                period
            },
        })
    }

    async fn teardown(
        &self,
        obj: &StoredObject,
        spec: &BotClusterSpec,
        uid: &str,
    ) -> Result<Outcome, ReconcileError> {
        let name = obj.meta.name.as_str();
        if let Some(proxy) = &self.proxy {
            // Out of the load balancer first, so no request is sent to a container being stopped.
            if let Err(e) = proxy
                .remove_server(&botcluster_proxy::server_name(name))
                .await
            {
                return Err(ReconcileError::Backend(BackendError::Unavailable(format!(
                    "removing the load balancer: {e}"
                ))));
            }
        }
        let observed = self.backend.list(name).await?;
        let desired = Desired {
            name,
            uid,
            spec,
            replicas: 0,
            deleting: true,
        };
        let p = plan(&desired, &observed, &self.caps(), &self.pool_for(name));
        let failures = self.execute(name, spec, &p).await;
        if failures.iter().any(|f| !f.is_empty()) {
            return Err(ReconcileError::Backend(BackendError::Other(
                failures.join("; "),
            )));
        }
        let left = self.backend.list(name).await?;
        let mine = left.iter().filter(|o| o.owner_uid() == Some(uid)).count();
        if mine == 0 {
            if let Ok(mut book) = self.ports.lock() {
                book.by_cluster.remove(name);
            }
            let f: Vec<String> = obj
                .meta
                .finalizers
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            self.store.set_finalizers(BOTCLUSTER_KIND, name, f).await?;
            for g in [
                &self.metrics.instances,
                &self.metrics.ready_instances,
                &self.metrics.desired_instances,
                &self.metrics.updated_instances,
                &self.metrics.rollout_stalled,
            ] {
                let _ = g.remove_label_values(&[name]);
            }
            self.forget_autoscaler_metrics(name);
            tracing::info!(cluster = name, "torn down");
            return Ok(Outcome {
                requeue_after: Duration::MAX,
            });
        }
        Ok(Outcome {
            requeue_after: self.config.converge_poll,
        })
    }

    /// Runs the plan's actions. Returns one string per failed action: empty for failures that
    /// were handled (a refused limit learned, a busy port avoided) and only need a replan.
    async fn execute(&self, name: &str, spec: &BotClusterSpec, p: &Plan) -> Vec<String> {
        let mut failures = Vec::new();
        // Creates run concurrently (bounded globally); everything else in plan order.
        let mut creates = Vec::new();
        for a in &p.actions {
            match a {
                Action::Create(n) => creates.push(n),
                other => {
                    let r = self.run_action(name, spec, other).await;
                    self.note(name, other, r, &mut failures).await;
                }
            }
        }
        let runs = creates.iter().map(|n| async move {
            let a = Action::Create((*n).clone());
            let r = self.run_action(name, spec, &a).await;
            (a, r)
        });
        for (a, r) in futures_util::future::join_all(runs).await {
            self.note(name, &a, r, &mut failures).await;
        }
        failures
    }

    async fn note(
        &self,
        name: &str,
        a: &Action,
        r: Result<(), BackendError>,
        failures: &mut Vec<String>,
    ) {
        let kind = action_kind(a);
        match r {
            Ok(()) => {
                self.metrics
                    .actions
                    .with_label_values(&[kind, "success"])
                    .inc();
                let now = Instant::now();
                match a {
                    Action::Restart { name: inst } => {
                        self.with_memory(name, |m| m.restarted(inst, now))
                    }
                    Action::Replace(n) => self.with_memory(name, |m| m.forget(&n.name)),
                    Action::Delete { name: inst, .. } => self.with_memory(name, |m| m.forget(inst)),
                    _ => {}
                }
                let reason = match a {
                    Action::Create(_) => "Created",
                    Action::Replace(_) => "Replaced",
                    Action::Start { .. } => "Started",
                    Action::Restart { .. } => "Restarted",
                    Action::Patch { .. } => "Updated",
                    Action::PushFiles { .. } => "FilesPushed",
                    Action::Delete { .. } => "Deleted",
                };
                tracing::info!(cluster = name, action = %a.describe(), "done");
                self.record(name, event("Normal", reason, a.describe()))
                    .await;
            }
            Err(e) => {
                self.metrics
                    .actions
                    .with_label_values(&[kind, "error"])
                    .inc();
                match &e {
                    BackendError::Unsupported { key, message } => {
                        if key == "limits.disk.priority" {
                            if let Ok(mut c) = self.caps.lock() {
                                c.disk_priority = false;
                            }
                        }
                        self.record(
                            name,
                            event("Warning", "LimitUnsupported", format!("this LXD host refuses {key} ({message}); continuing without it")),
                        )
                        .await;
                        failures.push(String::new());
                    }
                    BackendError::PortBusy { message, .. } => {
                        if let Action::Create(n) | Action::Replace(n) = a {
                            if let Ok(mut book) = self.ports.lock() {
                                book.busy.insert(n.host_port);
                            }
                        }
                        self.record(
                            name,
                            event(
                                "Warning",
                                "PortBusy",
                                format!("{}: {message}; choosing another port", a.describe()),
                            ),
                        )
                        .await;
                        failures.push(String::new());
                    }
                    _ => {
                        tracing::warn!(cluster = name, action = %a.describe(), error = %e, "failed");
                        self.record(
                            name,
                            event(
                                "Warning",
                                "ActionFailed",
                                format!("{} failed: {e}", a.describe()),
                            ),
                        )
                        .await;
                        failures.push(format!("{}: {e}", a.describe()));
                    }
                }
            }
        }
    }

    async fn run_action(
        &self,
        _cluster: &str,
        spec: &BotClusterSpec,
        a: &Action,
    ) -> Result<(), BackendError> {
        let b = &self.backend;
        match a {
            Action::Create(n) => self.create(spec, n).await,
            Action::Replace(n) => {
                b.stop(&n.name).await?;
                b.delete(&n.name).await?;
                self.create(spec, n).await
            }
            Action::Start { name } => b.start(name).await,
            Action::Restart { name } => b.restart(name).await,
            Action::Patch {
                name,
                config,
                devices,
                remove_devices,
            } => b.patch(name, config, devices, remove_devices).await,
            Action::PushFiles { name, files, hash } => {
                for f in files {
                    b.push_file(name, f).await?;
                }
                let mut c = std::collections::BTreeMap::new();
                c.insert(KEY_FILES.to_string(), hash.clone());
                b.patch(name, &c, &Default::default(), &[]).await
            }
            Action::Delete { name, .. } => {
                b.stop(name).await?;
                b.delete(name).await
            }
        }
    }

    /// Create → push files → record their hash → start. The files hash is written only after
    /// the files are in place, so a crash in between makes the next pass push them again.
    async fn create(&self, spec: &BotClusterSpec, n: &NewInstance) -> Result<(), BackendError> {
        if self.config.check_host_ports {
            let addr = format!("{}:{}", spec.listen_address, n.host_port);
            if let Err(e) = std::net::TcpListener::bind(&addr) {
                return Err(BackendError::PortBusy {
                    port: n.host_port,
                    message: format!("{addr} is in use on this host ({e})"),
                });
            }
        }
        let _permit = self
            .creates
            .acquire()
            .await
            .map_err(|_| BackendError::Other("shutting down".into()))?;
        let mut config = n.config.clone();
        let files_hash = if n.files.is_empty() {
            None
        } else {
            config.remove(KEY_FILES)
        };
        match self
            .backend
            .create(&n.name, &n.image, &n.profiles, &config, &n.devices)
            .await
        {
            Ok(()) => {}
            // A create that landed before a crash: the next steps finish it.
            Err(BackendError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(h) = files_hash {
            for f in &n.files {
                self.backend.push_file(&n.name, f).await?;
            }
            let mut c = std::collections::BTreeMap::new();
            c.insert(KEY_FILES.to_string(), h);
            self.backend
                .patch(&n.name, &c, &Default::default(), &[])
                .await?;
        }
        match self.backend.start(&n.name).await {
            Err(BackendError::PortBusy { message, .. }) => Err(BackendError::PortBusy {
                port: n.host_port,
                message,
            }),
            other => other,
        }
    }

    /// The upstream addresses of the ready instances this cluster owns, minus `leaving`.
    fn upstreams(
        spec: &BotClusterSpec,
        uid: &str,
        observed: &[ObservedInstance],
        leaving: &BTreeSet<String>,
    ) -> Vec<String> {
        let mut ready: Vec<(u32, String)> = observed
            .iter()
            .filter(|o| {
                o.owner_uid() == Some(uid) && o.running && o.ready && !leaving.contains(&o.name)
            })
            .filter_map(|o| {
                Some((
                    o.ordinal()?,
                    format!("{}:{}", spec.listen_address, o.host_port()?),
                ))
            })
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, a)| a).collect()
    }

    /// Makes the cluster's server in the proxy match the ready instances (minus `leaving`).
    /// Writes only when the rendered config differs from what the proxy holds.
    async fn converge_proxy(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        leaving: &BTreeSet<String>,
    ) -> ProxyOutcome {
        let Some(proxy) = &self.proxy else {
            return if spec.load_balancer.as_ref().is_some_and(|lb| lb.enabled) {
                ProxyOutcome::NotConfigured
            } else {
                ProxyOutcome::Disabled
            };
        };
        let server = botcluster_proxy::server_name(name);
        let Some(lb) = spec.load_balancer.as_ref().filter(|lb| lb.enabled) else {
            return match proxy.remove_server(&server).await {
                Ok(true) => {
                    self.metrics
                        .proxy_pushes
                        .with_label_values(&["success"])
                        .inc();
                    self.record(
                        name,
                        event(
                            "Normal",
                            "ProxyRemoved",
                            format!("load balancer {server} removed (spec.loadBalancer is off)"),
                        ),
                    )
                    .await;
                    ProxyOutcome::Disabled
                }
                Ok(false) => ProxyOutcome::Disabled,
                Err(e) => ProxyOutcome::Failed(format!("removing {server}: {e}")),
            };
        };
        let caps = botcluster_proxy::ProxyCapabilities {
            rate_limit: proxy.supports_rate_limit(),
        };
        let upstreams = Self::upstreams(spec, uid, observed, leaving);
        let rendered = botcluster_proxy::render(
            name,
            lb,
            &spec.health,
            &spec.circuit_breaker,
            &upstreams,
            &caps,
        );
        let current = match proxy.get_server(&server).await {
            Ok(c) => c,
            Err(e) => {
                return ProxyOutcome::Failed(format!(
                    "reading {server} from the proxy at {}: {e}",
                    proxy.endpoint()
                ))
            }
        };
        let same = current
            .as_ref()
            .is_some_and(|c| caddy_client::semantically_equal(c, &rendered.server));
        if !same {
            if let Err(e) = proxy.put_server(&server, &rendered.server).await {
                self.metrics
                    .proxy_pushes
                    .with_label_values(&["error"])
                    .inc();
                return ProxyOutcome::Failed(format!(
                    "writing {server} to the proxy at {}: {e}",
                    proxy.endpoint()
                ));
            }
            self.metrics
                .proxy_pushes
                .with_label_values(&["success"])
                .inc();
            let why = if current.is_none() {
                "created"
            } else {
                "updated"
            };
            self.record(
                name,
                event(
                    "Normal",
                    "ProxyUpdated",
                    format!(
                        "load balancer {server} {why}: {} upstream(s) [{}]",
                        upstreams.len(),
                        upstreams.join(", ")
                    ),
                ),
            )
            .await;
        }
        ProxyOutcome::Synced {
            hash: rendered.hash,
            url: botcluster_proxy::listen_url(lb),
            upstreams,
            notices: rendered
                .notices
                .iter()
                .filter(|n| matches!(n, botcluster_proxy::Notice::RateLimitUnsupported { .. }))
                .map(|n| n.message().to_string())
                .collect(),
        }
    }

    /// Before instances are deleted or replaced: take them out of the load balancer and wait
    /// until they have no requests in flight (or `drainTimeout` passes).
    async fn drain(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        p: &Plan,
    ) {
        let (Some(proxy), Some(lb)) = (
            &self.proxy,
            spec.load_balancer.as_ref().filter(|lb| lb.enabled),
        ) else {
            return;
        };
        let Some(uid) = observed
            .iter()
            .find_map(|o| o.owner_uid().map(str::to_string))
        else {
            return;
        };
        let leaving: BTreeSet<String> = p
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Delete { .. } | Action::Replace(_) | Action::Restart { .. }
                )
            })
            .map(|a| a.instance().to_string())
            .filter(|n| {
                observed
                    .iter()
                    .any(|o| &o.name == n && o.running && o.ready)
            })
            .collect();
        if leaving.is_empty() {
            return;
        }
        if let ProxyOutcome::Failed(e) = self
            .converge_proxy(name, &uid, spec, observed, &leaving)
            .await
        {
            tracing::warn!(cluster = name, error = %e, "could not take instances out of the load balancer before removing them");
            return;
        }
        let addrs: BTreeSet<String> = observed
            .iter()
            .filter(|o| leaving.contains(&o.name))
            .filter_map(|o| {
                o.host_port()
                    .map(|p| format!("{}:{p}", spec.listen_address))
            })
            .collect();
        let deadline = Instant::now() + lb.drain_timeout.get();
        loop {
            let busy: u64 = match proxy.upstreams().await {
                Ok(us) => us
                    .iter()
                    .filter(|u| addrs.contains(&u.address))
                    .map(|u| u.num_requests)
                    .sum(),
                Err(_) => 0,
            };
            if busy == 0 || Instant::now() >= deadline {
                let how = if busy == 0 {
                    "drained".to_string()
                } else {
                    format!("drain timeout with {busy} request(s) in flight")
                };
                let who = leaving.iter().cloned().collect::<Vec<_>>().join(", ");
                self.record(
                    name,
                    event(
                        "Normal",
                        "Drained",
                        format!("{who} out of the load balancer ({how})"),
                    ),
                )
                .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn proxy_status(&self, name: &str, status: &mut BotClusterStatus, outcome: ProxyOutcome) {
        let generation = status.observed_generation;
        let now_s = now_rfc3339();
        let cond = |type_: &str, reason: &str, message: String| Condition {
            type_: type_.into(),
            status: ConditionStatus::True,
            reason: reason.into(),
            message,
            last_transition_time: String::new(),
            observed_generation: generation,
        };
        let mut problem: Option<(String, String)> = None;
        let mut rate_limit: Option<String> = None;
        match outcome {
            ProxyOutcome::Disabled => status.proxy = None,
            ProxyOutcome::NotConfigured => {
                let message = "spec.loadBalancer is set but this operator has no proxy: start it with `botctl serve --caddy-admin http://127.0.0.1:2019`".to_string();
                status.proxy = Some(botcluster_api::status::ProxyStatus {
                    synced: false,
                    last_error: Some(message.clone()),
                    ..Default::default()
                });
                problem = Some(("ProxyNotConfigured".into(), message));
            }
            ProxyOutcome::Failed(e) => {
                let prev = status.proxy.take().unwrap_or_default();
                status.proxy = Some(botcluster_api::status::ProxyStatus {
                    synced: false,
                    last_error: Some(e.clone()),
                    ..prev
                });
                problem = Some(("ProxyUnavailable".into(), e));
            }
            ProxyOutcome::Synced {
                hash,
                url,
                upstreams,
                notices,
            } => {
                let live = match &self.proxy {
                    Some(p) => p.upstreams().await.unwrap_or_default(),
                    None => Vec::new(),
                };
                status.proxy = Some(botcluster_api::status::ProxyStatus {
                    synced: true,
                    config_hash: Some(hash),
                    url: Some(url),
                    last_error: None,
                    upstreams: upstreams
                        .iter()
                        .map(|a| {
                            let l = live.iter().find(|u| &u.address == a);
                            botcluster_api::status::UpstreamStatus {
                                address: a.clone(),
                                num_requests: l.map(|u| u.num_requests).unwrap_or(0),
                                fails: l.map(|u| u.fails).unwrap_or(0),
                            }
                        })
                        .collect(),
                });
                if !notices.is_empty() {
                    rate_limit = Some(notices.join("; "));
                }
            }
        }
        match rate_limit {
            None => status
                .conditions
                .retain(|c| c.type_ != "RateLimitUnsupported"),
            Some(message) => {
                let before = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "RateLimitUnsupported" && c.message == message);
                set_condition(
                    &mut status.conditions,
                    cond("RateLimitUnsupported", "NoRateLimitModule", message.clone()),
                    &now_s,
                );
                if !before {
                    self.record(name, event("Warning", "RateLimitUnsupported", message))
                        .await;
                }
            }
        }
        if let Some((reason, message)) = problem {
            let (reason, message) = match status.conditions.iter().find(|c| c.type_ == "Degraded") {
                Some(d) if d.status == ConditionStatus::True && d.reason != reason => (
                    format!("{},{reason}", d.reason),
                    format!("{}; {message}", d.message),
                ),
                _ => (reason, message),
            };
            let before = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.message == message);
            set_condition(
                &mut status.conditions,
                cond("Degraded", &reason, message.clone()),
                &now_s,
            );
            if !before {
                self.record(name, event("Warning", &reason, message)).await;
            }
        }
    }

    async fn status(
        &self,
        obj: &StoredObject,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        pass: &Pass<'_>,
    ) -> BotClusterStatus {
        let (p, failures, desired, load) = (pass.plan, pass.failures, pass.desired, pass.load);
        let name = obj.meta.name.as_str();
        let uid = obj.meta.uid.as_deref().unwrap_or("");
        let mut prev: BotClusterStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        let mut instances: Vec<InstanceStatus> = Vec::new();
        let last_probe: HashMap<String, (u32, Option<String>)> = self.with_memory(name, |m| {
            m.health
                .iter()
                .map(|(n, h)| {
                    (
                        n.clone(),
                        (h.fails, h.last.as_ref().and_then(|p| p.message.clone())),
                    )
                })
                .collect()
        });
        for g in [&self.metrics.instance_cpu, &self.metrics.instance_memory] {
            for i in &prev.instances {
                let _ = g.remove_label_values(&[name, &i.name]);
            }
        }
        for o in observed.iter().filter(|o| o.owner_uid() == Some(uid)) {
            let l = load.get(&o.name);
            let cpu_percent = l.and_then(|l| l.cpu_percent);
            if let Some(c) = cpu_percent {
                self.metrics
                    .instance_cpu
                    .with_label_values(&[name, &o.name])
                    .set(c);
            }
            if let Some(m) = l.and_then(|l| l.memory_bytes) {
                self.metrics
                    .instance_memory
                    .with_label_values(&[name, &o.name])
                    .set(m as f64);
            }
            let (fails, probe_msg) = last_probe.get(&o.name).cloned().unwrap_or((0, None));
            let port = o.host_port();
            instances.push(InstanceStatus {
                name: o.name.clone(),
                ordinal: o.ordinal().unwrap_or(0),
                state: o.status.clone(),
                host_port: port,
                url: port.map(|p| format!("http://{}:{p}", spec.listen_address)),
                ready: o.running && o.ready,
                health: Some(
                    if !o.running {
                        "stopped"
                    } else if o.unhealthy != crate::plan::Unhealthy::No {
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
                cpu_percent,
                memory_bytes: l.and_then(|l| l.memory_bytes),
                message: if !o.running {
                    Some(format!("LXD reports {}", o.status))
                } else if o.ready {
                    None
                } else {
                    probe_msg.map(|m| format!("{m} ({fails} failed in a row)"))
                },
            });
        }
        instances.sort_by_key(|i| i.ordinal);
        let ready = instances.iter().filter(|i| i.ready).count() as u32;
        let replicas = instances.len() as u32;
        let generation = obj.meta.generation.unwrap_or(0);
        let now_s = now_rfc3339();
        let cond = |type_: &str, ok: bool, reason: &str, message: String| Condition {
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
        };
        let template = crate::model::template_hash(spec);
        let updated = observed
            .iter()
            .filter(|o| {
                o.owner_uid() == Some(uid)
                    && o.config.get(crate::model::KEY_TEMPLATE) == Some(&template)
            })
            .count() as u32;
        let all_ready = ready == desired && replicas == desired && p.pending_replacements == 0;
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
        if spec.resources.disk_priority.is_some() && !self.caps().disk_priority {
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
        let stall = (!p.stalled.is_empty()).then(|| stalled_message(p, &last_probe));
        if let Some(m) = &stall {
            problems.push(("RolloutStalled".into(), m.clone()));
        }
        let hard: Vec<&String> = failures.iter().filter(|f| !f.is_empty()).collect();
        if !hard.is_empty() {
            problems.push((
                "ActionFailed".into(),
                hard.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let mut conditions = prev.conditions.clone();
        set_condition(
            &mut conditions,
            cond(
                "Ready",
                all_ready,
                if all_ready { "AllReady" } else { "NotAllReady" },
                format!("{ready}/{desired} instances ready"),
            ),
            &now_s,
        );
        // Like a Deployment past its progress deadline: a stalled rollout is not progressing.
        let stalled = stall.is_some();
        let progressing = (!all_ready || !p.actions.is_empty()) && !stalled;
        set_condition(
            &mut conditions,
            cond(
                "Progressing",
                progressing,
                if stalled {
                    "RolloutStalled"
                } else if p.pending_replacements > 0 {
                    "RollingUpdate"
                } else if progressing {
                    "Converging"
                } else {
                    "Converged"
                },
                if let Some(m) = stall {
                    m
                } else if p.pending_replacements > 0 {
                    format!(
                        "rolling update: {updated}/{desired} instances on the current spec, {ready} ready; {} waiting for new ones to get ready",
                        p.pending_replacements
                    )
                } else if progressing {
                    format!(
                        "{} action(s) this pass; {replicas} exist, {ready} ready, {desired} wanted",
                        p.actions.len()
                    )
                } else {
                    "every instance matches the spec".into()
                },
            ),
            &now_s,
        );
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
        let before = prev
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .map(|c| (c.status, c.message.clone()));
        set_condition(
            &mut conditions,
            cond("Degraded", degraded, &reason, message.clone()),
            &now_s,
        );
        if degraded && before != Some((ConditionStatus::True, message.clone())) {
            self.record(name, event("Warning", &reason, message)).await;
        }
        self.metrics
            .instances
            .with_label_values(&[name])
            .set(replicas as i64);
        self.metrics
            .ready_instances
            .with_label_values(&[name])
            .set(ready as i64);
        self.metrics
            .desired_instances
            .with_label_values(&[name])
            .set(desired as i64);
        self.metrics
            .updated_instances
            .with_label_values(&[name])
            .set(updated as i64);
        self.metrics
            .rollout_stalled
            .with_label_values(&[name])
            .set(i64::from(stalled));
        prev.observed_generation = generation;
        prev.conditions = conditions;
        prev.replicas = replicas;
        prev.ready_replicas = ready;
        prev.desired_replicas = desired;
        prev.updated_replicas = updated;
        prev.instances = instances;
        prev.backoff = None;
        // The autoscaler's view and its conditions.
        let a = &spec.autoscaling;
        let decision = self.with_memory(name, |m| {
            m.decision.clone().map(|d| (d, m.last_scale.clone()))
        });
        match decision.filter(|_| a.enabled) {
            Some((d, last_scale)) => {
                self.metrics
                    .max_instances
                    .with_label_values(&[name])
                    .set(a.max_instances as i64);
                self.forget_autoscaler_metrics(name);
                for (metric, v) in &d.metrics {
                    self.metrics
                        .autoscaler_metric
                        .with_label_values(&[name, metric])
                        .set(*v);
                }
                prev.autoscaler = Some(botcluster_api::status::AutoscalerStatus {
                    current_metrics: d
                        .metrics
                        .iter()
                        .map(|(k, v)| (k.clone(), (v * 10.0).round() / 10.0))
                        .collect(),
                    desired_replicas: d.desired,
                    decided_by: d.decided_by.clone(),
                    last_scale_time: last_scale,
                    message: Some(d.reason.clone()),
                });
                let at_max = d.limited_by == Some(botcluster_autoscale::Limit::MaxInstances);
                set_condition(
                    &mut prev.conditions,
                    cond(
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
                    ),
                    &now_s,
                );
                // Create the series at 0, so the first error is an increase alerts can see.
                let _ = self.metrics.scaling_errors.with_label_values(&[name]);
                let scaling_failed = !hard.is_empty() && replicas != desired;
                if scaling_failed {
                    self.metrics.scaling_errors.with_label_values(&[name]).inc();
                }
                set_condition(
                    &mut prev.conditions,
                    cond(
                        "ScalingFailed",
                        scaling_failed,
                        if scaling_failed {
                            "ActionsFailed"
                        } else {
                            "AsExpected"
                        },
                        if scaling_failed {
                            format!(
                                "scaling to {desired} failed: {}",
                                hard.iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            )
                        } else {
                            "no scaling errors".into()
                        },
                    ),
                    &now_s,
                );
            }
            None => {
                prev.autoscaler = None;
                let _ = self.metrics.max_instances.remove_label_values(&[name]);
                self.forget_autoscaler_metrics(name);
                prev.conditions
                    .retain(|c| c.type_ != "MaxInstancesReached" && c.type_ != "ScalingFailed");
            }
        }
        prev
    }

    /// Drops the cluster's `botcluster_autoscaler_metric` series (a metric can stop being
    /// reported, and a deleted cluster leaves none behind).
    fn forget_autoscaler_metrics(&self, name: &str) {
        for m in botcluster_autoscale::METRICS {
            let _ = self
                .metrics
                .autoscaler_metric
                .remove_label_values(&[name, botcluster_autoscale::metric_name(m)]);
        }
    }

    async fn write_status(
        &self,
        obj: &StoredObject,
        status: BotClusterStatus,
    ) -> Result<(), ReconcileError> {
        let v = serde_json::to_value(&status).map_err(|e| ReconcileError::Spec(e.to_string()))?;
        match self
            .store
            .update_status(BOTCLUSTER_KIND, &obj.meta.name, v, None)
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a failed pass in status: backoff and a Degraded condition.
    pub async fn report_failure(
        &self,
        name: &str,
        failures: u32,
        retry_after: Duration,
        error: &str,
    ) {
        let Ok(Some(obj)) = self.store.get(BOTCLUSTER_KIND, name).await else {
            return;
        };
        let mut status: BotClusterStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        status.backoff = Some(botcluster_api::status::BackoffStatus {
            failures,
            retry_after_seconds: retry_after.as_secs_f64(),
            last_error: error.to_string(),
        });
        let cond = Condition {
            type_: "Degraded".into(),
            status: ConditionStatus::True,
            reason: "ReconcileError".into(),
            message: format!(
                "{error} (attempt {failures}, retrying in {:.0?})",
                retry_after
            ),
            last_transition_time: String::new(),
            observed_generation: obj.meta.generation.unwrap_or(0),
        };
        let was_failing = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.reason == "ReconcileError");
        set_condition(&mut status.conditions, cond, &now_rfc3339());
        if !was_failing {
            self.record(name, event("Warning", "ReconcileError", error))
                .await;
        }
        let _ = self.write_status(&obj, status).await;
    }

    /// What reconciling `desired` would do now (for dry runs and `botctl diff`).
    pub async fn preview_actions(&self, desired: &BotCluster) -> Result<Vec<String>, String> {
        let name = desired.name();
        let stored = self
            .store
            .get(BOTCLUSTER_KIND, name)
            .await
            .map_err(|e| e.to_string())?;
        let uid = stored
            .and_then(|o| o.meta.uid)
            .unwrap_or_else(|| "(new)".into());
        let observed = self
            .observe(name, &desired.spec, false)
            .await
            .map_err(|e| e.to_string())?;
        let d = Desired {
            name,
            uid: &uid,
            spec: &desired.spec,
            replicas: desired.spec.replicas,
            deleting: false,
        };
        let p = plan(&d, &observed, &self.caps(), &self.pool_for(name));
        let mut out: Vec<String> = p.actions.iter().map(Action::describe).collect();
        out.extend(
            p.conflicts
                .iter()
                .map(|c| format!("skip {}: it exists and is {}", c.name, c.owner)),
        );
        out.extend(p.blocked.iter().cloned());
        if !p.stalled.is_empty() {
            out.push(format!(
                "rolling update stopped: {} never got healthy",
                p.stalled.join(", ")
            ));
        }
        if p.pending_replacements > 0 {
            out.push(format!(
                "{} more instance(s) to replace after these are ready",
                p.pending_replacements
            ));
        }
        Ok(out)
    }
}

/// Why a rolling update stopped, and what to do about it.
fn stalled_message(
    p: &crate::plan::Plan,
    last_probe: &HashMap<String, (u32, Option<String>)>,
) -> String {
    let why: Vec<String> = p
        .stalled
        .iter()
        .map(|n| match last_probe.get(n).and_then(|(_, m)| m.clone()) {
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

/// Dry runs through the HTTP API ask the reconciler.
pub struct Preview(pub Arc<Reconciler>);

#[async_trait]
impl botcluster_server::PlanPreview for Preview {
    async fn preview(&self, desired: &BotCluster) -> Result<Vec<String>, String> {
        self.0.preview_actions(desired).await
    }
}

/// What converging the load balancer gave.
enum ProxyOutcome {
    /// No load balancer in the spec (and none left in the proxy).
    Disabled,
    /// The spec wants one but the operator has no proxy.
    NotConfigured,
    /// Reading or writing the proxy failed.
    Failed(String),
    /// The proxy holds the rendered config.
    Synced {
        hash: String,
        url: String,
        upstreams: Vec<String>,
        notices: Vec<String>,
    },
}

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

/// What one pass decided and did, for status.
struct Pass<'a> {
    plan: &'a Plan,
    failures: &'a [String],
    desired: u32,
    load: &'a HashMap<String, Load>,
}
