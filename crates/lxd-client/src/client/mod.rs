//! The client: its transport (unix socket or HTTPS), construction and settings;
//! the endpoints live in one submodule per group.
//!
//! - `request`: URL building, sending, envelopes and the raw [`Client::request`];
//! - `operations`: waiting for and reading background operations;
//! - `server`: `/1.0`, projects and `/1.0/metrics`;
//! - `instances`: instance CRUD and state changes;
//! - `files`: pushing and pulling files inside instances;
//! - `images`: images and image aliases;
//! - `profiles`: profiles;
//! - `storage`: storage pools;
//! - `observe`: the per-request observer hook and its path labels.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::{Error, Result};

mod files;
mod images;
mod instances;
mod observe;
mod operations;
mod profiles;
mod request;
mod server;
mod storage;

pub use files::{FilePush, WriteMode};
pub use images::ImageImport;
pub use observe::{path_kind, RequestObserver};

/// Default socket of the Debian/source LXD package.
const DEFAULT_SOCKET: &str = "/var/lib/lxd/unix.socket";

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
        // No idle connections. LXD 5.0 reads the first bytes of each connection it accepts
        // on its unix socket inside its accept loop, so one connection that is open without
        // a request stops the whole API until it closes (tried here: with one silent
        // connection open, `GET /1.0` does not answer; LXD's start hooks call back into this
        // API, so starts in flight hang with it). A pooled client may hold such a connection (a spare
        // dialed while every pooled one was busy, then pooled unused until its 90 s idle
        // timeout); without a pool, every connection carries its request at once and closes
        // after it. A unix connect costs microseconds.
        let builder = reqwest::Client::builder()
            .unix_socket(path.clone())
            .pool_max_idle_per_host(0)
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
