//! One server's proxied traffic, read from the Prometheus text that Caddy serves on the admin
//! endpoint's `/metrics` (see [`crate::Client::metrics`]).
//!
//! What Caddy 2.6.2 exposes, and so what this reads (verified live):
//! - HTTP metrics are **opt-in per server** (since 2.6.0): a server without `"metrics": {}` in
//!   its config has no `caddy_http_*` series at all.
//! - `caddy_http_requests_total` and `caddy_http_request_errors_total` carry the labels
//!   `server` and `handler`; `caddy_http_request_duration_seconds` (a histogram) carries `code`,
//!   `handler`, `method` and `server`.
//! - `handler` is the **module name**, and every handler in a chain counts the request once:
//!   one request through a `headers` route and a `reverse_proxy` route increments both. Only
//!   `handler="reverse_proxy"` series are summed here.
//! - A series appears with the first request it counts, not when the server is loaded, and
//!   stays (with its value) after the server is removed from the config. Counters reset only
//!   when Caddy restarts.

use std::borrow::Cow;

/// The `handler` label value of the series that count a server's proxied requests.
pub const PROXY_HANDLER: &str = "reverse_proxy";

const REQUESTS_TOTAL: &str = "caddy_http_requests_total";
const ERRORS_TOTAL: &str = "caddy_http_request_errors_total";
const DURATION_SUM: &str = "caddy_http_request_duration_seconds_sum";
const DURATION_COUNT: &str = "caddy_http_request_duration_seconds_count";

/// Counters of the requests one Caddy server handed to `reverse_proxy`, summed over all its
/// `reverse_proxy` handlers (routes), status codes and methods.
///
/// These are totals since Caddy started. A rate needs two readings: see
/// [`ServerTraffic::since`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerTraffic {
    /// Requests that reached a `reverse_proxy` handler (`caddy_http_requests_total`).
    pub requests_total: f64,
    /// Of those, the ones the handler failed with an error, e.g. no upstream could be dialled
    /// and Caddy answered 502 itself (`caddy_http_request_errors_total`). An upstream's own
    /// 5xx answer is not an error here.
    pub errors_total: f64,
    /// Total seconds spent in `reverse_proxy`, request to end of response
    /// (`caddy_http_request_duration_seconds_sum`). Caddy 2.6.2 observes only requests the
    /// handler finished without error, so failed requests are not in here.
    pub duration_seconds_sum: f64,
    /// How many requests `duration_seconds_sum` covers
    /// (`caddy_http_request_duration_seconds_count`).
    pub duration_seconds_count: f64,
}

impl ServerTraffic {
    /// Sums the `handler="reverse_proxy"` series of the server named `server` (the key under
    /// `apps/http/servers`) in Prometheus text as served by Caddy's `/metrics`.
    ///
    /// Returns `None` when the text has no such series: the server has no `"metrics": {}`,
    /// has proxied no request yet, or does not exist. Lines it cannot parse and other metrics
    /// are skipped, so a newer Caddy adding metrics or labels does not break callers.
    ///
    /// ```
    /// use caddy_client::ServerTraffic;
    ///
    /// let text = r#"
    /// # TYPE caddy_http_requests_total counter
    /// caddy_http_requests_total{handler="headers",server="fleet"} 7
    /// caddy_http_requests_total{handler="reverse_proxy",server="fleet"} 7
    /// caddy_http_requests_total{handler="reverse_proxy",server="other"} 100
    /// "#;
    /// let fleet = ServerTraffic::from_metrics(text, "fleet").unwrap();
    /// assert_eq!(fleet.requests_total, 7.0);
    /// assert!(ServerTraffic::from_metrics(text, "nobody").is_none());
    /// ```
    pub fn from_metrics(text: &str, server: &str) -> Option<ServerTraffic> {
        let mut traffic = ServerTraffic::default();
        let mut found = false;
        for line in text.lines() {
            let Some((name, rest)) = metric_name(line) else {
                continue;
            };
            let field = match name {
                REQUESTS_TOTAL => &mut traffic.requests_total,
                ERRORS_TOTAL => &mut traffic.errors_total,
                DURATION_SUM => &mut traffic.duration_seconds_sum,
                DURATION_COUNT => &mut traffic.duration_seconds_count,
                _ => continue,
            };
            let Some((labels, value)) = labels_and_value(rest) else {
                continue;
            };
            if label(&labels, "server") != Some(server)
                || label(&labels, "handler") != Some(PROXY_HANDLER)
                || !value.is_finite()
            {
                continue;
            }
            *field += value;
            found = true;
        }
        found.then_some(traffic)
    }

