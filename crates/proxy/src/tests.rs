use super::*;

fn lb(v: Value) -> LoadBalancer {
    serde_json::from_value(v).expect("load balancer spec")
}

fn ups(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn three() -> Vec<String> {
    ups(&["127.0.0.1:20001", "127.0.0.1:20002", "127.0.0.1:20003"])
}

fn render_default(spec: &LoadBalancer, upstreams: &[String]) -> Rendered {
    render(
        "demo",
        spec,
        &HealthCheck::default(),
        &CircuitBreaker::default(),
        upstreams,
        &ProxyCapabilities::default(),
    )
}

fn routes(r: &Rendered) -> &Vec<Value> {
    r.server["routes"].as_array().expect("routes")
}

fn route_by_id<'a>(r: &'a Rendered, id: &str) -> &'a Value {
    routes(r)
        .iter()
        .find(|x| x["@id"] == id)
        .unwrap_or_else(|| panic!("no route {id} in {}", r.server))
}

fn seed_like() -> LoadBalancer {
    lb(json!({
        "listen": "127.0.0.1:8443",
        "routes": [
            {"name": "health", "path": "/api/health", "policy": "first"},
            {"name": "ws", "path": "/ws*", "policy": "cookie", "tryDuration": "5s"},
            {"name": "api", "path": "/api/*", "policy": "round_robin", "tryDuration": "5s",
             "failDuration": "30s", "retries": 2},
            {"name": "static", "policy": "first"}
        ]
    }))
}

#[test]
fn server_name_prefixes_the_cluster() {
    assert_eq!(server_name("support-bots"), "botcluster-support-bots");
}

#[test]
fn capabilities_come_from_the_module_list() {
    let debian = ups(&[
        "http.handlers.reverse_proxy",
        "http.handlers.encode",
        "http.reverse_proxy.selection_policies.cookie",
    ]);
    assert!(!capabilities_from_modules(&debian).rate_limit);
    assert!(capabilities_from_modules(&["http.handlers.rate_limit"]).rate_limit);
    assert!(
        capabilities_from_modules(&["  http.handlers.rate_limit v0.0.0-2024 "]).rate_limit,
        "`caddy list-modules --versions` lines"
    );
    assert!(!capabilities_from_modules(&["http.handlers.rate_limiter"]).rate_limit);
    assert!(!capabilities_from_modules::<&str>(&[]).rate_limit);
}

#[test]
fn every_policy_maps_to_a_caddy_2_6_2_selection_policy() {
    let cases = [
        (LbPolicy::RoundRobin, json!({"policy": "round_robin"})),
        (LbPolicy::First, json!({"policy": "first"})),
        (LbPolicy::LeastConn, json!({"policy": "least_conn"})),
        (LbPolicy::IpHash, json!({"policy": "ip_hash"})),
        (LbPolicy::Cookie, json!({"policy": "cookie", "name": "lb"})),
        (LbPolicy::Random, json!({"policy": "random"})),
    ];
    for (policy, want) in cases {
        assert_eq!(selection_policy(policy), want, "{policy:?}");
        let spec = lb(json!({"listen": "127.0.0.1:8443",
            "routes": [{"name": "all", "policy": serde_json::to_value(policy).expect("policy")}]}));
        let r = render_default(&spec, &three());
        assert_eq!(
            route_by_id(&r, "botcluster-demo-route-all")["handle"][0]["load_balancing"]
                ["selection_policy"],
            want
        );
    }
}

