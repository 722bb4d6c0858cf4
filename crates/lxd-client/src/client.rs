//! The client: transport, request plumbing, operations, and the REST endpoints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{
    ETag, Envelope, Image, ImageAlias, Instance, InstancePatch, InstancePut, InstanceState,
    InstanceStatePut, InstancesPost, Operation, ResponseType, Server, StatusCode,
};
use crate::{Error, Filter, Metrics, Request, Result};

/// Default socket of the Debian/source LXD package.
const DEFAULT_SOCKET: &str = "/var/lib/lxd/unix.socket";
/// Server-side wait per `/operations/UUID/wait` call; the client loops until done.
const WAIT_CHUNK: Duration = Duration::from_secs(30);
/// Extra HTTP time granted to a wait call beyond its server-side timeout.
const WAIT_SLACK: Duration = Duration::from_secs(30);
/// Longest LXD message body kept in an error when the body is not an envelope.
const MAX_RAW_MESSAGE: usize = 512;

/// Receives one call per HTTP request the client makes, after the answer (or the
/// transport failure) arrived. Use it to feed request counters and latency
/// histograms; this crate itself depends on no metrics library.
///
/// ```
/// use std::time::Duration;
/// struct Log;
/// impl lxd_client::RequestObserver for Log {
///     fn observe(&self, method: &str, path_kind: &str, status: u16, elapsed: Duration) {
///         println!("{method} {path_kind} -> {status} in {elapsed:?}");
///     }
/// }
/// ```
///
/// Operation waits are requests too (`GET /1.0/operations/{id}/wait`), so a create
/// shows up as a `POST` and one or more waits.
pub trait RequestObserver: Send + Sync {
    /// Called once per request.
    ///
    /// - `method`: `GET`, `POST`, …
    /// - `path_kind`: the path with names and ids replaced by `{name}` (see
    ///   [`path_kind`]), so label cardinality stays bounded;
    /// - `status`: the HTTP status, `101` for an accepted events websocket, or `0`
    ///   when no HTTP answer arrived (connection refused, timeout…);
    /// - `elapsed`: time from sending to having read the whole body.
    fn observe(&self, method: &str, path_kind: &str, status: u16, elapsed: Duration);
}

/// How [`Client::push_file`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Replace the file (the default).
    #[default]
    Overwrite,
    /// Append to the file.
    Append,
}

/// Options of [`Client::push_file`] and [`Client::create_directory`].
///
/// `uid`/`gid` are as seen *inside* the instance; LXD maps them to host ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePush {
    /// Owner uid inside the instance (`None`: LXD's default, root).
    pub uid: Option<u32>,
    /// Owner gid inside the instance (`None`: LXD's default, root).
    pub gid: Option<u32>,
    /// Permission bits, e.g. `0o644` (`None`: LXD's default).
    pub mode: Option<u32>,
    /// Overwrite or append.
    pub write: WriteMode,
    /// Create missing parent directories (mode `0755`, same uid/gid) when LXD
    /// answers 404 for the file. Default: `true`.
    pub create_parents: bool,
}

impl Default for FilePush {
    fn default() -> Self {
        FilePush {
            uid: None,
            gid: None,
            mode: None,
            write: WriteMode::Overwrite,
            create_parents: true,
        }
    }
}

impl FilePush {
    /// Root-owned with the given mode, parents created.
    pub fn mode(mode: u32) -> Self {
        FilePush {
            mode: Some(mode),
            ..Default::default()
        }
    }
}

/// Options of [`Client::import_image`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageImport {
    /// Original file name, stored in the image record (`X-LXD-filename`).
    pub filename: Option<String>,
    /// Whether untrusted clients may use the image (`X-LXD-public`).
    pub public: bool,
    /// Aliases to create for the image once imported.
    pub aliases: Vec<String>,
}

pub(crate) enum Transport {
    Unix(PathBuf),
    #[cfg(feature = "https")]
    Https {
        host: String,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    },
}

struct Shared {
    http: reqwest::Client,
    /// `http://lxd` for the unix socket, the server URL for HTTPS.
    base: Url,
    transport: Transport,
    writes: AtomicU64,
}