    /// Mean time in `reverse_proxy` per request, in seconds; `None` before the first
    /// observed request.
    pub fn mean_duration_seconds(&self) -> Option<f64> {
        (self.duration_seconds_count > 0.0)
            .then(|| self.duration_seconds_sum / self.duration_seconds_count)
    }

    /// The traffic between an `earlier` reading and this one (field by field differences).
    ///
    /// `None` when any counter went down: Caddy restarted in between and its counters started
    /// again from zero, so the difference means nothing.
    pub fn since(&self, earlier: &ServerTraffic) -> Option<ServerTraffic> {
        let diff = ServerTraffic {
            requests_total: self.requests_total - earlier.requests_total,
            errors_total: self.errors_total - earlier.errors_total,
            duration_seconds_sum: self.duration_seconds_sum - earlier.duration_seconds_sum,
            duration_seconds_count: self.duration_seconds_count - earlier.duration_seconds_count,
        };
        let counters = [
            diff.requests_total,
            diff.errors_total,
            diff.duration_seconds_sum,
            diff.duration_seconds_count,
        ];
        counters.iter().all(|v| *v >= 0.0).then_some(diff)
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format, as much as a sample line needs:
// `name{label="value",...} value [timestamp]`, label values escaping `\\`, `\"` and `\n`.

type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The metric name of a sample line and what follows it; `None` for comments and blank lines.
fn metric_name(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    Some(line.split_at(end))
}

/// The labels (if any) and the value after a metric name; `None` when malformed.
fn labels_and_value(rest: &str) -> Option<(Labels<'_>, f64)> {
    let rest = rest.trim_start();
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => label_set(inner)?,
        None => (Vec::new(), rest),
    };
    // Whatever follows the value (a timestamp) is not needed.
    let value = rest.split_ascii_whitespace().next()?.parse().ok()?;
    Some((labels, value))
}

/// Parses `k="v",k2="v2"}` (just after the `{`), returning the labels and what follows `}`.
fn label_set(mut s: &str) -> Option<(Labels<'_>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = s.split_once('=')?;
        let key = key.trim();
        let valid_key =
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return None;
        }
        let (value, after_value) = quoted(after_key.trim_start().strip_prefix('"')?)?;
        labels.push((key, value));
        s = after_value.trim_start();
        match s.strip_prefix(',') {
            Some(after_comma) => s = after_comma,
            None if s.starts_with('}') => {}
            None => return None,
        }
    }
}

/// A label value up to its closing quote (`s` starts after the opening one), unescaped, and
/// what follows the closing quote. Borrowed unless it contains escapes.
fn quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut unescaped: Option<String> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let value = match unescaped {
                    Some(owned) => Cow::Owned(owned),
                    None => Cow::Borrowed(&s[..i]),
                };
                return Some((value, &s[i + 1..]));
            }
            '\\' => {
                let out = unescaped.get_or_insert_with(|| s[..i].to_string());
                match chars.next()?.1 {
                    'n' => out.push('\n'),
                    // `\\` and `\"`; anything else is kept as the escaped character.
                    other => out.push(other),
                }
            }
            c => {
                if let Some(out) = unescaped.as_mut() {
                    out.push(c);
                }
            }
        }
    }
    None
}

fn label<'a>(labels: &'a Labels<'_>, key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from Caddy 2.6.2's `/metrics` after requests through a server whose first,
    /// non-terminal route has `headers` and `encode`, and whose next route proxies: every
    /// request counts once per handler. Plus a server named with a quote and a comma, another
    /// server, the admin API's own metrics, and Go runtime lines.
    const CADDY_2_6_2: &str = r#"# HELP caddy_admin_http_requests_total Counter of requests made to the Admin API's HTTP endpoints.
