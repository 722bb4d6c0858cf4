//! The rate limit the operator gives the bots (`rateLimit` in `/opt/gbo/conf/botcluster.json`,
//! the seed's `rate-limit-*` keys, which botserver enforces itself), so a limit holds even
//! behind a Caddy without a rate-limit module.
//!
//! Fixed windows per client: the client is the first address of `X-Forwarded-For` (Caddy sets
//! it), else `direct`; with `by: header`, the `Authorization` header. Past `requests` in a
//! `window`, the answer is 429 with `Retry-After`. Health checks (`/api/health`), the shard
//! routes and `/sim/` control requests are never limited. Each bot counts on its own, so a
//! fleet of N bots admits up to N × `requests` per window in total.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{Request, Response};

/// Where the operator writes the bots' settings.
pub const DEFAULT_CONFIG_PATH: &str = "/opt/gbo/conf/botcluster.json";

#[derive(Clone, Debug, PartialEq)]
struct Rule {
    requests: u64,
    window: Duration,
    by_header: bool,
}

/// `500ms`, `30s`, `5m`, `1h`, `1m30s`, or a bare integer (seconds).
fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return None,
        };
        total += part;
        rest = &rest[unit_len..];
    }
    (total > Duration::ZERO).then_some(total)
}

fn rule_of(doc: &Value) -> Option<Rule> {
    let rl = doc.get("rateLimit")?;
    if rl.get("enabled").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let requests = rl
        .get("requests")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)?;
    let window = match rl.get("window") {
        Some(Value::String(s)) => parse_duration(s)?,
        Some(Value::Number(n)) => Duration::from_secs(n.as_u64()?),
        _ => Duration::from_secs(60),
    };
    Some(Rule {
        requests,
        window,
        by_header: rl.get("by").and_then(Value::as_str) == Some("header"),
    })
}

#[derive(Default)]
struct State {
    /// The file's content last read, and the rule it gave.
    loaded: Option<(Vec<u8>, Option<Rule>)>,
    /// Client → (window start, requests in it).
    windows: HashMap<String, (Instant, u64)>,
}

/// The bot's limiter.
pub struct Limiter {
    path: PathBuf,
    state: Mutex<State>,
}

impl Limiter {
    /// A limiter reading its rule from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Limiter {
        Limiter {
            path: path.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// `Some(429)` when `req` is over its client's limit.
    pub fn check(&self, req: &Request) -> Option<Response> {
        if req.path == "/api/health"
            || req.path.starts_with("/sim/")
            || req.path.starts_with("/api/shards")
        {
            return None;
        }
        let content = fs::read(&self.path).unwrap_or_default();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = st.loaded.as_ref().is_none_or(|(c, _)| *c != content);
        if changed {
            let rule = serde_json::from_slice::<Value>(&content)
                .ok()
                .and_then(|v| rule_of(&v));
            st.loaded = Some((content, rule));
            st.windows.clear();
        }
        let rule = st.loaded.as_ref().and_then(|(_, r)| r.clone())?;
        let client = if rule.by_header {
            req.header("authorization")
                .unwrap_or("anonymous")
                .to_string()
        } else {
            req.header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "direct".into())
        };
        let now = Instant::now();
        if st.windows.len() > 100_000 {
            // Bounded memory: forget finished windows.
            st.windows
                .retain(|_, (start, _)| now.duration_since(*start) < rule.window);
        }
        let entry = st.windows.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= rule.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 <= rule.requests {
            return None;
        }
        let retry = rule.window.saturating_sub(now.duration_since(entry.0));
        Some(
            Response::text(
                429,
                format!(
                    "rate limit: {} requests per {:?}; retry in {} s\n",
                    rule.requests,
                    rule.window,
                    retry.as_secs().max(1)
                ),
            )
            .with_header("Retry-After", &retry.as_secs().max(1).to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, xff: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: vec![],
            headers: xff
                .map(|x| vec![("x-forwarded-for".to_string(), x.to_string())])
                .unwrap_or_default(),
            body: vec![],
        }
    }

    #[test]
    fn durations_parse_like_the_spec_writes_them() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn each_client_gets_its_requests_then_429_and_health_is_never_limited() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("botcluster.json");
        fs::write(
            &file,
            r#"{"rateLimit": {"enabled": true, "requests": 3, "window": "60s"}}"#,
        )
        .unwrap();
        let l = Limiter::new(&file);
        for _ in 0..3 {
            assert!(l
                .check(&req("/api/chat", Some("10.0.0.1, 10.0.0.9")))
                .is_none());
        }
        let over = l
            .check(&req("/api/chat", Some("10.0.0.1")))
            .expect("limited");
        assert_eq!(over.status, 429);
        assert!(
            l.check(&req("/api/chat", Some("10.0.0.2"))).is_none(),
            "another client"
        );
        assert!(l.check(&req("/api/health", Some("10.0.0.1"))).is_none());
        // A new rule starts new windows; no rule, no limit.
        fs::write(&file, r#"{"cache": {"mode": "single"}}"#).unwrap();
        for _ in 0..10 {
            assert!(l.check(&req("/api/chat", Some("10.0.0.1"))).is_none());
        }
    }
}
