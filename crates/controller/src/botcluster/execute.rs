//! Execution: runs a plan's container actions against the backend and says what came of each
//! one — done, learned something about the host (a refused limit, a busy port), or failed.
//!
//! Order: every action but `Create` in plan order (a delete first lets LXD's stop hooks
//! finish; a run of consecutive deletes goes [`DELETES_AT_ONCE`] at a time), then the
//! creates concurrently under the global create bound. A create is
//! create stopped → push files → record the files hash → start, so a crash in between is
//! finished by the next pass. "Already exists" on create counts as success.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use botcluster_api::spec::BotClusterSpec;
use botcluster_api::{Event, BOTCLUSTER_KIND};
use botcluster_store::Store;
use tokio::sync::Semaphore;

use super::event;
use super::ports::PortBook;
use crate::backend::{BackendError, ContainerBackend, CreateRequest};
use crate::health::ClusterMemory;
use crate::metrics::ControllerMetrics;
use crate::model::{file_paths_value, Capabilities, KEY_FILES, KEY_FILE_PATHS};
use crate::plan::{Action, NewInstance, Plan};

/// How many deletes of one pass run at once.
pub const DELETES_AT_ONCE: usize = 8;

/// What running one action gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It was done.
    Done,
    /// It failed in a way the reconciler learned from; the next plan avoids it, so it is no
    /// error of the pass.
    Learned(Learned),
    /// It failed; the pass backs off.
    Failed(String),
}

/// Something the host taught the reconciler.
#[derive(Clone, Debug, PartialEq)]
pub enum Learned {
    /// The host refuses a config key (e.g. `limits.disk.priority` without blkio).
    LimitUnsupported {
        /// The key.
        key: String,
    },
    /// Something else holds this host port.
    PortBusy {
        /// The port.
        port: u16,
    },
}

/// One action and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Executed {
    /// The action.
    pub action: Action,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The sentences of the failed actions (empty: none failed).
