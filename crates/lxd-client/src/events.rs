//! `/1.0/events`: the websocket event stream, raw and self-reconnecting.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::client::Transport;
use crate::{Client, Error, Request, Result};

/// The event classes LXD can stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Object lifecycle: `instance-created`, `instance-started`, … (see LXD's
    /// `doc/events.md`).
    Lifecycle,
    /// Operation progress and completion.
    Operation,
    /// Daemon log lines.
    Logging,
}

impl EventType {
    /// The name LXD uses in `?type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Lifecycle => "lifecycle",
            EventType::Operation => "operation",
            EventType::Logging => "logging",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event frame.
///
/// ```
/// let e: lxd_client::Event = serde_json::from_str(r#"{"type":"lifecycle",
///   "timestamp":"2026-11-28T08:00:00Z","location":"none","project":"default",
///   "metadata":{"action":"instance-started","source":"/1.0/instances/web-0","context":{}}}"#).unwrap();
/// let l = e.lifecycle().unwrap();
/// assert_eq!(l.action, "instance-started");
/// assert_eq!(l.instance_name(), Some("web-0"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// `lifecycle`, `operation` or `logging`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When LXD emitted it (RFC 3339).
    pub timestamp: String,
    /// The payload; its shape depends on `event_type`.
    pub metadata: Value,
    /// Cluster member that emitted it; `none` when not clustered.
    pub location: String,
    /// Project of the object concerned.
    pub project: String,
}

impl Event {
    /// The lifecycle payload, for `lifecycle` events.
    pub fn lifecycle(&self) -> Option<LifecycleEvent> {
        if self.event_type != "lifecycle" {
            return None;
        }
        serde_json::from_value(self.metadata.clone()).ok()
    }
}

/// Payload of a `lifecycle` [`Event`].
///
/// **Do not drive a state machine from these**: LXD does not emit a stable
/// sequence (a force restart sometimes emits `instance-shutdown` first, sometimes
/// not). Treat an event as "something about `source` changed; look again".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleEvent {
    /// e.g. `instance-started`, `instance-stopped` (forced), `instance-shutdown`
    /// (graceful), `instance-updated`, `instance-deleted`.
    pub action: String,
    /// The object's URL, e.g. `/1.0/instances/web-0`.
    pub source: String,
    /// Action-specific details.
    pub context: Value,
    /// Who asked (`username`, `protocol`, `address`).
    pub requestor: Value,
}

impl LifecycleEvent {
    /// The instance name when `source` is an instance URL.
    pub fn instance_name(&self) -> Option<&str> {
        let rest = self.source.strip_prefix("/1.0/instances/")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let name = &rest[..end];
        (!name.is_empty()).then_some(name)
    }
}

/// A live event subscription (see [`Client::events`]).
///
/// A background task reads the websocket and answers LXD's keepalive pings, so the
/// subscription survives even when you are slow to poll; events queue up in
/// memory meanwhile. The stream ends when LXD closes the connection (after an
/// `Err` item if it broke). Dropping it closes the websocket.
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Result<Event>>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Reconnection policy of [`Client::watch_events`]: exponential backoff, capped.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (default 250 ms).
    pub initial: Duration,
    /// Longest delay between retries (default 30 s).
    pub max: Duration,
    /// A connection that stayed up this long resets the delay to `initial`
    /// (default 10 s). Keeps a server that accepts and then drops at once from
    /// being hammered.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    fn next(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max).max(self.initial)
    }
}

