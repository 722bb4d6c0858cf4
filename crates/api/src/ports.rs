//! Host ports two BotClusters would both claim: a cluster's `hostPorts` range and its load
//! balancer's listen port, against every other cluster's. Pure. The API's PUT refuses a write
//! with any (409 `PortConflict`, one field error per clash, naming the other cluster), and a
//! GitSource refuses a revision with any (`PortConflict`, naming file and field). What cannot
//! be known before reconciling (a port another program holds) stays the reconciler's `Blocked`
//! condition.
//!
//! [`ReservedPorts`] (set by `botctl serve` as a request extension) adds the operator's own:
//! its `--port-range` and the API's listen port.
//!
//! Two writes racing past this check at once are still separated at reconcile time by the
//! port book; this check is for the common mistake, not a lock.

use std::net::IpAddr;

use crate::spec::BotClusterSpec;
use crate::FieldError;

/// Ports the operator itself uses, which no spec may claim. `botctl serve` adds this to the
/// router as an `axum::Extension`; without it only other clusters' ports are checked.
#[derive(Clone, Debug, Default)]
pub struct ReservedPorts {
    /// `--port-range`: ports handed to clusters without `hostPorts`.
    pub operator_range: Option<(u16, u16)>,
    /// The API's own listen address.
    pub api: Option<std::net::SocketAddr>,
}

/// One error per port `spec` claims that the operator reserves.
pub fn reserved_clashes(spec: &BotClusterSpec, reserved: &ReservedPorts) -> Vec<FieldError> {
    let mine = claims(spec);
    let mut errors = Vec::new();
    if let (Some(a), Some(r)) = (mine.host, reserved.operator_range) {
        if overlap(a, r) {
            errors.push(FieldError::new(
                "spec.hostPorts",
                format!(
                    "{}-{} overlaps the operator's --port-range {}-{}, which it hands to clusters without hostPorts; use ports outside it",
                    a.0, a.1, r.0, r.1
                ),
            ));
        }
    }
    if let (Some(l), Some(r)) = (mine.listen, reserved.operator_range) {
        if overlap((l.1, l.1), r) {
            errors.push(FieldError::new(
                "spec.loadBalancer.listen",
                format!(
                    "port {} is inside the operator's --port-range {}-{}; pick a port outside it",
                    l.1, r.0, r.1
                ),
            ));
        }
    }
    if let Some(api) = reserved.api {
        let api_claim = ((!api.ip().is_unspecified()).then_some(api.ip()), api.port());
        if mine.listen.is_some_and(|l| same_listener(l, api_claim)) {
            errors.push(FieldError::new(
                "spec.loadBalancer.listen",
                format!("{api} is the botcluster API's own address; pick another port"),
            ));
        }
        if let Some(a) = mine.host.filter(|a| overlap(*a, (api.port(), api.port()))) {
            errors.push(FieldError::new(
                "spec.hostPorts",
                format!(
                    "{}-{} holds port {}, the botcluster API's own; move the range",
                    a.0,
                    a.1,
                    api.port()
                ),
            ));
        }
    }
    errors
}

/// The host ports a spec claims.
struct Claims {
    /// `hostPorts`, inclusive.
    host: Option<(u16, u16)>,
    /// The load balancer's listen address (`None`: every address) and port.
    listen: Option<(Option<IpAddr>, u16)>,
}

fn claims(spec: &BotClusterSpec) -> Claims {
    let listen = spec
        .load_balancer
        .as_ref()
        .filter(|lb| lb.enabled)
        .and_then(|lb| {
            if let Ok(a) = lb.listen.parse::<std::net::SocketAddr>() {
                let ip = a.ip();
                return Some(((!ip.is_unspecified()).then_some(ip), a.port()));
            }
            let (host, port) = lb.listen.rsplit_once(':')?;
            let port = port.parse().ok()?;
            let ip = match host {
                "" => None,
                "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
                _ => return None,
            };
            Some((ip, port))
        });
    Claims {
        host: spec.host_ports.as_ref().map(|r| (r.start, r.end)),
        listen,
    }
}