pub fn failures(done: &[Executed]) -> Vec<String> {
    done.iter()
        .filter_map(|e| match &e.outcome {
            Outcome::Failed(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
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

fn done_reason(a: &Action) -> &'static str {
    match a {
        Action::Create(_) => "Created",
        Action::Replace(_) => "Replaced",
        Action::Start { .. } => "Started",
        Action::Restart { .. } => "Restarted",
        Action::Patch { .. } => "Updated",
        Action::PushFiles { .. } => "FilesPushed",
        Action::Delete { .. } => "Deleted",
    }
}

/// What the cluster's memory learns from actions that were done: a restart starts a fresh
/// health streak, a replaced or deleted instance is forgotten.
pub fn fold_into_memory(done: &[Executed], mem: &mut ClusterMemory) {
    let now = Instant::now();
    for e in done.iter().filter(|e| e.outcome == Outcome::Done) {
        match &e.action {
            Action::Restart { name } => mem.restarted(name, now),
            Action::Replace(n) => mem.forget(&n.name),
            Action::Delete { name, .. } => mem.forget(name),
            _ => {}
        }
    }
}

/// Runs actions. Owns (shares) everything it needs, so a batch can outlive the pass that
/// started it (see `pass`: a batch that takes longer than the pass's budget goes on in the
/// background).
#[derive(Clone)]
pub(crate) struct Executor {
    pub backend: Arc<dyn ContainerBackend>,
    pub store: Arc<dyn Store>,
    pub metrics: ControllerMetrics,
    /// The global bound on concurrent create requests (and the file pushes that follow).
    pub creates: Arc<Semaphore>,
    /// The global bound on concurrent starts.
    pub starts: Arc<Semaphore>,
    /// What this host refuses (learned here).
    pub caps: Arc<Mutex<Capabilities>>,
    /// Ports found busy are recorded here.
    pub ports: Arc<Mutex<PortBook>>,
    /// Bind-check a host port before creating a container on it.
    pub check_host_ports: bool,
}

impl Executor {
    async fn record(&self, name: &str, e: Event) {
        if let Err(err) = self.store.record_event(BOTCLUSTER_KIND, name, e).await {
            tracing::warn!(cluster = name, error = %err, "recording an event failed");
        }
    }

    /// Runs the plan's actions (see the module documentation for the order); records an
    /// event and a metric for each and learns from refused limits and busy ports.
    pub(crate) async fn execute(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        p: &Plan,
    ) -> Vec<Executed> {
        let mut out = Vec::new();
        let mut creates = Vec::new();
        let mut deletes = Vec::new();
        for a in &p.actions {
            match a {
                Action::Create(n) => creates.push(n),
                Action::Delete { .. } => deletes.push(a),
                other => {
                    out.extend(self.delete_all(name, spec, &mut deletes).await);
                    let r = self.run_action(spec, other).await;
                    out.push(self.note(name, other.clone(), r).await);
                }
            }
        }
        out.extend(self.delete_all(name, spec, &mut deletes).await);
        let runs = creates.iter().map(|n| async move {
            let r = self.create(spec, n).await;
            (Action::Create((*n).clone()), r)
        });
        for (a, r) in futures_util::future::join_all(runs).await {
            out.push(self.note(name, a, r).await);
        }
        out
    }

    /// Runs a run of consecutive deletes, [`DELETES_AT_ONCE`] at a time (each is stop → wait
    /// for LXD's stop hooks → delete, about 1.4 s on LXD 5.0.2, so a teardown of ten one
    /// after another took 14 s).
    async fn delete_all(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        deletes: &mut Vec<&Action>,
    ) -> Vec<Executed> {
        let bound = Semaphore::new(DELETES_AT_ONCE);
        let bound = &bound;
        let runs: Vec<_> = deletes
            .drain(..)
            .map(|a| async move {
                let _permit = bound.acquire().await;
                (a.clone(), self.run_action(spec, a).await)
            })
            .collect();
        let results = futures_util::future::join_all(runs).await;
        let mut out = Vec::new();
        for (a, r) in results {
            out.push(self.note(name, a, r).await);
        }
        out
    }

    /// Classifies a result, records it, and learns from it.
    async fn note(&self, name: &str, a: Action, r: Result<(), BackendError>) -> Executed {
        let kind = action_kind(&a);
        let result = if r.is_ok() { "success" } else { "error" };
        self.metrics
            .actions
            .with_label_values(&[kind, result])
            .inc();
        let outcome = match r {
            Ok(()) => {
                tracing::info!(cluster = name, action = %a.describe(), "done");
                self.record(name, event("Normal", done_reason(&a), a.describe()))
                    .await;
                Outcome::Done
            }
            Err(BackendError::Unsupported { key, message }) => {
                if key == "limits.disk.priority" {
                    if let Ok(mut c) = self.caps.lock() {
                        c.disk_priority = false;
                    }
                }
                self.record(
                    name,
                    event(
                        "Warning",
                        "LimitUnsupported",
                        format!("this LXD host refuses {key} ({message}); continuing without it"),
                    ),
                )
                .await;
                Outcome::Learned(Learned::LimitUnsupported { key })
            }
            Err(BackendError::PortBusy { message, port }) => {
                let port = match &a {
                    Action::Create(n) | Action::Replace(n) => {
                        let mut book = self.ports.lock().unwrap_or_else(|p| p.into_inner());
                        book.busy.insert(n.host_port);
                        n.host_port
                    }
                    _ => port,
                };
                self.record(
                    name,
                    event(
                        "Warning",
                        "PortBusy",
                        format!("{}: {message}; choosing another port", a.describe()),
                    ),
                )
                .await;
                Outcome::Learned(Learned::PortBusy { port })
            }
            Err(e) => {
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
                Outcome::Failed(format!("{}: {e}", a.describe()))
            }
        };
        Executed { action: a, outcome }
    }

    async fn run_action(&self, spec: &BotClusterSpec, a: &Action) -> Result<(), BackendError> {
        let b = &self.backend;
        match a {
            Action::Create(n) => self.create(spec, n).await,
            Action::Replace(n) => {
                b.stop(&n.name).await?;
                b.delete(&n.name).await?;
                self.create(spec, n).await
            }
            Action::Start { name } => self.start(name).await,
            Action::Restart { name } => b.restart(name).await,
            Action::Patch {
                name,
                config,
                devices,
                remove_devices,
            } => b.patch(name, config, devices, remove_devices).await,
            Action::PushFiles {
                name,
                files,
                hash,
                remove,
            } => {
                // A running bot may be reading them (the shard map): replaced, not rewritten.
                for f in files {
                    b.replace_file(name, f).await?;
                }
                for path in remove {
                    b.remove_file(name, path).await?;
                }
                self.record_files_hash(name, hash, files).await
            }
            Action::Delete { name, .. } => {
                b.stop(name).await?;
                b.delete(name).await
            }
        }
    }

    /// Starts an instance under the global start bound.
    async fn start(&self, name: &str) -> Result<(), BackendError> {
        let _permit = self
            .starts
            .acquire()
            .await
            .map_err(|_| BackendError::Other("shutting down".into()))?;
        self.backend.start(name).await
    }

    /// Records the files' hash and paths, once they are in place.
    async fn record_files_hash(
        &self,
        name: &str,
        hash: &str,
        files: &[botcluster_api::spec::FileSpec],
    ) -> Result<(), BackendError> {
        let mut c = BTreeMap::new();
        c.insert(KEY_FILES.to_string(), hash.to_string());
        c.insert(KEY_FILE_PATHS.to_string(), file_paths_value(files));
        self.backend.patch(name, &c, &Default::default(), &[]).await
    }

    /// Create → push files → record their hash → start. The files hash is written only after
    /// the files are in place, so a crash in between makes the next pass push them again.
    async fn create(&self, spec: &BotClusterSpec, n: &NewInstance) -> Result<(), BackendError> {
        if self.check_host_ports {
            let addr = crate::model::host_port(&spec.listen_address, n.host_port);
            if let Err(e) = std::net::TcpListener::bind(&addr) {
                return Err(BackendError::PortBusy {
                    port: n.host_port,
                    message: format!("{addr} is in use on this host ({e})"),
                });
            }
        }
        let permit = self
            .creates
            .acquire()
            .await
            .map_err(|_| BackendError::Other("shutting down".into()))?;
        let mut config = n.config.clone();
        // Hash and paths are recorded once the files are in place.
        let files_hash = if n.files.is_empty() {
            None
        } else {
            config.remove(KEY_FILE_PATHS);
            config.remove(KEY_FILES)
        };
        let request = CreateRequest {
            name: n.name.clone(),
            image: n.image.clone(),
            profiles: n.profiles.clone(),
            config,
            devices: n.devices.clone(),
            target: None,
        };
        match self.backend.create(&request).await {
            Ok(()) => {}
            // A create that landed before a crash: the next steps finish it.
            Err(BackendError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(h) = files_hash {
            for f in &n.files {
                self.backend.push_file(&n.name, f).await?;
            }
            self.record_files_hash(&n.name, &h, &n.files).await?;
        }
        // The start has its own bound: the next create need not wait for this one to start.
        drop(permit);
        match self.start(&n.name).await {
            Err(BackendError::PortBusy { message, .. }) => Err(BackendError::PortBusy {
                port: n.host_port,
                message,
            }),
            other => other,
        }
    }
}
