//! Live tests against a real `caddy` process that each test starts on free loopback ports.
//!
//! Without a `caddy` binary on PATH the tests print "skipped: caddy is not on PATH ..." and
//! pass, unless `CI` is set to a truthy value (`true`, `1`...), where they fail
//! (`test_support::require`). Everything listens on 127.0.0.1 and every server the tests
//! render disables automatic HTTPS, so Caddy never contacts an ACME CA.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use caddy_client::{
    compute_etag, semantically_equal, Applied, Client, Error, RequestObserver, ServerTraffic,
    Upstream,
};
use serde_json::{json, Value};
use test_support::{free_port, require, Admin, Caddy};

// ---------------------------------------------------------------------------------------------
// A caddy process of our own (botcluster-test-support's), driven by this crate's client

/// This crate's client for a test Caddy's admin endpoint.
trait AdminClient {
    fn client(&self) -> Client;
}

impl AdminClient for Caddy {
    fn client(&self) -> Client {
        Client::from_url(self.admin_url()).expect("client")
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny upstreams and a user's own site

/// An HTTP responder on a free 127.0.0.1 port that answers every request with `name`.
fn responder(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind responder");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || answer(stream, name));
        }
    });
    addr
}

/// Answers the requests on one connection (Caddy keeps upstream connections alive).
fn answer(stream: TcpStream, name: &str) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        // Read the request head; requests through the proxy here have no body.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A reverse proxy server in Caddy JSON, balancing round robin over `upstreams`.
fn proxy_server(port: u16, upstreams: &[&str]) -> Value {
    let upstreams: Vec<Value> = upstreams.iter().map(|u| json!({"dial": u})).collect();
    json!({
        "listen": [format!("127.0.0.1:{port}")],
        "automatic_https": {"disable": true},
        "routes": [{
            "handle": [{
                "@id": "fleet_proxy",
                "handler": "reverse_proxy",
                "upstreams": upstreams,
                "load_balancing": {"selection_policy": {"policy": "round_robin"}}
            }]
        }]
    })
}

/// Somebody else's site: a static response on its own port.
fn user_site(port: u16) -> Value {
    json!({
        "listen": [format!("127.0.0.1:{port}")],
        "automatic_https": {"disable": true},
        "routes": [{"handle": [{"handler": "static_response", "body": "user site"}]}]
    })
}

/// `GET /` on a Caddy listener with a fresh connection.
///
/// Resent (up to 5 times) when the connection is reset: for a few milliseconds after a config
/// change, Caddy 2.6.2's old listener still shares the port (`SO_REUSEPORT`) and resets what
/// lands in its queue when it closes. `measure_listener_resets_after_reloads` counts these.
async fn fetch(port: u16) -> String {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let mut last = None;
    for attempt in 0..5 {
        tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
        match http.get(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(response) => return response.text().await.expect("body"),
            Err(e) => last = Some(e),
        }
    }
    panic!("GET http://127.0.0.1:{port}/ through caddy failed 5 times: {last:?}");
}

/// Waits (up to 2 s) until the listener on `port` answers `expected`: right after a write
/// returns, a request can still be served by the old config for a few milliseconds.
async fn settle(port: u16, expected: &str) {
    let t = Instant::now();
    while fetch(port).await != expected {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "port {port} never answered {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET path` over raw HTTP/1.1, returning the body and the `Etag` trailer exactly as sent.
fn raw_get_with_trailer(admin_addr: &str, path: &str) -> (Vec<u8>, Option<String>) {
    // Resent when reset unread, like the client does (see `Client::send`).
    let raw = (0..5)
        .find_map(|attempt| {
            thread::sleep(Duration::from_millis(5 * attempt));
            let mut stream = TcpStream::connect(admin_addr).ok()?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {admin_addr}\r\nTE: trailers\r\n\
                 Connection: close\r\n\r\n"
            )
            .ok()?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).ok()?;
            Some(raw)
        })
        .expect("GET over raw HTTP/1.1 failed 5 times");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // Decode the chunks, then what follows the last one is the trailer section.
    let mut rest = &raw[head_end..];
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    let trailer = String::from_utf8_lossy(rest).lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("etag"))
            .map(|(_, v)| v.trim().to_string())
    });
    (body, trailer)
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, u16)>>,
    count: AtomicU64,
}

