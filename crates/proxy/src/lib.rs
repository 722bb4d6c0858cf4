//! Renders a BotCluster's load-balancer spec into the JSON of one named Caddy 2.6 HTTP server.
//!
//! # Contract
//!
//! Guarantees:
//! - **Deterministic.** Equal inputs give byte-identical JSON and the same [`Rendered::hash`].
//!   Upstreams are sorted and de-duplicated first, so the order the caller lists ready
//!   instances in never changes the output. An unchanged cluster therefore renders an
//!   unchanged server, and the operator never pushes (and Caddy never reloads) for nothing.
//! - **One server only.** The output is the value of `apps/http/servers/<server_name>` and
//!   nothing else. Every `@id` inside it starts with [`server_name`], so ids stay unique across
//!   a Caddy config that other clusters and the user share.
//! - **Metrics on.** Every server carries `"metrics": {}`, so Caddy (2.6+, where HTTP metrics
//!   are opt-in per server) counts its requests in `caddy_http_*{server="<server_name>"}` on
//!   the admin endpoint's `/metrics`. Only `reverse_proxy`'s series are the cluster's traffic:
//!   the common route's `headers`/`encode` count every request again.
//! - **User text stays text.** The JSON is built with `serde_json`, so no string a user wrote
//!   (host, path, header value) can add JSON structure. Strings that Caddy runs through its
//!   placeholder replacer (hosts, paths, header values) have `{` and `}` escaped, so
//!   `{env.SECRET}` in a header value is sent literally instead of leaking the variable.
//! - **Pure.** No I/O. Pushing the result is the caller's job (`caddy_client::Client::ensure_server`).
//!
//! Assumptions:
//! - The spec was validated (`botcluster_api::validate`). Invalid durations render as zero
//!   (which Caddy treats as "use the default" or "off"), never as a panic.
//! - Upstreams are `host:port` dial addresses of *ready* instances only: Caddy 2.6.2 treats a
//!   newly added upstream as healthy until its first active check.
//! - The Caddy is 2.6.x. Every shape rendered here, except the `rate_limit` handler, was loaded
//!   and exercised in Debian's Caddy 2.6.2 by `tests/live.rs`.
//!
//! ```
//! use botcluster_api::spec::{CircuitBreaker, HealthCheck, LoadBalancer};
//! use botcluster_proxy::{render, server_name, ProxyCapabilities};
//!
//! let lb: LoadBalancer = serde_json::from_str(r#"{"listen": "127.0.0.1:8443"}"#).unwrap();
//! let ready = ["127.0.0.1:20002".to_string(), "127.0.0.1:20001".to_string()];
//! let caps = ProxyCapabilities::default(); // Debian's 2.6.2: no rate_limit module
//! let out = render("demo", &lb, &HealthCheck::default(), &CircuitBreaker::default(), &ready, &caps);
//! assert_eq!(server_name("demo"), "botcluster-demo");
//! assert_eq!(out.server["routes"][1]["handle"][0]["upstreams"][0]["dial"], "127.0.0.1:20001");
//! // The operator then calls `caddy.ensure_server(&server_name("demo"), &out.server)`,
//! // which writes nothing when Caddy already holds this server.
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::net::SocketAddr;

use botcluster_api::spec::{
    CircuitBreaker, Encoding, HealthCheck, LbPolicy, LoadBalancer, ProxyHealthCheck, RateLimit,
    RateLimitKey, Route,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Caddy's module name for the mholt/caddy-ratelimit handler.
pub const RATE_LIMIT_MODULE: &str = "http.handlers.rate_limit";

/// Name of the `cookie` policy's cookie (Caddy's own default name).
pub const STICKY_COOKIE: &str = "lb";

/// Body of the answer while a cluster has no ready instance.
pub const NO_READY_INSTANCES: &str = "no ready instances";

/// Body of the answer for a request that no route matches.
pub const NO_ROUTE: &str = "no route";

/// The Caddy server name of a cluster, `botcluster-<cluster>`; also the prefix of its `@id`s.
pub fn server_name(cluster: &str) -> String {
    format!("botcluster-{cluster}")
}

/// What the running Caddy can do beyond Debian's 2.6.2 build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyCapabilities {
    /// The `http.handlers.rate_limit` module (github.com/mholt/caddy-ratelimit) is compiled in.
    pub rate_limit: bool,
}

