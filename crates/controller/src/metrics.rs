//! Prometheus metrics of the controller, with controller-runtime's names where they exist.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Label value of `controller` in controller-runtime metrics.
pub const CONTROLLER: &str = "botcluster";

/// The controller's metrics.
#[derive(Clone)]
pub struct ControllerMetrics {
    /// `controller_runtime_reconcile_total{controller,result}`.
    pub reconcile_total: IntCounterVec,
    /// `controller_runtime_reconcile_errors_total{controller}`.
    pub reconcile_errors: IntCounter,
    /// `controller_runtime_reconcile_time_seconds{controller}`.
    pub reconcile_time: Histogram,
    /// `controller_runtime_active_workers{controller}`.
    pub active_workers: IntGauge,
    /// `controller_runtime_max_concurrent_reconciles{controller}`.
    pub max_concurrent: IntGauge,
    /// `workqueue_depth{name}`.
    pub queue_depth: IntGauge,
    /// `workqueue_adds_total{name}`.
    pub queue_adds: IntCounter,
    /// `workqueue_retries_total{name}`.
    pub queue_retries: IntCounter,
    /// `botcluster_actions_total{action,result}`: executed plan actions.
    pub actions: IntCounterVec,
    /// `botcluster_instances{cluster}`: instances that exist.
    pub instances: IntGaugeVec,
    /// `botcluster_ready_instances{cluster}`.
    pub ready_instances: IntGaugeVec,
    /// `botcluster_desired_instances{cluster}`.
    pub desired_instances: IntGaugeVec,
    /// `botcluster_updated_instances{cluster}`: instances made from the current spec.
    pub updated_instances: IntGaugeVec,
    /// `botcluster_rollout_stalled{cluster}`: 1 while a rolling update is stopped.
    pub rollout_stalled: IntGaugeVec,
    /// `botcluster_autoscaler_metric{cluster,metric}`: the average the autoscaler last saw.
    pub autoscaler_metric: prometheus::GaugeVec,
    /// `botcluster_shard_map_version{cluster}`: the published shard map's version.
    pub shard_map_version: IntGaugeVec,
    /// `botcluster_shard_rebalance_pending{cluster}`: 1 while a rebalance waits for approval.
    pub shard_rebalance_pending: IntGaugeVec,
    /// `botcluster_shard_share{cluster,shard}`: a shard's share of the keys (0..1); shards are
    /// at most 1024 per cluster (validation).
    pub shard_share: prometheus::GaugeVec,
    /// `botcluster_lxd_requests_total{method,path,code}`.
    pub lxd_requests: IntCounterVec,
    /// `botcluster_proxy_config_pushes_total{result}`: writes of a cluster's proxy config.
    pub proxy_pushes: IntCounterVec,
    /// `botcluster_health_failures_total{cluster}`: instances that turned unhealthy.
    pub health_failures: IntCounterVec,
    /// `botcluster_scaling_events_total{cluster,direction}`.
    pub scaling_events: IntCounterVec,
    /// `botcluster_scaling_errors_total{cluster}`.
    pub scaling_errors: IntCounterVec,
    /// `botcluster_max_instances{cluster}`.
    pub max_instances: IntGaugeVec,
    /// `botcluster_instance_cpu_percent{cluster,instance}`.
    pub instance_cpu: prometheus::GaugeVec,
    /// `botcluster_instance_memory_bytes{cluster,instance}`.
    pub instance_memory: prometheus::GaugeVec,
    /// `botcluster_lxd_request_duration_seconds{method,path}`.
    pub lxd_latency: HistogramVec,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // A second controller in the same registry (tests) keeps the first's collectors.
    let _ = r.register(Box::new(c.clone()));
    c
}

impl ControllerMetrics {
    /// Creates and registers the metrics of the BotCluster controller.
    pub fn new(r: &Registry) -> Self {
        Self::named(r, CONTROLLER)
    }