impl RequestObserver for Recorder {
    fn observe(&self, method: &str, status: u16, _elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((method.to_string(), status));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn our_server_balances_round_robin_and_a_users_site_survives_its_replacement() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let ours = caddy.client();
    let theirs = caddy.client();
    ours.load(&caddy.empty_config()).await.expect("load empty");
    assert_eq!(ours.get_config("apps").await.expect("read apps"), None);

    let (alpha, beta) = (responder("alpha"), responder("beta"));
    let (fleet_port, user_port) = (free_port(), free_port());

    // On a config with no `apps`, ensure_server creates apps/http/servers around our server.
    let applied = ours
        .ensure_server("botcluster", &proxy_server(fleet_port, &[&alpha, &beta]))
        .await
        .expect("create our server");
    assert_eq!(applied, Applied::Created);
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(fetch(fleet_port).await);
    }
    assert!(answers.contains(&"alpha".to_string()), "{answers:?}");
    assert!(answers.contains(&"beta".to_string()), "{answers:?}");
    assert!(
        answers.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {answers:?}"
    );

    // Someone else adds their own site next to ours.
    theirs
        .post_config("apps/http/servers/user_site", &user_site(user_port), None)
        .await
        .expect("user adds a site");
    assert_eq!(fetch(user_port).await, "user site");
    let (their_before, _) = theirs
        .server("user_site")
        .await
        .expect("read")
        .expect("user site is there");

    // We replace ours (scale down to beta only); theirs is untouched.
    let applied = ours
        .ensure_server("botcluster", &proxy_server(fleet_port, &[&beta]))
        .await
        .expect("replace our server");
    assert_eq!(applied, Applied::Replaced);
    settle(fleet_port, "beta").await;
    for _ in 0..3 {
        assert_eq!(fetch(fleet_port).await, "beta");
    }
    assert_eq!(fetch(user_port).await, "user site");
    let (their_after, _) = theirs
        .server("user_site")
        .await
        .expect("read")
        .expect("user site survived");
    assert_eq!(their_after, their_before);

    // The pool lists what the loaded config dials, and no longer lists alpha.
    let pool = ours.upstreams().await.expect("upstreams");
    assert_eq!(
        pool,
        vec![Upstream {
            address: beta.clone(),
            num_requests: 0,
            fails: 0
        }]
    );

    // Removing ours leaves theirs.
    assert!(ours.remove_server("botcluster").await.expect("remove"));
    assert!(!ours
        .remove_server("botcluster")
        .await
        .expect("remove again"));
    assert_eq!(fetch(user_port).await, "user site");
    assert!(ours.server("botcluster").await.expect("read").is_none());
}

#[tokio::test]
async fn upstreams_lists_every_dial_address_of_the_loaded_config() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let (alpha, beta) = (responder("alpha"), responder("beta"));
    client
        .ensure_server("botcluster", &proxy_server(free_port(), &[&alpha, &beta]))
        .await
        .expect("create");
    let mut addresses: Vec<String> = client
        .upstreams()
        .await
        .expect("upstreams")
        .into_iter()
        .map(|u| u.address)
        .collect();
    addresses.sort();
    let mut expected = vec![alpha, beta];
    expected.sort();
    assert_eq!(addresses, expected);
}

