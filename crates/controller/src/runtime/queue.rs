//! The work queue: a deduplicating delay queue of keys with per-key backoff.
//!
//! # Guarantees
//! - A key is queued at most once; adding it again keeps the earlier of the two times.
//! - A key is never handed to two workers at once. A key added while a worker runs it is run
//!   again right after that worker is [`done`](WorkQueue::done).
//! - A failed key's backoff holds: [`Cause::Resync`] and [`Cause::Event`] adds cannot bring it
//!   forward; only [`Cause::Change`] (the object itself changed) cuts it short.
//! - No starvation: keys come out in the order they fall due (ties by insertion order).
//! - [`add`](WorkQueue::add), [`done`](WorkQueue::done) and taking the next key are
//!   O(log n) in the number of queued keys.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::ControllerMetrics;

/// Why a key is added: decides whether a backoff may be cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The object itself changed (spec, deletion): worth a try at once, backoff or not.
    Change,
    /// A child changed (an LXD event): waits out a backoff.
    Event,
    /// The periodic resync: waits out a backoff.
    Resync,
}

#[derive(Default)]
struct State {
    /// (due time, insertion sequence, key), earliest first; only keys not running.
    due: BTreeSet<(Instant, u64, String)>,
    /// The entry of each key in `due`.
    entry: HashMap<String, (Instant, u64)>,
    /// Keys a worker runs now.
    running: HashSet<String>,
    /// Keys added while running: when to run them once their worker is done, and whether
    /// a [`Cause::Change`] asked for it.
    after_run: HashMap<String, (Instant, bool)>,
    /// Backoff: a failed key does not run before this, except for a [`Cause::Change`].
    hold: HashMap<String, Instant>,
    seq: u64,
}

impl State {
    fn schedule(&mut self, key: &str, at: Instant, change: bool) -> bool {
        if self.running.contains(key) {
            let e = self
                .after_run
                .entry(key.to_string())
                .or_insert((at, change));
            *e = (e.0.min(at), e.1 || change);
            return false;
        }
        if let Some(&(old, seq)) = self.entry.get(key) {
            if old <= at {
                return false;
            }
            self.due.remove(&(old, seq, key.to_string()));
        }
        self.seq += 1;
        let seq = self.seq;
        self.due.insert((at, seq, key.to_string()));
        self.entry.insert(key.to_string(), (at, seq));
        true
    }

    fn unschedule(&mut self, key: &str) {
        if let Some((at, seq)) = self.entry.remove(key) {
            self.due.remove(&(at, seq, key.to_string()));
        }
    }
}

/// A deduplicating delay queue of keys. See the module documentation.
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
    metrics: Option<ControllerMetrics>,
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365)
}

