//! The admin API client: transport, the raw config verbs, `/id/` verbs, upstream status and
//! metrics.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, ETAG, HOST, IF_MATCH};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::etag::{compute_etag, Etag};

/// A request body.
#[derive(Clone, Copy)]
enum Body<'a> {
    Json(&'a Value),
    /// Caddyfile text, for `/adapt`.
    Caddyfile(&'a str),
}

/// Default time limit for one request, body included. A write blocks until Caddy has
/// reloaded, which is quick for plain HTTP servers but not bounded by Caddy itself.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`Error::Unreachable`] suggests by default.
pub const DEFAULT_UNREACHABLE_HINT: &str =
    "start one (in the botcluster workspace: `cargo xtask caddy-up`; elsewhere: \
     `caddy run` with this address in `admin.listen`)";

/// Sees every request the client makes, e.g. to count them in metrics.
///
/// `status` is Caddy's HTTP status, or `0` when no answer arrived (connection refused,
/// timeout). `elapsed` runs from sending the request to reading the whole answer.
/// Called on the task that made the request, so keep it cheap and non-blocking.
pub trait RequestObserver: Send + Sync {
    /// Records one finished request.
    fn observe(&self, method: &str, status: u16, elapsed: Duration);
}

/// One entry of `GET /reverse_proxy/upstreams`: the process-wide state of one dial address.
///
/// The list is shared by every `reverse_proxy` handler and only contains addresses that are in
/// the loaded config: an address removed from the config disappears at once, even while
/// requests to it are still running (fixed only in Caddy 2.11.2). Do not use it to tell when a
/// removed upstream has drained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The dial address, e.g. `127.0.0.1:8080`.
    pub address: String,
    /// Requests in flight to it right now (a gauge, not a total).
    pub num_requests: u64,
    /// Passive health check failures remembered within `fail_duration`. Caddy 2.5.2+ has no
    /// `healthy` field here; compare with the handler's `max_fails` yourself.
    pub fails: u64,
}

/// A client for one Caddy admin endpoint.
///
/// Cheap to clone; clones share the connection pool, the observer and the write counter.
///
/// Config paths given to the `*_config` methods are relative to `/config/`
/// (`apps/http/servers/edge`; a leading `/` or `/config/` is accepted too, `""` is the root).
/// Ids given to the `*_by_id` methods are an `@id` value, optionally followed by a path inside
/// that object (`rp_api/upstreams`).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// `http://host:port`, or `http://localhost` for a unix socket (the name is not sent).
    base: String,
    observer: Option<Arc<dyn RequestObserver>>,
    writes: Arc<AtomicU64>,
    timeout: Duration,
    hint: Arc<str>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.to_string())
            .field("observer", &self.observer.is_some())
            .field("write_count", &self.write_count())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A request that got no usable answer.
struct Failed {
    error: Error,
    /// The connection was reset before any answer arrived, so Caddy never read the request.
    unanswered_reset: bool,
}

/// One answer from Caddy, status not yet judged.
struct Answer {
    status: u16,
    body: Vec<u8>,
    /// From the `ETag` header (Caddy 2.8+) or trailer (2.5.2 to 2.7).
    etag: Option<Etag>,
}