#[test]
fn routes_keep_spec_order_after_the_common_route() {
    let r = render_default(&seed_like(), &three());
    let ids: Vec<&str> = routes(&r)
        .iter()
        .map(|x| x["@id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "botcluster-demo-common",
            "botcluster-demo-route-health",
            "botcluster-demo-route-ws",
            "botcluster-demo-route-api",
            "botcluster-demo-route-static",
        ],
        "no 404 fallback when the last route catches everything"
    );
    let common = &routes(&r)[0];
    assert!(common.get("match").is_none() && common.get("terminal").is_none());
    assert_eq!(common["handle"][0]["handler"], "headers");
    assert_eq!(common["handle"][1]["handler"], "encode");
    for route in &routes(&r)[1..] {
        assert_eq!(route["terminal"], true);
        assert_eq!(route["handle"][0]["handler"], "reverse_proxy");
    }
    assert_eq!(
        route_by_id(&r, "botcluster-demo-route-api")["match"],
        json!([{"path": ["/api/*"]}])
    );
    assert!(route_by_id(&r, "botcluster-demo-route-static")
        .get("match")
        .is_none());
}

#[test]
fn the_seed_api_route_renders_exactly() {
    let r = render_default(&seed_like(), &three());
    let want = json!({
        "@id": "botcluster-demo-route-api",
        "match": [{"path": ["/api/*"]}],
        "handle": [{
            "@id": "botcluster-demo-proxy-api",
            "handler": "reverse_proxy",
            "upstreams": [{"dial": "127.0.0.1:20001"}, {"dial": "127.0.0.1:20002"},
                          {"dial": "127.0.0.1:20003"}],
            "load_balancing": {"selection_policy": {"policy": "round_robin"},
                               "try_duration": "5s", "retries": 2},
            "health_checks": {
                "active": {"uri": "/api/health", "interval": "10s", "timeout": "5s"},
                "passive": {"fail_duration": "30s", "max_fails": 5, "unhealthy_status": [5]}
            }
        }],
        "terminal": true
    });
    assert_eq!(route_by_id(&r, "botcluster-demo-route-api"), &want);
    assert_eq!(
        serde_json::to_string(route_by_id(&r, "botcluster-demo-route-api")).expect("json"),
        serde_json::to_string(&want).expect("json"),
        "key order is fixed too"
    );
    assert_eq!(r.server["listen"], json!(["127.0.0.1:8443"]));
    assert_eq!(r.server["automatic_https"], json!({"disable": true}));
    assert_eq!(r.server["metrics"], json!({}));
    let keys: Vec<&str> = r
        .server
        .as_object()
        .expect("server object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["listen", "automatic_https", "metrics", "routes"]);
    assert!(r.notices.is_empty(), "{:?}", r.notices);
}

#[test]
fn every_server_turns_caddys_http_metrics_on() {
    // Opt-in per server since Caddy 2.6.0; without it the operator sees no request rate.
    let mut spec = seed_like();
    for upstreams in [three(), Vec::new()] {
        let r = render_default(&spec, &upstreams);
        assert_eq!(r.server["metrics"], json!({}), "{}", r.server);
    }
    spec.auto_https = true;
    spec.hosts = vec!["bot.example.com".into()];
    let r = render_default(&spec, &three());
    assert_eq!(r.server["metrics"], json!({}), "{}", r.server);
}

#[test]
fn hosts_put_a_host_matcher_on_every_route_and_a_404_after_them() {
    let mut spec = seed_like();
    spec.hosts = vec!["bot.example.com".into(), "*.bots.example.com".into()];
    let r = render_default(&spec, &three());
    let hosts = json!(["bot.example.com", "*.bots.example.com"]);
    assert_eq!(
        route_by_id(&r, "botcluster-demo-route-api")["match"],
        json!([{"host": hosts, "path": ["/api/*"]}])
    );
    assert_eq!(
        route_by_id(&r, "botcluster-demo-route-static")["match"],
        json!([{"host": hosts}])
    );
    let last = routes(&r).last().expect("routes");
    assert_eq!(last["@id"], "botcluster-demo-no-route");
    assert!(last.get("match").is_none());
    assert_eq!(last["handle"][0]["status_code"], 404);
    assert!(routes(&r)[0].get("match").is_none(), "headers apply to all");
}

#[test]
fn without_a_catch_all_unmatched_paths_get_404() {
    let spec = lb(json!({"listen": "127.0.0.1:8443",
        "routes": [{"name": "api", "path": "/api/*"}]}));
    let r = render_default(&spec, &three());
    let last = routes(&r).last().expect("routes");
    assert_eq!(last["@id"], "botcluster-demo-no-route");
    assert_eq!(
        last["handle"][0],
        json!({"handler": "static_response", "status_code": 404,
               "headers": {"Content-Type": ["text/plain; charset=utf-8"]}, "body": "no route"})
    );
}

#[test]
fn equal_inputs_render_identical_bytes_whatever_the_upstream_order() {
    let spec = seed_like();
    let a = render_default(&spec, &three());
    let b = render_default(&spec, &three());
    assert_eq!(a, b);
    assert_eq!(a.hash.len(), 16);
    let shuffled = ups(&[
        "127.0.0.1:20003",
        "127.0.0.1:20001",
        "127.0.0.1:20002",
        "127.0.0.1:20001",
    ]);
    let c = render_default(&spec, &shuffled);
    assert_eq!(a.hash, c.hash);
    assert_eq!(
        serde_json::to_string(&a.server).expect("json"),
        serde_json::to_string(&c.server).expect("json")
    );
    // Numeric, not textual, order: port 9 before port 10.
    assert_eq!(
        sorted_upstreams(&ups(&["127.0.0.1:10", "127.0.0.1:9", "10.0.0.2:1"])),
        ups(&["10.0.0.2:1", "127.0.0.1:9", "127.0.0.1:10"])
    );
    // A different fleet is a different hash.
    let d = render_default(&spec, &three()[..2]);
    assert_ne!(a.hash, d.hash);
}

#[test]
fn durations_render_canonically() {
    let mut one = seed_like();
    let mut other = seed_like();
    one.routes[1].try_duration = Some("1m".parse().expect("duration"));
    other.routes[1].try_duration = Some("60s".parse().expect("duration"));
    assert_eq!(
        render_default(&one, &three()).hash,
        render_default(&other, &three()).hash
    );
    one.routes[1].try_duration = Some("1500ms".parse().expect("duration"));
    let r = render_default(&one, &three());
    assert_eq!(
        route_by_id(&r, "botcluster-demo-route-ws")["handle"][0]["load_balancing"]["try_duration"],
        "1500ms"
    );
}

#[test]
fn no_upstreams_means_503_on_every_route() {
    let r = render_default(&seed_like(), &[]);
    for route in &routes(&r)[1..] {
        assert_eq!(
            route["handle"],
            json!([{"handler": "static_response", "status_code": 503,
                    "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
                    "body": "no ready instances"}])
        );
    }
    assert!(!r.server.to_string().contains("reverse_proxy"));
}

#[test]
fn rate_limit_without_the_module_is_a_notice_not_a_handler() {
    let mut spec = seed_like();
    spec.rate_limit = Some(
        serde_json::from_value(json!({"requests": 100, "window": "1m", "burst": 20,
            "endpoints": [{"path": "/api/auth/*", "requests": 10}]}))
        .expect("rate limit"),
    );
    let r = render_default(&spec, &three());
    assert!(!r.server.to_string().contains("rate_limit"));
    assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
    let Notice::RateLimitUnsupported { message } = &r.notices[0] else {
        panic!("{:?}", r.notices)
    };
    assert!(
        message.contains("github.com/mholt/caddy-ratelimit"),
        "{message}"
    );
    assert!(message.contains("xcaddy"), "{message}");

    // Disabled: nothing to say.
    if let Some(rl) = spec.rate_limit.as_mut() {
        rl.enabled = false;
    }
    assert!(render_default(&spec, &three()).notices.is_empty());

    // With the module: rendered (untested against a real Caddy; see the docs).
    if let Some(rl) = spec.rate_limit.as_mut() {
        rl.enabled = true;
    }
    let caps = ProxyCapabilities { rate_limit: true };
    let r = render(
        "demo",
        &spec,
        &HealthCheck::default(),
        &CircuitBreaker::default(),
        &three(),
        &caps,
    );
    assert_eq!(
        routes(&r)[0]["handle"][2],
        json!({"handler": "rate_limit", "rate_limits": {
            "botcluster-demo-global": {"key": "{http.request.remote.host}", "window": "60s", "max_events": 100},
            "botcluster-demo-endpoint-0": {"match": [{"path": ["/api/auth/*"]}],
                           "key": "{http.request.remote.host}", "window": "60s", "max_events": 10}
        }})
    );
    assert!(matches!(
        r.notices.as_slice(),
        [Notice::RateLimitBurstIgnored { .. }]
    ));
}

#[test]
fn active_health_comes_from_route_then_lb_then_operator() {
    let mut spec = seed_like();
    let own = json!({"uri": "/own", "interval": "500ms", "timeout": "300ms"});
    spec.routes[0].health_check = Some(serde_json::from_value(own.clone()).expect("hc"));
    spec.health_check =
        Some(serde_json::from_value(json!({"uri": "/lb", "interval": "2s"})).expect("hc"));
    let r = render_default(&spec, &three());
    let active = |r: &Rendered, route: &str| {
        route_by_id(r, &format!("botcluster-demo-route-{route}"))["handle"][0]["health_checks"]
            ["active"]
            .clone()
    };
    assert_eq!(active(&r, "health"), own);
    assert_eq!(
        active(&r, "api"),
        json!({"uri": "/lb", "interval": "2s", "timeout": "5s"})
    );

    spec.health_check = None;
    let health = HealthCheck {
        endpoint: "/healthz".into(),
        interval: "3s".parse().expect("d"),
        ..HealthCheck::default()
    };
    let r = render(
        "demo",
        &spec,
        &health,
        &CircuitBreaker::default(),
        &three(),
        &ProxyCapabilities::default(),
    );
    assert_eq!(
        active(&r, "api"),
        json!({"uri": "/healthz", "interval": "3s", "timeout": "5s"})
    );

    let off = HealthCheck {
        enabled: false,
        ..HealthCheck::default()
    };
    let r = render(
        "demo",
        &spec,
        &off,
        &CircuitBreaker::default(),
        &three(),
        &ProxyCapabilities::default(),
    );
    assert_eq!(active(&r, "api"), Value::Null);
    assert_eq!(active(&r, "health"), own, "a route's own check stays");
}

#[test]
fn passive_health_follows_the_circuit_breaker() {
    let spec = seed_like();
    let passive = |breaker: &CircuitBreaker, route: &str| {
        let r = render(
            "demo",
            &spec,
            &HealthCheck::default(),
            breaker,
            &three(),
            &ProxyCapabilities::default(),
        );
        route_by_id(&r, &format!("botcluster-demo-route-{route}"))["handle"][0]["health_checks"]
            ["passive"]
            .clone()
    };
    let breaker = CircuitBreaker {
        threshold: 3,
        timeout: "20s".parse().expect("d"),
        ..CircuitBreaker::default()
    };
    assert_eq!(
        passive(&breaker, "ws"),
        json!({"fail_duration": "20s", "max_fails": 3, "unhealthy_status": [5]})
    );
    assert_eq!(
        passive(&breaker, "api"),
        json!({"fail_duration": "30s", "max_fails": 3, "unhealthy_status": [5]}),
        "the route's failDuration wins"
    );
    let off = CircuitBreaker {
        enabled: false,
        ..CircuitBreaker::default()
    };
    assert_eq!(passive(&off, "ws"), Value::Null);
    assert_eq!(passive(&off, "api"), json!({"fail_duration": "30s"}));
}

#[test]
fn security_headers_and_encodings() {
    let mut spec = seed_like();
    let r = render_default(&spec, &three());
    assert_eq!(
        routes(&r)[0]["handle"],
        json!([
            {"handler": "headers", "response": {
                "set": {"Referrer-Policy": ["strict-origin-when-cross-origin"],
                        "X-Content-Type-Options": ["nosniff"], "X-Frame-Options": ["DENY"]},
                "delete": ["Server"], "deferred": true}},
            {"handler": "encode", "encodings": {"gzip": {}, "zstd": {}}, "prefer": ["gzip", "zstd"]}
        ])
    );
    spec.encodings = vec![Encoding::Zstd];
    spec.security_headers.enabled = false;
    let r = render_default(&spec, &three());
    assert_eq!(
        routes(&r)[0]["handle"],
        json!([
            {"handler": "headers", "response": {"delete": ["Server"], "deferred": true}},
            {"handler": "encode", "encodings": {"zstd": {}}, "prefer": ["zstd"]}
        ])
    );
    spec.encodings.clear();
    spec.security_headers.remove_server = false;
    let r = render_default(&spec, &three());
    assert_eq!(routes(&r)[0]["@id"], "botcluster-demo-route-health");
}

#[test]
fn user_text_stays_literal() {
    let mut spec = seed_like();
    spec.security_headers
        .headers
        .insert("X-Note".into(), "{env.HOME} \"}]},{\"handler\":\"x".into());
    spec.routes[0].path = Some("/p/{http.request.host}".into());
    let r = render_default(&spec, &three());
    assert_eq!(
        routes(&r)[0]["handle"][0]["response"]["set"]["X-Note"],
        json!(["\\{env.HOME\\} \"\\}]\\},\\{\"handler\":\"x"])
    );
    assert_eq!(
        route_by_id(&r, "botcluster-demo-route-health")["match"][0]["path"],
        json!(["/p/\\{http.request.host\\}"])
    );
    assert_eq!(escape_placeholders("a\\{b}"), "a\\\\{b\\}");
    assert_eq!(routes(&r).len(), 5, "no structure was injected");
}

#[test]
fn every_id_is_prefixed_and_unique() {
    let mut spec = seed_like();
    spec.hosts = vec!["bot.example.com".into()];
    let r = render_default(&spec, &three());
    let mut ids = Vec::new();
    collect_ids(&r.server, &mut ids);
    assert!(ids.len() >= 9, "{ids:?}");
    assert!(
        ids.iter().all(|i| i.starts_with("botcluster-demo-")),
        "{ids:?}"
    );
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(id)) = m.get("@id") {
                out.push(id.clone());
            }
            m.values().for_each(|x| collect_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

#[test]
fn auto_https_drops_the_disable_and_warns_with_hosts() {
    let mut spec = seed_like();
    spec.auto_https = true;
    let r = render_default(&spec, &three());
    assert!(r.server.get("automatic_https").is_none());
    assert!(r.notices.is_empty(), "no names, no ACME");
    spec.hosts = vec!["bot.example.com".into()];
    let r = render_default(&spec, &three());
    assert!(
        matches!(&r.notices[..], [Notice::AutomaticHttps { message }] if message.contains("bot.example.com"))
    );
}

#[test]
fn listen_url_names_the_one_balanced_url() {
    let mut spec = seed_like();
    assert_eq!(listen_url(&spec), "http://127.0.0.1:8443");
    spec.listen = ":8080".into();
    assert_eq!(listen_url(&spec), "http://127.0.0.1:8080");
    spec.listen = "0.0.0.0:80".into();
    assert_eq!(listen_url(&spec), "http://127.0.0.1");
    spec.listen = "[::]:8080".into();
    assert_eq!(listen_url(&spec), "http://[::1]:8080");
    spec.listen = ":443".into();
    spec.hosts = vec!["*.example.com".into(), "bot.example.com".into()];
    assert_eq!(listen_url(&spec), "http://bot.example.com:443");
    spec.auto_https = true;
    assert_eq!(listen_url(&spec), "https://bot.example.com");
    spec.listen = "127.0.0.1:8443".into();
    assert_eq!(listen_url(&spec), "https://bot.example.com:8443");
}
