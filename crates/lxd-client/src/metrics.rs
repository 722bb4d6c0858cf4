//! A small parser for `GET /1.0/metrics` (Prometheus text format).
//!
//! `/1.0/metrics` is the cheap way to read every instance's usage at once: one
//! request for all instances (about 13 ms for 23 instances on LXD 5.0.2), where
//! `/1.0/instances/NAME/state` costs about 90 ms *per instance*.
//!
//! LXD caches the metrics of each project server-side for a few seconds (8 s in
//! current LXD), shared by all callers: an instance started a moment ago may be
//! missing, and the numbers can be that old.
//!
//! Only what a fleet manager usually needs is extracted; the raw text is available
//! from [`crate::Client::metrics_text`] for everything else.

use std::collections::BTreeMap;

/// Usage of one instance, extracted from `/1.0/metrics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceMetrics {
    /// Project of the instance.
    pub project: String,
    /// Instance name.
    pub name: String,
    /// Total CPU time in seconds: `lxd_cpu_seconds_total` summed over CPUs and modes.
    pub cpu_seconds: f64,
    /// Memory in use, in bytes: `lxd_memory_MemTotal_bytes - lxd_memory_MemFree_bytes`.
    /// This equals `memory.usage` of the instance's state (verified on LXD 5.0.2).
    pub memory_bytes: u64,
    /// Resident set size in bytes (`lxd_memory_RSS_bytes`).
    pub memory_rss_bytes: u64,
    /// Number of processes (`lxd_procs_total`).
    pub processes: u64,
}

/// Per-instance usage parsed from `/1.0/metrics`, keyed by `(project, name)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// Instances found in the text.
    pub instances: BTreeMap<(String, String), InstanceMetrics>,
}

impl Metrics {
    /// Parses Prometheus text exposition as served by LXD.
    ///
    /// Lenient by design: comment lines, metrics without `name`/`project` labels
    /// and lines it cannot parse are skipped, so a newer LXD adding metrics or
    /// labels does not break callers.
    ///
    /// ```
    /// let text = r#"
    /// # TYPE lxd_cpu_seconds_total counter
    /// lxd_cpu_seconds_total{cpu="0",mode="user",name="web-0",project="default",type="container"} 1.5
    /// lxd_cpu_seconds_total{cpu="1",mode="system",name="web-0",project="default",type="container"} 0.25
    /// lxd_memory_MemTotal_bytes{name="web-0",project="default",type="container"} 1.048576e+06
    /// lxd_memory_MemFree_bytes{name="web-0",project="default",type="container"} 524288
    /// "#;
    /// let m = lxd_client::Metrics::parse(text);
    /// let web = m.get("default", "web-0").unwrap();
    /// assert_eq!(web.cpu_seconds, 1.75);
    /// assert_eq!(web.memory_bytes, 524_288);
    /// ```
    pub fn parse(text: &str) -> Metrics {
        #[derive(Default)]
        struct Acc {
            cpu: f64,
            mem_total: Option<f64>,
            mem_free: Option<f64>,
            rss: f64,
            procs: f64,
        }
        let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
        for line in text.lines() {
            let Some(sample) = parse_line(line) else {
                continue;
            };
            let (Some(name), Some(project)) = (sample.label("name"), sample.label("project"))
            else {
                continue;
            };
            let a = acc
                .entry((project.to_owned(), name.to_owned()))
                .or_default();
            match sample.metric {
                "lxd_cpu_seconds_total" => a.cpu += sample.value,
                "lxd_memory_MemTotal_bytes" => a.mem_total = Some(sample.value),
                "lxd_memory_MemFree_bytes" => a.mem_free = Some(sample.value),
                "lxd_memory_RSS_bytes" => a.rss = sample.value,
                "lxd_procs_total" => a.procs = sample.value,
                _ => {}
            }
        }
        let instances = acc
            .into_iter()
            .map(|((project, name), a)| {
                let memory = match (a.mem_total, a.mem_free) {
                    (Some(total), Some(free)) => to_u64(total - free),
                    _ => 0,
                };
                let m = InstanceMetrics {
                    project: project.clone(),
                    name: name.clone(),
                    cpu_seconds: a.cpu,
                    memory_bytes: memory,
                    memory_rss_bytes: to_u64(a.rss),
                    processes: to_u64(a.procs),
                };
                ((project, name), m)
            })
            .collect();
        Metrics { instances }
    }

