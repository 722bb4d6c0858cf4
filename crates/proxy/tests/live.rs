//! Live tests: what `botcluster_proxy::render` produces, loaded into a real Caddy that each test
//! starts itself, in front of tiny upstreams the test runs.
//!
//! Without a `caddy` binary on PATH the tests print "skipped: caddy is not on PATH ..." and
//! pass, unless `CI` is set to a truthy value (`true`, `1`...), where they fail
//! (`test_support::require`). Everything listens on 127.0.0.1 and `autoHttps` stays off,
//! so Caddy never contacts an ACME CA.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use botcluster_api::spec::{CircuitBreaker, HealthCheck, LoadBalancer};
use botcluster_proxy::{
    listen_url, render, server_name, ProxyCapabilities, Rendered, NO_READY_INSTANCES, NO_ROUTE,
};
use caddy_client::{Applied, Client};
use serde_json::{json, Value};
use test_support::{free_port, require, Admin, Caddy};

// ---------------------------------------------------------------------------------------------
// A caddy process of our own (botcluster-test-support's), driven by caddy-client

/// caddy-client for a test Caddy's admin endpoint.
trait AdminClient {
    fn client(&self) -> Client;
}

impl AdminClient for Caddy {
    fn client(&self) -> Client {
        Client::from_url(self.admin_url()).expect("client")
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny upstreams

const HEALTHY: u8 = 0;
/// `/api/health` answers 503; everything else still 200.
const HEALTH_FAILING: u8 = 1;
/// Every path answers 500.
const BROKEN: u8 = 2;

/// An HTTP/1.1 server on a free 127.0.0.1 port answering its own name, with a switch.
struct Upstream {
    name: &'static str,
    addr: String,
    state: Arc<AtomicU8>,
}

impl Upstream {
    fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(AtomicU8::new(HEALTHY));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || serve(stream, name, &state));
            }
        });
        Upstream { name, addr, state }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
    }
}

/// Answers the requests of one connection (Caddy keeps upstream connections alive).
/// Body: the name; `/big*` adds 4 KiB so that `encode` compresses it (minimum 512 bytes).
fn serve(stream: TcpStream, name: &str, state: &AtomicU8) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let state = state.load(Ordering::SeqCst);
        let status = match state {
            BROKEN => "500 Internal Server Error",
            HEALTH_FAILING if path.starts_with("/api/health") => "503 Service Unavailable",
            _ => "200 OK",
        };
        let mut body = name.to_string();
        if path.starts_with("/big") {
            body.push('\n');
            body.push_str(&"botserver ".repeat(400));
        }
        let reply = format!(
            "HTTP/1.1 {status}\r\nServer: tiny-upstream\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn fleet(names: [&'static str; 3]) -> [Upstream; 3] {
    names.map(Upstream::start)
}

/// The dial addresses, and the name of the one that sorts first (what `first` picks).
fn dials(upstreams: &[Upstream]) -> Vec<String> {
    upstreams.iter().map(|u| u.addr.clone()).collect()
}

fn first_in_render_order(upstreams: &[Upstream]) -> &'static str {
    upstreams
        .iter()
        .min_by_key(|u| u.addr.parse::<std::net::SocketAddr>().expect("addr"))
        .map(|u| u.name)
        .expect("upstreams")
}

