//! Request plumbing: URLs, sending, LXD's response envelopes, and the raw
//! [`Client::request`] escape hatch.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, IF_MATCH};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Client;
use crate::types::{ETag, Envelope, Operation, ResponseType};
use crate::{Error, Request, Result};

/// Longest LXD message body kept in an error when the body is not an envelope.
const MAX_RAW_MESSAGE: usize = 512;

impl Client {
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
    pub(super) async fn execute(
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
    pub(super) async fn call<B: Serialize + ?Sized>(
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

    /// A GET whose answer is not an envelope (file contents, metrics text): the body of a
    /// 2xx reply, or the error LXD sent.
    pub(super) async fn get_raw(&self, url: Url) -> Result<Reply> {
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
        Ok(reply)
    }

    pub(super) async fn get_sync<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        let (reply, env) = self.call::<()>(Method::GET, url, None, None).await?;
        reply.decode(env.metadata)
    }

    /// Finishes a write: waits for the operation if LXD answered `async`.
    pub(super) async fn complete(&self, reply: Reply, env: Envelope) -> Result<Option<Operation>> {
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
    pub(super) fn envelope(&self) -> Result<Envelope> {
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

    pub(super) fn error_from(&self, env: Envelope) -> Error {
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
    pub(super) fn error_from_any(&self) -> Error {
        match serde_json::from_slice::<Envelope>(&self.body) {
            Ok(env) => self.error_from(env),
            Err(_) => Error::from_lxd(self.request.clone(), self.status, self.body_snippet()),
        }
    }

    pub(super) fn decode<T: DeserializeOwned>(&self, metadata: serde_json::Value) -> Result<T> {
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

pub(super) fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v)
        .map_err(|_| Error::InvalidArgument(format!("{v:?} cannot be sent as an HTTP header")))
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
}
