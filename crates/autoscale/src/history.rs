//! The decision state carried from one call of [`crate::decide`] to the next.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::Scale;

/// What the autoscaler remembers between decisions: recent recommendations (for the scale-down
/// stabilization window) and recent scale events (for the cooldown and the scale-up rate limit).
///
/// Times are milliseconds since the epoch of the `now` passed to [`crate::decide`]. Keep it in
/// memory next to the cluster, pass it back unchanged, and show parts of it in status
/// ([`History::last_scale`]). [`History::default`] means "no memory": the first decision then
/// treats `current` as recommended for a whole window, so a restarted controller cannot scale down
/// before it has watched one full window of low load.
///
/// The lists stay short: a recommendation that a later one is at least as high as can never be
/// the maximum of a window again and is dropped, so `recommendations` is strictly decreasing in
/// `replicas` (at most `maxInstances − minInstances + 1` entries); `events` keeps the last event
/// plus the ones inside the cooldown and the 15 s rate-limit period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Recommendations still inside the window, oldest first.
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
    /// Scale events, oldest first.
    #[serde(default)]
    pub events: Vec<ScaleEvent>,
}

/// The replica count the metrics and rules asked for at one check, within
/// `[minInstances, maxInstances]`, before stabilization, cooldown and the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// When, in milliseconds since the epoch of `now`.
    pub at_ms: u64,
    /// How many instances.
    pub replicas: u32,
}

/// A decision that changed the replica count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    /// When, in milliseconds since the epoch of `now`.
    pub at_ms: u64,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

impl ScaleEvent {
    /// Up or down (`None` for a degenerate event with `from == to`).
    pub fn direction(&self) -> Scale {
        Scale::between(self.from, self.to)
    }
}

/// `now` as milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl History {
    /// The most recent scale event.
    pub fn last_scale(&self) -> Option<&ScaleEvent> {
        self.events.iter().max_by_key(|e| e.at_ms)
    }

    /// When the last scale event happened, on the clock of `now`.
    pub fn last_scale_at(&self) -> Option<Duration> {
        self.last_scale().map(|e| Duration::from_millis(e.at_ms))
    }

    /// Both lists sorted by time (a hand-built or deserialised history may not be).
    pub(crate) fn normalized(&self) -> History {
        let mut h = self.clone();
        h.recommendations.sort_by_key(|r| r.at_ms);
        h.events.sort_by_key(|e| e.at_ms);
        h
    }

    /// The highest recommendation made in `(now − window, ∞)`. Entries stamped after `now` (the
    /// clock stepped back) count as just made, which only delays scale-down.
    pub(crate) fn window_max(&self, now_ms: u64, window_ms: u64) -> Option<u32> {
        self.recommendations
            .iter()
            .filter(|r| r.at_ms.saturating_add(window_ms) > now_ms)
            .map(|r| r.replicas)
            .max()
    }

    /// Scale events made by earlier decisions. An event stamped exactly `now` was made by a
    /// decision at this same instant, i.e. it is this decision being asked again; ignoring it is
    /// what makes a repeated call return the same answer.
    pub(crate) fn earlier_events(&self, now_ms: u64) -> impl Iterator<Item = &ScaleEvent> {
        self.events.iter().filter(move |e| e.at_ms != now_ms)
    }

    /// Adds a recommendation, drops the ones that left the window and the ones the new one
    /// dominates.
    pub(crate) fn record_recommendation(&mut self, now_ms: u64, window_ms: u64, replicas: u32) {
        self.recommendations
            .retain(|r| r.at_ms.saturating_add(window_ms) > now_ms);
        self.recommendations.push(Recommendation {
            at_ms: now_ms,
            replicas,
        });
        self.recommendations.sort_by_key(|r| r.at_ms);
        // Keep an entry only if it is higher than everything after it: a later entry that is at
        // least as high stays in every future window at least as long, so it alone decides the
        // maximum.
        let mut kept = Vec::with_capacity(self.recommendations.len());
        let mut later_max: Option<u32> = None;
        for r in self.recommendations.iter().rev() {
            if later_max.is_none_or(|m| r.replicas > m) {
                kept.push(*r);
                later_max = Some(r.replicas);
            }
        }
        kept.reverse();
        self.recommendations = kept;
    }

    /// Adds a scale event (once: asking again at the same instant does not add a copy), drops
    /// the ones older than `keep_ms` except the last.
    pub(crate) fn record_event(&mut self, event: Option<ScaleEvent>, now_ms: u64, keep_ms: u64) {
        if let Some(e) = event {
            if !self.events.contains(&e) {
                self.events.push(e);
                self.events.sort_by_key(|e| e.at_ms);
            }
        }
        let last = self.events.len().saturating_sub(1);
        let mut i = 0;
        self.events.retain(|e| {
            let keep = i == last || e.at_ms.saturating_add(keep_ms) > now_ms;
            i += 1;
            keep
        });
    }
}