impl Client {
    /// A client for `endpoint`. Nothing is connected until the first request.
    ///
    /// # Errors
    /// [`Error::Client`] if the HTTP client cannot be built.
    pub fn new(endpoint: Endpoint) -> Result<Client> {
        let mut headers = HeaderMap::new();
        let builder = match &endpoint {
            Endpoint::Tcp(_) => reqwest::Client::builder(),
            Endpoint::Unix(path) => {
                // Caddy before 2.10 checks the Host header on the unix socket too, and the
                // only name its default origins allow there is the empty one: `Host: localhost`
                // gets 403 "host not allowed". An explicit empty Host is sent as is.
                headers.insert(HOST, HeaderValue::from_static(""));
                reqwest::Client::builder().unix_socket(path.clone())
            }
        };
        let http = builder
            .default_headers(headers)
            // The admin API is local by nature; an HTTP(S)_PROXY in the environment must not
            // capture it.
            .no_proxy()
            // No idle connections: after a write that changes the config, Caddy 2.6.2 closes
            // the admin connection, sometimes without a `Connection: close` first, so the next
            // request on a pooled connection can fail with "connection reset by peer" (seen).
            // A fresh loopback connection per request costs well under 1 ms.
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(Error::Client)?;
        let base = match &endpoint {
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Unix(_) => "http://localhost".to_string(),
        };
        Ok(Client {
            http,
            endpoint,
            base,
            observer: None,
            writes: Arc::new(AtomicU64::new(0)),
            timeout: DEFAULT_TIMEOUT,
            hint: Arc::from(DEFAULT_UNREACHABLE_HINT),
        })
    }

