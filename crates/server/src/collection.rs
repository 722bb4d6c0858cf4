//! A kind's collection endpoint, `GET /api/v1/<plural>`: lists (whole or in pages) and watches,
//! answered from the [`WatchCache`], filtered by label and field selectors.
//!
//! Query parameters (each checked; a bad one is a 400 naming it):
//! `labelSelector`, `fieldSelector`, `limit`, `continue`, `resourceVersion`, `watch`,
//! `timeoutSeconds`, `allowWatchBookmarks`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use botcluster_api::API_VERSION;
use botcluster_store::WatchAction;
use serde_json::json;
use tokio::sync::broadcast;

use crate::cache::{kind_range, CachedObject, Change, Fanout, WatchCache};
use crate::selector::{FieldSelector, LabelSelector};
use crate::ApiError;

/// A kind as the HTTP API names it.
#[derive(Debug)]
pub struct KindInfo {
    /// `BotCluster`.
    pub kind: &'static str,
    /// `BotClusterList`.
    pub list_kind: &'static str,
    /// `botclusters` (the path segment).
    pub plural: &'static str,
    /// The command that lists what exists (a 404's hint).
    pub list_command: &'static str,
}

/// BotClusters.
pub const BOTCLUSTERS: KindInfo = KindInfo {
    kind: botcluster_api::BOTCLUSTER_KIND,
    list_kind: "BotClusterList",
    plural: "botclusters",
    list_command: "botctl get",
};

/// GitSources.
pub const GITSOURCES: KindInfo = KindInfo {
    kind: botcluster_api::GITSOURCE_KIND,
    list_kind: "GitSourceList",
    plural: "gitsources",
    list_command: "botctl get gitsources",
};

/// Longest watch (`timeoutSeconds`), and the default.
const MAX_WATCH_SECONDS: u64 = 24 * 3600;
const DEFAULT_WATCH_SECONDS: u64 = 1800;
/// How long a watch from a resourceVersion newer than the cache waits for it.
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// The parsed query of a collection request.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<Continue>,
    pub resource_version: Option<u64>,
    pub watch: bool,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
}

/// Where a page ended: the snapshot's resourceVersion and the last name returned.
#[derive(Debug, PartialEq, Eq)]
pub struct Continue {
    pub rv: u64,
    pub kind: String,
    pub after: String,
}

impl Continue {
    fn encode(&self) -> String {
        hex::encode(format!("{}:{}:{}", self.rv, self.kind, self.after))
    }
    fn decode(token: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
        let (rv, rest) = text.split_once(':')?;
        let (kind, after) = rest.split_once(':')?;
        Some(Continue {
            rv: rv.parse().ok()?,
            kind: kind.to_string(),
            after: after.to_string(),
        })
    }
}

fn bool_param(q: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name}=\"{other}\" must be true or false"
        ))),
    }
}

fn u64_param(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{name}=\"{v}\" must be a whole number (0 or more)"))
            })
        })
        .transpose()
}

impl ListQuery {
    /// Reads and checks the query parameters.
    pub fn parse(q: &HashMap<String, String>, kind: &KindInfo) -> Result<Self, ApiError> {
        let labels = match q.get("labelSelector") {
            None => LabelSelector::default(),
            Some(s) => LabelSelector::parse(s).map_err(|e| {
                ApiError::bad_request(format!(
                    "labelSelector \"{s}\": {e}; write it like team=bots,tier!=canary,env in (prod,staging),!legacy"
                ))
            })?,
        };
        let fields = match q.get("fieldSelector") {
            None => FieldSelector::default(),
            Some(s) => FieldSelector::parse(s).map_err(|e| {
                ApiError::bad_request(format!(
                    "fieldSelector \"{s}\": {e}; write it like metadata.name=web"
                ))
            })?,
        };
        let watch = bool_param(q, "watch", false)?;
        let bookmarks = bool_param(q, "allowWatchBookmarks", true)?;
        let limit = match u64_param(q, "limit")? {
            None | Some(0) => None,
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let continue_token = match q.get("continue").filter(|c| !c.is_empty()) {
            None => None,
            Some(t) => {
                let c = Continue::decode(t).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "continue=\"{t}\" is not a token this server gave out; pass the metadata.continue of the previous page unchanged"
                    ))
                })?;
                if c.kind != kind.kind {
                    return Err(ApiError::bad_request(format!(
                        "continue: the token is for a list of {}, not {}",
                        c.kind, kind.plural
                    )));
                }
                Some(c)
            }
        };
        let resource_version = match q.get("resourceVersion").map(String::as_str) {
            None | Some("") => None,
            Some(_) => u64_param(q, "resourceVersion")?,
        };
        if continue_token.is_some() && resource_version.is_some_and(|rv| rv > 0) {
            return Err(ApiError::bad_request(
                "resourceVersion cannot be combined with continue: the token already names the snapshot; drop resourceVersion",
            ));
        }
        if watch && (limit.is_some() || continue_token.is_some()) {
            return Err(ApiError::bad_request(
                "limit and continue are for lists; a watch (watch=true) takes resourceVersion, labelSelector, fieldSelector and timeoutSeconds",
            ));
        }
        let timeout = match u64_param(q, "timeoutSeconds")? {
            None => None,
            Some(s) if (1..=MAX_WATCH_SECONDS).contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(ApiError::bad_request(format!(
                    "timeoutSeconds={s} must be from 1 to {MAX_WATCH_SECONDS}"
                )))
            }
        };
        Ok(ListQuery {
            labels,
            fields,
            limit,
            continue_token,
            resource_version,
            watch,
            timeout,
            bookmarks,
        })
    }

    fn selects(&self, o: &CachedObject) -> bool {
        self.fields.matches(&o.name) && self.labels.matches(&o.labels)
    }
}

