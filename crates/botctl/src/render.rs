//! Tables and the status page, for people.

use std::borrow::Cow;

use serde_json::Value;

use crate::terminal::escape;

/// A stored string, escaped for the terminal (see `crate::terminal`): every value shown here
/// comes through this or [`text`].
fn s<'a>(v: &'a Value, ptr: &str) -> Cow<'a, str> {
    escape(v.pointer(ptr).and_then(Value::as_str).unwrap_or(""))
}

/// A stored string with a fallback, escaped for the terminal.
fn text<'a>(v: &'a Value, key: &str, absent: &'a str) -> Cow<'a, str> {
    escape(v.get(key).and_then(Value::as_str).unwrap_or(absent))
}

fn n(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

/// "3m", "2h", "5d" since an RFC 3339 time.
pub fn age(rfc3339: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return "-".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..width)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
}

const TABLE_HEADER: [&str; 6] = ["NAME", "READY", "DESIRED", "STATUS", "GENERATION", "AGE"];

/// `botctl get`: one line per cluster.
pub fn table(items: &[Value]) -> String {
    let mut rows = vec![TABLE_HEADER.map(String::from).to_vec()];
    rows.extend(items.iter().map(|i| table_row(i, None)));
    columns(&rows)
}

/// `botctl get -w`: the row of one watch event (`DELETED` shows as status `Deleted`), under
/// the header when `header`. Columns are padded to fixed widths, since rows come one by one.
pub fn watch_row(event: &str, item: &Value, header: bool) -> String {
    let status = (event == "DELETED").then_some("Deleted");
    let widths = [24, 7, 7, 14, 10, 5];
    let mut out = String::new();
    if header {
        out.push_str(&fixed_row(&widths, &TABLE_HEADER.map(String::from)));
    }
    out.push_str(&fixed_row(&widths, &table_row(item, status)));
    out
}

/// One line of `cells` padded to `widths` (the last cell unpadded), for tables printed a row
/// at a time (`get -w`), where [`columns`] cannot measure the rows to come.
pub fn fixed_row(widths: &[usize], cells: &[String]) -> String {
    let mut line = String::new();
    for (c, cell) in cells.iter().enumerate() {
        if c + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let w = widths.get(c).copied().unwrap_or(0);
            line.push_str(&format!("{cell:<w$}  "));
        }
    }
    format!("{}\n", line.trim_end())
}

/// One row of the table; its cells are escaped (`s`).
fn table_row(i: &Value, status_override: Option<&str>) -> Vec<String> {
    let status = if let Some(st) = status_override {
        st.to_string()
    } else if !s(i, "/metadata/deletionTimestamp").is_empty() {
        "Terminating".to_string()
    } else {
        match condition(i, "Ready") {
            Some(c) if s(c, "/status") == "True" => "Ready".into(),
            Some(c) => s(c, "/reason").to_string(),
            None => "Pending".into(),
        }
    };
    let desired = i
        .pointer("/status/desiredReplicas")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| n(i, "/spec/replicas"));
    vec![
        s(i, "/metadata/name").to_string(),
        format!(
            "{}/{}",
            n(i, "/status/readyReplicas"),
            n(i, "/status/replicas")
        ),
        desired.to_string(),
        status,
        format!(
            "{}/{}",
            n(i, "/status/observedGeneration"),
            n(i, "/metadata/generation")
        ),
        age(&s(i, "/metadata/creationTimestamp")),
    ]
}