fn overlap(a: (u16, u16), b: (u16, u16)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Listen addresses that would collide: the same port on the same or an unspecified address.
fn same_listener(a: (Option<IpAddr>, u16), b: (Option<IpAddr>, u16)) -> bool {
    a.1 == b.1 && (a.0.is_none() || b.0.is_none() || a.0 == b.0)
}

/// One error per port `spec` (of cluster `name`) claims that another cluster of `others`
/// (name, spec) holds; an entry named `name` (its own older version) is skipped.
pub fn clashes<'a>(
    name: &str,
    spec: &BotClusterSpec,
    others: impl IntoIterator<Item = (&'a str, &'a BotClusterSpec)>,
) -> Vec<FieldError> {
    let mine = claims(spec);
    let mut errors = Vec::new();
    for (who, theirs) in others.into_iter().filter(|(n, _)| *n != name) {
        let theirs = claims(theirs);
        if let (Some(a), Some(b)) = (mine.host, theirs.host) {
            if overlap(a, b) {
                errors.push(FieldError::new(
                    "spec.hostPorts",
                    format!(
                        "{}-{} overlaps BotCluster \"{who}\"'s hostPorts {}-{}; give each cluster its own range",
                        a.0, a.1, b.0, b.1
                    ),
                ));
            }
        }
        if let (Some(a), Some((_, p))) = (mine.host, theirs.listen) {
            if overlap(a, (p, p)) {
                errors.push(FieldError::new(
                    "spec.hostPorts",
                    format!(
                        "{}-{} holds port {p}, where BotCluster \"{who}\"'s load balancer listens; move the range",
                        a.0, a.1
                    ),
                ));
            }
        }
        if let Some(l) = mine.listen {
            if let Some(b) = theirs.host.filter(|b| overlap((l.1, l.1), *b)) {
                errors.push(FieldError::new(
                    "spec.loadBalancer.listen",
                    format!(
                        "port {} is inside BotCluster \"{who}\"'s hostPorts {}-{}; pick another port",
                        l.1, b.0, b.1
                    ),
                ));
            }
            if theirs.listen.is_some_and(|t| same_listener(l, t)) {
                errors.push(FieldError::new(
                    "spec.loadBalancer.listen",
                    format!(
                        "port {} is where BotCluster \"{who}\"'s load balancer already listens; pick another port or address",
                        l.1
                    ),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> BotClusterSpec {
        let mut doc = json!({"image": "img"});
        doc.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        serde_json::from_value(doc).unwrap()
    }

    fn stored(name: &'static str, v: serde_json::Value) -> (&'static str, BotClusterSpec) {
        (name, spec(v))
    }

    fn clashes(
        name: &str,
        s: &BotClusterSpec,
        others: &[(&str, BotClusterSpec)],
    ) -> Vec<FieldError> {
        super::clashes(name, s, others.iter().map(|(n, s)| (*n, s)))
    }

    #[test]
    fn each_kind_of_shared_port_is_found_and_names_the_other_cluster() {
        let others = [
            stored("a", json!({"hostPorts": {"start": 20000, "end": 20010}})),
            stored("b", json!({"loadBalancer": {"listen": "127.0.0.1:8000"}})),
            stored("c", json!({"loadBalancer": {"listen": ":9000"}})),
        ];
        let cases = [
            (
                json!({"hostPorts": {"start": 20010, "end": 20020}}),
                "spec.hostPorts",
                "\"a\"",
            ),
            (
                json!({"hostPorts": {"start": 7990, "end": 8005}}),
                "spec.hostPorts",
                "\"b\"",
            ),
            (
                json!({"loadBalancer": {"listen": "127.0.0.1:20005"}}),
                "spec.loadBalancer.listen",
                "\"a\"",
            ),
            (
                json!({"loadBalancer": {"listen": ":8000"}}),
                "spec.loadBalancer.listen",
                "\"b\"",
            ),
            (
                json!({"loadBalancer": {"listen": "127.0.0.2:9000"}}),
                "spec.loadBalancer.listen",
                "\"c\"",
            ),
        ];
        for (s, field, who) in cases {
            let e = clashes("new", &spec(s.clone()), &others);
            assert!(
                e.iter()
                    .any(|e| e.field == field && e.message.contains(who)),
                "{s}: {e:?}"
            );
        }
        // Apart: no clash; and a cluster never clashes with its own stored version.
        for s in [
            json!({"hostPorts": {"start": 20011, "end": 20020}}),
            json!({"loadBalancer": {"listen": "127.0.0.2:8000"}}),
        ] {
            assert!(clashes("new", &spec(s.clone()), &others).is_empty(), "{s}");
        }
        let reserved = ReservedPorts {
            operator_range: Some((21000, 21999)),
            api: Some("127.0.0.1:7780".parse().unwrap()),
        };
        for (s, field) in [
            (
                json!({"hostPorts": {"start": 21990, "end": 22010}}),
                "spec.hostPorts",
            ),
            (
                json!({"hostPorts": {"start": 7770, "end": 7790}}),
                "spec.hostPorts",
            ),
            (
                json!({"loadBalancer": {"listen": "127.0.0.1:21500"}}),
                "spec.loadBalancer.listen",
            ),
            (
                json!({"loadBalancer": {"listen": ":7780"}}),
                "spec.loadBalancer.listen",
            ),
        ] {
            let e = reserved_clashes(&spec(s.clone()), &reserved);
            assert!(e.iter().any(|e| e.field == field), "{s}: {e:?}");
        }
        assert!(reserved_clashes(
            &spec(json!({"hostPorts": {"start": 22000, "end": 22010},
                         "loadBalancer": {"listen": "127.0.0.2:7780"}})),
            &reserved
        )
        .is_empty());
        assert!(clashes(
            "a",
            &spec(json!({"hostPorts": {"start": 20000, "end": 20010}})),
            &others
        )
        .is_empty());
    }
}
