//! The BotCluster kind's child events: LXD lifecycle events of instances named
//! `<cluster>-<n>` become keys, and every (re)connect asks for all (events are lost while
//! disconnected).

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::runtime::Trigger;

/// A short delay merges the burst of events one action causes.
const EVENT_DELAY: Duration = Duration::from_millis(200);

/// Triggers from `client`'s lifecycle event stream (reconnecting with backoff).
pub fn lxd_events(client: lxd_client::Client) -> BoxStream<'static, Trigger> {
    client
        .watch_events(
            &[lxd_client::EventType::Lifecycle],
            lxd_client::Backoff::default(),
        )
        .filter_map(|item| async move {
            match item {
                lxd_client::WatchItem::Connected | lxd_client::WatchItem::Reconnected => {
                    Some(Trigger::All)
                }
                lxd_client::WatchItem::Event(ev) => ev
                    .lifecycle()
                    .as_ref()
                    .and_then(|l| l.instance_name())
                    .and_then(crate::model::cluster_of)
                    .map(|c| Trigger::Key(c.to_string(), EVENT_DELAY)),
                lxd_client::WatchItem::Disconnected { .. } => None,
            }
        })
        .boxed()
}

/// A cluster whose background action batch finished (see `ReconcilerConfig::action_budget`):
/// reconcile it soon, so the outcome shows in status and the next steps follow.
pub(crate) fn finished_batches(
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> BoxStream<'static, Trigger> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|k| (Trigger::Key(k, EVENT_DELAY), rx))
    })
    .boxed()
}
