//! Status of a GitSource, derived purely: kstatus conditions (`Ready`, `Reconciling`,
//! `Stalled`) and the short revision history.

use botcluster_api::gitsource::{GitSourceStatus, HistoryEntry, HISTORY_LEN};
use botcluster_api::meta::set_condition;
use botcluster_api::{Condition, ConditionStatus};

/// One condition as the pass decides it.
pub struct Cond<'a> {
    /// `Ready`, `Reconciling` or `Stalled`.
    pub type_: &'static str,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// CamelCase reason.
    pub reason: &'a str,
    /// For people.
    pub message: String,
}

/// Sets the three conditions (times kept where the status did not change).
pub fn set_conditions(st: &mut GitSourceStatus, generation: u64, now: &str, conds: [Cond<'_>; 3]) {
    for c in conds {
        set_condition(
            &mut st.conditions,
            Condition {
                type_: c.type_.into(),
                status: c.status,
                reason: c.reason.into(),
                message: c.message,
                last_transition_time: String::new(),
                observed_generation: generation,
            },
            now,
        );
    }
}

/// `Ready=True`, not reconciling, not stalled.
pub fn ready(message: String) -> [Cond<'static>; 3] {
    [
        Cond {
            type_: "Ready",
            status: ConditionStatus::True,
            reason: "ReconciliationSucceeded",
            message,
        },
        Cond {
            type_: "Reconciling",
            status: ConditionStatus::False,
            reason: "Idle",
            message: String::new(),
        },
        Cond {
            type_: "Stalled",
            status: ConditionStatus::False,
            reason: "Idle",
            message: String::new(),
        },
    ]
}

/// `Ready=False` and `Stalled=True` with `reason`: nothing changes until the cause does.
pub fn stalled(reason: &str, message: String) -> [Cond<'_>; 3] {
    [
        Cond {
            type_: "Ready",
            status: ConditionStatus::False,
            reason,
            message: message.clone(),
        },
        Cond {
            type_: "Reconciling",
            status: ConditionStatus::False,
            reason,
            message: String::new(),
        },
        Cond {
            type_: "Stalled",
            status: ConditionStatus::True,
            reason,
            message,
        },
    ]
}

/// `Reconciling=True` with `reason`; Ready `ready` (kept Unknown while unknown).
pub fn reconciling(reason: &str, message: String, ready: ConditionStatus) -> [Cond<'_>; 3] {
    [
        Cond {
            type_: "Ready",
            status: ready,
            reason,
            message: message.clone(),
        },
        Cond {
            type_: "Reconciling",
            status: ConditionStatus::True,
            reason,
            message,
        },
        Cond {
            type_: "Stalled",
            status: ConditionStatus::False,
            reason: "Idle",
            message: String::new(),
        },
    ]
}

/// Adds an entry newest first, unless the newest has the same revision and result (then it
/// stays as first recorded: a re-apply of the same revision is not history); keeps
/// [`HISTORY_LEN`]. Returns true when the entry is new (an event is due).
pub fn push_history(history: &mut Vec<HistoryEntry>, entry: HistoryEntry) -> bool {
    if let Some(first) = history.first() {
        if first.revision == entry.revision && first.result == entry.result {
            return false;
        }
    }
    history.insert(0, entry);
    history.truncate(HISTORY_LEN);
    true
}

/// At most `n` items joined with "; ", then "and K more".
pub fn summarize<T: ToString>(items: &[T], n: usize) -> String {
    let mut s: Vec<String> = items.iter().take(n).map(ToString::to_string).collect();
    if items.len() > n {
        s.push(format!("and {} more", items.len() - n));
    }
    s.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(rev: &str, result: &str) -> HistoryEntry {
        HistoryEntry {
            revision: rev.into(),
            result: result.into(),
            time: "t".into(),
            objects: 0,
            message: String::new(),
        }
    }

    #[test]
    fn history_is_newest_first_deduplicated_and_short() {
        let mut v = Vec::new();
        assert!(push_history(&mut v, h("a", "Applied")));
        assert!(!push_history(&mut v, h("a", "Applied")));
        assert!(push_history(&mut v, h("b", "Failed")));
        for i in 0..10 {
            push_history(&mut v, h(&format!("r{i}"), "Applied"));
        }
        assert_eq!(v.len(), HISTORY_LEN);
        assert_eq!(v[0].revision, "r9");
    }
}
