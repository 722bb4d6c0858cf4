//! The load balancer's part of a pass: which instances to drain before the container actions,
//! and what the cluster's Caddy server must become ([`wanted_server`] renders it,
//! [`plan_balancer`] decides from what the proxy holds — both pure), then applying it.
//!
//! # Guarantees
//! - Only the cluster's own server (`botcluster-<name>`) is read or written.
//! - A write happens only when the rendered server differs semantically from what the proxy
//!   holds, so an idle cluster causes no push.
//! - Before a serving instance is deleted, replaced or restarted, it leaves the pool and the
//!   pass waits until the proxy reports no request in flight to it (or `drainTimeout`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use botcluster_api::spec::BotClusterSpec;

use super::{event, BotClusterReconciler};
use crate::plan::{Action, ObservedInstance, Plan};
use crate::proxy::{Held, UpstreamState};

/// What the cluster's server in the proxy must become.
#[derive(Clone, Debug, PartialEq)]
pub enum BalancerPlan {
    /// The spec has no load balancer and the proxy holds none of ours (or there is no proxy).
    Off,
    /// The spec wants one but the operator runs without a proxy.
    NotConfigured,
    /// The spec has none (or turned it off) but the proxy still holds our server.
    Remove {
        /// The server's name.
        server: String,
    },
    /// Put the rendered server (`existed`: replacing a different one) or, when `write` is
    /// false, the proxy already holds it.
    Sync {
        /// The server's name.
        server: String,
        /// What to hold.
        rendered: botcluster_proxy::Rendered,
        /// The upstream addresses it routes to.
        upstreams: Vec<String>,
        /// The proxy's server differs (or is missing): write it.
        write: bool,
        /// The proxy held a server of that name already.
        existed: bool,
    },
}

impl BalancerPlan {
    /// A sentence for dry runs, when the plan writes something.
    pub fn describe(&self) -> Option<String> {
        match self {
            BalancerPlan::Off | BalancerPlan::NotConfigured => None,
            BalancerPlan::Remove { server } => Some(format!(
                "remove load balancer {server} (spec.loadBalancer is off)"
            )),
            BalancerPlan::Sync { write: false, .. } => None,
            BalancerPlan::Sync {
                server,
                upstreams,
                existed,
                ..
            } => Some(format!(
                "{} load balancer {server}: {} upstream(s) [{}]",
                if *existed { "update" } else { "create" },
                upstreams.len(),
                upstreams.join(", ")
            )),
        }
    }
}

/// The cluster's server as the spec wants it now.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedServer {
    /// The rendered server.
    pub rendered: botcluster_proxy::Rendered,
    /// The upstream addresses it routes to.
    pub upstreams: Vec<String>,
}

/// The upstream addresses of the ready instances this cluster owns, minus `leaving`, in
/// ordinal order.
pub fn upstreams(
    spec: &BotClusterSpec,
    uid: &str,
    observed: &[ObservedInstance],
    leaving: &BTreeSet<String>,
) -> Vec<String> {
    let mut ready: Vec<(u32, String)> = observed
        .iter()
        .filter(|o| {
            o.owner_uid() == Some(uid) && o.running && o.ready && !leaving.contains(&o.name)
        })
        .filter_map(|o| {
            Some((
                o.ordinal()?,
                crate::model::host_port(&spec.listen_address, o.host_port()?),
            ))
        })
        .collect();
    ready.sort();
    ready.into_iter().map(|(_, a)| a).collect()
}

/// The serving instances the container plan takes away (delete, replace, restart): they
/// leave the pool and drain first.
pub fn drain_set(observed: &[ObservedInstance], p: &Plan) -> BTreeSet<String> {
    p.actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Delete { .. } | Action::Replace(_) | Action::Restart { .. }
            )
        })
        .map(|a| a.instance().to_string())
        .filter(|n| {
            observed
                .iter()
                .any(|o| &o.name == n && o.running && o.ready)
        })
        .collect()
}

/// Renders the server the spec wants for `observed` minus `leaving` (`None`: the spec has no
/// load balancer). Pure. `rate_limit`: the proxy has a rate-limit module.
pub fn wanted_server(
    name: &str,
    uid: &str,
    spec: &BotClusterSpec,
    observed: &[ObservedInstance],
    leaving: &BTreeSet<String>,
    rate_limit: bool,
) -> Option<WantedServer> {
    let lb = spec.load_balancer.as_ref().filter(|lb| lb.enabled)?;
    let upstreams = upstreams(spec, uid, observed, leaving);
    let rendered = botcluster_proxy::render(
        name,
        lb,
        &spec.health,
        &spec.circuit_breaker,
        &upstreams,
        &botcluster_proxy::ProxyCapabilities { rate_limit },
    );
    Some(WantedServer {
        rendered,
        upstreams,
    })
}