/// An LXD API client. Cheap to clone; clones share the connection pool and the
/// write counter.
///
/// Every method maps to one endpoint. Methods whose endpoint is asynchronous in
/// LXD (create, put, state change, delete, image import) wait for the operation to
/// finish and report its failure as an [`Error`], so a returned `Ok` means LXD
/// finished the work.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    project: Option<String>,
    observer: Option<Arc<dyn RequestObserver>>,
    request_timeout: Duration,
    operation_timeout: Option<Duration>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint())
            .field("project", &self.project)
            .field("observer", &self.observer.is_some())
            .field("request_timeout", &self.request_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

impl Client {
    /// A client for the LXD unix socket at `path`.
    ///
    /// Nothing is connected yet: a missing socket shows up as
    /// [`Error::Transport`] on the first request.
    ///
    /// # Errors
    /// [`Error::Config`] if the HTTP client cannot be built.
    pub fn unix(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref().to_path_buf();
        let builder = reqwest::Client::builder()
            .unix_socket(path.clone())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10));
        #[cfg(feature = "https")]
        let builder = builder.tls_backend_preconfigured(crate::tls::inert_config()?);
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("HTTP client for unix socket: {e}")))?;
        let base = Url::parse("http://lxd").map_err(|e| Error::Config(e.to_string()))?;
        Ok(Client::from_parts(http, base, Transport::Unix(path)))
    }

    /// A client for the local LXD: `$LXD_DIR/unix.socket` when `LXD_DIR` is set,
    /// else `/var/lib/lxd/unix.socket` (the snap uses
    /// `/var/snap/lxd/common/lxd/unix.socket`; set `LXD_DIR` for it).
    ///
    /// # Errors
    /// As [`Client::unix`].
    pub fn from_env() -> Result<Client> {
        Client::unix(Client::default_socket_path())
    }

    /// The socket [`Client::from_env`] would use.
    pub fn default_socket_path() -> PathBuf {
        match std::env::var_os("LXD_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("unix.socket"),
            _ => PathBuf::from(DEFAULT_SOCKET),
        }
    }

    /// A client for a remote LXD over HTTPS.
    ///
    /// - `url`: `https://host[:port]` (port defaults to 8443);
    /// - `identity_pem`: this client's certificate and private key, PEM, in one
    ///   buffer (the certificate must be trusted by the server, e.g. with
    ///   `lxc config trust add`);
    /// - `server_fingerprint_sha256`: SHA-256 of the server certificate (DER), hex,
    ///   colons and case ignored, as shown by `lxc info` or
    ///   [`crate::ServerEnvironment::certificate_fingerprint`].
    ///
    /// The server is authenticated **only** by that fingerprint: LXD's certificates
    /// are self-signed and name the host, not the address you reach it at, so
    /// hostname and CA checks are replaced by the pin, like LXD's own Go client does.
    ///
    /// Needs the `https` cargo feature (rustls with the `ring` provider). Enabling it
    /// switches `reqwest` to `rustls-no-provider` for the whole build (cargo feature
    /// unification): other `reqwest::Client`s in the same program then need a
    /// process-wide rustls provider, see [`crate::install_default_crypto_provider`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad URL or fingerprint, [`Error::Config`] for
    /// an unusable identity, or when the crate was built without `https`.
    #[cfg(feature = "https")]
    pub fn https(
        url: &str,
        identity_pem: &[u8],
        server_fingerprint_sha256: &str,
    ) -> Result<Client> {
        let base =
            Url::parse(url).map_err(|e| Error::InvalidArgument(format!("LXD URL {url:?}: {e}")))?;
        if base.scheme() != "https" {
            return Err(Error::InvalidArgument(format!(
                "LXD URL {url:?} must use https://"
            )));
        }
        let host = base
            .host_str()
            .ok_or_else(|| Error::InvalidArgument(format!("LXD URL {url:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = base.port().unwrap_or(8443);
        let mut base = base;
        base.set_path("");
        base.set_query(None);
        let _ = base.set_port(Some(port));
        let tls = Arc::new(crate::tls::pinned_config(
            identity_pem,
            server_fingerprint_sha256,
        )?);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config(format!("HTTPS client: {e}")))?;
        Ok(Client::from_parts(
            http,
            base,
            Transport::Https { host, port, tls },
        ))
    }

    /// A client for a remote LXD over HTTPS: **not available in this build** (the
    /// crate was compiled without its `https` feature); always returns
    /// [`Error::Config`]. See the feature-enabled documentation for the contract.
    ///
    /// # Errors
    /// Always [`Error::Config`].
    #[cfg(not(feature = "https"))]
    pub fn https(
        url: &str,
        identity_pem: &[u8],
        server_fingerprint_sha256: &str,
    ) -> Result<Client> {
        let _ = (identity_pem, server_fingerprint_sha256);
        Err(Error::Config(format!(
            "HTTPS transport to {url} is not compiled in: enable the `https` feature of lxd-client"
        )))
    }

    fn from_parts(http: reqwest::Client, base: Url, transport: Transport) -> Client {
        Client {
            shared: Arc::new(Shared {
                http,
                base,
                transport,
                writes: AtomicU64::new(0),
            }),
            project: None,
            observer: None,
            request_timeout: Duration::from_secs(60),
            operation_timeout: None,
        }
    }

    /// A client for the same server that works in `project` (`?project=` on every
    /// project-scoped request). Shares the connection pool and write counter.
    ///
    /// LXD answers a list in a nonexistent project with an empty list, not an
    /// error; check the project once with [`Client::project_exists`] if it matters.
    pub fn with_project(&self, project: impl Into<String>) -> Client {
        Client {
            project: Some(project.into()),
            ..self.clone()
        }
    }

    /// The project this client works in (`None`: the server's default project).
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// Installs an observer called once per HTTP request (see [`RequestObserver`]).
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Client {
        self.observer = Some(observer);
        self
    }

    /// Timeout of one plain request (default 60 s). Operation waits are governed
    /// by [`Client::with_operation_timeout`] instead.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = timeout;
        self
    }

    /// How long methods that wait for an operation wait before failing with
    /// [`Error::Timeout`] (default: no limit). The operation keeps running in LXD
    /// after a timeout.
    pub fn with_operation_timeout(mut self, timeout: Option<Duration>) -> Client {
        self.operation_timeout = timeout;
        self
    }

    /// Number of write requests (POST, PUT, PATCH, DELETE) this client and its
    /// clones have sent, including failed ones. Reads (including operation waits)
    /// are not counted. Meant for tests ("a second reconcile makes no writes").
    pub fn write_count(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// Where this client talks to, e.g. `unix:/var/lib/lxd/unix.socket`.
    pub fn endpoint(&self) -> String {
        match &self.shared.transport {
            Transport::Unix(p) => format!("unix:{}", p.display()),
            #[cfg(feature = "https")]
            Transport::Https { .. } => self.shared.base.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// The unix socket path, for unix clients.
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.shared.transport {
            Transport::Unix(p) => Some(p),
            #[cfg(feature = "https")]
            Transport::Https { .. } => None,
        }
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.shared.transport
    }

    pub(crate) fn observe(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        if let Some(o) = &self.observer {
            o.observe(method, &path_kind(path), status, elapsed);
        }
    }

    /// Builds `<base>/1.0/<segments…>?<query>[&project=…]`, percent-encoding each
    /// segment and query value.
    pub(crate) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        project_scoped: bool,
    ) -> Result<Url> {
        let mut url = self.shared.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| Error::Config("base URL cannot have a path".into()))?;
            path.clear().push("1.0");
            for s in segments {
                path.push(s);
            }
        }
        let project = if project_scoped {
            self.project.as_deref()
        } else {
            None
        };
        if !query.is_empty() || project.is_some() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(p) = project {
                q.append_pair("project", p);
            }
        }
        Ok(url)
    }

    /// Sends one request and reads the whole answer. Counts writes and calls the
    /// observer. Does not interpret the status.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<reqwest::Body>,
        timeout: Duration,
    ) -> Result<Reply> {
        let request = Request::new(method.as_str(), path_and_query(&url));
        if matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            self.shared.writes.fetch_add(1, Ordering::Relaxed);
        }
        let path = url.path().to_owned();
        let mut builder = self
            .shared
            .http
            .request(method.clone(), url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let sent = async {
            let resp = builder.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        }
        .await;
        let elapsed = started.elapsed();
        match sent {
            Ok((status, headers, body)) => {
                self.observe(method.as_str(), &path, status, elapsed);
                Ok(Reply {
                    request,
                    status,
                    headers,
                    body: body.to_vec(),
                })
            }
            Err(source) => {
                self.observe(method.as_str(), &path, 0, elapsed);
                Err(Error::Transport {
                    request,
                    endpoint: self.endpoint(),
                    source,
                })
            }
        }
    }

    /// A JSON request whose answer is an envelope; error envelopes become errors.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        if_match: Option<&ETag>,
    ) -> Result<(Reply, Envelope)> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = if_match {
            headers.insert(IF_MATCH, header_value(etag.as_str())?);
        }
        let body = match body {
            Some(b) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let bytes = serde_json::to_vec(b).map_err(|e| {
                    Error::InvalidArgument(format!("cannot encode request body: {e}"))
                })?;
                Some(reqwest::Body::from(bytes))
            }
            None => None,
        };
        let reply = self
            .execute(method, url, headers, body, self.request_timeout)
            .await?;
        let envelope = reply.envelope()?;
        Ok((reply, envelope))
    }

    async fn get_sync<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        let (reply, env) = self.call::<()>(Method::GET, url, None, None).await?;
        reply.decode(env.metadata)
    }

    /// Finishes a write: waits for the operation if LXD answered `async`.
    async fn complete(&self, reply: Reply, env: Envelope) -> Result<Option<Operation>> {
        match env.kind {
            ResponseType::Sync => Ok(None),
            ResponseType::Async => {
                let id = operation_id(&env).ok_or_else(|| Error::Protocol {
                    request: reply.request.clone(),
                    message: "async answer without an operation id".into(),
                })?;
                let op = self
                    .wait_for(&id, self.operation_timeout, &reply.request)
                    .await?;
                Ok(Some(op))
            }
            ResponseType::Error => Err(reply.error_from(env)),
        }
    }

    /// Escape hatch for endpoints this crate does not wrap: sends `method` to
    /// `path` (absolute, starting with `/1.0`, query allowed) with an optional JSON
    /// body, waits for the operation when LXD answers `async`, and returns the
    /// sync answer's metadata, or the finished operation's metadata.
    ///
    /// The client's project is appended as `?project=` unless `path` already
    /// names one. Counted and observed like every other request.
    ///
    /// ```no_run
    /// # async fn demo(lxd: &lxd_client::Client) -> Result<(), lxd_client::Error> {
    /// let warnings = lxd.request("GET", "/1.0/warnings?recursion=1", None).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad method or path; otherwise as any call.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("HTTP method {method:?}")))?;
        if path != "/1.0" && !path.starts_with("/1.0/") && !path.starts_with("/1.0?") {
            return Err(Error::InvalidArgument(format!(
                "API path {path:?} must start with /1.0"
            )));
        }
        let mut url = self
            .shared
            .base
            .join(path)
            .map_err(|e| Error::InvalidArgument(format!("API path {path:?}: {e}")))?;
        if let Some(project) = &self.project {
            if !url.query_pairs().any(|(k, _)| k == "project") {
                url.query_pairs_mut().append_pair("project", project);
            }
        }
        let (reply, env) = self.call(method, url, body, None).await?;
        let sync_metadata = env.metadata.clone();
        match self.complete(reply, env).await? {
            Some(op) => Ok(op.metadata),
            None => Ok(sync_metadata),
        }
    }

    // ----------------------------------------------------------------- operations

    /// Waits for operation `id` (a UUID or `/1.0/operations/UUID`) to finish.
    ///
    /// Calls `GET /1.0/operations/UUID/wait?timeout=N` in a loop: LXD answers that
    /// call with the operation still `Running` when `N` seconds pass, so one call
    /// is not enough.
    ///
    /// **Wait promptly**: LXD forgets a finished operation about 5 s after it ends,
    /// after which this fails with [`Error::NotFound`].
    ///
    /// # Errors
    /// - the operation's failure, classified like any LXD error
    ///   ([`Error::AlreadyExists`], [`Error::AlreadyRunning`], … or
    ///   [`Error::Other`] with status 400 or 401);
    /// - [`Error::Timeout`] when `timeout` passes first (the operation goes on).
    pub async fn wait_operation(&self, id: &str, timeout: Option<Duration>) -> Result<Operation> {
        let id = id.rsplit('/').next().unwrap_or(id).to_owned();
        let origin = Request::new("GET", format!("/1.0/operations/{id}")).with_operation(&id);
        self.wait_for(&id, timeout, &origin).await
    }

    async fn wait_for(
        &self,
        id: &str,
        timeout: Option<Duration>,
        origin: &Request,
    ) -> Result<Operation> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let origin = origin.clone().with_operation(id);
        loop {
            let chunk = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout {
                            request: origin,
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    left.min(WAIT_CHUNK)
                }
                None => WAIT_CHUNK,
            };
            // LXD takes whole seconds; never ask for 0 (that returns at once).
            let secs = chunk.as_secs().max(1).to_string();
            let url = self.url(&["operations", id, "wait"], &[("timeout", &secs)], true)?;
            let reply = self
                .execute(Method::GET, url, HeaderMap::new(), None, chunk + WAIT_SLACK)
                .await?;
            let env = reply.envelope()?;
            let op: Operation = reply.decode(env.metadata)?;
            match op.status_code {
                StatusCode::SUCCESS => return Ok(op),
                code if code.is_final() => {
                    let message = if op.err.is_empty() {
                        op.status.clone()
                    } else {
                        op.err.clone()
                    };
                    return Err(Error::from_lxd(origin, code.0, message));
                }
                _ => continue,
            }
        }
    }

    /// `GET /1.0/operations/UUID`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when LXD does not know (or no longer knows) it.
    pub async fn get_operation(&self, id: &str) -> Result<Operation> {
        let id = id.rsplit('/').next().unwrap_or(id);
        self.get_sync(self.url(&["operations", id], &[], true)?)
            .await
    }

    // --------------------------------------------------------------------- server

    /// `GET /1.0`: API extensions, server version, kernel, storage…
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn server(&self) -> Result<Server> {
        self.get_sync(self.url(&[], &[], false)?).await
    }

    /// Whether `project` exists (`GET /1.0/projects/NAME`).
    ///
    /// # Errors
    /// Transport and LXD errors other than 404.
    pub async fn project_exists(&self, project: &str) -> Result<bool> {
        let url = self.url(&["projects", project], &[], false)?;
        match self.get_sync::<serde_json::Value>(url).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /1.0/metrics`: Prometheus text for every instance of every project.
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn metrics_text(&self) -> Result<String> {
        let url = self.url(&["metrics"], &[], false)?;
        let reply = self
            .execute(
                Method::GET,
                url,
                HeaderMap::new(),
                None,
                self.request_timeout,
            )
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(reply.error_from_any());
        }
        String::from_utf8(reply.body).map_err(|e| Error::Protocol {
            request: reply.request,
            message: format!("metrics are not UTF-8: {e}"),
        })
    }

    /// [`Client::metrics_text`], parsed into per-instance CPU seconds and memory bytes.
    ///
    /// # Errors
    /// As [`Client::metrics_text`].
    pub async fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::parse(&self.metrics_text().await?))
    }

    // ------------------------------------------------------------------ instances

    /// `GET /1.0/instances?recursion=1[&filter=…]`: full instance objects, in one
    /// request (about 10 ms for 20 instances on LXD 5.0.2).
    ///
    /// The filter runs on the server; see [`Filter`] for its (case-insensitive)
    /// matching rules.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unusable filter key; LXD answers a
    /// malformed filter with [`Error::Other`] status 500.
    pub async fn list_instances(&self, filter: Option<&Filter>) -> Result<Vec<Instance>> {
        self.list_instances_query(filter, false).await
    }

    /// Like [`Client::list_instances`], across all projects (`all-projects=true`);
    /// each instance's `project` says where it lives.
    ///
    /// # Errors
    /// As [`Client::list_instances`].
    pub async fn list_instances_all_projects(
        &self,
        filter: Option<&Filter>,
    ) -> Result<Vec<Instance>> {
        self.list_instances_query(filter, true).await
    }

    async fn list_instances_query(
        &self,
        filter: Option<&Filter>,
        all_projects: bool,
    ) -> Result<Vec<Instance>> {
        let filter = match filter {
            Some(f) if !f.is_empty() => Some(f.to_query_value()?),
            _ => None,
        };
        let mut query = vec![("recursion", "1")];
        if let Some(f) = &filter {
            query.push(("filter", f));
        }
        if all_projects {
            query.push(("all-projects", "true"));
        }
        self.get_sync(self.url(&["instances"], &query, !all_projects)?)
            .await
    }

    /// `GET /1.0/instances/NAME`: the instance and its ETag (for `If-Match`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such instance.
    pub async fn get_instance(&self, name: &str) -> Result<(Instance, ETag)> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call::<()>(Method::GET, url, None, None).await?;
        let etag = reply
            .headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|s| ETag(s.to_owned()))
            .ok_or_else(|| Error::Protocol {
                request: reply.request.clone(),
                message: "no ETag header".into(),
            })?;
        let instance = reply.decode(env.metadata)?;
        Ok((instance, etag))
    }

    /// `POST /1.0/instances`, then waits for the operation. The instance is
    /// created **stopped**; start it with [`Client::change_state`].
    ///
    /// # Errors
    /// - [`Error::AlreadyExists`] when the name is taken (LXD reports it through
    ///   the operation, not as HTTP 409);
    /// - [`Error::NotFound`] when the image alias does not exist;
    /// - [`Error::Other`] 400 for an invalid name, 500 for invalid config/devices.
    pub async fn create_instance(&self, post: &InstancesPost) -> Result<()> {
        let url = self.url(&["instances"], &[], true)?;
        let (reply, env) = self.call(Method::POST, url, Some(post), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PATCH /1.0/instances/NAME`: merge config keys and devices (see
    /// [`InstancePatch`] for the exact merge rules). Synchronous on LXD 5.0.2;
    /// waits for the operation if a server answers asynchronously.
    ///
    /// With `if_match`, LXD refuses the change if the instance changed since that
    /// ETag was read.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] on an ETag mismatch, [`Error::NotFound`],
    /// [`Error::Other`] 500 for invalid config.
    pub async fn patch_instance(
        &self,
        name: &str,
        patch: &InstancePatch,
        if_match: Option<&ETag>,
    ) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call(Method::PATCH, url, Some(patch), if_match).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PUT /1.0/instances/NAME`: replace config, devices and profiles entirely,
    /// then wait for the operation. Keys and devices not in `put` are removed;
    /// this is the way to remove a device.
    ///
    /// # Errors
    /// As [`Client::patch_instance`].
    pub async fn put_instance(
        &self,
        name: &str,
        put: &InstancePut,
        if_match: Option<&ETag>,
    ) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call(Method::PUT, url, Some(put), if_match).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `PUT /1.0/instances/NAME/state`: start, stop, restart, freeze or unfreeze,
    /// then wait for the operation.
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] / [`Error::AlreadyStopped`] for no-op changes
    /// (treat them as success when converging), [`Error::NotFound`], and the
    /// operation's failure (e.g. a proxy device that cannot bind) as
    /// [`Error::Other`].
    pub async fn change_state(&self, name: &str, state: &InstanceStatePut) -> Result<()> {
        let url = self.url(&["instances", name, "state"], &[], true)?;
        let (reply, env) = self.call(Method::PUT, url, Some(state), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `GET /1.0/instances/NAME/state`: status, memory, CPU, processes, network.
    /// Costs about 90 ms per call on LXD 5.0.2; prefer [`Client::metrics`] for
    /// many instances.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such instance.
    pub async fn get_instance_state(&self, name: &str) -> Result<InstanceState> {
        self.get_sync(self.url(&["instances", name, "state"], &[], true)?)
            .await
    }

    /// `DELETE /1.0/instances/NAME`, then wait for the operation.
    ///
    /// # Errors
    /// [`Error::InstanceRunning`] when it is running (stop it first),
    /// [`Error::NotFound`] when it does not exist.
    pub async fn delete_instance(&self, name: &str) -> Result<()> {
        let url = self.url(&["instances", name], &[], true)?;
        let (reply, env) = self.call::<()>(Method::DELETE, url, None, None).await?;
        self.complete(reply, env).await.map(drop)
    }

    // ---------------------------------------------------------------------- files

    /// `POST /1.0/instances/NAME/files?path=…`: writes `content` to `path` (absolute)
    /// inside the instance, with the owner and mode of `opts`. Works on stopped
    /// instances too, which makes it the way to seed config before a first start.
    ///
    /// With `opts.create_parents` (the default), when LXD answers 404 because a
    /// parent directory is missing, the parents are created (`X-LXD-type:
    /// directory`, mode 0755) and the push is retried once. So the common case
    /// costs one request.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path, [`Error::NotFound`] for a
    /// missing instance (or missing parents without `create_parents`).
    pub async fn push_file(
        &self,
        instance: &str,
        path: &str,
        content: impl Into<Vec<u8>>,
        opts: &FilePush,
    ) -> Result<()> {
        check_absolute(path)?;
        let content = content.into();
        let first = self
            .file_post(instance, path, "file", Some(content.clone()), opts)
            .await;
        match first {
            Err(Error::NotFound { .. }) if opts.create_parents && parent_of(path).is_some() => {
                for dir in ancestors(path) {
                    let dir_opts = FilePush {
                        mode: Some(0o755),
                        ..opts.clone()
                    };
                    self.file_post(instance, &dir, "directory", None, &dir_opts)
                        .await?;
                }
                self.file_post(instance, path, "file", Some(content), opts)
                    .await
            }
            other => other,
        }
    }

    /// Creates directory `path` inside the instance (`X-LXD-type: directory`).
    /// Succeeds if it already exists. Its parent must exist.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a relative path, [`Error::NotFound`] for a
    /// missing instance or parent.
    pub async fn create_directory(
        &self,
        instance: &str,
        path: &str,
        opts: &FilePush,
    ) -> Result<()> {
        check_absolute(path)?;
        self.file_post(instance, path, "directory", None, opts)
            .await
    }

    async fn file_post(
        &self,
        instance: &str,
        path: &str,
        kind: &str,
        content: Option<Vec<u8>>,
        opts: &FilePush,
    ) -> Result<()> {
        let url = self.url(&["instances", instance, "files"], &[("path", path)], true)?;
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| -> Result<()> {
            headers.insert(HeaderName::from_static(name), header_value(&value)?);
            Ok(())
        };
        set("x-lxd-type", kind.to_owned())?;
        if let Some(uid) = opts.uid {
            set("x-lxd-uid", uid.to_string())?;
        }
        if let Some(gid) = opts.gid {
            set("x-lxd-gid", gid.to_string())?;
        }
        if let Some(mode) = opts.mode {
            set("x-lxd-mode", format!("{mode:04o}"))?;
        }
        if kind == "file" {
            let write = match opts.write {
                WriteMode::Overwrite => "overwrite",
                WriteMode::Append => "append",
            };
            set("x-lxd-write", write.to_owned())?;
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
        let body = content.map(reqwest::Body::from);
        let reply = self
            .execute(Method::POST, url, headers, body, self.request_timeout)
            .await?;
        let env = reply.envelope()?;
        self.complete(reply, env).await.map(drop)
    }

    /// `GET /1.0/instances/NAME/files?path=…`: the content of a file inside the
    /// instance.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing instance or file.
    pub async fn pull_file(&self, instance: &str, path: &str) -> Result<Vec<u8>> {
        check_absolute(path)?;
        let url = self.url(&["instances", instance, "files"], &[("path", path)], true)?;
        let reply = self
            .execute(
                Method::GET,
                url,
                HeaderMap::new(),
                None,
                self.request_timeout,
            )
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(reply.error_from_any());
        }
        Ok(reply.body)
    }

    // --------------------------------------------------------------------- images

    /// `GET /1.0/images?recursion=1`.
    ///
    /// # Errors
    /// Transport and LXD errors.
    pub async fn list_images(&self) -> Result<Vec<Image>> {
        self.get_sync(self.url(&["images"], &[("recursion", "1")], true)?)
            .await
    }

    /// `GET /1.0/images/FINGERPRINT`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such image.
    pub async fn get_image(&self, fingerprint: &str) -> Result<Image> {
        self.get_sync(self.url(&["images", fingerprint], &[], true)?)
            .await
    }

    /// `GET /1.0/images/aliases/NAME`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such alias.
    pub async fn get_image_alias(&self, name: &str) -> Result<ImageAlias> {
        self.get_sync(self.url(&["images", "aliases", name], &[], true)?)
            .await
    }

    /// `POST /1.0/images/aliases`: points alias `name` at image `target`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the alias exists (LXD answers 409).
    pub async fn create_image_alias(
        &self,
        name: &str,
        target: &str,
        description: &str,
    ) -> Result<()> {
        let url = self.url(&["images", "aliases"], &[], true)?;
        let body = serde_json::json!({"name": name, "target": target, "description": description});
        let (reply, env) = self.call(Method::POST, url, Some(&body), None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `DELETE /1.0/images/FINGERPRINT`, then wait for the operation.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such image.
    pub async fn delete_image(&self, fingerprint: &str) -> Result<()> {
        let url = self.url(&["images", fingerprint], &[], true)?;
        let (reply, env) = self.call::<()>(Method::DELETE, url, None, None).await?;
        self.complete(reply, env).await.map(drop)
    }

    /// `POST /1.0/images` with a **unified** image tarball as the body (a tar,
    /// optionally compressed, holding `metadata.yaml` and `rootfs/`), then waits
    /// for the operation and creates `opts.aliases`. Returns the fingerprint
    /// (SHA-256 of the tarball).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when an image with the same fingerprint exists
    /// (or, from alias creation, when an alias is taken); [`Error::Other`] for a
    /// tarball LXD cannot use.
    pub async fn import_image(
        &self,
        tarball: impl Into<Vec<u8>>,
        opts: &ImageImport,
    ) -> Result<String> {
        let url = self.url(&["images"], &[], true)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(name) = &opts.filename {
            headers.insert(
                HeaderName::from_static("x-lxd-filename"),
                header_value(name)?,
            );
        }
        headers.insert(
            HeaderName::from_static("x-lxd-public"),
            HeaderValue::from_static(if opts.public { "true" } else { "false" }),
        );
        let body = reqwest::Body::from(tarball.into());
        let reply = self
            .execute(Method::POST, url, headers, Some(body), self.request_timeout)
            .await?;
        let env = reply.envelope()?;
        let request = reply.request.clone();
        let op = self.complete(reply, env).await?;
        let fingerprint = op
            .as_ref()
            .and_then(|op| op.metadata.get("fingerprint"))
            .and_then(|f| f.as_str())
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol {
                request,
                message: "image import finished without a fingerprint".into(),
            })?;
        for alias in &opts.aliases {
            self.create_image_alias(alias, &fingerprint, "").await?;
        }
        Ok(fingerprint)
    }
}

/// One HTTP answer, fully read.
pub(crate) struct Reply {
    pub(crate) request: Request,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// Parses the envelope; HTTP errors and error envelopes become [`Error`]s.
    fn envelope(&self) -> Result<Envelope> {
        let parsed = serde_json::from_slice::<Envelope>(&self.body);
        match parsed {
            Ok(env) if (200..300).contains(&self.status) && env.kind != ResponseType::Error => {
                Ok(env)
            }
            Ok(env) => Err(self.error_from(env)),
            Err(_) if !(200..300).contains(&self.status) => Err(self.error_from_any()),
            Err(e) => Err(Error::Protocol {
                request: self.request.clone(),
                message: format!(
                    "answer is not an LXD envelope: {e}: {}",
                    self.body_snippet()
                ),
            }),
        }
    }

    fn error_from(&self, env: Envelope) -> Error {
        let status = if env.error_code != 0 {
            env.error_code
        } else {
            self.status
        };
        let message = if env.error.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            env.error
        };
        Error::from_lxd(self.request.clone(), status, message)
    }

    /// An error for a non-2xx answer whose body may or may not be an envelope.
    fn error_from_any(&self) -> Error {
        match serde_json::from_slice::<Envelope>(&self.body) {
            Ok(env) => self.error_from(env),
            Err(_) => Error::from_lxd(self.request.clone(), self.status, self.body_snippet()),
        }
    }

    fn decode<T: DeserializeOwned>(&self, metadata: serde_json::Value) -> Result<T> {
        serde_json::from_value(metadata).map_err(|e| Error::Protocol {
            request: self.request.clone(),
            message: format!(
                "cannot decode {}: {e}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("answer")
            ),
        })
    }

    fn body_snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.len() <= MAX_RAW_MESSAGE {
            return text.to_owned();
        }
        let mut end = MAX_RAW_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

fn operation_id(env: &Envelope) -> Option<String> {
    if let Some(id) = env.metadata.get("id").and_then(|v| v.as_str()) {
        if !id.is_empty() {
            return Some(id.to_owned());
        }
    }
    let id = env.operation.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v)
        .map_err(|_| Error::InvalidArgument(format!("{v:?} cannot be sent as an HTTP header")))
}

fn check_absolute(path: &str) -> Result<()> {
    if path.starts_with('/') && path.len() > 1 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "instance file path {path:?} must be absolute"
        )))
    }
}

fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let idx = trimmed.rfind('/')?;
    (idx > 0).then(|| &trimmed[..idx])
}

/// The directories above `path`, outermost first: `/a/b/c` → `/a`, `/a/b`.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        current.push('/');
        current.push_str(part);
        out.push(current.clone());
    }
    out
}

/// Reduces an API path to a low-cardinality label: every segment that is not one
/// of LXD's fixed words becomes `{name}`, and the query is dropped.
///
/// ```
/// use lxd_client::path_kind;
/// assert_eq!(path_kind("/1.0/instances/web-0/state"), "/1.0/instances/{name}/state");
/// assert_eq!(path_kind("/1.0/operations/0b6e-42/wait?timeout=30"), "/1.0/operations/{name}/wait");
/// assert_eq!(path_kind("/1.0/images/aliases/busybox"), "/1.0/images/aliases/{name}");
/// assert_eq!(path_kind("/1.0"), "/1.0");
/// ```
pub fn path_kind(path: &str) -> String {
    const FIXED: &[&str] = &[
        "1.0",
        "instances",
        "containers",
        "virtual-machines",
        "state",
        "files",
        "exec",
        "console",
        "logs",
        "snapshots",
        "backups",
        "metadata",
        "templates",
        "operations",
        "wait",
        "websocket",
        "images",
        "aliases",
        "export",
        "refresh",
        "secret",
        "profiles",
        "projects",
        "networks",
        "storage-pools",
        "volumes",
        "certificates",
        "events",
        "metrics",
        "resources",
        "warnings",
        "cluster",
        "members",
    ];
    let path = path.split('?').next().unwrap_or(path);
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if FIXED.contains(&seg) {
            out.push_str(seg);
        } else {
            out.push_str("{name}");
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            request: Request::new("PATCH", "/1.0/instances/a"),
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sync_envelope_parses() {
        let r = reply(
            200,
            r#"{"type":"sync","status":"Success","status_code":200,"operation":"","error_code":0,"error":"","metadata":{"a":1}}"#,
        );
        let env = r.envelope().unwrap();
        assert_eq!(env.kind, ResponseType::Sync);
        assert_eq!(env.metadata["a"], 1);
    }

    #[test]
    fn async_envelope_yields_operation_id() {
        let r = reply(
            202,
            r#"{"type":"async","status":"Operation created","status_code":100,"operation":"/1.0/operations/57b0-aa","metadata":{"id":"57b0-aa","status":"Running","status_code":103}}"#,
        );
        let env = r.envelope().unwrap();
        assert_eq!(env.kind, ResponseType::Async);
        assert_eq!(operation_id(&env).as_deref(), Some("57b0-aa"));
        let without_metadata = Envelope {
            metadata: serde_json::Value::Null,
            ..env
        };
        assert_eq!(operation_id(&without_metadata).as_deref(), Some("57b0-aa"));
    }

    #[test]
    fn error_envelope_is_classified_with_request() {
        let r = reply(
            412,
            r#"{"type":"error","status":"","status_code":0,"operation":"","error_code":412,"error":"ETag doesn't match: abc vs def","metadata":null}"#,
        );
        let e = r.envelope().unwrap_err();
        assert!(matches!(e, Error::PreconditionFailed { .. }));
        assert_eq!(
            e.to_string(),
            "PATCH /1.0/instances/a failed: precondition failed (the object changed since it was read; read it again and retry): ETag doesn't match: abc vs def"
        );
    }

    #[test]
    fn not_found_without_envelope_keeps_body_as_message() {
        let r = reply(404, "404 page not found\n");
        let e = r.envelope().unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.lxd_message(), Some("404 page not found"));
    }

    #[test]
    fn garbage_2xx_is_a_protocol_error() {
        let e = reply(200, "<html>").envelope().unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    }

    #[test]
    fn path_kinds_are_bounded() {
        assert_eq!(path_kind("/1.0/instances"), "/1.0/instances");
        assert_eq!(
            path_kind("/1.0/instances/x/files?path=/etc/a"),
            "/1.0/instances/{name}/files"
        );
        assert_eq!(path_kind("/1.0/images/abc123"), "/1.0/images/{name}");
        assert_eq!(
            path_kind("/1.0/storage-pools/default/volumes/custom/v"),
            "/1.0/storage-pools/{name}/volumes/{name}/{name}"
        );
    }

    #[test]
    fn parents_are_listed_outermost_first() {
        assert_eq!(
            ancestors("/etc/bot/conf.d/x.toml"),
            ["/etc", "/etc/bot", "/etc/bot/conf.d"]
        );
        assert!(ancestors("/x").is_empty());
        assert_eq!(parent_of("/x"), None);
        assert_eq!(parent_of("/a/b"), Some("/a"));
    }

    #[test]
    fn relative_paths_are_rejected() {
        assert!(check_absolute("etc/x").is_err());
        assert!(check_absolute("/").is_err());
        assert!(check_absolute("/etc/x").is_ok());
    }

    #[test]
    fn urls_encode_segments_query_and_project() {
        let c = Client::unix("/nonexistent.sock")
            .unwrap()
            .with_project("p 1");
        let u = c
            .url(
                &["instances"],
                &[
                    ("recursion", "1"),
                    ("filter", "config.user.x eq ^a\\x{20}b$"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            path_and_query(&u),
            "/1.0/instances?recursion=1&filter=config.user.x+eq+%5Ea%5Cx%7B20%7Db%24&project=p+1"
        );
        let u = c.url(&["instances", "a/b"], &[], false).unwrap();
        assert_eq!(u.path(), "/1.0/instances/a%2Fb");
    }

    #[test]
    fn socket_path_follows_lxd_dir() {
        // Only reads the variable; the default is covered when it is unset.
        let p = Client::default_socket_path();
        match std::env::var_os("LXD_DIR") {
            Some(d) if !d.is_empty() => assert_eq!(p, PathBuf::from(d).join("unix.socket")),
            _ => assert_eq!(p, PathBuf::from(DEFAULT_SOCKET)),
        }
    }

    #[test]
    fn clones_and_projects_share_the_write_counter() {
        let c = Client::unix("/nonexistent.sock").unwrap();
        let p = c.with_project("x");
        c.shared.writes.fetch_add(2, Ordering::Relaxed);
        assert_eq!(p.write_count(), 2);
    }

    #[tokio::test]
    async fn missing_socket_error_names_request_endpoint_and_cause() {
        let c = Client::unix("/nonexistent/lxd.socket").unwrap();
        let e = c.get_instance("web-0").await.unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "GET /1.0/instances/web-0 failed: could not talk to LXD at unix:/nonexistent/lxd.socket: "
            ),
            "{text}"
        );
        assert!(text.contains("No such file or directory"), "{text}");
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn https_without_feature_is_a_typed_error() {
        let e = Client::https("https://127.0.0.1:8443", b"", "00").unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("`https` feature"), "{e}");
    }
}
