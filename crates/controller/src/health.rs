//! What the reconciler remembers between passes about each cluster: probe history per
//! instance (for `health.retries`), restart attempts, CPU samples, and the autoscaler's history.
//!
//! This memory is an optimisation, not a source of truth: after an operator restart it starts
//! empty, which only means an unhealthy instance is judged again from scratch and the
//! autoscaler waits one `cooldown` before scaling down.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use botcluster_api::spec::{BotClusterSpec, HealthCheck};

use crate::plan::{ObservedInstance, Unhealthy};
use crate::probe::ProbeResult;
use crate::proxy::ServerTraffic;

/// Per-instance health memory.
#[derive(Clone, Debug)]
pub struct InstanceHealth {
    /// Failed probes in a row.
    pub fails: u32,
    /// Passed a probe since it (re)started.
    pub passed: bool,
    /// A restart was tried for this unhealthy streak.
    pub restarted: bool,
    /// When this streak of life began (first seen running, or restarted).
    pub since: Instant,
    /// The last probe.
    pub last: Option<ProbeResult>,
}

/// Per-cluster memory.
#[derive(Clone, Default)]
pub struct ClusterMemory {
    /// By instance name.
    pub health: HashMap<String, InstanceHealth>,
    /// CPU seconds by instance at the last sample.
    pub cpu: HashMap<String, (Instant, f64)>,
    /// When each instance was first sampled (start-up CPU is not load).
    pub first_sample: HashMap<String, Instant>,
    /// The autoscaler's history.
    pub history: botcluster_autoscale::History,
    /// The autoscaler's last desired count.
    pub desired: Option<u32>,
    /// RFC 3339 time of the last scaling.
    pub last_scale: Option<String>,
    /// The last decision, for status.
    pub decision: Option<botcluster_autoscale::Decision>,
    /// Caddy's counters for this cluster's server when the current rate window began.
    pub traffic_base: Option<(Instant, ServerTraffic)>,
    /// The request rate measured over the last complete window.
    pub traffic_rate: Option<TrafficRate>,
}

/// What the load balancer saw of a cluster over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrafficRate {
    /// Requests proxied to the cluster per minute (all instances together).
    pub requests_per_minute: f64,
    /// Mean time Caddy spent per completed request, in milliseconds; `None` when no request
    /// completed in the window.
    pub response_time_ms: Option<f64>,
}

/// How long a new or restarted instance may fail its probes before they count: it is still
/// booting.
pub fn startup_grace(h: &HealthCheck) -> Duration {
    (h.interval.get() * h.retries.max(1)).max(Duration::from_secs(10))
}

/// How long after an instance is first sampled its CPU is ignored by the autoscaler: booting
/// burns CPU that is not load (Kubernetes' HPA has the same rule, its
/// `cpu-initialization-period`).
pub const CPU_WARMUP: Duration = Duration::from_secs(10);

/// A transition worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthChange {
    /// Crossed `retries` failures.
    BecameUnhealthy { name: String, message: String },
    /// Passed again after being unhealthy.
    Recovered { name: String },
}

impl ClusterMemory {
    /// Folds this pass's probe results into the memory and sets `ready` and `unhealthy` on each
    /// observed instance. Returns the transitions. With `count_failures` false (a second look
    /// in the same pass), passes count but failures do not, so one pass is one probe.
    pub fn judge(
        &mut self,
        spec: &BotClusterSpec,
        observed: &mut [ObservedInstance],
        probes: &[Option<ProbeResult>],
        now: Instant,
        count_failures: bool,
    ) -> Vec<HealthChange> {
        let retries = spec.health.retries.max(1);
        let grace = startup_grace(&spec.health);
        let mut changes = Vec::new();
        let mut alive = std::collections::HashSet::new();
        for (o, p) in observed.iter_mut().zip(probes) {
            let Some(p) = p else {
                o.ready = false;
                continue;
            };
            alive.insert(o.name.clone());
            let h = self.health.entry(o.name.clone()).or_insert(InstanceHealth {
                fails: 0,
                passed: false,
                restarted: false,
                since: now,
                last: None,
            });
            let was_unhealthy = h.fails >= retries;
            if p.ready {
                if was_unhealthy {
                    changes.push(HealthChange::Recovered {
                        name: o.name.clone(),
                    });
                }
                h.fails = 0;
                h.passed = true;
                h.restarted = false;
            } else if count_failures {
                h.fails += 1;
            }
            h.last = Some(p.clone());
            // Ready: has passed since it started, and has not failed `retries` in a row.
            o.ready = h.passed && h.fails < retries;
            let judged = h.passed || now.duration_since(h.since) >= grace;
            o.unhealthy = if h.fails >= retries && judged {
                if !was_unhealthy || h.fails == retries {
                    changes.push(HealthChange::BecameUnhealthy {
                        name: o.name.clone(),
                        message: format!(
                            "{} failed {} health check(s) in a row: {}",
                            o.name,
                            h.fails,
                            p.message.clone().unwrap_or_else(|| p.health.clone())
                        ),
                    });
                }
                if h.restarted {
                    Unhealthy::Replace
                } else {
                    Unhealthy::Restart
                }
            } else {
                Unhealthy::No
            };
        }
        // Forget instances that are gone or stopped.
        self.health.retain(|n, _| alive.contains(n));
        changes
    }

