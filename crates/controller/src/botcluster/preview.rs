//! Dry runs: what the next pass would do for a given spec, from the same observation and the
//! same planning as a real pass ([`BotClusterReconciler::look`], [`BotClusterReconciler::plan_pass`]),
//! on a copy of the cluster's memory that is then dropped. Nothing is written: no LXD or proxy
//! change, no event, no metric, no health or autoscaler memory.

use botcluster_api::BotCluster;
use botcluster_api::BOTCLUSTER_KIND;

use super::BotClusterReconciler;

/// What a pass would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassPreview {
    /// Every change the pass would make (containers, then the load balancer), one sentence
    /// each; empty when the pass would change nothing.
    pub actions: Vec<String>,
    /// What the pass would report without changing anything (conflicts, a stall, a suspended
    /// cluster, a proxy that cannot be read).
    pub notes: Vec<String>,
}

impl BotClusterReconciler {
    /// What reconciling `desired` would do now (for dry runs and `botctl diff`).
    pub async fn preview(&self, desired: &BotCluster) -> Result<PassPreview, String> {
        let name = desired.name();
        let stored = self
            .store
            .get(BOTCLUSTER_KIND, name)
            .await
            .map_err(|e| e.to_string())?;
        let previous: botcluster_api::BotClusterStatus = stored
            .as_ref()
            .and_then(|o| serde_json::from_value(o.status.clone()).ok())
            .unwrap_or_default();
        let uid = stored
            .and_then(|o| o.meta.uid)
            .unwrap_or_else(|| "(new)".into());
        let shard_plan = self.plan_shards(name, &desired.spec, &previous).await;
        let effective = super::botconfig::with_bot_config(super::shards::with_map_file(
            &desired.spec,
            &shard_plan,
        ));
        let spec = &effective;
        let mut mem = self.memory_of(name);
        let look = self
            .look(name, &uid, spec, &mut mem)
            .await
            .map_err(|e| e.to_string())?;
        let pass = self.plan_pass(name, &uid, spec, &look, shard_plan).await;
        let p = &pass.containers;
        let mut out = PassPreview::default();
        if let Some(step) = &look.scaled {
            out.notes.push(format!(
                "the autoscaler would scale: {}",
                step.decision.event_message(step.from)
            ));
        }
        out.notes.extend(
            look.in_flight
                .iter()
                .map(|a| format!("still running from an earlier pass: {a}")),
        );
        if !pass.drain.is_empty() {
            out.actions.push(format!(
                "take {} out of the load balancer and drain",
                pass.drain.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let (shard_actions, shard_notes) = super::shards::describe(&pass.shards, &previous);
        out.actions.extend(shard_actions);
        out.notes.extend(shard_notes);
        out.actions.extend(p.actions.iter().map(|a| a.describe()));
        match &pass.balancer {
            Ok(b) => out.actions.extend(b.describe()),
            Err(e) => out
                .notes
                .push(format!("the load balancer cannot be read: {e}")),
        }
        out.notes.extend(
            p.conflicts
                .iter()
                .map(|c| format!("skip {}: it exists and is {}", c.name, c.owner)),
        );
        out.notes.extend(p.blocked.iter().cloned());
        if !p.stalled.is_empty() {
            out.notes.push(format!(
                "rolling update stopped: {} never got healthy",
                p.stalled.join(", ")
            ));
        }
        if p.pending_replacements > 0 {
            out.notes.push(format!(
                "{} more instance(s) to replace after these are ready",
                p.pending_replacements
            ));
        }
        if spec.suspend && !out.actions.is_empty() {
            out.notes
                .push("spec.suspend is true: none of this is done until it is false".to_string());
        }
        Ok(out)
    }
}
