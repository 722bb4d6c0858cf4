//! Prometheus metrics of the API server, in a registry the controller shares.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::AppState;

/// The server's metrics and the registry every component of the process registers into.
#[derive(Clone)]
pub struct Metrics {
    /// The process-wide registry served at `/metrics`.
    pub registry: Registry,
    /// `botcluster_http_requests_total{method,route,code}`.
    pub requests: IntCounterVec,
    /// `botcluster_http_request_duration_seconds{method,route}`.
    pub latency: HistogramVec,
    /// `botcluster_objects{kind}`: stored objects, refreshed on scrape.
    pub objects: IntGaugeVec,
    /// `botcluster_spec_writes_total{kind,result}`: PUTs by outcome (created, configured,
    /// unchanged, invalid, conflict).
    pub spec_writes: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "botcluster_http_requests_total",
                "HTTP requests by method, route and status code",
            ),
            &["method", "route", "code"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "botcluster_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["method", "route"],
        )
        .expect("static metric definition");
        let objects = IntGaugeVec::new(
            Opts::new("botcluster_objects", "Stored objects by kind"),
            &["kind"],
        )
        .expect("static metric definition");
        let spec_writes = IntCounterVec::new(
            Opts::new(
                "botcluster_spec_writes_total",
                "Spec writes by kind and result",
            ),
            &["kind", "result"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(objects.clone()),
            Box::new(spec_writes.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            objects,
            spec_writes,
        }
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = prometheus::Encoder::encode(&enc, &self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `method` label: a method the API knows, or `other`. Any client, even without a token,
/// chooses the method, so the label must not be its text: each new value would be a new
/// series for as long as the process runs.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts and times every request, labelled by a known method and the matched route template
/// (never the raw path or method text: both are the client's choice).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .with_label_values(&[method, &route, resp.status().as_str()])
        .inc();
    m.latency
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    resp
}