/// `410 Gone` with Kubernetes' reason.
fn expired(message: String) -> ApiError {
    ApiError::new(StatusCode::GONE, "Expired", message)
}

/// Waits until the cache holds every acknowledged write (503 if it cannot catch up).
pub async fn sync(cache: &WatchCache) -> Result<u64, ApiError> {
    cache.sync().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            format!("the server's cache is behind the store ({e:?}); retry in a moment"),
        )
    })
}

/// `GET /api/v1/<plural>`: a list, a page, or a watch.
pub async fn serve(
    kind: &'static KindInfo,
    cache: Arc<WatchCache>,
    q: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(&q, kind)?;
    let now = sync(&cache).await?;
    if let Some(rv) = q.resource_version.filter(|rv| *rv > now) {
        cache.wait_for(rv, FUTURE_RV_WAIT).await.map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TooLargeResourceVersion",
                format!("resourceVersion {rv} is newer than this server has seen ({now}); use a resourceVersion from this server, or none"),
            )
        })?;
    }
    if q.watch {
        watch(kind, &cache, q)
    } else {
        Ok(list(kind, &cache, &q)?)
    }
}

fn list(kind: &KindInfo, cache: &WatchCache, q: &ListQuery) -> Result<Response, ApiError> {
    let (rv, objects) = match (&q.continue_token, q.limit) {
        (Some(c), _) => {
            let m = cache.snapshot_at(c.rv).ok_or_else(|| {
                expired(format!(
                    "continue: the list snapshot at resourceVersion {} has expired (kept {} s); list again from the start without continue",
                    c.rv,
                    cache.config().snapshot_ttl.as_secs()
                ))
            })?;
            (c.rv, m)
        }
        (None, Some(_)) => cache.keep_snapshot(),
        (None, None) => cache.current(),
    };
    // The whole unfiltered list (what a dashboard polls) is built once per change.
    let whole = q.limit.is_none()
        && q.continue_token.is_none()
        && q.labels.0.is_empty()
        && q.fields == FieldSelector::default();
    if whole {
        if let Some(body) = cache.memo_list(kind.kind, rv) {
            return Ok(json_response(StatusCode::OK, body));
        }
    }
    let after = q.continue_token.as_ref().map(|c| c.after.as_str());
    let mut matching = kind_range(&objects, kind.kind, after).filter(|o| q.selects(o));
    let mut items: Vec<&Arc<CachedObject>> = Vec::new();
    let limit = q.limit.unwrap_or(usize::MAX);
    for o in matching.by_ref() {
        items.push(o);
        if items.len() >= limit {
            break;
        }
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if q.limit.is_some() {
        if let Some(last) = items.last() {
            let rest = matching.count();
            if rest > 0 {
                meta["continue"] = json!(Continue {
                    rv,
                    kind: kind.kind.to_string(),
                    after: last.name.clone(),
                }
                .encode());
                meta["remainingItemCount"] = json!(rest);
            }
        }
    }
    let head = json!({"apiVersion": API_VERSION, "kind": kind.list_kind, "metadata": meta});
    let head = serde_json::to_vec(&head).unwrap_or_default();
    // `{...head fields..., "items": [doc, doc]}`: the documents are spliced in as serialized.
    let size = head.len() + 16 + items.iter().map(|o| o.doc.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(&head[..head.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&o.doc);
    }
    body.extend_from_slice(b"]}");
    let body = Bytes::from(body);
    if whole {
        cache.remember_list(kind.kind, rv, body.clone());
    }
    Ok(json_response(StatusCode::OK, body))
}

/// A response with a JSON body already serialized.
pub fn json_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn watch(kind: &'static KindInfo, cache: &WatchCache, q: ListQuery) -> Result<Response, ApiError> {
    let mut pending = VecDeque::new();
    let (rv, rx) = match q.resource_version.filter(|rv| *rv > 0) {
        // No resourceVersion: the current state as ADDED events, then what follows.
        None => {
            let (rv, objects, rx) = cache.watch_now();
            for o in kind_range(&objects, kind.kind, None).filter(|o| q.selects(o)) {
                pending.push_back(line("ADDED", &o.doc));
            }
            (rv, rx)
        }
        Some(from) => {
            let (backlog, rx) = cache.watch_from(from).ok_or_else(|| {
                expired(format!(
                    "resourceVersion {from} is too old: this server keeps changes from {} on; list again and watch from the list's resourceVersion",
                    cache.floor()
                ))
            })?;
            let mut st = Filter {
                kind,
                q: &q,
                last_rv: from,
            };
            for c in &backlog {
                if let Some(l) = st.event(c) {
                    pending.push_back(l);
                }
            }
            (st.last_rv, rx)
        }
    };
    let period = cache.config().bookmark_interval;
    let timeout = q
        .timeout
        .unwrap_or(Duration::from_secs(DEFAULT_WATCH_SECONDS));
    let state = WatchState {
        kind,
        q,
        pending,
        rx,
        last_rv: rv,
        bookmarks: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        deadline: tokio::time::Instant::now() + timeout,
        buffer: cache.config().watcher_buffer,
        closed: Box::pin(cache.closed()),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, next_line);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One watch line: `{"type":T,"object":DOC}\n`.
fn line(kind: &str, doc: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(doc.len() + 32);
    b.extend_from_slice(b"{\"type\":\"");
    b.extend_from_slice(kind.as_bytes());
    b.extend_from_slice(b"\",\"object\":");
    b.extend_from_slice(doc);
    b.extend_from_slice(b"}\n");
    Bytes::from(b)
}

fn error_line(code: u16, reason: &str, message: &str) -> Bytes {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": code, "reason": reason, "message": message});
    line("ERROR", &serde_json::to_vec(&status).unwrap_or_default())
}

/// Turns a change into what a filtered watcher sees (Kubernetes' rule: an object that stops
/// matching is DELETED for the watcher, one that starts matching is ADDED).
struct Filter<'a> {
    kind: &'a KindInfo,
    q: &'a ListQuery,
    last_rv: u64,
}

impl Filter<'_> {
    fn event(&mut self, c: &Change) -> Option<Bytes> {
        self.last_rv = self.last_rv.max(c.cur.resource_version);
        if c.cur.kind != self.kind.kind {
            return None;
        }
        let now = self.q.selects(&c.cur);
        let before = c.prev.as_ref().is_some_and(|p| self.q.selects(p));
        let t = match (c.action, before, now) {
            (WatchAction::Added, _, true) => "ADDED",
            (WatchAction::Modified, false, true) => "ADDED",
            (WatchAction::Modified, true, true) => "MODIFIED",
            (WatchAction::Modified, true, false) => "DELETED",
            (WatchAction::Deleted, b, n) if b || n => "DELETED",
            _ => return None,
        };
        Some(line(t, &c.cur.doc))
    }
}

struct WatchState {
    kind: &'static KindInfo,
    q: ListQuery,
    pending: VecDeque<Bytes>,
    rx: broadcast::Receiver<Fanout>,
    last_rv: u64,
    bookmarks: tokio::time::Interval,
    deadline: tokio::time::Instant,
    buffer: usize,
    closed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    done: bool,
}

async fn next_line(mut st: WatchState) -> Option<(Result<Bytes, Infallible>, WatchState)> {
    loop {
        if let Some(b) = st.pending.pop_front() {
            return Some((Ok(b), st));
        }
        if st.done {
            return None;
        }
        tokio::select! {
            r = st.rx.recv() => match r {
                Ok(Fanout::Change(c)) => {
                    let mut f = Filter { kind: st.kind, q: &st.q, last_rv: st.last_rv };
                    let l = f.event(&c);
                    st.last_rv = f.last_rv;
                    if let Some(l) = l {
                        st.pending.push_back(l);
                    }
                }
                Ok(Fanout::Reset) => {
                    st.pending.push_back(error_line(410, "Expired",
                        "the server rebuilt its cache from the store; list again and watch from the list's resourceVersion"));
                    st.done = true;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "a watcher fell behind and was ended");
                    st.pending.push_back(error_line(410, "Expired", &format!(
                        "this watch fell more than {} changes behind (too slow a reader) and was ended; list again and watch from the list's resourceVersion",
                        st.buffer)));
                    st.done = true;
                }
                Err(broadcast::error::RecvError::Closed) => st.done = true,
            },
            _ = st.bookmarks.tick(), if st.q.bookmarks => {
                let doc = json!({"kind": st.kind.kind, "apiVersion": API_VERSION,
                    "metadata": {"resourceVersion": st.last_rv.to_string()}});
                st.pending.push_back(line("BOOKMARK", &serde_json::to_vec(&doc).unwrap_or_default()));
            }
            _ = tokio::time::sleep_until(st.deadline) => st.done = true,
            // The server is shutting down: end, the client resumes from its last version.
            _ = &mut st.closed => st.done = true,
        }
    }
}