#[tokio::test]
async fn metrics_count_the_requests_a_servers_reverse_proxy_handled() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let alpha = responder("alpha");
    let (fleet_port, broken_port, quiet_port, dark_port) =
        (free_port(), free_port(), free_port(), free_port());

    // `fleet`: metrics on, a non-terminal `headers` route before the proxy (as botcluster's
    // common route), so each request is counted by two handlers.
    let mut fleet = proxy_server(fleet_port, &[&alpha]);
    fleet["metrics"] = json!({});
    fleet["routes"].as_array_mut().expect("routes").insert(
        0,
        json!({"handle": [{"handler": "headers",
                               "response": {"set": {"X-Seen": ["yes"]}, "deferred": true}}]}),
    );
    // `broken`: metrics on, its only upstream refuses connections (nothing listens on a port
    // just freed), so Caddy answers 502 itself.
    let mut broken = proxy_server(broken_port, &[&format!("127.0.0.1:{}", free_port())]);
    broken["metrics"] = json!({});
    broken["routes"][0]["handle"][0]["@id"] = json!("broken_proxy");
    // `quiet`: metrics on, never requested. `dark`: requested, but metrics off.
    let mut quiet = user_site(quiet_port);
    quiet["metrics"] = json!({});
    let mut dark = proxy_server(dark_port, &[&alpha]);
    dark["routes"][0]["handle"][0]["@id"] = json!("dark_proxy");
    for (name, server) in [
        ("fleet", &fleet),
        ("broken", &broken),
        ("quiet", &quiet),
        ("dark", &dark),
    ] {
        client
            .ensure_server(name, server)
            .await
            .unwrap_or_else(|e| panic!("Caddy refused {name}: {e}"));
    }

    let n = 5;
    for _ in 0..n {
        assert_eq!(fetch(fleet_port).await, "alpha");
        assert_eq!(fetch(dark_port).await, "alpha");
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    for _ in 0..2 {
        let status = http
            .get(format!("http://127.0.0.1:{broken_port}/"))
            .send()
            .await
            .expect("502 from caddy")
            .status();
        assert_eq!(status, 502);
    }

    let text = client.metrics().await.expect("GET /metrics");
    let caddy_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("caddy_http_") && !l.contains("_bucket{"))
        .collect();
    println!("{}", caddy_lines.join("\n"));

    let t = ServerTraffic::from_metrics(&text, "fleet").expect("fleet has series");
    assert!(t.requests_total >= f64::from(n), "{t:?}");
    assert!(
        t.requests_total < f64::from(2 * n),
        "the headers handler's count is not added: {t:?}"
    );
    assert_eq!(t.errors_total, 0.0, "{t:?}");
    assert!(t.duration_seconds_count >= f64::from(n), "{t:?}");
    assert!(
        t.mean_duration_seconds()
            .is_some_and(|s| s > 0.0 && s < 5.0),
        "{t:?}"
    );
    // The labels Caddy 2.6.2 puts on the series read here.
    let has = |prefix: &str, labels: &[&str]| {
        caddy_lines
            .iter()
            .any(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
    };
    assert!(has(
        "caddy_http_requests_total{",
        &[r#"handler="reverse_proxy""#, r#"server="fleet""#]
    ));
    assert!(has(
        "caddy_http_requests_total{",
        &[r#"handler="headers""#, r#"server="fleet""#]
    ));
    assert!(has(
        "caddy_http_request_duration_seconds_count{",
        &[
            r#"code="200""#,
            r#"handler="reverse_proxy""#,
            r#"method="GET""#,
            r#"server="fleet""#
        ]
    ));

    // Dial failures are errors of the handler, and 2.6.2 leaves them out of the durations.
    let b = ServerTraffic::from_metrics(&text, "broken").expect("broken has series");
    assert!(b.requests_total >= 2.0 && b.errors_total >= 2.0, "{b:?}");
    assert_eq!(b.duration_seconds_count, 0.0, "{b:?}");

    assert_eq!(
        ServerTraffic::from_metrics(&text, "quiet"),
        None,
        "no request yet"
    );
    assert_eq!(
        ServerTraffic::from_metrics(&text, "dark"),
        None,
        "metrics off"
    );
    assert!(!text.contains(r#"server="dark""#));

    // Counters only grow.
    assert_eq!(fetch(fleet_port).await, "alpha");
    let later = ServerTraffic::from_metrics(&client.metrics().await.expect("metrics"), "fleet")
        .expect("fleet");
    let d = later.since(&t).expect("no restart");
    assert!(d.requests_total >= 1.0, "{d:?}");
}

#[tokio::test]
async fn a_stale_etag_makes_a_write_fail_with_precondition_failed() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let upstream = responder("alpha");
    let port = free_port();
    client
        .ensure_server("botcluster", &proxy_server(port, &[&upstream]))
        .await
        .expect("create");
    let (server, stale) = client
        .server("botcluster")
        .await
        .expect("read")
        .expect("there");

    // Another writer changes the server after we read it...
    let mut changed = server.clone();
    changed["listen"] = json!([format!("127.0.0.1:{}", free_port())]);
    client
        .patch_config("apps/http/servers/botcluster", &changed, None)
        .await
        .expect("someone else's change");

    // ...so our guarded writes, by path and by id, are refused and change nothing.
    let err = client
        .patch_config("apps/http/servers/botcluster", &server, Some(&stale))
        .await
        .expect_err("stale etag");
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("PATCH /config/apps/http/servers/botcluster"),
        "{err}"
    );
    assert!(
        err.to_string().contains("If-Match header did not match"),
        "{err}"
    );
    let err = client
        .delete_by_id("fleet_proxy", Some(&stale))
        .await
        .expect_err("stale etag by id");
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    let (now, fresh) = client
        .server("botcluster")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(now, changed);

    // With the fresh tag the same write goes through.
    client
        .patch_config("apps/http/servers/botcluster", &server, Some(&fresh))
        .await
        .expect("fresh etag");
}

#[tokio::test]
async fn etags_computed_client_side_equal_the_trailers_caddy_sends() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    client
        .ensure_server("botcluster", &proxy_server(free_port(), &[&responder("a")]))
        .await
        .expect("create");
    let admin_addr = &caddy.admin_url()["http://".len()..];
    for path in [
        "/config/",
        "/config/apps",
        "/config/apps/http/servers/botcluster",
        "/config/apps/http/servers/botcluster/routes/0/handle/0/upstreams",
        "/config/apps/http/servers/missing",
    ] {
        let (body, trailer) = raw_get_with_trailer(admin_addr, path);
        let trailer = trailer.unwrap_or_else(|| panic!("Caddy sent no Etag trailer for {path}"));
        assert_eq!(compute_etag(path, &body).to_string(), trailer, "{path}");
    }

    // The client reads the tag Caddy sends; through /id/ it names the expanded /config/ path,
    // which only the trailer can tell (no fallback computation exists for /id/ reads).
    let (_, by_id) = client
        .get_by_id("fleet_proxy")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        by_id.path(),
        "/config/apps/http/servers/botcluster/routes/0/handle/0"
    );
    let (_, by_path) = client
        .get_config("apps/http/servers/botcluster/routes/0/handle/0")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(by_id, by_path);
}

