//! One pass over a GitSource.
//!
//! # Expected flow
//! 1. Read the source; deletion requested → release (or, with `cascade`, delete) what its
//!    inventory says it applied, then drop the finalizer.
//! 2. Suspended → report it and stop.
//! 3. **Poll**: `git ls-remote` for the one ref (no objects move). **Fetch** only when the
//!    commit is not in the cache (by id; by ref when the server refuses unadvertised ids).
//! 4. **Read and validate every document** under `spec.path` at that commit. Any problem
//!    refuses the whole revision: status names the file, document and field; nothing is
//!    written; what was applied stays.
//! 5. **Plan** (pure): conflicts with objects others own refuse the revision; an empty
//!    revision that would prune everything is refused unless `allowEmpty`.
//! 6. **Write ahead**: status gets `lastAttemptedRevision` and the inventory old ∪ new.
//! 7. **Apply** each BotCluster (owner label, `managedBy: gitsource/<name>`); unchanged ones
//!    write nothing, changed ones (drift) are put back.
//! 8. **Prune** (delete) or **release** (remove the owner label, `prune: false`) what left Git.
//! 9. **Status**: `lastAppliedRevision`, the new inventory, conditions, history, next poll.
//!
//! # Guarantees
//! - Never half a revision at rest: steps 6-9 are each idempotent, and a pass that dies
//!   between 6 and 9 leaves `lastAttemptedRevision` ≠ `lastAppliedRevision` and an inventory
//!   that covers every object it may have written; the next pass (after a restart, the
//!   first) redoes 3-9 from Git and finishes the revision — or a newer one — in full.
//! - A failure to reach git changes nothing applied (the error backs off; status `Stalled`).

use std::collections::BTreeMap;
use std::time::Duration;

use botcluster_api::gitsource::{
    GitSourceSpec, GitSourceStatus, HistoryEntry, RefKind, DELETE_POLICY_ANNOTATION,
    GITSOURCE_KIND, OWNER_LABEL, SYNC_ANNOTATION,
};
use botcluster_api::{ConditionStatus, BOTCLUSTER_KIND};
use botcluster_store::{now_rfc3339, Change, SpecWrite, StoreError, StoredObject};
use git_client::{Credentials, GitError, GitRef, Remote, RepoUrl};

use super::documents::{self, Desired};
use super::plan::{self, manager, Existing, Refusal};
use super::status::{self, push_history, summarize};
use super::{rfc3339_after, GitSourceReconciler, SyncError};
use crate::runtime::finalizer::{self, Step};
use crate::runtime::Action;

/// How often a pass that waits (teardown of a re-added object, `wait: true`) looks again.
const WAIT_POLL: Duration = Duration::from_secs(2);

fn git_ref(spec: &GitSourceSpec) -> GitRef {
    match spec.reference.kind() {
        RefKind::Branch(b) => GitRef::Branch(b.into()),
        RefKind::Tag(t) => GitRef::Tag(t.into()),
        RefKind::Commit(c) => GitRef::Commit(c.to_ascii_lowercase()),
    }
}

fn jitter(d: Duration) -> Duration {
    crate::runtime::controller::jitter(d, 0.1)
}

impl GitSourceReconciler {
    pub(super) async fn pass(&self, key: &str) -> Result<Action, SyncError> {
        let Some(obj) = self.store.get(GITSOURCE_KIND, key).await? else {
            self.forget_metrics(key);
            return Ok(Action::AwaitChange);
        };
        let spec: GitSourceSpec = serde_json::from_value(obj.spec.clone()).map_err(|e| {
            SyncError::Spec(format!(
                "the stored spec cannot be read ({e}); apply the GitSource again"
            ))
        })?;
        let st: GitSourceStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
        match finalizer::prepare(
            self.store.as_ref(),
            &obj,
            botcluster_api::gitsource::GITSOURCE_FINALIZER,
        )
        .await?
        {
            Step::Apply => {}
            Step::Nothing => return Ok(Action::AwaitChange),
            Step::Cleanup => {
                self.cleanup(key, &obj, &spec, &st).await?;
                finalizer::complete(
                    self.store.as_ref(),
                    &obj,
                    botcluster_api::gitsource::GITSOURCE_FINALIZER,
                )
                .await?;
                self.forget_metrics(key);
                return Ok(Action::AwaitChange);
            }
        }
        self.sync(key, &obj, &spec, st).await
    }