impl WorkQueue {
    /// An empty queue reporting `workqueue_*` metrics into `metrics` (when given).
    pub fn new(metrics: Option<ControllerMetrics>) -> Self {
        WorkQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn depth(&self, s: &State) {
        if let Some(m) = &self.metrics {
            m.queue_depth.set(s.due.len() as i64);
        }
    }

    /// Schedules `key` after `delay` (an earlier schedule wins). Unless `cause` is
    /// [`Cause::Change`], a key in backoff is not scheduled before its backoff ends; a
    /// `Change` ends the backoff.
    pub fn add(&self, key: &str, delay: Duration, cause: Cause) {
        let now = Instant::now();
        let mut at = now.checked_add(delay).unwrap_or_else(|| far_future(now));
        let mut s = self.lock();
        if cause == Cause::Change {
            s.hold.remove(key);
        } else if let Some(&until) = s.hold.get(key) {
            at = at.max(until);
        }
        let queued = s.schedule(key, at, cause == Cause::Change);
        if let Some(m) = &self.metrics {
            m.queue_adds.inc();
        }
        self.depth(&s);
        drop(s);
        if queued {
            self.notify.notify_one();
        }
    }

    /// When `key` is due next, if it is queued (for tests and status).
    pub fn due(&self, key: &str) -> Option<Instant> {
        let s = self.lock();
        s.entry
            .get(key)
            .map(|(at, _)| *at)
            .or_else(|| s.after_run.get(key).map(|(at, _)| *at))
    }

    /// The next due key, marked running; waits until one is due.
    pub async fn next(&self) -> String {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.due.first().cloned() {
                    Some((at, seq, key)) if at <= now => {
                        s.due.remove(&(at, seq, key.clone()));
                        s.entry.remove(&key);
                        s.running.insert(key.clone());
                        self.depth(&s);
                        return key;
                    }
                    Some((at, _, _)) => at - now,
                    None => Duration::from_secs(3600),
                }
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A worker finished `key`. `next`: run it again after this long (`None`: only when
    /// something adds it). `backoff`: the pass failed, hold the key until the given delay
    /// has passed (see [`Cause`]); `None` clears a backoff.
    pub fn done(&self, key: &str, next: Option<Duration>, backoff: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.lock();
        s.running.remove(key);
        let mut at = next.map(|d| now.checked_add(d).unwrap_or_else(|| far_future(now)));
        match backoff {
            Some(d) => {
                let until = now.checked_add(d).unwrap_or_else(|| far_future(now));
                s.hold.insert(key.to_string(), until);
                at = Some(until);
            }
            None => {
                s.hold.remove(key);
            }
        }
        if let Some((pending, change)) = s.after_run.remove(key) {
            let pending = match s.hold.get(key) {
                // The object changed while the failing pass ran: the change deserves a try.
                Some(_) if change => {
                    s.hold.remove(key);
                    pending
                }
                Some(&until) => pending.max(until),
                None => pending,
            };
            at = Some(at.map_or(pending, |a| a.min(pending)));
        }
        if let Some(at) = at {
            s.schedule(key, at, false);
        }
        self.depth(&s);
        drop(s);
        self.notify.notify_one();
    }

    /// Forgets `key` entirely (its object is gone).
    pub fn forget(&self, key: &str) {
        let mut s = self.lock();
        s.unschedule(key);
        s.hold.remove(key);
        s.after_run.remove(key);
        self.depth(&s);
    }

    /// Keys queued (not running).
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    /// True when no key is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> WorkQueue {
        WorkQueue::new(None)
    }

    async fn take(q: &WorkQueue, within: Duration) -> Option<String> {
        tokio::time::timeout(within, q.next()).await.ok()
    }

    #[tokio::test]
    async fn a_key_added_twice_is_queued_once_at_the_earlier_time() {
        let q = q();
        q.add("a", Duration::from_secs(60), Cause::Resync);
        q.add("a", Duration::ZERO, Cause::Event);
        q.add("a", Duration::from_secs(30), Cause::Resync);
        assert_eq!(q.len(), 1);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("a")
        );
        assert!(take(&q, Duration::from_millis(50)).await.is_none());
    }

    #[tokio::test]
    async fn a_running_key_is_not_handed_out_again_until_done_and_then_runs_once_more() {
        let q = q();
        q.add("a", Duration::ZERO, Cause::Change);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("a")
        );
        q.add("a", Duration::ZERO, Cause::Change);
        q.add("a", Duration::ZERO, Cause::Event);
        assert!(
            take(&q, Duration::from_millis(50)).await.is_none(),
            "a is still running"
        );
        q.done("a", None, None);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("a")
        );
        q.done("a", None, None);
        assert!(take(&q, Duration::from_millis(50)).await.is_none());
    }

    #[tokio::test]
    async fn a_backoff_holds_against_resyncs_and_events_but_a_change_cuts_it_short() {
        let q = q();
        q.add("a", Duration::ZERO, Cause::Change);
        take(&q, Duration::from_millis(100)).await;
        q.done("a", None, Some(Duration::from_secs(60)));
        let held = q.due("a").expect("queued for after the backoff");
        q.add("a", Duration::ZERO, Cause::Resync);
        q.add("a", Duration::from_millis(200), Cause::Event);
        assert_eq!(
            q.due("a"),
            Some(held),
            "resync and events wait out the backoff"
        );
        assert!(take(&q, Duration::from_millis(100)).await.is_none());
        q.add("a", Duration::ZERO, Cause::Change);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("a")
        );
        // Success clears the hold: a resync is no longer delayed.
        q.done("a", None, None);
        q.add("a", Duration::ZERO, Cause::Resync);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("a")
        );
    }

    #[tokio::test]
    async fn an_event_during_a_failing_pass_waits_for_the_backoff() {
        let q = q();
        q.add("a", Duration::ZERO, Cause::Change);
        take(&q, Duration::from_millis(100)).await;
        q.add("a", Duration::ZERO, Cause::Event);
        q.done("a", None, Some(Duration::from_secs(60)));
        assert!(take(&q, Duration::from_millis(100)).await.is_none());
        assert!(q
            .due("a")
            .is_some_and(|d| d > Instant::now() + Duration::from_secs(50)));
    }

    #[tokio::test]
    async fn keys_come_out_in_due_order_so_none_starves() {
        let q = q();
        q.add("late", Duration::from_millis(60), Cause::Resync);
        q.add("b", Duration::from_millis(20), Cause::Resync);
        q.add("a", Duration::from_millis(20), Cause::Resync);
        let mut got = Vec::new();
        for _ in 0..3 {
            let k = take(&q, Duration::from_millis(500))
                .await
                .unwrap_or_default();
            q.done(&k, None, None);
            got.push(k);
        }
        assert_eq!(got, ["b", "a", "late"]);
        // A key requeued at once does not jump ahead of one already due.
        q.add("x", Duration::ZERO, Cause::Resync);
        q.add("y", Duration::ZERO, Cause::Resync);
        let first = take(&q, Duration::from_millis(100))
            .await
            .unwrap_or_default();
        q.done(&first, Some(Duration::ZERO), None);
        assert_eq!(
            take(&q, Duration::from_millis(100)).await.as_deref(),
            Some("y")
        );
    }

    #[tokio::test]
    async fn a_thousand_keys_dedupe_and_each_runs_once() {
        let q = q();
        for round in 0..3 {
            for i in 0..1000 {
                q.add(
                    &format!("k{i}"),
                    Duration::from_millis(round),
                    Cause::Resync,
                );
            }
        }
        assert_eq!(q.len(), 1000);
        let mut seen = HashSet::new();
        while let Some(k) = take(&q, Duration::from_millis(50)).await {
            assert!(seen.insert(k.clone()), "{k} handed out twice");
            q.done(&k, None, None);
        }
        assert_eq!(seen.len(), 1000);
    }
}