#[tokio::test]
async fn an_unchanged_reconcile_makes_zero_writes_and_every_write_is_counted() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let recorder = Arc::new(Recorder::default());
    let client = caddy.client().with_observer(recorder.clone());
    let server = proxy_server(free_port(), &[&responder("alpha"), &responder("beta")]);

    assert_eq!(
        client
            .ensure_server("botcluster", &server)
            .await
            .expect("create"),
        Applied::Created
    );
    assert_eq!(client.write_count(), 1);

    // Reads of every kind leave the counter alone.
    client.get_config("").await.expect("read");
    client.server("botcluster").await.expect("read");
    client.get_by_id("fleet_proxy").await.expect("read");
    client.upstreams().await.expect("read");
    assert_eq!(client.write_count(), 1);

    // Ten unchanged reconciles: ten GETs, no writes, no reloads.
    for _ in 0..10 {
        assert_eq!(
            client
                .ensure_server("botcluster", &server)
                .await
                .expect("unchanged"),
            Applied::Unchanged
        );
    }
    assert_eq!(client.write_count(), 1);

    // A change is exactly one write; clones share the counter.
    let clone = client.clone();
    let mut changed = server.clone();
    changed["routes"][0]["handle"][0]["load_balancing"]["selection_policy"]["policy"] =
        json!("least_conn");
    assert_eq!(
        clone
            .ensure_server("botcluster", &changed)
            .await
            .expect("change"),
        Applied::Replaced
    );
    assert_eq!(client.write_count(), 2);

    // A refused write still counts as a push attempt.
    let _ = client
        .put_config("apps/http/servers/botcluster", &changed, None)
        .await
        .expect_err("PUT on an existing key");
    assert_eq!(client.write_count(), 3);

    let seen = recorder.seen.lock().expect("lock").clone();
    let writes: Vec<&(String, u16)> = seen.iter().filter(|(m, _)| m != "GET").collect();
    assert_eq!(
        writes,
        vec![
            &("PUT".to_string(), 200),
            &("PATCH".to_string(), 200),
            &("PUT".to_string(), 500)
        ]
    );
    assert_eq!(recorder.count.load(Ordering::Relaxed), seen.len() as u64);
}