/// `botctl status NAME`.
pub fn status(obj: &Value, events: &[Value]) -> String {
    let mut out = String::new();
    let generation = n(obj, "/metadata/generation");
    let observed = n(obj, "/status/observedGeneration");
    out.push_str(&format!("Name:        {}\n", s(obj, "/metadata/name")));
    out.push_str(&format!("Image:       {}\n", s(obj, "/spec/image")));
    let sync = if obj.pointer("/status").is_none() {
        " (not reconciled yet: is the controller running?)"
    } else if observed < generation {
        " (status is older than the spec; the controller is catching up)"
    } else {
        ""
    };
    out.push_str(&format!(
        "Generation:  {generation} (observed {observed}){sync}\n"
    ));
    if !s(obj, "/metadata/deletionTimestamp").is_empty() {
        out.push_str(&format!(
            "Deleting:    since {} ago\n",
            age(&s(obj, "/metadata/deletionTimestamp"))
        ));
    }
    let desired = obj
        .pointer("/status/desiredReplicas")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| n(obj, "/spec/replicas"));
    let exist = n(obj, "/status/replicas");
    let updated = obj
        .pointer("/status/updatedReplicas")
        .and_then(Value::as_u64)
        .unwrap_or(exist);
    out.push_str(&format!(
        "Replicas:    {} ready, {exist} exist, {desired} desired{}\n",
        n(obj, "/status/readyReplicas"),
        if updated == exist {
            String::new()
        } else {
            format!(", {updated} on the current spec (rolling update)")
        }
    ));
    if let Some(p) = obj.pointer("/status/proxy") {
        out.push_str(&format!(
            "Proxy:       {}{}\n",
            if p.get("synced").and_then(Value::as_bool) == Some(true) {
                "synced"
            } else {
                "not synced"
            },
            p.get("url")
                .and_then(Value::as_str)
                .map(|u| format!(", {}", escape(u)))
                .unwrap_or_default()
        ));
    }
    if let Some(a) = obj.pointer("/status/autoscaler") {
        let seen: Vec<String> = a
            .get("currentMetrics")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_f64().map(|v| format!("{} {v}", escape(k))))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "Autoscaler:  wants {} ({}){}\n",
            n(a, "/desiredReplicas"),
            text(a, "decidedBy", "no rule fired"),
            if seen.is_empty() {
                String::new()
            } else {
                format!("; sees {}", seen.join(", "))
            }
        ));
    }
    if let Some(b) = obj.pointer("/status/backoff") {
        out.push_str(&format!(
            "Backoff:     {} failures, retry in {:.0}s: {}\n",
            n(b, "/failures"),
            b.get("retryAfterSeconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            s(b, "/lastError")
        ));
    }
    out.push_str("\nConditions:\n");
    match obj.pointer("/status/conditions").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {
            let mut rows = vec![["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]
                .map(String::from)
                .to_vec()];
            for c in cs {
                rows.push(vec![
                    format!("  {}", s(c, "/type")),
                    s(c, "/status").into(),
                    s(c, "/reason").into(),
                    age(&s(c, "/lastTransitionTime")),
                    s(c, "/message").into(),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        _ => out.push_str("  (none reported yet)\n"),
    }
    out.push_str("\nInstances:\n");
    match obj.pointer("/status/instances").and_then(Value::as_array) {
        Some(is) if !is.is_empty() => {
            let mut rows = vec![
                ["  NAME", "STATE", "READY", "HEALTH", "CPU", "MEMORY", "URL"]
                    .map(String::from)
                    .to_vec(),
            ];
            for i in is {
                rows.push(vec![
                    format!("  {}", s(i, "/name")),
                    s(i, "/state").into(),
                    if i.get("ready").and_then(Value::as_bool) == Some(true) {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    text(i, "health", "-").into(),
                    i.get("cpuPercent")
                        .and_then(Value::as_f64)
                        .map(|c| format!("{c:.0}%"))
                        .unwrap_or("-".into()),
                    i.get("memoryBytes")
                        .and_then(Value::as_u64)
                        .map(human_bytes)
                        .unwrap_or("-".into()),
                    text(i, "url", "-").into(),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        _ => out.push_str("  (none)\n"),
    }
    events_section(&mut out, events);
    out
}

/// The `Events:` section of a status page (any kind), every stored string escaped.
pub fn events_section(out: &mut String, events: &[Value]) {
    out.push_str("\nEvents:\n");
    if events.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows = vec![["  AGE", "TYPE", "REASON", "MESSAGE"]
            .map(String::from)
            .to_vec()];
        for e in events {
            rows.push(vec![
                format!("  {}", age(&s(e, "/time"))),
                s(e, "/type").into(),
                s(e, "/reason").into(),
                s(e, "/message").into(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn status_shows_a_rolling_update_and_what_the_autoscaler_sees() {
        let obj = json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"image": "img", "replicas": 2},
            "status": {
                "observedGeneration": 3, "replicas": 3, "readyReplicas": 2,
                "desiredReplicas": 2, "updatedReplicas": 1,
                "autoscaler": {"desiredReplicas": 2, "decidedBy": "requestsPerMinute",
                               "currentMetrics": {"cpu": 12.5, "requestsPerMinute": 900.0}}
            }
        });
        let out = super::status(&obj, &[]);
        assert!(
            out.contains(
                "Replicas:    2 ready, 3 exist, 2 desired, 1 on the current spec (rolling update)"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "Autoscaler:  wants 2 (requestsPerMinute); sees cpu 12.5, requestsPerMinute 900"
            ),
            "{out}"
        );
        // Nothing rolling: no mention.
        let mut calm = obj.clone();
        calm["status"]["updatedReplicas"] = json!(3);
        assert!(super::status(&calm, &[]).contains("3 exist, 2 desired\n"));
    }
}