    /// Creates and registers the metrics of the controller `controller` (the value of the
    /// `controller` and `name` labels of the controller-runtime and workqueue metrics, so a
    /// second kind's controller reports apart; the `botcluster_*` metrics are shared).
    pub fn named(r: &Registry, controller: &str) -> Self {
        let c =
            |name: &str, help: &str| Opts::new(name, help).const_label("controller", controller);
        let q = |name: &str, help: &str| Opts::new(name, help).const_label("name", controller);
        ControllerMetrics {
            reconcile_total: reg(
                r,
                IntCounterVec::new(
                    c(
                        "controller_runtime_reconcile_total",
                        "Reconciliations by result",
                    ),
                    &["result"],
                )
                .expect("static"),
            ),
            reconcile_errors: reg(
                r,
                IntCounter::with_opts(c(
                    "controller_runtime_reconcile_errors_total",
                    "Failed reconciliations",
                ))
                .expect("static"),
            ),
            reconcile_time: reg(
                r,
                Histogram::with_opts(
                    HistogramOpts::from(c(
                        "controller_runtime_reconcile_time_seconds",
                        "Time per reconciliation",
                    ))
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
                )
                .expect("static"),
            ),
            active_workers: reg(
                r,
                IntGauge::with_opts(c(
                    "controller_runtime_active_workers",
                    "Workers reconciling now",
                ))
                .expect("static"),
            ),
            max_concurrent: reg(
                r,
                IntGauge::with_opts(c(
                    "controller_runtime_max_concurrent_reconciles",
                    "Worker bound",
                ))
                .expect("static"),
            ),
            queue_depth: reg(
                r,
                IntGauge::with_opts(q("workqueue_depth", "Keys waiting in the work queue"))
                    .expect("static"),
            ),
            queue_adds: reg(
                r,
                IntCounter::with_opts(q("workqueue_adds_total", "Keys added to the work queue"))
                    .expect("static"),
            ),
            queue_retries: reg(
                r,
                IntCounter::with_opts(q("workqueue_retries_total", "Keys requeued after an error"))
                    .expect("static"),
            ),
            actions: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "botcluster_actions_total",
                        "Executed plan actions by kind and result",
                    ),
                    &["action", "result"],
                )
                .expect("static"),
            ),
            instances: reg(
                r,
                IntGaugeVec::new(
                    Opts::new("botcluster_instances", "Containers that exist, per cluster"),
                    &["cluster"],
                )
                .expect("static"),
            ),
            ready_instances: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_ready_instances",
                        "Containers passing their readiness probe, per cluster",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            desired_instances: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_desired_instances",
                        "Containers wanted, per cluster",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            updated_instances: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_updated_instances",
                        "Containers made from the cluster's current spec (image and profiles)",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            shard_map_version: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_shard_map_version",
                        "Version of the cluster's published shard map",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            shard_rebalance_pending: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_shard_rebalance_pending",
                        "1 while a shard rebalance waits for approval",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            shard_share: reg(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "botcluster_shard_share",
                        "A shard's share of the keys under the published map (0..1)",
                    ),
                    &["cluster", "shard"],
                )
                .expect("static"),
            ),
            rollout_stalled: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "botcluster_rollout_stalled",
                        "1 while a rolling update is stopped because a new container never got healthy",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            autoscaler_metric: reg(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "botcluster_autoscaler_metric",
                        "Average over the cluster's instances of each metric the autoscaler last saw (cpu and memory in %, requestsPerMinute per instance, responseTimeMs, queueDepth)",
                    ),
                    &["cluster", "metric"],
                )
                .expect("static"),
            ),
            health_failures: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "botcluster_health_failures_total",
                        "Instances that failed health.retries probes in a row",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            scaling_events: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "botcluster_scaling_events_total",
                        "Autoscaler decisions that changed the instance count",
                    ),
                    &["cluster", "direction"],
                )
                .expect("static"),
            ),
            scaling_errors: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "botcluster_scaling_errors_total",
                        "Passes in which scaling actions failed",
                    ),
                    &["cluster"],
                )
                .expect("static"),
            ),
            max_instances: reg(
                r,
                IntGaugeVec::new(
                    Opts::new("botcluster_max_instances", "spec.autoscaling.maxInstances"),
                    &["cluster"],
                )
                .expect("static"),
            ),
            instance_cpu: reg(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "botcluster_instance_cpu_percent",
                        "CPU use as % of the container's limits.cpu",
                    ),
                    &["cluster", "instance"],
                )
                .expect("static"),
            ),
            instance_memory: reg(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "botcluster_instance_memory_bytes",
                        "Memory in use by the container",
                    ),
                    &["cluster", "instance"],
                )
                .expect("static"),
            ),
            proxy_pushes: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "botcluster_proxy_config_pushes_total",
                        "Load-balancer config writes by result",
                    ),
                    &["result"],
                )
                .expect("static"),
            ),
            lxd_requests: reg(
                r,
                IntCounterVec::new(
                    Opts::new("botcluster_lxd_requests_total", "LXD API requests"),
                    &["method", "path", "code"],
                )
                .expect("static"),
            ),
            lxd_latency: reg(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "botcluster_lxd_request_duration_seconds",
                        "LXD API request latency",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                    &["method", "path"],
                )
                .expect("static"),
            ),
        }
    }
}

/// Feeds the LXD client's request hook into Prometheus.
pub struct LxdObserver(pub ControllerMetrics);

impl lxd_client::RequestObserver for LxdObserver {
    fn observe(&self, method: &str, path_kind: &str, status: u16, elapsed: Duration) {
        self.0
            .lxd_requests
            .with_label_values(&[method, path_kind, &status.to_string()])
            .inc();
        self.0
            .lxd_latency
            .with_label_values(&[method, path_kind])
            .observe(elapsed.as_secs_f64());
    }
}