# TYPE caddy_admin_http_requests_total counter
caddy_admin_http_requests_total{code="200",handler="metrics",method="GET",path="/metrics"} 3
# HELP caddy_http_request_duration_seconds Histogram of round-trip request durations.
# TYPE caddy_http_request_duration_seconds histogram
caddy_http_request_duration_seconds_bucket{code="200",handler="reverse_proxy",method="GET",server="botcluster-demo",le="0.005"} 2
caddy_http_request_duration_seconds_bucket{code="200",handler="reverse_proxy",method="GET",server="botcluster-demo",le="+Inf"} 3
caddy_http_request_duration_seconds_sum{code="200",handler="encode",method="GET",server="botcluster-demo"} 0.004172515
caddy_http_request_duration_seconds_count{code="200",handler="encode",method="GET",server="botcluster-demo"} 3
caddy_http_request_duration_seconds_sum{code="200",handler="headers",method="GET",server="botcluster-demo"} 0.004217953
caddy_http_request_duration_seconds_count{code="200",handler="headers",method="GET",server="botcluster-demo"} 3
caddy_http_request_duration_seconds_sum{code="200",handler="reverse_proxy",method="GET",server="botcluster-demo"} 0.25
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",method="GET",server="botcluster-demo"} 3
caddy_http_request_duration_seconds_sum{code="404",handler="static_response",method="GET",server="botcluster-demo"} 6.1181e-05
caddy_http_request_duration_seconds_count{code="404",handler="static_response",method="GET",server="botcluster-demo"} 1
caddy_http_request_duration_seconds_sum{code="501",handler="reverse_proxy",method="POST",server="botcluster-demo"} 0.5
caddy_http_request_duration_seconds_count{code="501",handler="reverse_proxy",method="POST",server="botcluster-demo"} 1
caddy_http_request_duration_seconds_sum{code="200",handler="reverse_proxy",method="GET",server="botcluster-other"} 9
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",method="GET",server="botcluster-other"} 90
caddy_http_request_duration_seconds_sum{code="200",handler="reverse_proxy",method="GET",server="odd \"name\", really"} 2
caddy_http_request_duration_seconds_count{code="200",handler="reverse_proxy",method="GET",server="odd \"name\", really"} 4
# HELP caddy_http_request_errors_total Number of requests resulting in middleware errors.
# TYPE caddy_http_request_errors_total counter
caddy_http_request_errors_total{handler="encode",server="botcluster-demo"} 2
caddy_http_request_errors_total{handler="headers",server="botcluster-demo"} 2
caddy_http_request_errors_total{handler="reverse_proxy",server="botcluster-demo"} 2
# HELP caddy_http_requests_in_flight Number of requests currently handled by this server.
# TYPE caddy_http_requests_in_flight gauge
caddy_http_requests_in_flight{handler="reverse_proxy",server="botcluster-demo"} 1
# HELP caddy_http_requests_total Counter of HTTP(S) requests made.
# TYPE caddy_http_requests_total counter
caddy_http_requests_total{handler="encode",server="botcluster-demo"} 7
caddy_http_requests_total{handler="headers",server="botcluster-demo"} 7
caddy_http_requests_total{handler="reverse_proxy",server="botcluster-demo"} 6
caddy_http_requests_total{handler="static_response",server="botcluster-demo"} 1
caddy_http_requests_total{handler="reverse_proxy",server="botcluster-other"} 90
caddy_http_requests_total{handler="reverse_proxy",server="odd \"name\", really"} 4
caddy_http_requests_total{handler="reverse_proxy",server="odd"} 1000
# HELP caddy_reverse_proxy_upstreams_healthy Health status of reverse proxy upstreams.
# TYPE caddy_reverse_proxy_upstreams_healthy gauge
caddy_reverse_proxy_upstreams_healthy{upstream="127.0.0.1:20001"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 31
"#;

    #[test]
    fn sums_only_reverse_proxy_series_of_the_named_server() {
        let t = ServerTraffic::from_metrics(CADDY_2_6_2, "botcluster-demo").expect("demo");
        assert_eq!(
            t,
            ServerTraffic {
                requests_total: 6.0,
                errors_total: 2.0,
                // Summed over code and method: 200 GET and 501 POST.
                duration_seconds_sum: 0.75,
                duration_seconds_count: 4.0,
            }
        );
        assert_eq!(t.mean_duration_seconds(), Some(0.1875));
        let other = ServerTraffic::from_metrics(CADDY_2_6_2, "botcluster-other").expect("other");
        assert_eq!(other.requests_total, 90.0);
        assert_eq!(other.errors_total, 0.0, "no series is zero");
        assert_eq!(other.mean_duration_seconds(), Some(0.1));
    }

    #[test]
    fn escaped_label_values_are_compared_unescaped() {
        let t = ServerTraffic::from_metrics(CADDY_2_6_2, r#"odd "name", really"#).expect("odd");
        assert_eq!(t.requests_total, 4.0);
        assert_eq!(t.duration_seconds_count, 4.0);
        // A prefix of the escaped name is another server.
        assert_eq!(
            ServerTraffic::from_metrics(CADDY_2_6_2, "odd").map(|t| t.requests_total),
            Some(1000.0)
        );
        assert_eq!(
            ServerTraffic::from_metrics(CADDY_2_6_2, r#"odd \"name\", really"#),
            None
        );
    }

    #[test]
    fn no_series_is_none() {
        assert_eq!(
            ServerTraffic::from_metrics(CADDY_2_6_2, "botcluster-new"),
            None
        );
        assert_eq!(ServerTraffic::from_metrics("", "botcluster-demo"), None);
        // Only other handlers of the server: nothing was proxied.
        let text = r#"caddy_http_requests_total{handler="static_response",server="s"} 3"#;
        assert_eq!(ServerTraffic::from_metrics(text, "s"), None);
        // A zero counter is a series: Some, with zeros.
        let text = r#"caddy_http_request_errors_total{handler="reverse_proxy",server="s"} 0"#;
        assert_eq!(
            ServerTraffic::from_metrics(text, "s"),
            Some(ServerTraffic::default())
        );
    }

    #[test]
    fn label_order_spacing_timestamps_and_a_trailing_comma_are_accepted() {
        let text = "caddy_http_requests_total{ server = \"s\" , handler=\"reverse_proxy\", } 2 1700000000000\n\
                    caddy_http_requests_total{server=\"s\",extra=\"a=b,c}\",handler=\"reverse_proxy\"} 3.5e1\r\n\
                    \tcaddy_http_requests_total{handler=\"reverse_proxy\",server=\"s\"}   1\n";
        let t = ServerTraffic::from_metrics(text, "s").expect("s");
        assert_eq!(t.requests_total, 38.0);
    }

    #[test]
    fn malformed_and_non_finite_lines_are_skipped() {
        let good = r#"caddy_http_requests_total{handler="reverse_proxy",server="s"} 1"#;
        let bad = [
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s} 100"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server=s} 100"#,
            r#"caddy_http_requests_total{handler="reverse_proxy" server="s"} 100"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s"}"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s"} many"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s"} NaN"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s"} +Inf"#,
            r#"caddy_http_requests_total{="reverse_proxy",server="s"} 100"#,
            r#"caddy_http_requests_total{handler="reverse_proxy",server="s\"} 100"#,
            r#"# caddy_http_requests_total{handler="reverse_proxy",server="s"} 100"#,
            "caddy_http_requests_total 100",
            "caddy_http_requests_total_extra{handler=\"reverse_proxy\",server=\"s\"} 100",
        ];
        let text = format!("{}\n{good}\n", bad.join("\n"));
        assert_eq!(
            ServerTraffic::from_metrics(&text, "s").map(|t| t.requests_total),
            Some(1.0)
        );
    }

    #[test]
    fn label_values_unescape_backslash_quote_and_newline() {
        let (labels, value) =
            labels_and_value(r#"{a="x,y}",b="q\"uo\\te",c="line\nbreak",d=""} 4"#).expect("sample");
        assert_eq!(value, 4.0);
        assert_eq!(label(&labels, "a"), Some("x,y}"));
        assert_eq!(label(&labels, "b"), Some(r#"q"uo\te"#));
        assert_eq!(label(&labels, "c"), Some("line\nbreak"));
        assert_eq!(label(&labels, "d"), Some(""));
        assert!(
            matches!(labels[0].1, Cow::Borrowed(_)),
            "no copy without escapes"
        );
        assert_eq!(
            labels_and_value(" 7").map(|(l, v)| (l.len(), v)),
            Some((0, 7.0))
        );
    }

    #[test]
    fn since_is_the_difference_unless_caddy_restarted() {
        let earlier = ServerTraffic {
            requests_total: 10.0,
            errors_total: 1.0,
            duration_seconds_sum: 2.0,
            duration_seconds_count: 9.0,
        };
        let later = ServerTraffic {
            requests_total: 70.0,
            errors_total: 1.0,
            duration_seconds_sum: 8.0,
            duration_seconds_count: 69.0,
        };
        let d = later.since(&earlier).expect("counters grew");
        assert_eq!(d.requests_total, 60.0);
        assert_eq!(d.errors_total, 0.0);
        assert_eq!(d.mean_duration_seconds(), Some(0.1));
        let restarted = ServerTraffic {
            requests_total: 3.0,
            ..later
        };
        assert_eq!(restarted.since(&earlier), None);
        assert_eq!(ServerTraffic::default().mean_duration_seconds(), None);
    }
}