    /// Records that `name` was restarted: a fresh streak with a grace period.
    pub fn restarted(&mut self, name: &str, now: Instant) {
        if let Some(h) = self.health.get_mut(name) {
            h.fails = 0;
            h.passed = false;
            h.restarted = true;
            h.since = now;
        }
    }

    /// Folds one reading of Caddy's counters in and returns the rate over the last window of at
    /// least `window`: counters are totals since Caddy started, so a rate needs two readings.
    /// `None` until the first window completes, and again after the counters go backwards
    /// (Caddy restarted).
    pub fn fold_traffic(
        &mut self,
        now: Instant,
        sample: ServerTraffic,
        window: Duration,
    ) -> Option<TrafficRate> {
        let Some((t0, base)) = &self.traffic_base else {
            self.traffic_base = Some((now, sample));
            return None;
        };
        let Some(d) = sample.since(base) else {
            // Caddy restarted: its counters began again at zero.
            self.traffic_base = Some((now, sample));
            self.traffic_rate = None;
            return None;
        };
        let dt = now.duration_since(*t0);
        if dt < window || dt.is_zero() {
            return self.traffic_rate;
        }
        let rate = TrafficRate {
            requests_per_minute: d.requests_total / (dt.as_secs_f64() / 60.0),
            response_time_ms: (d.duration_seconds_count > 0.0)
                .then(|| d.duration_seconds_sum / d.duration_seconds_count * 1000.0),
        };
        self.traffic_base = Some((now, sample));
        self.traffic_rate = Some(rate);
        self.traffic_rate
    }

    /// Forgets `name` (replaced or deleted).
    pub fn forget(&mut self, name: &str) {
        self.health.remove(name);
        self.cpu.remove(name);
        self.first_sample.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(requests: f64, seconds: f64) -> ServerTraffic {
        ServerTraffic {
            requests_total: requests,
            errors_total: 0.0,
            duration_seconds_sum: seconds,
            duration_seconds_count: requests,
        }
    }

    #[test]
    fn traffic_rates_come_from_two_readings_a_window_apart() {
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        assert_eq!(m.fold_traffic(t0, t(100.0, 10.0), w), None);
        // Too soon: no rate yet.
        assert_eq!(
            m.fold_traffic(t0 + Duration::from_secs(2), t(110.0, 11.0), w),
            None
        );
        // 10 s later, 200 more requests taking 40 s in all: 1200/min, 200 ms each.
        let r = m
            .fold_traffic(t0 + Duration::from_secs(10), t(300.0, 50.0), w)
            .unwrap();
        assert!((r.requests_per_minute - 1200.0).abs() < 1e-9);
        assert!((r.response_time_ms.unwrap() - 200.0).abs() < 1e-9);
        // Within the next window the last rate stands.
        assert_eq!(
            m.fold_traffic(t0 + Duration::from_secs(11), t(301.0, 50.1), w),
            Some(r)
        );
        // Idle: 0 requests per minute and no response time.
        let idle = m
            .fold_traffic(t0 + Duration::from_secs(20), t(300.0, 50.0), w)
            .unwrap();
        assert_eq!(idle.requests_per_minute, 0.0);
        assert_eq!(idle.response_time_ms, None);
        // Caddy restarted: counters went back, so no rate until a new window completes.
        assert_eq!(
            m.fold_traffic(t0 + Duration::from_secs(30), t(5.0, 1.0), w),
            None
        );
        assert!(m
            .fold_traffic(t0 + Duration::from_secs(36), t(65.0, 4.0), w)
            .is_some_and(|r| (r.requests_per_minute - 600.0).abs() < 1e-9));
    }
}