    /// A client for an endpoint written as `http://127.0.0.1:2019`, `127.0.0.1:2019`,
    /// `unix:///path/admin.sock` or `unix//path/admin.sock` (see [`Endpoint::parse`]).
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] for other forms; [`Error::Client`] as [`Client::new`].
    pub fn from_url(url: &str) -> Result<Client> {
        Client::new(Endpoint::parse(url)?)
    }

    /// Reports every request to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Client {
        self.observer = Some(observer);
        self
    }

    /// Sets the time limit for one request, answer included (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Sets what [`Error::Unreachable`] suggests (default [`DEFAULT_UNREACHABLE_HINT`]).
    #[must_use]
    pub fn with_unreachable_hint(mut self, hint: impl Into<String>) -> Client {
        self.hint = Arc::from(hint.into());
        self
    }

    /// The admin endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How many mutating requests (load, PUT, PATCH, POST, DELETE) this client and its clones
    /// have sent, whether or not Caddy accepted them. A request resent because Caddy reset the
    /// connection before reading it counts once (the observer sees every attempt).
    ///
    /// Reads never count, so "an unchanged reconcile makes zero config pushes" is
    /// `write_count()` not moving across it.
    pub fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    // -----------------------------------------------------------------------------------------
    // Whole config

    /// Replaces the whole config (`POST /load`) and waits until Caddy has applied it.
    ///
    /// Caddy compares the new document with the running one first: an identical config is a
    /// no-op (no reload). A config that fails to load is rejected with [`Error::Api`]
    /// (`loading new config: ...`) and the old one keeps running.
    ///
    /// # Caveats
    /// - `config` replaces *everything*, including other people's servers. To own only part of
    ///   a shared config, use [`Client::ensure_config`] or [`Client::ensure_server`].
    /// - A config without an `admin` object moves the admin endpoint back to Caddy's default,
    ///   `localhost:2019`, and this client loses it. Carry the `admin` object over.
    ///
    /// # Errors
    /// As described above, plus [`Error::Unreachable`] and [`Error::Transport`].
    pub async fn load(&self, config: &Value) -> Result<()> {
        self.expect_ok(Method::POST, "/load".to_string(), Some(config), None)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // /config/ paths

    /// Reads the config at `path` with its ETag (`GET /config/<path>`).
    ///
    /// Returns `None` when nothing is there: Caddy answers 200 `null` for a missing last key
    /// and 400 `invalid traversal path` when a parent is missing; both become `None`.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::Decode`], and transport or other API errors.
    pub async fn get_config(&self, path: &str) -> Result<Option<(Value, Etag)>> {
        self.read(config_path(path)?).await
    }

    /// Creates the value at `path` (`PUT /config/<path>`), or inserts it into an array at the
    /// index `path` ends with.
    ///
    /// PUT is strict: an existing key gives [`Error::AlreadyExists`]. Missing parent objects
    /// are created (Caddy 2.6.2 creates `apps/http/servers` on a config that has no `apps`).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`]; [`Error::PreconditionFailed`] if `if_match` is stale;
    /// [`Error::Api`] if the result does not load; transport errors.
    pub async fn put_config(
        &self,
        path: &str,
        value: &Value,
        if_match: Option<&Etag>,
    ) -> Result<()> {
        self.expect_ok(Method::PUT, config_path(path)?, Some(value), if_match)
            .await
    }

    /// Replaces the existing value at `path` (`PATCH /config/<path>`).
    ///
    /// PATCH is strict: a missing key gives [`Error::NotFound`]. Patching in a value equal to
    /// the current one is a no-op in Caddy (no reload), but still counts in
    /// [`Client::write_count`].
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::PreconditionFailed`] if `if_match` is stale;
    /// [`Error::Api`] if the result does not load; transport errors.
    pub async fn patch_config(
        &self,
        path: &str,
        value: &Value,
        if_match: Option<&Etag>,
    ) -> Result<()> {
        self.expect_ok(Method::PATCH, config_path(path)?, Some(value), if_match)
            .await
    }

    /// Sets the object key at `path` (create or replace), or appends to the array at `path`
    /// (`POST /config/<path>`; a path ending in `/...` appends every element of an array).
    ///
    /// Unlike PUT, POST does not create missing parents (400/500 `invalid traversal path`,
    /// surfaced as [`Error::NotFound`]).
    ///
    /// # Errors
    /// As [`Client::patch_config`].
    pub async fn post_config(
        &self,
        path: &str,
        value: &Value,
        if_match: Option<&Etag>,
    ) -> Result<()> {
        self.expect_ok(Method::POST, config_path(path)?, Some(value), if_match)
            .await
    }

    /// Deletes the value at `path` (`DELETE /config/<path>`).
    ///
    /// Caddy 2.6.2 answers 200 for a missing last key too; use [`Client::remove_config`] to
    /// learn whether something was there without writing when it was not.
    ///
    /// # Caveats
    /// `delete_config("")` unloads the whole config, `admin` included, so the admin endpoint
    /// moves back to `localhost:2019`.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] if `if_match` is stale; transport and API errors.
    pub async fn delete_config(&self, path: &str, if_match: Option<&Etag>) -> Result<()> {
        self.expect_ok(Method::DELETE, config_path(path)?, None, if_match)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // /id/ paths

    /// Reads the object tagged `"@id": "<id>"` (or a path inside it) with its ETag.
    ///
    /// The ETag is Caddy's own (it names the expanded `/config/...` path), so it can guard
    /// writes through `/id/` and through `/config/` alike. Returns `None` for an unknown id
    /// (404) or a missing path inside the object.
    ///
    /// # Caveats
    /// Caddy 2.6.2 accepts the same `@id` on two objects and then resolves `/id/<id>` to either
    /// one, differently between reloads. Keep ids unique (prefix them with the server name);
    /// [`Etag::path`] of the answer tells which object was read.
    ///
    /// # Errors
    /// [`Error::Api`] in the unlikely case that Caddy sent no ETag (a Caddy older than 2.5.2);
    /// otherwise as [`Client::get_config`].
    pub async fn get_by_id(&self, id: &str) -> Result<Option<(Value, Etag)>> {
        self.read(id_path(id)?).await
    }

    /// `PUT /id/<id>`: as [`Client::put_config`], rooted at the object tagged `@id`.
    ///
    /// # Errors
    /// As [`Client::put_config`]; an unknown id is [`Error::NotFound`].
    pub async fn put_by_id(&self, id: &str, value: &Value, if_match: Option<&Etag>) -> Result<()> {
        self.expect_ok(Method::PUT, id_path(id)?, Some(value), if_match)
            .await
    }

    /// `PATCH /id/<id>`: as [`Client::patch_config`], rooted at the object tagged `@id`.
    ///
    /// # Errors
    /// As [`Client::patch_config`]; an unknown id is [`Error::NotFound`].
    pub async fn patch_by_id(
        &self,
        id: &str,
        value: &Value,
        if_match: Option<&Etag>,
    ) -> Result<()> {
        self.expect_ok(Method::PATCH, id_path(id)?, Some(value), if_match)
            .await
    }

    /// `POST /id/<id>`: as [`Client::post_config`], rooted at the object tagged `@id`.
    ///
    /// # Errors
    /// As [`Client::post_config`]; an unknown id is [`Error::NotFound`].
    pub async fn post_by_id(&self, id: &str, value: &Value, if_match: Option<&Etag>) -> Result<()> {
        self.expect_ok(Method::POST, id_path(id)?, Some(value), if_match)
            .await
    }

    /// `DELETE /id/<id>`: as [`Client::delete_config`], rooted at the object tagged `@id`.
    ///
    /// # Errors
    /// As [`Client::delete_config`]; an unknown id is [`Error::NotFound`].
    pub async fn delete_by_id(&self, id: &str, if_match: Option<&Etag>) -> Result<()> {
        self.expect_ok(Method::DELETE, id_path(id)?, None, if_match)
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Status

    /// The reverse proxy's upstream pool (`GET /reverse_proxy/upstreams`); see [`Upstream`]
    /// for what it does and does not tell.
    ///
    /// # Errors
    /// [`Error::Decode`], transport and API errors.
    pub async fn upstreams(&self) -> Result<Vec<Upstream>> {
        let path = "/reverse_proxy/upstreams";
        let body = self.get_ok(path).await?;
        serde_json::from_slice(&body).map_err(|source| decode_error("GET", path, &body, source))
    }

    /// Caddy's metrics in Prometheus text format (`GET /metrics` on the admin endpoint): Go
    /// runtime, process and admin API metrics, `caddy_reverse_proxy_upstreams_healthy`, and the
    /// `caddy_http_*` series of every server that has `"metrics": {}` (opt-in per server since
    /// Caddy 2.6.0). [`crate::ServerTraffic::from_metrics`] extracts one server's proxied
    /// traffic from it.
    ///
    /// Bytes that are not UTF-8 (Caddy sends none) are replaced with U+FFFD.
    ///
    /// # Errors
    /// Transport and API errors.
    pub async fn metrics(&self) -> Result<String> {
        let body = self.get_ok("/metrics").await?;
        Ok(match String::from_utf8(body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Whether this Caddy has the HTTP handler module `rate_limit` (mholt/caddy-ratelimit),
    /// asked of the running Caddy itself: `POST /adapt` of a small Caddyfile that uses the
    /// directive. Adapting changes nothing in the running config and is not counted as a
    /// write.
    ///
    /// # Errors
    /// Transport errors, and an answer that is neither success nor "unrecognized directive".
    pub async fn has_rate_limit(&self) -> Result<bool> {
        const PROBE: &str = "http://127.0.0.1:1 {\n\troute {\n\t\trate_limit {\n\t\t\tzone probe {\n\t\t\t\tkey static\n\t\t\t\tevents 1\n\t\t\t\twindow 1s\n\t\t\t}\n\t\t}\n\t}\n}\n";
        let path = "/adapt";
        let answer = self
            .send(Method::POST, path, Some(Body::Caddyfile(PROBE)), None)
            .await?;
        if is_success(answer.status) {
            return Ok(true);
        }
        let text = String::from_utf8_lossy(&answer.body);
        if text.contains("unrecognized directive") {
            return Ok(false);
        }
        Err(Error::from_answer(
            "POST",
            path,
            answer.status,
            &answer.body,
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Transport

    /// `GET path`, the body of a success answer, an error otherwise.
    async fn get_ok(&self, path: &str) -> Result<Vec<u8>> {
        let answer = self.send(Method::GET, path, None, None).await?;
        if is_success(answer.status) {
            Ok(answer.body)
        } else {
            Err(Error::from_answer("GET", path, answer.status, &answer.body))
        }
    }

    async fn read(&self, path: String) -> Result<Option<(Value, Etag)>> {
        let answer = self.send(Method::GET, &path, None, None).await?;
        if !is_success(answer.status) {
            return match Error::from_answer("GET", &path, answer.status, &answer.body) {
                Error::NotFound { .. } => Ok(None),
                other => Err(other),
            };
        }
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|source| decode_error("GET", &path, &answer.body, source))?;
        if value.is_null() {
            return Ok(None);
        }
        let etag = match answer.etag {
            Some(etag) => etag,
            // No header and no trailer: compute it, which is only possible when the request
            // path is the config path the tag must name.
            None if path.starts_with("/config/") => compute_etag(&path, &answer.body),
            None => {
                return Err(Error::Api {
                    method: "GET".into(),
                    path,
                    status: answer.status,
                    message: "Caddy sent no ETag (it needs Caddy 2.5.2 or newer)".into(),
                })
            }
        };
        Ok(Some((value, etag)))
    }

    async fn expect_ok(
        &self,
        method: Method,
        path: String,
        body: Option<&Value>,
        if_match: Option<&Etag>,
    ) -> Result<()> {
        let answer = self
            .send(method.clone(), &path, body.map(Body::Json), if_match)
            .await?;
        if is_success(answer.status) {
            Ok(())
        } else {
            Err(Error::from_answer(
                method.as_str(),
                &path,
                answer.status,
                &answer.body,
            ))
        }
    }

    /// Sends one request and reads the whole answer, trailers included, retrying a
    /// connection that Caddy reset before answering.
    ///
    /// Why the retry is safe, for writes too: Caddy (2.6.2 at least) starts a new admin server
    /// on every config change and shuts the old one down in the background. Both listen on the
    /// same address with `SO_REUSEPORT`, so for a few milliseconds a new connection can land
    /// in the old listener's accept queue and be reset when it closes, before any byte of the
    /// request was read. A reset under a request that *was* being served does not happen:
    /// the old server's graceful shutdown lets accepted connections finish.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
        if_match: Option<&Etag>,
    ) -> Result<Answer> {
        if method != Method::GET && !matches!(body, Some(Body::Caddyfile(_))) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = self.exchange(&method, path, body, if_match).await;
            if let Some(observer) = &self.observer {
                let status = result.as_ref().map_or(0, |a| a.status);
                observer.observe(method.as_str(), status, started.elapsed());
            }
            match result {
                Ok(answer) => return Ok(answer),
                Err(failed) if failed.unanswered_reset && attempt < RESET_ATTEMPTS => {
                    tokio::time::sleep(RESET_BACKOFF * attempt).await;
                }
                Err(failed) => return Err(failed.error),
            }
        }
    }

    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: Option<Body<'_>>,
        if_match: Option<&Etag>,
    ) -> Result<Answer, Failed> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(self.timeout);
        match body {
            Some(Body::Json(value)) => {
                // Serialising a `Value` cannot fail (its keys are strings).
                let bytes = serde_json::to_vec(value).unwrap_or_default();
                request = request.header(CONTENT_TYPE, "application/json").body(bytes);
            }
            Some(Body::Caddyfile(text)) => {
                request = request
                    .header(CONTENT_TYPE, "text/caddyfile")
                    .body(text.to_string());
            }
            None => {}
        }
        if let Some(etag) = if_match {
            request = request.header(IF_MATCH, etag.header_value());
        }
        let response = request.send().await.map_err(|e| Failed {
            unanswered_reset: was_reset(&e),
            error: self.transport_error(method, path, e),
        })?;
        let status = response.status().as_u16();
        let header_etag = etag_from(response.headers());
        let collected = http::Response::from(response)
            .into_body()
            .collect()
            .await
            // Caddy has answered, so it has read the request: never resent.
            .map_err(|e| Failed {
                unanswered_reset: false,
                error: self.transport_error(method, path, e),
            })?;
        let trailer_etag = collected.trailers().and_then(etag_from);
        Ok(Answer {
            status,
            etag: header_etag.or(trailer_etag),
            body: collected.to_bytes().to_vec(),
        })
    }

    fn transport_error(&self, method: &Method, path: &str, source: reqwest::Error) -> Error {
        let (endpoint, method, path) = (
            self.endpoint.to_string(),
            method.to_string(),
            path.to_string(),
        );
        if source.is_connect() {
            Error::Unreachable {
                endpoint,
                method,
                path,
                hint: self.hint.to_string(),
                source,
            }
        } else {
            Error::Transport {
                endpoint,
                method,
                path,
                timeout: source.is_timeout().then_some(self.timeout),
                source,
            }
        }
    }
}

/// How many times a request is sent when Caddy resets the connection (see `Client::send`).
const RESET_ATTEMPTS: u32 = 4;
/// The pause before a retry, times the attempt number.
const RESET_BACKOFF: Duration = Duration::from_millis(5);

/// Whether the connection was reset or closed before an answer arrived.
fn was_reset(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        // hyper's IncompleteMessage carries no io::Error, only this text.
        if e.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn etag_from(headers: &HeaderMap) -> Option<Etag> {
    headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(Etag::parse)
}

fn decode_error(method: &str, path: &str, body: &[u8], source: serde_json::Error) -> Error {
    let end = body.len().min(200);
    Error::Decode {
        method: method.to_string(),
        path: path.to_string(),
        body: String::from_utf8_lossy(&body[..end]).into_owned(),
        source,
    }
}

/// `/config/<path>` for a path given relative to `/config/` (a leading `/` or `/config/` is
/// accepted and dropped).
pub(crate) fn config_path(path: &str) -> Result<String> {
    let rel = path.strip_prefix('/').unwrap_or(path);
    let rel = rel
        .strip_prefix("config/")
        .or_else(|| (rel == "config").then_some(""))
        .unwrap_or(rel);
    check_path(path, rel)?;
    Ok(format!("/config/{rel}"))
}

/// `/id/<id>[/<path>]`.
pub(crate) fn id_path(id: &str) -> Result<String> {
    let rel = id.strip_prefix('/').unwrap_or(id);
    if rel.is_empty() {
        return Err(Error::InvalidPath {
            path: id.to_string(),
            reason: "an @id is required".into(),
        });
    }
    check_path(id, rel)?;
    Ok(format!("/id/{rel}"))
}

/// Rejects what cannot travel unchanged as a URL path and as the first field of an ETag:
/// whitespace, `?`, `#`, `%`, control and non-ASCII characters, and empty segments.
fn check_path(input: &str, rel: &str) -> Result<()> {
    let bad = rel
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '%' | '"' | '\\'));
    let trimmed = rel.strip_suffix('/').unwrap_or(rel);
    let reason = if let Some(c) = bad {
        format!("character {c:?} is not allowed in a config path")
    } else if !trimmed.is_empty() && trimmed.split('/').any(str::is_empty) {
        "empty path segment".to_string()
    } else {
        return Ok(());
    };
    Err(Error::InvalidPath {
        path: input.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_are_relative_to_config_and_forgive_the_prefix() {
        let p = |s| config_path(s).expect(s);
        assert_eq!(p(""), "/config/");
        assert_eq!(p("/"), "/config/");
        assert_eq!(p("config"), "/config/");
        assert_eq!(
            p("apps/http/servers/edge"),
            "/config/apps/http/servers/edge"
        );
        assert_eq!(p("/apps/http"), "/config/apps/http");
        assert_eq!(p("/config/apps/http"), "/config/apps/http");
        assert_eq!(
            p("apps/http/servers/edge/routes/..."),
            "/config/apps/http/servers/edge/routes/..."
        );
        assert_eq!(p("apps/"), "/config/apps/");
    }

    #[test]
    fn paths_that_would_not_survive_the_trip_are_rejected() {
        for bad in [
            "apps//http",
            "apps/my server",
            "apps?x=1",
            "apps#x",
            "apps/%20",
            "apps/é",
        ] {
            let err = config_path(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidPath { .. }), "{bad}: {err}");
        }
        assert!(id_path("").is_err());
        assert_eq!(
            id_path("rp_api/upstreams").ok().as_deref(),
            Some("/id/rp_api/upstreams")
        );
    }
}