/// An item of [`Client::watch_events`].
#[derive(Debug)]
pub enum WatchItem {
    /// The first subscription is active: every later change will be reported.
    /// List what you care about now.
    Connected,
    /// The subscription was lost and is active again. Events in between are
    /// **lost**: list again.
    Reconnected,
    /// An event.
    Event(Event),
    /// Connecting failed or the connection dropped; the watcher tries again after
    /// `retry_in`.
    Disconnected {
        /// Why.
        error: Error,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// The never-ending stream of [`Client::watch_events`].
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = WatchItem> + Send>>,
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl Stream for WatchStream {
    type Item = WatchItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchItem>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Client {
    /// Subscribes to `GET /1.0/events?type=…` (a websocket).
    ///
    /// **Guarantee:** when this returns `Ok`, the subscription is active: anything
    /// that happens afterwards is delivered. Subscribe *before* issuing the
    /// requests whose events you want to see.
    ///
    /// Events of the client's project are delivered (LXD's default project when
    /// none is set). An empty `types` means LXD's default, all types.
    ///
    /// Must be called within a tokio runtime (a reader task is spawned).
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection or handshake fails.
    pub async fn events(&self, types: &[EventType]) -> Result<EventStream> {
        let joined = types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let query: Vec<(&str, &str)> = if joined.is_empty() {
            Vec::new()
        } else {
            vec![("type", &joined)]
        };
        let mut url = self.url(&["events"], &query, true)?;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let request = Request::new("GET", path.clone());
        let ws_scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(ws_scheme)
            .map_err(|_| Error::Config(format!("cannot use {ws_scheme} for {url}")))?;
        let started = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let result = match self.transport() {
            Transport::Unix(socket) => match tokio::net::UnixStream::connect(socket).await {
                Ok(stream) => self.handshake(url.as_str(), stream, &request, tx).await,
                Err(e) => Err(self.ws_error(&request, format!("connect: {e}"))),
            },
            #[cfg(feature = "https")]
            Transport::Https { host, port, tls } => {
                match crate::tls::connect(host, *port, tls.clone()).await {
                    Ok(stream) => self.handshake(url.as_str(), stream, &request, tx).await,
                    Err(e) => Err(self.ws_error(&request, e)),
                }
            }
        };
        let status = match &result {
            Ok(()) => 101,
            Err(Error::NotFound { .. }) => 404,
            Err(Error::Other { status, .. }) => *status,
            Err(_) => 0,
        };
        self.observe("GET", url.path(), status, started.elapsed());
        result.map(|()| EventStream { rx })
    }

    async fn handshake<S>(
        &self,
        url: &str,
        stream: S,
        request: &Request,
        tx: mpsc::UnboundedSender<Result<Event>>,
    ) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ws_request = url
            .into_client_request()
            .map_err(|e| self.ws_error(request, format!("bad request: {e}")))?;
        let (ws, _response) = match tokio_tungstenite::client_async(ws_request, stream).await {
            Ok(ok) => ok,
            Err(tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let message = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<crate::Envelope>(b).ok())
                    .map(|env| env.error)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("HTTP {status} instead of a websocket"));
                return Err(Error::from_lxd(request.clone(), status, message));
            }
            Err(e) => return Err(self.ws_error(request, format!("handshake: {e}"))),
        };
        let endpoint = self.endpoint();
        let request = request.clone();
        tokio::spawn(pump(ws, tx, request, endpoint));
        Ok(())
    }

    fn ws_error(&self, request: &Request, message: String) -> Error {
        Error::WebSocket {
            request: request.clone(),
            endpoint: self.endpoint(),
            message,
        }
    }

