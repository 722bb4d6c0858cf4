//! Observing requests: the [`RequestObserver`] hook and the bounded path labels it gets.

use std::time::Duration;

use super::Client;

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

impl Client {
    pub(crate) fn observe(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        if let Some(o) = &self.observer {
            o.observe(method, &path_kind(path), status, elapsed);
        }
    }
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
}
