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
    /// The `Unhealthy` event for the current failing streak was emitted (once per streak; the
    /// streak may cross `retries` inside the start-up grace, before it is judged).
    pub reported: bool,
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
                reported: false,
                last: None,
            });
            if p.ready {
                // Only what was reported unhealthy recovers: a booting instance failing its
                // first probes inside the grace was never out of service in anyone's eyes.
                if h.reported {
                    changes.push(HealthChange::Recovered {
                        name: o.name.clone(),
                    });
                }
                h.fails = 0;
                h.passed = true;
                h.restarted = false;
                h.reported = false;
            } else if count_failures {
                h.fails += 1;
            }
            h.last = Some(p.clone());
            // Ready: has passed since it started, and has not failed `retries` in a row.
            o.ready = h.passed && h.fails < retries;
            let judged = h.passed || now.duration_since(h.since) >= grace;
            o.unhealthy = if h.fails >= retries && judged {
                // Once per streak. (Keyed on the count, this missed a streak that crossed
                // `retries` inside the grace, and repeated itself on a second look.)
                if !h.reported {
                    h.reported = true;
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
            h.reported = false;
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

    const SEC: Duration = Duration::from_secs(1);

    /// retries 3, interval 10 s: a start-up grace of 30 s.
    fn spec(retries: u32) -> BotClusterSpec {
        serde_json::from_value(serde_json::json!({
            "image": "img",
            "health": {"retries": retries, "interval": "10s"},
        }))
        .unwrap()
    }

    fn running(name: &str) -> ObservedInstance {
        ObservedInstance {
            name: name.into(),
            running: true,
            status: "Running".into(),
            ..Default::default()
        }
    }

    fn probe(ready: bool) -> Option<ProbeResult> {
        Some(ProbeResult {
            ready,
            health: if ready { "healthy" } else { "unreachable" }.into(),
            message: (!ready).then(|| "connection refused".into()),
            latency_ms: 1.0,
            queue_depth: None,
            connections: None,
        })
    }

    /// One pass over one instance `web-0`: its verdict and the transitions.
    fn pass(
        m: &mut ClusterMemory,
        s: &BotClusterSpec,
        ready: bool,
        at: Instant,
        count_failures: bool,
    ) -> (ObservedInstance, Vec<HealthChange>) {
        let mut obs = [running("web-0")];
        let changes = m.judge(s, &mut obs, &[probe(ready)], at, count_failures);
        let [o] = obs;
        (o, changes)
    }

    fn unhealthy_events(c: &[HealthChange]) -> usize {
        c.iter()
            .filter(|c| matches!(c, HealthChange::BecameUnhealthy { .. }))
            .count()
    }

    #[test]
    fn retries_failures_in_a_row_make_a_serving_instance_unhealthy_then_restart_then_replace() {
        let s = spec(3);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        let (o, c) = pass(&mut m, &s, true, t0, true);
        assert!(o.ready && c.is_empty());
        assert_eq!(o.unhealthy, Unhealthy::No);
        // Two failures: out of nothing yet, still ready (retries not reached).
        for i in 1..=2 {
            let (o, c) = pass(&mut m, &s, false, t0 + 10 * i * SEC, true);
            assert!(o.ready, "after {i} failure(s)");
            assert_eq!(o.unhealthy, Unhealthy::No);
            assert!(c.is_empty());
        }
        // The third in a row: unhealthy, restart it, one event.
        let (o, c) = pass(&mut m, &s, false, t0 + 30 * SEC, true);
        assert!(!o.ready);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
        assert_eq!(unhealthy_events(&c), 1, "{c:?}");
        // Still failing before the restart happened: still Restart, no second event.
        let (o, c) = pass(&mut m, &s, false, t0 + 40 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
        assert!(c.is_empty(), "{c:?}");
        // Restarted: a fresh streak with a grace period; failures in the grace do not count.
        let t1 = t0 + 41 * SEC;
        m.restarted("web-0", t1);
        for i in 0..3 {
            let (o, _) = pass(&mut m, &s, false, t1 + 10 * i * SEC, true);
            assert!(!o.ready);
            assert_eq!(o.unhealthy, Unhealthy::No, "in the grace, probe {i}");
        }
        // Past the grace and still failing after the restart: replace it.
        let (o, c) = pass(&mut m, &s, false, t1 + 30 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Replace);
        assert!(!o.ready);
        assert_eq!(
            unhealthy_events(&c),
            1,
            "failing again after the restart: {c:?}"
        );
    }

    #[test]
    fn a_restarted_instance_that_passes_is_healthy_again_and_recovery_is_reported() {
        let s = spec(2);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        pass(&mut m, &s, true, t0, true);
        pass(&mut m, &s, false, t0 + 10 * SEC, true);
        let (o, _) = pass(&mut m, &s, false, t0 + 20 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
        // It passes again (without a restart): back in service, with a Recovered event.
        let (o, c) = pass(&mut m, &s, true, t0 + 30 * SEC, true);
        assert!(o.ready);
        assert_eq!(o.unhealthy, Unhealthy::No);
        assert_eq!(
            c,
            vec![HealthChange::Recovered {
                name: "web-0".into()
            }]
        );
        // The streak starts over: one failure is not enough, and nothing is restarted.
        let (o, c) = pass(&mut m, &s, false, t0 + 40 * SEC, true);
        assert!(o.ready && c.is_empty());
        assert_eq!(o.unhealthy, Unhealthy::No);
        // And a pass after a restart clears the restart: the next streak restarts again
        // rather than replacing.
        pass(&mut m, &s, false, t0 + 50 * SEC, true);
        m.restarted("web-0", t0 + 51 * SEC);
        pass(&mut m, &s, true, t0 + 52 * SEC, true);
        pass(&mut m, &s, false, t0 + 60 * SEC, true);
        let (o, _) = pass(&mut m, &s, false, t0 + 70 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
    }

    #[test]
    fn a_new_instance_is_not_judged_before_its_start_up_grace() {
        let s = spec(3);
        assert_eq!(startup_grace(&s.health), 30 * SEC);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        // Booting: three failures in 20 s are within the 30 s grace.
        for i in 0..3 {
            let (o, c) = pass(&mut m, &s, false, t0 + 10 * i * SEC, true);
            assert!(!o.ready, "never passed: not ready");
            assert_eq!(o.unhealthy, Unhealthy::No, "probe {i} is in the grace");
            assert!(c.is_empty(), "{c:?}");
        }
        // Past the grace and never passed: unhealthy, and said so once.
        let (o, c) = pass(&mut m, &s, false, t0 + 30 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
        assert_eq!(unhealthy_events(&c), 1, "{c:?}");
        let (_, c) = pass(&mut m, &s, false, t0 + 40 * SEC, true);
        assert!(c.is_empty(), "{c:?}");
        // A short grace is at least 10 s.
        let quick: BotClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "img", "health": {"retries": 1, "interval": "2s"},
        }))
        .unwrap();
        assert_eq!(startup_grace(&quick.health), 10 * SEC);
    }

    #[test]
    fn a_booting_instance_that_comes_up_is_not_reported_as_recovered() {
        let s = spec(3);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        for i in 0..3 {
            pass(&mut m, &s, false, t0 + 10 * i * SEC, true);
        }
        let (o, c) = pass(&mut m, &s, true, t0 + 25 * SEC, true);
        assert!(o.ready);
        assert!(c.is_empty(), "never reported unhealthy, yet: {c:?}");
    }

    #[test]
    fn an_instance_that_passed_once_is_judged_without_waiting_for_the_grace() {
        let s = spec(2);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        pass(&mut m, &s, true, t0, true);
        pass(&mut m, &s, false, t0 + SEC, true);
        let (o, _) = pass(&mut m, &s, false, t0 + 2 * SEC, true);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
    }

    #[test]
    fn a_second_look_in_the_same_pass_counts_passes_but_not_failures() {
        let s = spec(2);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        pass(&mut m, &s, true, t0, true);
        // Any number of second looks that fail add nothing to the streak.
        for i in 1..=5 {
            let (o, c) = pass(&mut m, &s, false, t0 + i * SEC, false);
            assert!(o.ready, "second look {i}");
            assert_eq!(o.unhealthy, Unhealthy::No);
            assert!(c.is_empty());
        }
        assert_eq!(m.health["web-0"].fails, 0);
        // One counted failure, then a failing second look: still one.
        pass(&mut m, &s, false, t0 + 10 * SEC, true);
        let (o, _) = pass(&mut m, &s, false, t0 + 11 * SEC, false);
        assert_eq!(m.health["web-0"].fails, 1);
        assert!(o.ready);
        // A second look that passes does count: a booting instance comes into service.
        let mut fresh = ClusterMemory::default();
        let (o, _) = pass(&mut fresh, &s, true, t0, false);
        assert!(o.ready);
    }

    #[test]
    fn a_second_look_does_not_report_the_same_unhealthy_streak_twice() {
        let s = spec(2);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        pass(&mut m, &s, true, t0, true);
        pass(&mut m, &s, false, t0 + 10 * SEC, true);
        let (_, c) = pass(&mut m, &s, false, t0 + 20 * SEC, true);
        assert_eq!(unhealthy_events(&c), 1);
        // The restart was not done (e.g. the instance was busy): the second look of the same
        // pass sees the same streak.
        let (o, c) = pass(&mut m, &s, false, t0 + 21 * SEC, false);
        assert_eq!(o.unhealthy, Unhealthy::Restart);
        assert_eq!(unhealthy_events(&c), 0, "reported twice: {c:?}");
    }

    #[test]
    fn stopped_or_gone_instances_are_forgotten() {
        let s = spec(2);
        let mut m = ClusterMemory::default();
        let t0 = Instant::now();
        pass(&mut m, &s, true, t0, true);
        pass(&mut m, &s, false, t0 + SEC, true);
        // Stopped: no probe, not ready, and its streak is dropped.
        let mut obs = [running("web-0")];
        obs[0].running = false;
        let c = m.judge(&s, &mut obs, &[None], t0 + 2 * SEC, true);
        assert!(c.is_empty());
        assert!(!obs[0].ready);
        assert!(!m.health.contains_key("web-0"));
        // Back: a new streak, with a grace again (it has not passed since it started).
        let (o, _) = pass(&mut m, &s, false, t0 + 3 * SEC, true);
        let (o2, _) = pass(&mut m, &s, false, t0 + 4 * SEC, true);
        assert_eq!((o.unhealthy, o2.unhealthy), (Unhealthy::No, Unhealthy::No));
    }

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
