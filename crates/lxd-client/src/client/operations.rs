//! Background operations: waiting for them to finish and reading them.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;

use super::Client;
use crate::types::{Operation, StatusCode};
use crate::{Error, Request, Result};

/// Server-side wait per `/operations/UUID/wait` call; the client loops until done.
const WAIT_CHUNK: Duration = Duration::from_secs(30);
/// Extra HTTP time granted to a wait call beyond its server-side timeout.
const WAIT_SLACK: Duration = Duration::from_secs(30);

impl Client {
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

    pub(super) async fn wait_for(
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
}