/// Capabilities from Caddy's module list, as `caddy list-modules` prints it (one module a line;
/// anything after the first word, such as a version, is ignored).
pub fn capabilities_from_modules<S: AsRef<str>>(modules: &[S]) -> ProxyCapabilities {
    let has = |name: &str| {
        modules
            .iter()
            .any(|m| m.as_ref().split_whitespace().next() == Some(name))
    };
    ProxyCapabilities {
        rate_limit: has(RATE_LIMIT_MODULE),
    }
}

/// Something the spec asks for that the rendered server does not do, or a risk to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// `rateLimit` is enabled but this Caddy has no `rate_limit` module; nothing was rendered
    /// for it.
    RateLimitUnsupported {
        /// What is missing and what to install.
        message: String,
    },
    /// `rateLimit.burst` is set, but caddy-ratelimit has sliding windows without bursts.
    RateLimitBurstIgnored {
        /// Explanation.
        message: String,
    },
    /// `autoHttps` is on with host names: Caddy will ask a public ACME CA for certificates.
    AutomaticHttps {
        /// Which names and what that means.
        message: String,
    },
}

impl Notice {
    /// The human-readable text.
    pub fn message(&self) -> &str {
        match self {
            Notice::RateLimitUnsupported { message }
            | Notice::RateLimitBurstIgnored { message }
            | Notice::AutomaticHttps { message } => message,
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A rendered server.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The value for `apps/http/servers/<server_name>`.
    pub server: Value,
    /// First 16 hex digits of the SHA-256 of `serde_json::to_string(&server)`.
    pub hash: String,
    /// What the spec asks for that the server does not do.
    pub notices: Vec<Notice>,
}

/// Renders the Caddy server of cluster `cluster`.
///
/// - `health` and `breaker` are the spec's operator health check and circuit breaker: the
///   first is the default active health check of routes that set none (when enabled), the
///   second becomes passive health (`max_fails` within `fail_duration`, 5xx counted as failures).
/// - `upstreams` are the ready instances' dial addresses (`127.0.0.1:20001`); any order.
///   Empty: every route answers 503 [`NO_READY_INSTANCES`].
/// - `caps` decides whether `rateLimit` can be rendered.
///
/// The server always has `"metrics": {}` (Caddy's per-server HTTP metrics, off by default).
///
/// `lb.enabled` is not looked at: whether to have a server at all is the caller's decision.
pub fn render(
    cluster: &str,
    lb: &LoadBalancer,
    health: &HealthCheck,
    breaker: &CircuitBreaker,
    upstreams: &[String],
    caps: &ProxyCapabilities,
) -> Rendered {
    let name = server_name(cluster);
    let mut notices = Vec::new();
    let upstreams = sorted_upstreams(upstreams);

    let mut routes = Vec::new();
    if let Some(common) = common_route(&name, lb, caps, &mut notices) {
        routes.push(common);
    }
    for route in &lb.routes {
        routes.push(user_route(&name, lb, route, health, breaker, &upstreams));
    }
    // Without a catch-all, Caddy 2.6.2 answers an unmatched request with an empty 200.
    let catch_all = lb.hosts.is_empty() && lb.routes.iter().any(|r| r.path.is_none());
    if !catch_all {
        routes.push(json!({
            "@id": format!("{name}-no-route"),
            "handle": [plain_text(404, NO_ROUTE)],
            "terminal": true
        }));
    }

    let mut server = Map::new();
    server.insert("listen".into(), json!([lb.listen]));
    if lb.auto_https {
        if !lb.hosts.is_empty() {
            notices.push(Notice::AutomaticHttps {
                message: format!(
                    "autoHttps is on: Caddy will request certificates for {} from a public ACME CA \
                     (Let's Encrypt or ZeroSSL), which needs public DNS pointing here and ports 80/443 \
                     reachable from the internet",
                    lb.hosts.join(", ")
                ),
            });
        }
    } else {
        server.insert("automatic_https".into(), json!({"disable": true}));
    }
    // HTTP metrics are opt-in per server since Caddy 2.6.0: without this, `/metrics` on the
    // admin endpoint has no `caddy_http_*` series for the server, and the operator cannot read
    // its request rate. It loads in 2.6.2 and keeps the read-back equal (live test).
    server.insert("metrics".into(), json!({}));
    server.insert("routes".into(), Value::Array(routes));
    let server = Value::Object(server);
    let hash = hash_of(&server);
    Rendered {
        server,
        hash,
        notices,
    }
}

/// The one URL that reaches the load balancer.
///
/// With `hosts`, the first host that is not a wildcard (`https` when `autoHttps` is on), since
/// requests for other names get 404. Otherwise the listen address, with `127.0.0.1` or `[::1]`
/// for an unspecified one. The port is left out when it is the scheme's default.
pub fn listen_url(lb: &LoadBalancer) -> String {
    let (listen_host, port) = match lb.listen.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (lb.listen.as_str(), ""),
    };
    let named = lb.hosts.iter().find(|h| !h.starts_with('*'));
    let https = lb.auto_https && named.is_some();
    let scheme = if https { "https" } else { "http" };
    let host = match named {
        Some(h) => h.as_str(),
        None => match listen_host {
            "" | "0.0.0.0" => "127.0.0.1",
            "[::]" | "::" => "[::1]",
            h => h,
        },
    };
    let default_port = if https { "443" } else { "80" };
    if port.is_empty() || port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------------
// Pieces

/// Trimmed, without empty entries, sorted (socket addresses numerically, then anything else by
/// text) and de-duplicated.
fn sorted_upstreams(upstreams: &[String]) -> Vec<String> {
    let mut v: Vec<String> = upstreams
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    v.sort_by(|a, b| {
        let key = |s: &str| s.parse::<SocketAddr>().ok();
        match (key(a), key(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
    v.dedup();
    v
}

/// The first, non-terminal route: its handlers wrap every later route, so security headers,
/// encoding and rate limits apply to every response (proxied, 503 and 404 alike).
fn common_route(
    name: &str,
    lb: &LoadBalancer,
    caps: &ProxyCapabilities,
    notices: &mut Vec<Notice>,
) -> Option<Value> {
    let mut handle = Vec::new();
    let sec = &lb.security_headers;
    let set: Map<String, Value> = if sec.enabled {
        sec.headers
            .iter()
            .map(|(k, v)| (k.clone(), json!([escape_placeholders(v)])))
            .collect()
    } else {
        Map::new()
    };
    if !set.is_empty() || sec.remove_server {
        let mut response = Map::new();
        if !set.is_empty() {
            response.insert("set".into(), Value::Object(set));
        }
        if sec.remove_server {
            response.insert("delete".into(), json!(["Server"]));
        }
        // Without `deferred`, header ops run before the proxy copies the upstream's headers,
        // and the upstream's `Server` survives (verified on 2.6.2).
        response.insert("deferred".into(), json!(true));
        handle.push(json!({"handler": "headers", "response": response}));
    }
    if !lb.encodings.is_empty() {
        let mut encodings = Map::new();
        let mut prefer = Vec::new();
        for e in &lb.encodings {
            let key = match e {
                Encoding::Gzip => "gzip",
                Encoding::Zstd => "zstd",
            };
            encodings.insert(key.into(), json!({}));
            prefer.push(json!(key));
        }
        handle.push(json!({"handler": "encode", "encodings": encodings, "prefer": prefer}));
    }
    if let Some(rl) = lb.rate_limit.as_ref().filter(|rl| rl.enabled) {
        if caps.rate_limit {
            handle.push(rate_limit_handler(name, rl));
            if rl.burst > 0 {
                notices.push(Notice::RateLimitBurstIgnored {
                    message: format!(
                        "rateLimit.burst ({}) is ignored: caddy-ratelimit counts events in a sliding \
                         window and has no burst allowance",
                        rl.burst
                    ),
                });
            }
        } else {
            notices.push(Notice::RateLimitUnsupported {
                message: format!(
                    "rateLimit is enabled, but this Caddy has no {RATE_LIMIT_MODULE} module (Debian's \
                     caddy 2.6.2 has none), so the bots enforce it instead: each bot limits every \
                     client (X-Forwarded-For) to rateLimit.requests per window on its own, so the \
                     fleet admits up to that many times the number of bots. For one limit at the \
                     load balancer install a Caddy built with github.com/mholt/caddy-ratelimit, \
                     e.g. `xcaddy build --with github.com/mholt/caddy-ratelimit`"
                ),
            });
        }
    }
    if handle.is_empty() {
        return None;
    }
    Some(json!({"@id": format!("{name}-common"), "handle": handle}))
}

/// mholt/caddy-ratelimit's handler: a `<server>-global` zone plus one `<server>-endpoint-<i>`
/// zone per endpoint. Zone names are process-wide in that module ("MUST be globally unique
/// across all other instances of this handler"), hence the prefix. Not testable with Debian's
/// Caddy; see docs/load-balancing.md.
fn rate_limit_handler(name: &str, rl: &RateLimit) -> Value {
    let key = match rl.by {
        RateLimitKey::Ip => "{http.request.remote.host}",
        RateLimitKey::Header => "{http.request.header.Authorization}",
    };
    let mut zones = Map::new();
    zones.insert(
        format!("{name}-global"),
        json!({"key": key, "window": go_duration(&rl.window), "max_events": rl.requests}),
    );
    for (i, ep) in rl.endpoints.iter().enumerate() {
        let window = ep.window.as_ref().unwrap_or(&rl.window);
        zones.insert(
            format!("{name}-endpoint-{i}"),
            json!({
                "match": [{"path": [escape_placeholders(&ep.path)]}],
                "key": key,
                "window": go_duration(window),
                "max_events": ep.requests
            }),
        );
    }
    json!({"handler": "rate_limit", "rate_limits": zones})
}

fn user_route(
    name: &str,
    lb: &LoadBalancer,
    route: &Route,
    health: &HealthCheck,
    breaker: &CircuitBreaker,
    upstreams: &[String],
) -> Value {
    let mut matcher = Map::new();
    if !lb.hosts.is_empty() {
        let hosts: Vec<Value> = lb
            .hosts
            .iter()
            .map(|h| json!(escape_placeholders(h)))
            .collect();
        matcher.insert("host".into(), Value::Array(hosts));
    }
    if let Some(path) = &route.path {
        matcher.insert("path".into(), json!([escape_placeholders(path)]));
    }
    let handler = if upstreams.is_empty() {
        plain_text(503, NO_READY_INSTANCES)
    } else {
        reverse_proxy(name, lb, route, health, breaker, upstreams)
    };
    let mut r = Map::new();
    r.insert("@id".into(), json!(format!("{name}-route-{}", route.name)));
    if !matcher.is_empty() {
        r.insert("match".into(), json!([matcher]));
    }
    r.insert("handle".into(), json!([handler]));
    r.insert("terminal".into(), json!(true));
    Value::Object(r)
}

fn reverse_proxy(
    name: &str,
    lb: &LoadBalancer,
    route: &Route,
    health: &HealthCheck,
    breaker: &CircuitBreaker,
    upstreams: &[String],
) -> Value {
    let mut h = Map::new();
    h.insert("@id".into(), json!(format!("{name}-proxy-{}", route.name)));
    h.insert("handler".into(), json!("reverse_proxy"));
    h.insert(
        "upstreams".into(),
        upstreams.iter().map(|u| json!({"dial": u})).collect(),
    );

    let mut lbc = Map::new();
    lbc.insert("selection_policy".into(), selection_policy(route.policy));
    if let Some(d) = route.try_duration.as_ref().filter(|d| !d.get().is_zero()) {
        lbc.insert("try_duration".into(), json!(go_duration(d)));
    }
    if let Some(n) = route.retries {
        lbc.insert("retries".into(), json!(n));
    }
    h.insert("load_balancing".into(), Value::Object(lbc));

    let mut checks = Map::new();
    if let Some(active) = active_health(lb, route, health) {
        checks.insert("active".into(), active);
    }
    if let Some(passive) = passive_health(route, breaker) {
        checks.insert("passive".into(), passive);
    }
    if !checks.is_empty() {
        h.insert("health_checks".into(), Value::Object(checks));
    }
    Value::Object(h)
}

/// Caddy 2.6.2's selection policy module for a spec policy (`http.reverse_proxy.selection_policies.*`;
/// `ip_hash` is the 2.6 name, `client_ip_hash` only exists from 2.7).
fn selection_policy(policy: LbPolicy) -> Value {
    match policy {
        LbPolicy::RoundRobin => json!({"policy": "round_robin"}),
        LbPolicy::First => json!({"policy": "first"}),
        LbPolicy::LeastConn => json!({"policy": "least_conn"}),
        LbPolicy::IpHash => json!({"policy": "ip_hash"}),
        LbPolicy::Cookie => json!({"policy": "cookie", "name": STICKY_COOKIE}),
        LbPolicy::Random => json!({"policy": "random"}),
    }
}

/// Route's own check, else the load balancer's, else the operator's (when enabled).
fn active_health(lb: &LoadBalancer, route: &Route, health: &HealthCheck) -> Option<Value> {
    let (uri, interval, timeout) = match route.health_check.as_ref().or(lb.health_check.as_ref()) {
        Some(ProxyHealthCheck {
            uri,
            interval,
            timeout,
        }) => (uri, interval, timeout),
        None if health.enabled => (&health.endpoint, &health.interval, &health.timeout),
        None => return None,
    };
    let mut a = Map::new();
    a.insert("uri".into(), json!(uri));
    if !interval.get().is_zero() {
        a.insert("interval".into(), json!(go_duration(interval)));
    }
    if !timeout.get().is_zero() {
        a.insert("timeout".into(), json!(go_duration(timeout)));
    }
    Some(Value::Object(a))
}

/// Passive health: `fail_duration` from the route, else the breaker's timeout; with the breaker
/// on, `max_fails` is its threshold and 5xx answers count as failures.
fn passive_health(route: &Route, breaker: &CircuitBreaker) -> Option<Value> {
    let fail_duration = route
        .fail_duration
        .as_ref()
        .or(breaker.enabled.then_some(&breaker.timeout))?;
    if fail_duration.get().is_zero() {
        return None; // 0 turns passive checks off in Caddy.
    }
    let mut p = Map::new();
    p.insert("fail_duration".into(), json!(go_duration(fail_duration)));
    if breaker.enabled {
        p.insert("max_fails".into(), json!(breaker.threshold.max(1)));
        p.insert("unhealthy_status".into(), json!([5]));
    }
    Some(Value::Object(p))
}

fn plain_text(status: u16, body: &str) -> Value {
    json!({
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": body
    })
}

/// A duration as Go's `time.ParseDuration` reads it: `"30s"`, or `"1500ms"` when not whole
/// seconds. Canonical, so "1m" and "60s" render the same.
fn go_duration(d: &botcluster_api::Duration) -> String {
    let d = d.get();
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Escapes `{` and `}` so Caddy's replacer passes them through literally (`\{`, `\}`).
fn escape_placeholders(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '{' || c == '}' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hash_of(server: &Value) -> String {
    let text = serde_json::to_string(server).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests;