/// Decides the cluster's server. Pure: from whether the operator has a proxy, what the spec
/// wants, and what the proxy holds under the server's name (compared with the wanted one).
pub fn plan_balancer(
    server: String,
    has_proxy: bool,
    want: Option<WantedServer>,
    held: Held,
) -> BalancerPlan {
    match (has_proxy, want, held) {
        (false, Some(_), _) => BalancerPlan::NotConfigured,
        (false, None, _) | (true, None, Held::Missing) => BalancerPlan::Off,
        (true, None, Held::Same | Held::Different) => BalancerPlan::Remove { server },
        (true, Some(w), held) => BalancerPlan::Sync {
            server,
            rendered: w.rendered,
            upstreams: w.upstreams,
            write: held != Held::Same,
            existed: held != Held::Missing,
        },
    }
}

/// What converging the load balancer gave, for status.
#[derive(Clone, Debug, PartialEq)]
pub enum ProxyOutcome {
    /// No load balancer in the spec (and none left in the proxy).
    Disabled,
    /// The spec wants one but the operator has no proxy.
    NotConfigured,
    /// Reading or writing the proxy failed.
    Failed(String),
    /// The proxy holds the rendered config.
    Synced {
        /// The rendered config's hash.
        hash: String,
        /// Where clients reach it.
        url: String,
        /// The upstream addresses.
        upstreams: Vec<String>,
        /// What the renderer could not do (no rate-limit module).
        notices: Vec<String>,
        /// The proxy's own view of its upstreams (requests in flight, fails).
        live: Vec<UpstreamState>,
    },
}

impl BotClusterReconciler {
    /// Plans the cluster's server for `observed` minus `leaving`, asking the proxy what it
    /// can do and what it holds. A cluster without a load balancer does not depend on the
    /// proxy: when it cannot be read, there is nothing to remove as far as this pass can tell.
    pub(crate) async fn plan_proxy(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        leaving: &BTreeSet<String>,
    ) -> Result<BalancerPlan, String> {
        let server = botcluster_proxy::server_name(name);
        let Some(proxy) = &self.proxy else {
            let want = wanted_server(name, uid, spec, observed, leaving, false);
            return Ok(plan_balancer(server, false, want, Held::Missing));
        };
        let at = proxy.endpoint();
        let wanted = spec.load_balancer.as_ref().is_some_and(|lb| lb.enabled);
        let rate_limit = if wanted {
            proxy
                .supports_rate_limit()
                .await
                .map_err(|e| format!("asking the proxy at {at} for its modules: {e}"))?
        } else {
            false
        };
        let want = wanted_server(name, uid, spec, observed, leaving, rate_limit);
        let held = match &want {
            Some(w) => proxy
                .compare(&server, &w.rendered)
                .await
                .map_err(|e| format!("reading {server} from the proxy at {at}: {e}"))?,
            None => match proxy.exists(&server).await {
                Ok(true) => Held::Different,
                Ok(false) | Err(_) => Held::Missing,
            },
        };
        Ok(plan_balancer(server, true, want, held))
    }

    /// Plans and applies the cluster's server for `observed` minus `leaving`.
    pub(crate) async fn converge_proxy(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        leaving: &BTreeSet<String>,
    ) -> ProxyOutcome {
        match self.plan_proxy(name, uid, spec, observed, leaving).await {
            Ok(plan) => self.apply_balancer(name, spec, plan).await,
            Err(e) => ProxyOutcome::Failed(e),
        }
    }