#[tokio::test]
async fn caddys_read_back_equals_what_was_written_up_to_number_formatting() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let server = proxy_server(free_port(), &[&responder("alpha")]);
    client
        .ensure_server("botcluster", &server)
        .await
        .expect("create");
    let (back, _) = client
        .server("botcluster")
        .await
        .expect("read")
        .expect("there");
    // No defaults added, nothing dropped: plain equality (key order aside) holds.
    assert_eq!(back, server);

    // Numbers come back as Go float64s. A `vars` handler keeps arbitrary JSON, which shows it.
    let mut with_numbers = server.clone();
    with_numbers["routes"][0]["handle"]
        .as_array_mut()
        .expect("handlers")
        .insert(
            0,
            serde_json::from_str(
                r#"{"handler": "vars", "weight": 1.0, "limit": 1e3, "big": 9007199254740993}"#,
            )
            .expect("json"),
        );
    assert_eq!(
        client
            .ensure_server("botcluster", &with_numbers)
            .await
            .expect("write"),
        Applied::Replaced
    );
    let (back, _) = client
        .server("botcluster")
        .await
        .expect("read")
        .expect("there");
    let vars = &back["routes"][0]["handle"][0];
    assert_eq!(vars["weight"], json!(1));
    assert_eq!(vars["limit"], json!(1000));
    assert_eq!(vars["big"], json!(9_007_199_254_740_992_u64));
    assert_ne!(back, with_numbers, "plain equality sees a difference");
    assert!(semantically_equal(&back, &with_numbers));
    let writes = client.write_count();
    assert_eq!(
        client
            .ensure_server("botcluster", &with_numbers)
            .await
            .expect("again"),
        Applied::Unchanged,
        "no endless pushes"
    );
    assert_eq!(client.write_count(), writes);
}

#[tokio::test]
async fn identical_writes_do_not_reload_caddy() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let server = proxy_server(free_port(), &[&responder("alpha")]);
    client
        .ensure_server("botcluster", &server)
        .await
        .expect("create");
    let unchanged_before = caddy.log_text().matches("config is unchanged").count();
    client
        .patch_config("apps/http/servers/botcluster", &server, None)
        .await
        .expect("identical PATCH");
    let (whole, _) = client.get_config("").await.expect("read").expect("config");
    client.load(&whole).await.expect("identical load");
    let unchanged_after = caddy.log_text().matches("config is unchanged").count();
    assert_eq!(
        unchanged_after - unchanged_before,
        2,
        "{}",
        caddy.log_text()
    );
}

#[tokio::test]
async fn requests_right_after_a_config_change_do_not_fail() {
    // Caddy swaps its admin server on every change and closes the old one in the background;
    // connections that land on the old listener meanwhile are reset unread. The client resends
    // those, so back-to-back writes and reads all succeed.
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let recorder = Arc::new(Recorder::default());
    let client = caddy.client().with_observer(recorder.clone());
    let port = free_port();
    let (a, b) = (responder("alpha"), responder("beta"));
    let (one, two) = (proxy_server(port, &[&a]), proxy_server(port, &[&b]));
    client
        .ensure_server("botcluster", &one)
        .await
        .expect("create");
    for i in 0..100 {
        let next = if i % 2 == 0 { &two } else { &one };
        client
            .patch_config("apps/http/servers/botcluster", next, None)
            .await
            .expect("write");
        let (now, _) = client
            .server("botcluster")
            .await
            .expect("read")
            .expect("there");
        assert_eq!(&now, next);
    }
    assert_eq!(client.write_count(), 101);
    let seen = recorder.seen.lock().expect("lock").clone();
    let resets = seen.iter().filter(|(_, status)| *status == 0).count();
    println!(
        "connections reset unread and resent: {resets} of {}",
        seen.len()
    );
}

#[tokio::test]
async fn errors_name_the_request_and_carry_caddys_text() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    client
        .load(&caddy.empty_config())
        .await
        .expect("load empty");

    // Missing things read as None, not errors.
    assert_eq!(
        client
            .get_config("apps/http/servers/x")
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        client
            .get_config("apps/http/servers/x/listen")
            .await
            .expect("read"),
        None
    );
    assert_eq!(client.get_by_id("nope").await.expect("read"), None);

    let err = client
        .patch_config("apps/http/servers/x", &json!({}), None)
        .await
        .expect_err("patch missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("PATCH /config/apps/http/servers/x: not found"),
        "{err}"
    );

    let err = client
        .patch_by_id("nope", &json!({}), None)
        .await
        .expect_err("unknown id");
    assert!(matches!(err, Error::NotFound { status: 404, .. }), "{err}");
    assert!(
        err.to_string().contains("unknown object ID 'nope'"),
        "{err}"
    );

    let server = user_site(free_port());
    client.ensure_server("mine", &server).await.expect("create");
    let err = client
        .put_config("apps/http/servers/mine", &server, None)
        .await
        .expect_err("put existing");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

    // A config that does not load is refused and the old one keeps running.
    let mut bad = proxy_server(free_port(), &[&responder("a")]);
    bad["routes"][0]["handle"][0]["load_balancing"]["selection_policy"]["policy"] =
        json!("no_such_policy");
    let err = client
        .ensure_server("bad", &bad)
        .await
        .expect_err("invalid");
    assert!(matches!(err, Error::Api { status: 500, .. }), "{err}");
    assert!(err.to_string().contains("loading new config"), "{err}");
    assert!(client.server("bad").await.expect("read").is_none());
    assert!(client.server("mine").await.expect("read").is_some());

    let err = client
        .get_config("apps/my server")
        .await
        .expect_err("bad path");
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
}

