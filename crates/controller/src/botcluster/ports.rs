//! The port book: which host ports each cluster's instances hold, and which were found busy.
//!
//! In-process and rebuildable: [`BotClusterReconciler::learn_ports`] fills it from LXD at
//! start, and every pass replaces its cluster's entry with what it observed.

use std::collections::{BTreeSet, HashMap};

use super::{BotClusterReconciler, ReconcileError};
use crate::plan::{ObservedInstance, PortPool};

/// Host ports in use, per cluster, and ports found busy on the host.
#[derive(Default)]
pub(crate) struct PortBook {
    pub by_cluster: HashMap<String, BTreeSet<u16>>,
    pub busy: BTreeSet<u16>,
}

impl BotClusterReconciler {
    /// Learns which host ports every managed instance holds (call once at start).
    pub async fn learn_ports(&self) -> Result<(), ReconcileError> {
        let all = self.backend.list_managed().await?;
        let mut book = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        for o in all {
            let port = o
                .devices
                .get(crate::model::PROXY_DEVICE)
                .and_then(|d| d.get("listen"))
                .and_then(|l| crate::model::port_of_listen(l));
            if let (Some(c), Some(p)) = (o.config.get(crate::model::KEY_CLUSTER), port) {
                book.by_cluster.entry(c.clone()).or_default().insert(p);
            }
        }
        Ok(())
    }

    /// The ports `cluster` may hand out: the configured range minus other clusters' and
    /// busy ones.
    pub(crate) fn pool_for(&self, cluster: &str) -> PortPool {
        let book = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = BTreeSet::new();
        for (c, ports) in &book.by_cluster {
            if c != cluster {
                taken.extend(ports.iter().copied());
            }
        }
        taken.extend(book.busy.iter().copied());
        PortPool {
            start: self.config.port_range.0,
            end: self.config.port_range.1,
            taken,
        }
    }

    /// Records the ports `cluster`'s observed instances hold.
    pub(crate) fn remember_ports(&self, cluster: &str, observed: &[ObservedInstance]) {
        let mut book = self.ports.lock().unwrap_or_else(|p| p.into_inner());
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

    pub(crate) fn forget_ports(&self, cluster: &str) {
        let mut book = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        book.by_cluster.remove(cluster);
    }
}
