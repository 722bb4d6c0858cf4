//! A small client for the botcluster HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use botcluster_server::{ErrorBody, CHANGE_HEADER};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::terminal::escape;
use crate::Conn;

/// The data directory: `--data-dir`, `$BOTCLUSTER_DATA_DIR`, `$XDG_DATA_HOME/botcluster`,
/// or `~/.local/share/botcluster`.
pub fn data_dir(explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(d) = explicit {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("botcluster");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/botcluster"),
        None => PathBuf::from(".botcluster"),
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A response the caller may want to inspect beyond success.
pub struct Reply {
    pub change: Option<String>,
    pub body: Value,
}

/// An error the server returned, with its JSON body.
#[derive(Debug)]
pub struct ServerError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl std::fmt::Display for ServerError {
    /// The server's message and one line per field error, each escaped for the terminal (they
    /// quote values a spec's writer chose), so only the line breaks between them are real.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", escape(&self.body.message))?;
        for e in &self.body.field_errors {
            write!(f, "\n  - {}", escape(&e.to_string()))?;
        }
        if self.body.omitted_field_errors > 0 {
            write!(
                f,
                "\n  ({} more problems not listed)",
                self.body.omitted_field_errors
            )?;
        }
        Ok(())
    }
}

/// Path segments: everything but unreserved characters is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL path of a BotCluster: the name checked with the server's own rule first (so
/// `x/../victim` or `../../metrics` never leave this process), then percent-encoded.
pub fn object_path(name: &str) -> Result<String> {
    path_of("botclusters", name)
}

/// [`object_path`] for any kind's collection (`botclusters`, `gitsources`).
pub fn path_of(plural: &str, name: &str) -> Result<String> {
    let kind = if plural == "gitsources" {
        "GitSource"
    } else {
        "BotCluster"
    };
    botcluster_api::validate::validate_name(name).map_err(|m| anyhow!("the {kind} name {m}"))?;
    Ok(format!(
        "/api/v1/{plural}/{}",
        utf8_percent_encode(name, SEGMENT)
    ))
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// The server's error body, or one made up from the answer when it is not one.
    fn from_answer(status: StatusCode, request: &str, text: &str) -> Self {
        let body: ErrorBody = serde_json::from_str(text).unwrap_or(ErrorBody {
            code: status.as_str().into(),
            message: format!("{request} answered {status}: {text}"),
            field_errors: Vec::new(),
            omitted_field_errors: 0,
        });
        ServerError { status, body }
    }
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Self> {
        let token = match &conn.token {
            Some(t) => t.clone(),
            None => {
                let path = data_dir(conn.data_dir.as_ref()).join(botcluster_server::TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no token: reading {} failed; start the server with `botctl serve`, or pass --token / set BOTCLUSTER_TOKEN, or point --data-dir at the server's data directory",
                            path.display()
                        )
                    })?
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: conn.server.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Sends a request; non-2xx answers become [`ServerError`].
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .header("x-botcluster-manager", "botctl");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!("cannot reach the botcluster server at {}: is `botctl serve` running? (set --server or BOTCLUSTER_SERVER)", self.base)
            } else {
                anyhow!("{method} {url}: {e}")
            }
        })?;
        let status = resp.status();
        let change = resp
            .headers()
            .get(CHANGE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        if !status.is_success() {
            return Err(ServerError::from_answer(status, &format!("{method} {url}"), &text).into());
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { change, body })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.send(Method::GET, path, None).await?.body)
    }

    /// Every item of a collection (`path` may carry a query), fetched in pages of
    /// [`PAGE_SIZE`] from one snapshot. Returns the items and the list's resourceVersion. A
    /// page whose token expired (410) starts the listing over.
    pub async fn list_all(&self, path: &str) -> Result<(Vec<Value>, String)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        'listing: for _attempt in 0..3 {
            let mut items = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page_path = match &token {
                    None => format!("{path}{sep}limit={PAGE_SIZE}"),
                    Some(t) => format!("{path}{sep}limit={PAGE_SIZE}&continue={t}"),
                };
                let page = match self.get(&page_path).await {
                    Ok(p) => p,
                    Err(e) if token.is_some() && is_gone(&e) => continue 'listing,
                    Err(e) => return Err(e),
                };
                if let Some(a) = page.get("items").and_then(Value::as_array) {
                    items.extend(a.iter().cloned());
                }
                let rv = page
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                match page.pointer("/metadata/continue").and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => return Ok((items, rv)),
                }
            }
        }
        Err(anyhow!(
            "listing {path}: the server's snapshot kept expiring between pages; retry"
        ))
    }

    /// Opens a watch (`path` carries `watch=true` and its parameters); read it with
    /// [`Watch::next`]. Errors before the stream starts (400, 410) are [`ServerError`]s.
    pub async fn watch(&self, path: &str) -> Result<Watch> {
        let url = format!("{}{}", self.base, path);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            // The client's 30 s timeout covers whole bodies; a watch lasts until the server's
            // timeoutSeconds.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    anyhow!("cannot reach the botcluster server at {}: is `botctl serve` running? (set --server or BOTCLUSTER_SERVER)", self.base)
                } else {
                    anyhow!("GET {url}: {e}")
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(ServerError::from_answer(status, &format!("GET {url}"), &text).into());
        }
        Ok(Watch {
            resp,
            buf: Vec::new(),
        })
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986's unreserved characters).
pub fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Items per page when `botctl` lists.
pub const PAGE_SIZE: usize = 500;

/// An open watch: Kubernetes-style events, one JSON object a line.
pub struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event (`{"type", "object"}`), or None when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let v = serde_json::from_slice(&line)
                    .context("the server sent a watch line that is not JSON")?;
                return Ok(Some(v));
            }
            match self.resp.chunk().await.context("reading the watch")? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => return Ok(None),
            }
        }
    }
}

/// Whether an error is the server's 410 (history or snapshot expired: list again).
pub fn is_gone(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ServerError>()
        .is_some_and(|s| s.status == StatusCode::GONE)
}

/// Whether an error is the server's 404.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ServerError>()
        .is_some_and(|s| s.status == StatusCode::NOT_FOUND)
}