#[tokio::test]
async fn a_refused_connection_names_the_address_and_how_to_start_caddy() {
    // Nothing listens on a port we just freed; no caddy needed for this one.
    let addr = format!("127.0.0.1:{}", free_port());
    let client = Client::from_url(&addr).expect("client");
    let err = client.get_config("").await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert!(text.contains(&format!("http://{addr}")), "{text}");
    assert!(text.contains("GET /config/"), "{text}");
    assert!(text.contains("cargo xtask caddy-up"), "{text}");

    let err = client.metrics().await.expect_err("refused");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("GET /metrics"), "{err}");

    let client = Client::from_url("unix:///nonexistent/caddy-admin.sock").expect("client");
    let err = client.upstreams().await.expect_err("no socket");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("unix:///nonexistent/caddy-admin.sock"),
        "{err}"
    );
}

#[tokio::test]
async fn the_unix_socket_admin_endpoint_works_despite_caddys_host_check() {
    let Some(caddy) = require(Caddy::start(Admin::Unix)) else {
        return;
    };
    let client = caddy.client();
    assert!(matches!(client.endpoint(), caddy_client::Endpoint::Unix(_)));
    let (config, etag) = client.get_config("").await.expect("read").expect("config");
    assert_eq!(config, caddy.empty_config());
    assert_eq!(etag.path(), "/config/");
    client
        .load(&caddy.empty_config())
        .await
        .expect("load over the socket");
    let port = free_port();
    assert_eq!(
        client
            .ensure_server("botcluster", &proxy_server(port, &[&responder("alpha")]))
            .await
            .expect("create over the socket"),
        Applied::Created
    );
    assert_eq!(fetch(port).await, "alpha");
    let text = client.metrics().await.expect("metrics over the socket");
    assert!(text.contains("caddy_admin_http_requests_total"), "{text}");
    let (_, by_id) = client
        .get_by_id("fleet_proxy")
        .await
        .expect("read")
        .expect("there");
    assert!(by_id
        .path()
        .starts_with("/config/apps/http/servers/botcluster"));
}