    /// A never-ending event stream that survives LXD restarts and socket hiccups.
    ///
    /// **Expected flow**
    /// 1. The first item is [`WatchItem::Connected`] (or `Disconnected` items while
    ///    LXD is unreachable, then `Connected`): list your objects now.
    /// 2. [`WatchItem::Event`]s follow.
    /// 3. If the connection drops: [`WatchItem::Disconnected`], then retries with
    ///    exponential backoff (capped at `backoff.max`), then
    ///    [`WatchItem::Reconnected`]: **list again**, because events were lost while
    ///    disconnected.
    ///
    /// The stream never ends by itself; drop it to stop. Must be polled within a
    /// tokio runtime.
    pub fn watch_events(&self, types: &[EventType], backoff: Backoff) -> WatchStream {
        struct St {
            client: Client,
            types: Vec<EventType>,
            backoff: Backoff,
            stream: Option<(EventStream, Instant)>,
            ever_connected: bool,
            delay: Duration,
            sleep_first: Option<Duration>,
        }
        let st = St {
            client: self.clone(),
            types: types.to_vec(),
            delay: backoff.initial,
            backoff,
            stream: None,
            ever_connected: false,
            sleep_first: None,
        };
        let inner = futures_util::stream::unfold(st, |mut st| async move {
            if let Some((mut stream, since)) = st.stream.take() {
                let error = match stream.next().await {
                    Some(Ok(event)) => {
                        st.stream = Some((stream, since));
                        return Some((WatchItem::Event(event), st));
                    }
                    Some(Err(e)) => e,
                    None => Error::WebSocket {
                        request: Request::new("GET", "/1.0/events"),
                        endpoint: st.client.endpoint(),
                        message: "connection closed by LXD".into(),
                    },
                };
                if since.elapsed() >= st.backoff.stable_after {
                    st.delay = st.backoff.initial;
                }
                let retry_in = st.delay;
                st.sleep_first = Some(retry_in);
                st.delay = st.backoff.next(st.delay);
                return Some((WatchItem::Disconnected { error, retry_in }, st));
            }
            if let Some(d) = st.sleep_first.take() {
                tokio::time::sleep(d).await;
            }
            match st.client.events(&st.types).await {
                Ok(stream) => {
                    st.stream = Some((stream, Instant::now()));
                    let item = if st.ever_connected {
                        WatchItem::Reconnected
                    } else {
                        WatchItem::Connected
                    };
                    st.ever_connected = true;
                    Some((item, st))
                }
                Err(error) => {
                    let retry_in = st.delay;
                    st.sleep_first = Some(retry_in);
                    st.delay = st.backoff.next(st.delay);
                    Some((WatchItem::Disconnected { error, retry_in }, st))
                }
            }
        });
        WatchStream {
            inner: Box::pin(inner),
        }
    }
}

/// Reads the websocket until it closes or the subscriber goes away. Reading is what
/// answers LXD's keepalive pings (tungstenite queues the pong and flushes it on the
/// next read), so this loop must not wait on the subscriber.
async fn pump<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    tx: mpsc::UnboundedSender<Result<Event>>,
    request: Request,
    endpoint: String,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::select! {
            _ = tx.closed() => {
                let _ = ws.close(None).await;
                return;
            }
            msg = ws.next() => msg,
        };
        let item = match msg {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => parse_event(text.as_bytes(), &request),
            Some(Ok(Message::Binary(bytes))) => parse_event(&bytes, &request),
            Some(Ok(_)) => continue, // ping/pong/raw frames
            Some(Err(e)) => {
                let _ = tx.send(Err(Error::WebSocket {
                    request: request.clone(),
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                }));
                return;
            }
        };
        if tx.send(item).is_err() {
            let _ = ws.close(None).await;
            return;
        }
    }
}

fn parse_event(bytes: &[u8], request: &Request) -> Result<Event> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
        request: request.clone(),
        message: format!("event is not JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_instance_name_handles_queries_and_subpaths() {
        let mk = |s: &str| LifecycleEvent {
            source: s.into(),
            ..Default::default()
        };
        assert_eq!(mk("/1.0/instances/a").instance_name(), Some("a"));
        assert_eq!(mk("/1.0/instances/a?project=p").instance_name(), Some("a"));
        assert_eq!(
            mk("/1.0/instances/a/snapshots/s").instance_name(),
            Some("a")
        );
        assert_eq!(mk("/1.0/images/x").instance_name(), None);
        assert_eq!(mk("/1.0/instances/").instance_name(), None);
    }

    #[test]
    fn non_lifecycle_events_have_no_lifecycle_payload() {
        let e = Event {
            event_type: "operation".into(),
            metadata: serde_json::json!({"id": "x"}),
            ..Default::default()
        };
        assert!(e.lifecycle().is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            stable_after: Duration::from_secs(1),
        };
        let mut d = b.initial;
        let mut seen = vec![];
        for _ in 0..5 {
            seen.push(d.as_millis());
            d = b.next(d);
        }
        assert_eq!(seen, [100, 200, 400, 500, 500]);
    }
}