    fn forget_metrics(&self, key: &str) {
        let _ = self.metrics.objects.remove_label_values(&[key]);
        let _ = self.metrics.last_applied.remove_label_values(&[key]);
    }

    fn remote(&self, spec: &GitSourceSpec) -> Result<Remote, SyncError> {
        let url =
            RepoUrl::parse(&spec.url).map_err(|e| SyncError::Spec(format!("spec.url: {e}")))?;
        let mut remote = Remote::new(url, spec.timeout.get().max(Duration::from_secs(1)));
        if let Some(name) = &spec.credentials {
            let dir = self
                .credentials_dir
                .as_ref()
                .map(|d| d.join(name))
                .ok_or_else(|| {
                    SyncError::Spec(format!(
                        "spec.credentials {name:?}: this operator has no credentials directory"
                    ))
                })?;
            if !dir.is_dir() {
                return Err(SyncError::Spec(format!(
                    "spec.credentials {name:?}: {} does not exist; create it with `identity` and `known_hosts` (SSH) or `token` (HTTPS)",
                    dir.display()
                )));
            }
            let file = |f: &str| Some(dir.join(f)).filter(|p| p.is_file());
            let token = match file("token") {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .map_err(|e| SyncError::Spec(format!("reading {}: {e}", p.display())))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            remote.credentials = Credentials {
                ssh_key: file("identity"),
                known_hosts: file("known_hosts"),
                https_token: token,
            };
        }
        Ok(remote)
    }

    async fn write_status(&self, key: &str, st: &GitSourceStatus) -> Result<(), SyncError> {
        let v = serde_json::to_value(st).map_err(|e| SyncError::Spec(e.to_string()))?;
        self.store
            .update_status(GITSOURCE_KIND, key, v, None)
            .await?;
        Ok(())
    }

    /// A status write in the middle of a pass: `lastHandledSync` stays what it was.
    async fn write_progress(
        &self,
        key: &str,
        st: &GitSourceStatus,
        earlier_sync: &Option<String>,
    ) -> Result<(), SyncError> {
        let mut progress = st.clone();
        progress.last_handled_sync = earlier_sync.clone();
        self.write_status(key, &progress).await
    }

    /// The BotClusters under the names a sync may touch.
    async fn existing(
        &self,
        names: impl Iterator<Item = &str>,
    ) -> Result<BTreeMap<String, Existing>, SyncError> {
        let mut out = BTreeMap::new();
        for n in names {
            if let Some(o) = self.store.get(BOTCLUSTER_KIND, n).await? {
                out.insert(
                    n.to_string(),
                    Existing {
                        owner: o.meta.labels.get(OWNER_LABEL).cloned(),
                        managed_by: o.meta.managed_by.clone(),
                        deleting: o.is_deleting(),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn sync(
        &self,
        key: &str,
        obj: &StoredObject,
        spec: &GitSourceSpec,
        mut st: GitSourceStatus,
    ) -> Result<Action, SyncError> {
        let generation = obj.generation();
        let token = obj.meta.annotations.get(SYNC_ANNOTATION).cloned();
        let now = now_rfc3339();
        let applied = st
            .last_applied_revision
            .clone()
            .unwrap_or_else(|| "nothing".into());
        st.observed_generation = generation;
        // A sync is handled when the pass ends; writes on the way keep the previous token,
        // so `botctl sync` (watching for it) never takes "applying" for the outcome.
        let earlier_sync = std::mem::replace(&mut st.last_handled_sync, token);
        st.backoff = None;
        if spec.suspend {
            let msg = format!("suspended: nothing is polled or applied; {applied} stays applied");
            let ready = st
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map_or(ConditionStatus::Unknown, |c| c.status);
            status::set_conditions(
                &mut st,
                generation,
                &now,
                status::reconciling("Suspended", msg, ready),
            );
            if let Some(c) = st.conditions.iter_mut().find(|c| c.type_ == "Reconciling") {
                c.status = ConditionStatus::False;
            }
            st.next_poll_time = None;
            self.write_status(key, &st).await?;
            return Ok(Action::AwaitChange);
        }
        let wait = jitter(spec.interval.get().max(Duration::from_secs(1)));
        let remote = self.remote(spec)?;
        let reference = git_ref(spec);
        // Cheap poll: the remote's refs only.
        let tip = self.git.resolve(&remote, &reference).await?;
        // Fetch only what the cache lacks (a no-op when the commit is there).
        let sha = match self.git.fetch(&remote, &GitRef::Commit(tip.clone())).await {
            Ok(s) => s,
            Err(GitError::CommitNotFound { .. }) if !matches!(reference, GitRef::Commit(_)) => {
                self.git.fetch(&remote, &reference).await?
            }
            Err(e) => return Err(e.into()),
        };
        let revision = spec.reference.revision(&sha);
        st.next_poll_time = Some(rfc3339_after(wait));
        let files = match self
            .git
            .read_files(&remote, &sha, &spec.path, &[".yaml", ".yml"])
            .await
        {
            Ok(f) => f,
            Err(e @ (GitError::PathNotFound { .. } | GitError::TooLarge { .. })) => {
                return self
                    .refuse(key, st, &revision, "ArtifactFailed", e.to_string(), wait)
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let desired = match documents::read(&files) {
            Ok(d) => d,
            Err(errors) => {
                let msg = format!(
                    "{} problem{}: {}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    summarize(&errors, 10)
                );
                return self
                    .refuse(key, st, &revision, "ValidationFailed", msg, wait)
                    .await;
            }
        };
        // Host ports: the API's rules, against each other and what the revision leaves stored
        // (a cluster this source prunes does not count; one it would release does). Against
        // the stored ones only for a revision not applied yet: once it is, the API's PUT keeps
        // others off its ports, and an idle poll stays O(this source).
        let unapplied = st.last_applied_revision.as_deref() != Some(revision.as_str());
        let stored = if unapplied {
            self.store.list(BOTCLUSTER_KIND).await?
        } else {
            Vec::new()
        };
        let staying: Vec<(String, botcluster_api::BotClusterSpec)> = stored
            .into_iter()
            .filter(|o| !desired.iter().any(|d| d.name == o.meta.name))
            .filter(|o| {
                !(spec.prune && o.meta.labels.get(OWNER_LABEL).map(String::as_str) == Some(key))
            })
            .filter_map(|o| Some((o.meta.name, serde_json::from_value(o.spec).ok()?)))
            .collect();
        let clashes = documents::port_clashes(&desired, &staying, &self.reserved);
        if !clashes.is_empty() {
            let msg = format!(
                "{} host port clash{}: {}",
                clashes.len(),
                if clashes.len() == 1 { "" } else { "es" },
                summarize(&clashes, 10)
            );
            return self
                .refuse(key, st, &revision, "PortConflict", msg, wait)
                .await;
        }
        let names: Vec<String> = desired
            .iter()
            .map(|d| d.name.clone())
            .chain(st.inventory.iter().map(|i| i.name.clone()))
            .collect();
        let existing = self.existing(names.iter().map(String::as_str)).await?;
        let plan = match plan::plan(
            key,
            spec.prune,
            spec.allow_empty,
            desired,
            &st.inventory,
            &existing,
        ) {
            Ok(p) => p,
            Err(Refusal::Conflicts(c)) => {
                return self
                    .refuse(
                        key,
                        st,
                        &revision,
                        "OwnershipConflict",
                        summarize(&c, 10),
                        wait,
                    )
                    .await;
            }
            Err(Refusal::Empty(n)) => {
                let msg = format!("the revision holds no BotCluster under {:?} and would prune all {n} this source applied; set spec.allowEmpty: true if that is meant", spec.path);
                return self
                    .refuse(key, st, &revision, "EmptyRevisionRefused", msg, wait)
                    .await;
            }
            Err(Refusal::Terminating(t)) => {
                let msg = format!(
                    "waiting for {} to finish teardown before writing {revision}",
                    summarize(&t, 5)
                );
                status::set_conditions(
                    &mut st,
                    generation,
                    &now,
                    status::reconciling("Progressing", msg, ConditionStatus::Unknown),
                );
                self.write_progress(key, &st, &earlier_sync).await?;
                return Ok(Action::Requeue(WAIT_POLL));
            }
        };
        // Write ahead: everything this sync may create is in the inventory first.
        let new_revision = st.last_applied_revision.as_deref() != Some(revision.as_str());
        if st.inventory != plan.ahead
            || st.last_attempted_revision.as_deref() != Some(revision.as_str())
        {
            st.inventory = plan.ahead.clone();
            st.last_attempted_revision = Some(revision.clone());
            let msg = format!("applying {revision}");
            status::set_conditions(
                &mut st,
                generation,
                &now,
                status::reconciling("Progressing", msg, ConditionStatus::Unknown),
            );
            self.write_progress(key, &st, &earlier_sync).await?;
        }
        let (mut created, mut configured, mut drifted) = (0u32, 0u32, Vec::new());
        for d in &plan.apply {
            match self.apply_one(key, d).await? {
                Change::Created => created += 1,
                Change::Configured => {
                    configured += 1;
                    if !new_revision {
                        drifted.push(d.name.clone());
                    }
                }
                Change::Unchanged => continue,
            }
            if !self.apply_pause.is_zero() {
                tokio::time::sleep(self.apply_pause).await;
            }
        }
        for n in &plan.prune {
            match self.store.delete(BOTCLUSTER_KIND, n).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for n in &plan.release {
            self.release(key, n).await?;
        }
        let changed = created + configured + (plan.prune.len() + plan.release.len()) as u32;
        let count = plan.inventory.len();
        st.inventory = plan.inventory;
        st.last_applied_revision = Some(revision.clone());
        if new_revision || changed > 0 {
            st.last_applied_time = Some(now.clone());
        }
        let mut summary = vec![format!(
            "{count} object{}",
            if count == 1 { "" } else { "s" }
        )];
        for (n, what) in [(created, "created"), (configured, "configured")] {
            if n > 0 {
                summary.push(format!("{n} {what}"));
            }
        }
        if !plan.prune.is_empty() {
            summary.push(format!("pruned {}", plan.prune.join(", ")));
        }
        if !plan.release.is_empty() {
            summary.push(format!("released {}", plan.release.join(", ")));
        }
        let summary = summary.join(", ");
        push_history(
            &mut st.history,
            HistoryEntry {
                revision: revision.clone(),
                result: "Applied".into(),
                time: now.clone(),
                objects: count as u32,
                message: summary.clone(),
            },
        );
        let pending = if spec.wait {
            self.not_ready(&st).await?
        } else {
            Vec::new()
        };
        let next = if pending.is_empty() {
            status::set_conditions(
                &mut st,
                generation,
                &now,
                status::ready(format!("applied {revision}: {summary}")),
            );
            wait
        } else {
            let msg = format!(
                "applied {revision}; waiting for {} to be Ready",
                summarize(&pending, 5)
            );
            status::set_conditions(
                &mut st,
                generation,
                &now,
                status::reconciling("HealthCheckPending", msg, ConditionStatus::False),
            );
            WAIT_POLL.min(wait)
        };
        self.write_status(key, &st).await?;
        self.metrics
            .syncs
            .with_label_values(&[if changed > 0 || new_revision {
                "applied"
            } else {
                "unchanged"
            }])
            .inc();
        self.metrics
            .objects
            .with_label_values(&[key])
            .set(count as i64);
        if new_revision || changed > 0 {
            self.metrics
                .last_applied
                .with_label_values(&[key])
                .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
        }
        if new_revision {
            self.event(
                key,
                "Normal",
                "Synced",
                format!("applied {revision}: {summary}"),
            )
            .await;
        } else if !drifted.is_empty() || changed > 0 {
            let msg = if drifted.is_empty() {
                format!("{revision} applied again: {summary}")
            } else {
                format!(
                    "put {} back to Git's version ({revision})",
                    drifted
                        .iter()
                        .map(|n| format!("botcluster/{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            self.event(key, "Normal", "DriftCorrected", msg).await;
        }
        Ok(Action::Requeue(next))
    }

    /// A revision not applied: status says why, what stays applied; history and an event
    /// record it once. Polling goes on at the interval (a new commit may fix it).
    async fn refuse(
        &self,
        key: &str,
        mut st: GitSourceStatus,
        revision: &str,
        reason: &str,
        why: String,
        wait: Duration,
    ) -> Result<Action, SyncError> {
        let now = now_rfc3339();
        let applied = st
            .last_applied_revision
            .clone()
            .unwrap_or_else(|| "nothing".into());
        let message = format!("revision {revision} refused: {why}; still applied: {applied}");
        st.last_attempted_revision = Some(revision.to_string());
        let generation = st.observed_generation;
        status::set_conditions(
            &mut st,
            generation,
            &now,
            status::stalled(reason, message.clone()),
        );
        let fresh = push_history(
            &mut st.history,
            HistoryEntry {
                revision: revision.to_string(),
                result: "Failed".into(),
                time: now,
                objects: 0,
                message: why,
            },
        );
        self.write_status(key, &st).await?;
        self.metrics.syncs.with_label_values(&["refused"]).inc();
        if fresh {
            self.event(key, "Warning", reason, message).await;
        }
        Ok(Action::Requeue(wait))
    }

    async fn apply_one(&self, key: &str, d: &Desired) -> Result<Change, SyncError> {
        let mut labels = d.labels.clone();
        labels.insert(OWNER_LABEL.into(), key.into());
        let write = SpecWrite {
            kind: BOTCLUSTER_KIND.into(),
            meta: botcluster_api::ObjectMeta {
                name: d.name.clone(),
                labels,
                annotations: d.annotations.clone(),
                ..Default::default()
            },
            spec: d.spec.clone(),
            expected_resource_version: None,
            manager: Some(manager(key)),
            dry_run: false,
        };
        Ok(self.store.apply(write).await?.1)
    }

    /// Removes this source's owner label from `name` (if it still carries it).
    async fn release(&self, key: &str, name: &str) -> Result<(), SyncError> {
        let Some(o) = self.store.get(BOTCLUSTER_KIND, name).await? else {
            return Ok(());
        };
        if o.meta.labels.get(OWNER_LABEL).map(String::as_str) != Some(key) || o.is_deleting() {
            return Ok(());
        }
        let mut meta = o.meta.user_fields();
        meta.labels.remove(OWNER_LABEL);
        self.store
            .apply(SpecWrite {
                kind: BOTCLUSTER_KIND.into(),
                meta,
                spec: o.spec.clone(),
                expected_resource_version: o.meta.resource_version.clone(),
                manager: Some(manager(key)),
                dry_run: false,
            })
            .await?;
        Ok(())
    }

    /// The inventory's BotClusters whose `Ready` is not True for their current generation.
    async fn not_ready(&self, st: &GitSourceStatus) -> Result<Vec<String>, SyncError> {
        let mut out = Vec::new();
        for i in &st.inventory {
            let ok = match self.store.get(BOTCLUSTER_KIND, &i.name).await? {
                Some(o) => {
                    let s: botcluster_api::BotClusterStatus =
                        serde_json::from_value(o.status.clone()).unwrap_or_default();
                    s.conditions.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.status == ConditionStatus::True
                            && c.observed_generation >= o.generation()
                    })
                }
                None => false,
            };
            if !ok {
                out.push(format!("botcluster/{}", i.name));
            }
        }
        Ok(out)
    }

    /// Deletion of the source: its BotClusters are released (kept, owner label removed), or
    /// deleted when DELETE said `cascade` and `spec.prune` is true.
    async fn cleanup(
        &self,
        key: &str,
        obj: &StoredObject,
        spec: &GitSourceSpec,
        st: &GitSourceStatus,
    ) -> Result<(), SyncError> {
        let cascade = obj
            .meta
            .annotations
            .get(DELETE_POLICY_ANNOTATION)
            .map(String::as_str)
            == Some("cascade")
            && spec.prune;
        for i in &st.inventory {
            let Some(o) = self.store.get(BOTCLUSTER_KIND, &i.name).await? else {
                continue;
            };
            if o.meta.labels.get(OWNER_LABEL).map(String::as_str) != Some(key) {
                continue;
            }
            if cascade {
                match self.store.delete(BOTCLUSTER_KIND, &i.name).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            } else {
                self.release(key, &i.name).await?;
            }
        }
        tracing::info!(
            gitsource = key,
            cascade,
            objects = st.inventory.len(),
            "GitSource deleted"
        );
        Ok(())
    }
}