    /// Applies a planned server change and reports what the proxy then holds.
    pub(crate) async fn apply_balancer(
        &self,
        name: &str,
        spec: &BotClusterSpec,
        plan: BalancerPlan,
    ) -> ProxyOutcome {
        let Some(proxy) = &self.proxy else {
            return match plan {
                BalancerPlan::NotConfigured => ProxyOutcome::NotConfigured,
                _ => ProxyOutcome::Disabled,
            };
        };
        let pushes = &self.metrics.proxy_pushes;
        match plan {
            BalancerPlan::Off => ProxyOutcome::Disabled,
            BalancerPlan::NotConfigured => ProxyOutcome::NotConfigured,
            BalancerPlan::Remove { server } => match proxy.remove_server(&server).await {
                Ok(removed) => {
                    if removed {
                        pushes.with_label_values(&["success"]).inc();
                        self.record(
                            name,
                            event(
                                "Normal",
                                "ProxyRemoved",
                                format!(
                                    "load balancer {server} removed (spec.loadBalancer is off)"
                                ),
                            ),
                        )
                        .await;
                    }
                    ProxyOutcome::Disabled
                }
                Err(e) => ProxyOutcome::Failed(format!("removing {server}: {e}")),
            },
            BalancerPlan::Sync {
                server,
                rendered,
                upstreams,
                write,
                existed,
            } => {
                if write {
                    if let Err(e) = proxy.put_server(&server, &rendered).await {
                        pushes.with_label_values(&["error"]).inc();
                        return ProxyOutcome::Failed(format!(
                            "writing {server} to the proxy at {}: {e}",
                            proxy.endpoint()
                        ));
                    }
                    pushes.with_label_values(&["success"]).inc();
                    self.record(
                        name,
                        event(
                            "Normal",
                            "ProxyUpdated",
                            format!(
                                "load balancer {server} {}: {} upstream(s) [{}]",
                                if existed { "updated" } else { "created" },
                                upstreams.len(),
                                upstreams.join(", ")
                            ),
                        ),
                    )
                    .await;
                }
                let url = spec
                    .load_balancer
                    .as_ref()
                    .map(botcluster_proxy::listen_url)
                    .unwrap_or_default();
                ProxyOutcome::Synced {
                    hash: rendered.hash,
                    url,
                    upstreams,
                    notices: rendered
                        .notices
                        .iter()
                        .filter(|n| {
                            matches!(n, botcluster_proxy::Notice::RateLimitUnsupported { .. })
                        })
                        .map(|n| n.message().to_string())
                        .collect(),
                    live: proxy.upstreams().await.unwrap_or_default(),
                }
            }
        }
    }

    /// Before instances are deleted, replaced or restarted: take `leaving` out of the load
    /// balancer and wait until they have no requests in flight (or `drainTimeout` passes).
    pub(crate) async fn drain(
        &self,
        name: &str,
        uid: &str,
        spec: &BotClusterSpec,
        observed: &[ObservedInstance],
        leaving: &BTreeSet<String>,
    ) {
        let (Some(proxy), Some(lb)) = (
            &self.proxy,
            spec.load_balancer.as_ref().filter(|lb| lb.enabled),
        ) else {
            return;
        };
        if leaving.is_empty() {
            return;
        }
        if let ProxyOutcome::Failed(e) = self
            .converge_proxy(name, uid, spec, observed, leaving)
            .await
        {
            tracing::warn!(cluster = name, error = %e, "could not take instances out of the load balancer before removing them");
            return;
        }
        let addrs: BTreeSet<String> = observed
            .iter()
            .filter(|o| leaving.contains(&o.name))
            .filter_map(|o| {
                o.host_port()
                    .map(|p| crate::model::host_port(&spec.listen_address, p))
            })
            .collect();
        let deadline = Instant::now() + lb.drain_timeout.get();
        loop {
            let busy: u64 = match proxy.upstreams().await {
                Ok(us) => us
                    .iter()
                    .filter(|u| addrs.contains(&u.address))
                    .map(|u| u.num_requests)
                    .sum(),
                Err(_) => 0,
            };
            if busy == 0 || Instant::now() >= deadline {
                let how = if busy == 0 {
                    "drained".to_string()
                } else {
                    format!("drain timeout with {busy} request(s) in flight")
                };
                let who = leaving.iter().cloned().collect::<Vec<_>>().join(", ");
                self.record(
                    name,
                    event(
                        "Normal",
                        "Drained",
                        format!("{who} out of the load balancer ({how})"),
                    ),
                )
                .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Option<WantedServer> {
        let spec: BotClusterSpec = serde_json::from_value(serde_json::json!({
            "image": "img", "loadBalancer": {"listen": "127.0.0.1:8995"}
        }))
        .expect("spec");
        wanted_server("web", "u", &spec, &[], &BTreeSet::new(), false)
    }

    #[test]
    fn the_balancer_is_written_only_when_the_proxy_holds_something_else() {
        let plan = |proxy, want: Option<WantedServer>, held| {
            plan_balancer("botcluster-web".into(), proxy, want, held)
        };
        let sync = |p: BalancerPlan| match p {
            BalancerPlan::Sync { write, existed, .. } => Some((write, existed)),
            _ => None,
        };
        assert_eq!(sync(plan(true, wanted(), Held::Same)), Some((false, true)));
        assert_eq!(
            sync(plan(true, wanted(), Held::Different)),
            Some((true, true))
        );
        assert_eq!(
            sync(plan(true, wanted(), Held::Missing)),
            Some((true, false))
        );
        assert_eq!(
            plan(false, wanted(), Held::Missing),
            BalancerPlan::NotConfigured
        );
        assert_eq!(plan(false, None, Held::Different), BalancerPlan::Off);
        assert_eq!(plan(true, None, Held::Missing), BalancerPlan::Off);
        assert_eq!(
            plan(true, None, Held::Different),
            BalancerPlan::Remove {
                server: "botcluster-web".into()
            }
        );
        assert!(wanted().is_some_and(|w| w.upstreams.is_empty()));
    }
}