// ---------------------------------------------------------------------------------------------
// Requests through Caddy

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET url_base + path` on a fresh connection, with extra headers. Resent (up to 5 times)
/// when the connection fails: for a few milliseconds after a config change, Caddy 2.6.2's old
/// listener still shares the port and resets what lands in its queue (docs/caddy-setup.md).
async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let mut last = None;
    for attempt in 0..5 {
        tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
        let mut request = http.get(format!("{base}{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => {
                        return Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                        }
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(e) => last = Some(e),
        }
    }
    panic!("GET {base}{path} through caddy failed 5 times: {last:?}");
}

/// Polls `GET path` until `ok` holds (up to `limit`); returns how long it took.
async fn wait_until(
    base: &str,
    path: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Answer) -> bool,
) -> Duration {
    let t = Instant::now();
    loop {
        if ok(&get(base, path, &[]).await) {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names answering `n` requests to `path`, in order.
async fn names(base: &str, path: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let a = get(base, path, &[]).await;
        out.push(a.text().lines().next().unwrap_or_default().to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Specs

fn spec(port: u16, v: Value) -> LoadBalancer {
    let mut v = v;
    v["listen"] = json!(format!("127.0.0.1:{port}"));
    serde_json::from_value(v).expect("load balancer spec")
}

/// Fast checks so that health changes show within a second.
fn fast_health() -> HealthCheck {
    serde_json::from_value(
        json!({"endpoint": "/api/health", "interval": "500ms", "timeout": "300ms"}),
    )
    .expect("health")
}

fn render_with(lb: &LoadBalancer, upstreams: &[String]) -> Rendered {
    render(
        "live",
        lb,
        &fast_health(),
        &CircuitBreaker::default(),
        upstreams,
        &ProxyCapabilities::default(),
    )
}

/// Pushes the render with `ensure_server`, as the operator does.
async fn push(client: &Client, rendered: &Rendered) -> Applied {
    client
        .ensure_server(&server_name("live"), &rendered.server)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Caddy refused the rendered server: {e}\n{}",
                rendered.server
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn path_routes_use_their_own_policies_and_health_passes_through() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let lb = spec(
        free_port(),
        json!({"routes": [
            {"name": "health", "path": "/api/health", "policy": "first"},
            {"name": "api", "path": "/api/*", "policy": "round_robin", "tryDuration": "2s", "retries": 2},
            {"name": "static", "policy": "first"}
        ]}),
    );
    let base = listen_url(&lb);
    let rendered = render_with(&lb, &dials(&ups));
    assert_eq!(push(&client, &rendered).await, Applied::Created);

    // round_robin on /api/*: all three, never the same twice in a row.
    let api = names(&base, "/api/chat", 9).await;
    let seen: BTreeSet<&str> = api.iter().map(String::as_str).collect();
    assert_eq!(seen, BTreeSet::from(["alpha", "beta", "gamma"]), "{api:?}");
    assert!(api.windows(2).all(|w| w[0] != w[1]), "{api:?}");

    // first on the catch-all: always the first upstream of the rendered (sorted) list.
    let first = first_in_render_order(&ups);
    let rest = names(&base, "/index.html", 10).await;
    assert!(rest.iter().all(|n| n == first), "{rest:?}, want {first}");

    // /api/health passes through to an upstream (its own route, before /api/*).
    let health = get(&base, "/api/health", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), first);
}

#[tokio::test]
async fn cookie_policy_keeps_a_client_on_one_upstream() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let lb = spec(
        free_port(),
        json!({"routes": [{"name": "ws", "policy": "cookie"}]}),
    );
    let base = listen_url(&lb);
    push(&client, &render_with(&lb, &dials(&ups))).await;

    let mut stuck_to = BTreeSet::new();
    for _client in 0..6 {
        // A client with a cookie jar of one cookie.
        let first = get(&base, "/ws", &[]).await;
        let set_cookie = first.header("set-cookie").expect("Set-Cookie").to_string();
        assert!(set_cookie.starts_with("lb="), "{set_cookie}");
        let cookie = set_cookie.split(';').next().expect("cookie").to_string();
        let mut answers = vec![first.text()];
        for _ in 0..10 {
            let a = get(&base, "/ws", &[("Cookie", &cookie)]).await;
            assert!(a.header("set-cookie").is_none(), "a valid cookie is kept");
            answers.push(a.text());
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        stuck_to.insert(answers[0].clone());
    }
    println!("6 cookie clients stuck to {stuck_to:?}");
}

#[tokio::test]
async fn an_unhealthy_upstream_leaves_rotation_and_comes_back() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let lb = spec(
        free_port(),
        json!({"routes": [{"name": "all", "policy": "round_robin"}]}),
    );
    let base = listen_url(&lb);
    push(&client, &render_with(&lb, &dials(&ups))).await;
    let all = BTreeSet::from(["alpha".to_string(), "beta".into(), "gamma".into()]);
    let spread = |n: Vec<String>| n.into_iter().collect::<BTreeSet<String>>();
    assert_eq!(spread(names(&base, "/", 6).await), all);

    // interval 500ms + timeout 300ms: beta must be out of rotation within about 0.8 s.
    ups[1].set(HEALTH_FAILING);
    let t = Instant::now();
    loop {
        if !spread(names(&base, "/", 4).await).contains("beta") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "beta still in rotation after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = t.elapsed();
    let without = spread(names(&base, "/", 12).await);
    assert_eq!(
        without,
        BTreeSet::from(["alpha".to_string(), "gamma".into()])
    );

    ups[1].set(HEALTHY);
    let t = Instant::now();
    loop {
        if spread(names(&base, "/", 4).await).contains("beta") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "beta not back after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "unhealthy beta left rotation after {left:?}, came back {:?} after recovering",
        t.elapsed()
    );
    assert_eq!(spread(names(&base, "/", 6).await), all);
}

#[tokio::test]
async fn the_circuit_breaker_ejects_an_upstream_that_answers_5xx() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let lb = spec(
        free_port(),
        json!({"routes": [{"name": "all", "policy": "round_robin"}]}),
    );
    let base = listen_url(&lb);
    // No active checks: only passive health (the breaker) can take beta out.
    let no_active = HealthCheck {
        enabled: false,
        ..HealthCheck::default()
    };
    let breaker: CircuitBreaker =
        serde_json::from_value(json!({"threshold": 2, "timeout": "2s"})).expect("breaker");
    let rendered = render(
        "live",
        &lb,
        &no_active,
        &breaker,
        &dials(&ups),
        &ProxyCapabilities::default(),
    );
    assert_eq!(
        rendered.server["routes"][1]["handle"][0]["health_checks"],
        json!({"passive": {"fail_duration": "2s", "max_fails": 2, "unhealthy_status": [5]}})
    );
    push(&client, &rendered).await;

    ups[1].set(BROKEN);
    let mut answers = Vec::new();
    for _ in 0..15 {
        let a = get(&base, "/", &[]).await;
        answers.push((a.status, a.text()));
    }
    let failures = answers.iter().filter(|(s, _)| *s == 500).count();
    assert_eq!(failures, 2, "two 5xx open the breaker: {answers:?}");
    assert!(
        answers[answers.len() - 8..].iter().all(|(s, _)| *s == 200),
        "{answers:?}"
    );

    // After fail_duration the failures are forgotten and beta gets traffic again.
    ups[1].set(HEALTHY);
    let back = wait_until(&base, "/", Duration::from_secs(5), "beta back", |a| {
        a.text() == "beta"
    })
    .await;
    println!("breaker: beta ejected after 2 failures, back after {back:?}");
}

#[tokio::test]
async fn security_headers_are_set_server_is_removed_and_gzip_is_negotiated() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let mut lb = spec(free_port(), json!({"routes": [{"name": "all"}]}));
    // A header value with a placeholder stays literal ({env.HOME} would be Caddy's temp dir).
    lb.security_headers
        .headers
        .insert("X-Note".into(), "{env.HOME}".into());
    let base = listen_url(&lb);
    push(&client, &render_with(&lb, &dials(&ups))).await;

    let a = get(&base, "/big", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        a.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(a.header("x-note"), Some("{env.HOME}"));
    assert_eq!(a.header("server"), None, "upstream's Server header removed");
    assert_eq!(a.header("content-encoding"), None, "not asked for");
    assert!(a.text().contains("botserver"));

    let gz = get(&base, "/big", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(gz.body.len() < a.body.len() / 4, "compressed");
    assert_eq!(gz.header("x-frame-options"), Some("DENY"));
    assert_eq!(gz.header("server"), None);

    let zstd = get(&base, "/big", &[("Accept-Encoding", "zstd, gzip")]).await;
    assert_eq!(
        zstd.header("content-encoding"),
        Some("gzip"),
        "gzip is preferred by the default encodings order"
    );
}

#[tokio::test]
async fn hosts_are_matched_and_other_names_get_404() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let mut lb = spec(
        free_port(),
        json!({"routes": [{"name": "all", "policy": "first"}]}),
    );
    lb.hosts = vec!["bot.test".into()];
    let rendered = render_with(&lb, &dials(&ups));
    push(&client, &rendered).await;
    let base = format!("http://{}", lb.listen);
    assert_eq!(
        listen_url(&lb),
        format!(
            "http://bot.test:{}",
            lb.listen.rsplit(':').next().expect("port")
        )
    );

    let ours = get(&base, "/", &[("Host", "bot.test")]).await;
    assert_eq!(ours.status, 200);
    assert_eq!(ours.text(), first_in_render_order(&ups));
    let other = get(&base, "/", &[("Host", "other.test")]).await;
    assert_eq!((other.status, other.text()), (404, NO_ROUTE.to_string()));
    assert_eq!(
        other.header("x-frame-options"),
        Some("DENY"),
        "headers apply to the 404 too"
    );
}

#[tokio::test]
async fn no_ready_instances_answers_503_until_one_is_ready() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let lb = spec(free_port(), json!({"routes": [{"name": "all"}]}));
    let base = listen_url(&lb);
    assert_eq!(
        push(&client, &render_with(&lb, &[])).await,
        Applied::Created
    );
    let a = get(&base, "/", &[]).await;
    assert_eq!((a.status, a.text()), (503, NO_READY_INSTANCES.to_string()));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        a.header("server"),
        None,
        "Caddy's own Server header is removed too"
    );

    // Why not a reverse_proxy with an empty list: Caddy 2.6.2 answers that with a bare 503 and
    // an empty body, which tells a client nothing.
    let raw_port = free_port();
    client
        .ensure_server(
            "raw-empty-upstreams",
            &json!({
                "listen": [format!("127.0.0.1:{raw_port}")],
                "automatic_https": {"disable": true},
                "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": []}]}]
            }),
        )
        .await
        .expect("2.6.2 loads a reverse_proxy without upstreams");
    let raw = get(&format!("http://127.0.0.1:{raw_port}"), "/", &[]).await;
    assert_eq!((raw.status, raw.text()), (503, String::new()));

    let up = Upstream::start("alpha");
    assert_eq!(
        push(&client, &render_with(&lb, std::slice::from_ref(&up.addr))).await,
        Applied::Replaced
    );
    wait_until(&base, "/", Duration::from_secs(2), "alpha serves", |a| {
        a.status == 200 && a.text() == "alpha"
    })
    .await;
}

#[tokio::test]
async fn someone_elses_server_survives_and_an_unchanged_render_writes_nothing() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let ours = caddy.client();
    let theirs = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);

    // Someone else's site is there first.
    let user_port = free_port();
    let user_site = json!({
        "listen": [format!("127.0.0.1:{user_port}")],
        "automatic_https": {"disable": true},
        "routes": [{"handle": [{"handler": "static_response", "body": "user site"}]}]
    });
    theirs
        .ensure_server("user_site", &user_site)
        .await
        .expect("user adds a site");
    let user_base = format!("http://127.0.0.1:{user_port}");
    let (their_before, _) = theirs
        .server("user_site")
        .await
        .expect("read")
        .expect("there");

    let lb = spec(
        free_port(),
        json!({"routes": [
            {"name": "api", "path": "/api/*"},
            {"name": "static", "policy": "first"}
        ]}),
    );
    let base = listen_url(&lb);
    let first = render_with(&lb, &dials(&ups));
    assert_eq!(push(&ours, &first).await, Applied::Created);
    let writes = ours.write_count();

    // Re-rendering the same inputs (in another order) is byte-identical, and pushing it is
    // one GET and no write.
    let mut reversed = dials(&ups);
    reversed.reverse();
    let again = render_with(&lb, &reversed);
    assert_eq!(again.hash, first.hash);
    for _ in 0..3 {
        assert_eq!(push(&ours, &again).await, Applied::Unchanged);
    }
    assert_eq!(ours.write_count(), writes);

    // What Caddy holds equals what we rendered.
    let (held, _) = ours
        .server(&server_name("live"))
        .await
        .expect("read")
        .expect("ours is there");
    assert!(caddy_client::semantically_equal(&held, &first.server));

    // Scale down to two: one write, only our server changes.
    let two = render_with(&lb, &dials(&ups[..2]));
    assert_ne!(two.hash, first.hash);
    assert_eq!(push(&ours, &two).await, Applied::Replaced);
    assert_eq!(ours.write_count(), writes + 1);
    // (For a few milliseconds after a write, a new connection can still meet the old config.)
    let t = Instant::now();
    let spread = loop {
        let spread: BTreeSet<String> = names(&base, "/api/x", 6).await.into_iter().collect();
        if !spread.contains(ups[2].name) || t.elapsed() > Duration::from_secs(2) {
            break spread;
        }
    };
    assert_eq!(
        spread,
        BTreeSet::from([ups[0].name.to_string(), ups[1].name.to_string()])
    );

    let (their_after, _) = theirs
        .server("user_site")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(their_after, their_before);
    assert_eq!(get(&user_base, "/", &[]).await.text(), "user site");

    // Removing ours leaves theirs.
    assert!(ours
        .remove_server(&server_name("live"))
        .await
        .expect("remove"));
    assert_eq!(get(&user_base, "/", &[]).await.text(), "user site");
}

#[tokio::test]
async fn the_rendered_server_counts_its_proxied_requests_once_each() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let ups = fleet(["alpha", "beta", "gamma"]);
    let lb = spec(
        free_port(),
        json!({"routes": [
            {"name": "api", "path": "/api/*"},
            {"name": "static", "policy": "first"}
        ]}),
    );
    let base = listen_url(&lb);
    let rendered = render_with(&lb, &dials(&ups));
    let common = &rendered.server["routes"][0]["handle"];
    assert!(
        common.as_array().is_some_and(|h| h.len() >= 2),
        "the common route's headers and encode count each request too: {common}"
    );
    assert_eq!(push(&client, &rendered).await, Applied::Created);
    let name = server_name("live");
    let before =
        caddy_client::ServerTraffic::from_metrics(&client.metrics().await.expect("metrics"), &name);
    assert_eq!(before, None, "no request yet, no series");

    let n = 6;
    for path in ["/api/x", "/"] {
        for _ in 0..n / 2 {
            assert_eq!(get(&base, path, &[]).await.status, 200);
        }
    }
    let traffic =
        caddy_client::ServerTraffic::from_metrics(&client.metrics().await.expect("metrics"), &name)
            .expect("the server has metrics on");
    // Both routes' reverse_proxy handlers, summed; the common route's handlers are not.
    assert!(
        traffic.requests_total >= f64::from(n) && traffic.requests_total < f64::from(2 * n),
        "{traffic:?}"
    );
    assert!(
        traffic.duration_seconds_count >= f64::from(n),
        "{traffic:?}"
    );
    assert_eq!(traffic.errors_total, 0.0, "{traffic:?}");
}