/// Prints admin API latencies; run with
/// `cargo test -p caddy-client --test live -- --ignored --nocapture measure`.
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn measure_admin_api_latencies() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let (alpha, beta) = (responder("alpha"), responder("beta"));
    let port = free_port();
    let a = proxy_server(port, &[&alpha, &beta]);
    let b = proxy_server(port, &[&alpha]);
    client
        .ensure_server("botcluster", &a)
        .await
        .expect("create");
    let whole = client
        .get_config("")
        .await
        .expect("read")
        .expect("config")
        .0;
    let n = 50;
    let time = |label: &str, d: Duration| {
        println!(
            "{label:<48} {:>8.2} ms",
            d.as_secs_f64() * 1000.0 / f64::from(n)
        );
    };
    let t = Instant::now();
    for _ in 0..n {
        client.server("botcluster").await.expect("read");
    }
    time("GET one server", t.elapsed());
    let t = Instant::now();
    for _ in 0..n {
        client
            .ensure_server("botcluster", &a)
            .await
            .expect("unchanged");
    }
    time("ensure_server, unchanged (GET only)", t.elapsed());
    let t = Instant::now();
    for _ in 0..n {
        client
            .patch_config("apps/http/servers/botcluster", &a, None)
            .await
            .expect("same");
    }
    time("PATCH identical server (no reload)", t.elapsed());
    let t = Instant::now();
    for _ in 0..n {
        client.load(&whole).await.expect("same");
    }
    time("POST /load identical config (no reload)", t.elapsed());
    let t = Instant::now();
    for i in 0..n {
        let next = if i % 2 == 0 { &b } else { &a };
        client
            .patch_config("apps/http/servers/botcluster", next, None)
            .await
            .expect("change");
    }
    time("PATCH changed server (reload)", t.elapsed());
    let t = Instant::now();
    for i in 0..n {
        let next = if i % 2 == 0 { &b } else { &a };
        client
            .ensure_server("botcluster", next)
            .await
            .expect("change");
    }
    time("ensure_server, changed (GET + guarded PATCH)", t.elapsed());
    let mut doc = whole.clone();
    let t = Instant::now();
    for i in 0..n {
        doc["apps"]["http"]["servers"]["botcluster"] =
            if i % 2 == 0 { b.clone() } else { a.clone() };
        client.load(&doc).await.expect("load");
    }
    time("POST /load changed config (reload)", t.elapsed());
    let t = Instant::now();
    for i in 0..n {
        let path = "apps/http/servers/botcluster";
        if i % 2 == 0 {
            client.delete_config(path, None).await.expect("delete");
        } else {
            client.put_config(path, &a, None).await.expect("put");
        }
    }
    time("DELETE / PUT server alternately (reload)", t.elapsed());

    // A bigger fleet: 200 upstreams (nobody listens on most; Caddy only dials on demand).
    let many: Vec<String> = (0..200)
        .map(|i| format!("127.0.0.1:{}", 20000 + i))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let big_a = proxy_server(port, &many);
    let big_b = proxy_server(port, &many[1..]);
    let t = Instant::now();
    for i in 0..n {
        let next = if i % 2 == 0 { &big_b } else { &big_a };
        client
            .ensure_server("botcluster", next)
            .await
            .expect("change");
    }
    time(
        "ensure_server, changed, 200 upstreams (reload)",
        t.elapsed(),
    );
    let t = Instant::now();
    for _ in 0..n {
        client
            .ensure_server("botcluster", &big_a)
            .await
            .expect("same");
    }
    time("ensure_server, unchanged, 200 upstreams", t.elapsed());
}

/// Counts what clients of a proxied server see right after config changes; run with
/// `cargo test -p caddy-client --test live -- --ignored --nocapture measure`.
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn measure_listener_resets_after_reloads() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let (port, user_port) = (free_port(), free_port());
    let (a, b) = (responder("alpha"), responder("beta"));
    let (one, two) = (proxy_server(port, &[&a]), proxy_server(port, &[&b]));
    client
        .ensure_server("botcluster", &one)
        .await
        .expect("create");
    client
        .ensure_server("user_site", &user_site(user_port))
        .await
        .expect("create");
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let (mut ours_reset, mut theirs_reset, mut stale) = (0, 0, 0);
    let n = 500;
    for i in 0..n {
        let (next, expected) = if i % 2 == 0 {
            (&two, "beta")
        } else {
            (&one, "alpha")
        };
        client
            .patch_config("apps/http/servers/botcluster", next, None)
            .await
            .expect("write");
        // One fresh connection to each server the moment the write has returned.
        match http.get(format!("http://127.0.0.1:{port}/")).send().await {
            Ok(response) => {
                if response.text().await.expect("body") != expected {
                    stale += 1;
                }
            }
            Err(_) => ours_reset += 1,
        }
        if http
            .get(format!("http://127.0.0.1:{user_port}/"))
            .send()
            .await
            .is_err()
        {
            theirs_reset += 1;
        }
    }
    println!(
        "{n} reloads: first request to the changed server reset {ours_reset} times, answered \
         by the old config {stale} times; to the user's unchanged server reset {theirs_reset} times"
    );
}

#[tokio::test]
async fn the_running_caddy_says_it_has_no_rate_limit_module_and_nothing_is_written() {
    let Some(caddy) = require(Caddy::start(Admin::Tcp)) else {
        return;
    };
    let client = caddy.client();
    let before = client.get_config("").await.expect("read config");
    // Debian's Caddy has no http.handlers.rate_limit (mholt/caddy-ratelimit is a custom build).
    assert!(!client.has_rate_limit().await.expect("asked"));
    assert_eq!(client.write_count(), 0, "adapting is not a write");
    assert_eq!(client.get_config("").await.expect("read config"), before);
}