    /// The metrics of one instance.
    pub fn get(&self, project: &str, name: &str) -> Option<&InstanceMetrics> {
        self.instances.get(&(project.to_owned(), name.to_owned()))
    }
}

fn to_u64(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // Saturating float-to-int conversion is the intent here.
        v.round() as u64
    } else {
        0
    }
}

/// One sample line: `metric{label="value",...} value [timestamp]`.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    metric: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let metric = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        metric,
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP lxd_cpu_seconds_total The total number of CPU time used in seconds.
# TYPE lxd_cpu_seconds_total counter
lxd_cpu_seconds_total{cpu="0",mode="system",name="research-x",project="default",type="container"} 0
lxd_cpu_seconds_total{cpu="0",mode="user",name="research-x",project="default",type="container"} 0
lxd_cpu_seconds_total{cpu="1",mode="system",name="research-x",project="default",type="container"} 0.011877768
lxd_cpu_seconds_total{cpu="1",mode="user",name="research-x",project="default",type="container"} 0.5
lxd_cpu_seconds_total{cpu="0",mode="user",name="other",project="p2",type="container"} 3
lxd_filesystem_avail_bytes{device="",fstype="ext4",mountpoint="/",name="research-x",project="default"} 8.509595648e+10
lxd_memory_MemAvailable_bytes{name="research-x",project="default",type="container"} 2.4683493888e+10
lxd_memory_MemFree_bytes{name="research-x",project="default",type="container"} 2.4683489792e+10
lxd_memory_MemTotal_bytes{name="research-x",project="default",type="container"} 2.4684096e+10
lxd_memory_RSS_bytes{name="research-x",project="default",type="container"} 110592
lxd_procs_total{name="research-x",project="default",type="container"} 2
lxd_warnings_total 3
"#;

    #[test]
    fn extracts_cpu_seconds_and_memory_bytes_per_instance() {
        let m = Metrics::parse(SAMPLE);
        assert_eq!(m.instances.len(), 2);
        let x = m.get("default", "research-x").unwrap();
        assert!((x.cpu_seconds - 0.511_877_768).abs() < 1e-12);
        // Matches memory.usage from /state for the same instance (606208).
        assert_eq!(x.memory_bytes, 606_208);
        assert_eq!(x.memory_rss_bytes, 110_592);
        assert_eq!(x.processes, 2);
        let o = m.get("p2", "other").unwrap();
        assert_eq!(o.cpu_seconds, 3.0);
        assert_eq!(o.memory_bytes, 0, "no memory samples → 0");
        assert!(m.get("default", "other").is_none(), "keyed by project too");
    }

    #[test]
    fn label_values_with_escapes_commas_and_braces() {
        let s =
            parse_line(r#"m{a="x,y}",b="q\"uo\\te",c="line\nbreak"} 1.5e3 1700000000000"#).unwrap();
        assert_eq!(s.metric, "m");
        assert_eq!(s.label("a"), Some("x,y}"));
        assert_eq!(s.label("b"), Some(r#"q"uo\te"#));
        assert_eq!(s.label("c"), Some("line\nbreak"));
        assert_eq!(s.value, 1500.0);
    }

    #[test]
    fn lines_without_labels_and_special_values() {
        let s = parse_line("up 1").unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 1.0);
        assert_eq!(parse_line("x{} +Inf").unwrap().value, f64::INFINITY);
        assert!(parse_line("x{} NaN").unwrap().value.is_nan());
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        for bad in [
            "",
            "# comment",
            "m{a=\"unterminated} 1",
            "m{a=1} 2",
            "m{a=\"1\"}",
            "m notanumber",
        ] {
            assert!(parse_line(bad).is_none(), "{bad:?}");
        }
        let m = Metrics::parse("garbage line here\nlxd_procs_total{name=\"a\",project=\"p\"} 4\n");
        assert_eq!(m.get("p", "a").unwrap().processes, 4);
    }
}
