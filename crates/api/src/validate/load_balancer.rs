//! Rules of `spec.loadBalancer`: listen address, hosts, routes, health checks, headers and
//! rate limits.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use super::checks::is_hostname;
use super::{validate_name, Errors};
use crate::spec::{BotClusterSpec, LoadBalancer, ProxyHealthCheck};

/// The port of a listen address as Caddy reads it (`127.0.0.1:8443`, `[::1]:8443`, `:443`,
/// `localhost:8443`), when it is one.
fn listen_port(listen: &str) -> Option<u16> {
    if let Ok(a) = listen.parse::<SocketAddr>() {
        return Some(a.port());
    }
    let (host, port) = listen.rsplit_once(':')?;
    (host.is_empty() || host == "localhost")
        .then(|| port.parse::<u16>().ok())
        .flatten()
}

pub(super) fn validate_load_balancer(lb: &LoadBalancer, spec: &BotClusterSpec, e: &mut Errors) {
    let f = "spec.loadBalancer.listen";
    match listen_port(&lb.listen) {
        None => e.push(
            f,
            format!(
                "{:?} is not an address to listen on; write e.g. \"127.0.0.1:8443\" or \":8443\"",
                lb.listen
            ),
        ),
        Some(0) => e.push(
            f,
            format!(
                "{:?} has port 0, which would make Caddy pick a random port nobody knows; name the port, e.g. \"127.0.0.1:8443\"",
                lb.listen
            ),
        ),
        Some(p) if p < 1024 && !spec.privileged_ports => e.push(
            f,
            format!(
                "{:?}: port {p} is privileged (below 1024), usually the host's own services'; use a port from 1024 up, or set spec.privilegedPorts: true",
                lb.listen
            ),
        ),
        Some(p) => {
            if let Some(r) = spec.host_ports.as_ref().filter(|r| (r.start..=r.end).contains(&p)) {
                e.push(
                    f,
                    format!(
                        "port {p} is inside this cluster's own hostPorts ({}-{}); the load balancer and the instances cannot share it",
                        r.start, r.end
                    ),
                );
            }
        }
    }
    for (i, h) in lb.hosts.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        e.check(
            is_hostname(bare) || bare.parse::<IpAddr>().is_ok(),
            &format!("spec.loadBalancer.hosts[{i}]"),
            || format!("\"{h}\" is not a host name"),
        );
    }
    e.check(!lb.routes.is_empty(), "spec.loadBalancer.routes", || {
        "is empty; add at least one route, e.g. {name: default}".into()
    });
    let mut names = BTreeSet::new();
    for (i, r) in lb.routes.iter().enumerate() {
        let f = format!("spec.loadBalancer.routes[{i}]");
        if let Err(m) = validate_name(&r.name) {
            e.push(&format!("{f}.name"), m);
        }
        e.check(names.insert(&r.name), &format!("{f}.name"), || {
            format!(
                "\"{}\" is used by an earlier route; route names must be unique",
                r.name
            )
        });
        if let Some(p) = &r.path {
            e.path(&format!("{f}.path"), p);
        }
        if let Some(d) = &r.try_duration {
            e.duration(&format!("{f}.tryDuration"), d);
        }
        if let Some(d) = &r.fail_duration {
            e.duration(&format!("{f}.failDuration"), d);
        }
        if let Some(h) = &r.health_check {
            validate_proxy_health(&format!("{f}.healthCheck"), h, e);
        }
    }
    if let Some(i) = lb.routes.iter().position(|r| r.path.is_none()) {
        e.check(i == lb.routes.len() - 1, &format!("spec.loadBalancer.routes[{i}].path"), || {
            "is absent (matches every path) but routes follow it that could never match; move this route last".into()
        });
    }
    if let Some(h) = &lb.health_check {
        validate_proxy_health("spec.loadBalancer.healthCheck", h, e);
    }
    e.duration("spec.loadBalancer.drainTimeout", &lb.drain_timeout);
    let mut encodings = BTreeSet::new();
    for (i, enc) in lb.encodings.iter().enumerate() {
        e.check(
            encodings.insert(format!("{enc:?}")),
            &format!("spec.loadBalancer.encodings[{i}]"),
            || "is listed twice".into(),
        );
    }
    for (k, v) in &lb.security_headers.headers {
        e.rule(
            &format!("spec.loadBalancer.securityHeaders.headers.{k}"),
            super::charset::header_value(v),
        );
        e.check(
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            &format!("spec.loadBalancer.securityHeaders.headers.{k}"),
            || format!("\"{k}\" is not a header name"),
        );
    }
    if let Some(rl) = &lb.rate_limit {
        e.check(
            rl.requests >= 1,
            "spec.loadBalancer.rateLimit.requests",
            || "must be at least 1".into(),
        );
        e.positive_duration("spec.loadBalancer.rateLimit.window", &rl.window);
        for (i, ep) in rl.endpoints.iter().enumerate() {
            let f = format!("spec.loadBalancer.rateLimit.endpoints[{i}]");
            e.path(&format!("{f}.path"), &ep.path);
            e.check(ep.requests >= 1, &format!("{f}.requests"), || {
                "must be at least 1".into()
            });
            if let Some(w) = &ep.window {
                e.positive_duration(&format!("{f}.window"), w);
            }
        }
    }
}

fn validate_proxy_health(f: &str, h: &ProxyHealthCheck, e: &mut Errors) {
    e.path(&format!("{f}.uri"), &h.uri);
    e.positive_duration(&format!("{f}.interval"), &h.interval);
    e.positive_duration(&format!("{f}.timeout"), &h.timeout);
}
