//! The GitSource side of botctl: `get gitsources`, `status gitsource/NAME`,
//! `delete gitsource/NAME [--cascade]`, `sync NAME`, and their rendering.

use std::time::Duration;

use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::Value;

use crate::client::{path_of, Client};
use crate::follow::WaitFor;
use crate::kind::Kind;
use crate::render::{age, columns, events_section, fixed_row};

/// A terminal-safe string (control characters escaped).
fn clean(s: &str) -> String {
    crate::terminal::escape(s).into_owned()
}

fn s(v: &Value, ptr: &str) -> String {
    clean(v.pointer(ptr).and_then(Value::as_str).unwrap_or(""))
}

/// `main@sha1:1234567`: the revision with a short commit id.
fn short(rev: &str) -> String {
    match rev.split_once("sha1:") {
        Some((head, sha)) => format!("{head}sha1:{}", &sha[..sha.len().min(7)]),
        None => rev.to_string(),
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
}

fn reference(obj: &Value) -> String {
    let r = obj.pointer("/spec/ref");
    for k in ["commit", "tag", "branch"] {
        if let Some(v) = r.and_then(|r| r.get(k)).and_then(Value::as_str) {
            return format!("{k} {}", clean(v));
        }
    }
    "branch main".into()
}

const TABLE_HEADER: [&str; 7] = ["NAME", "URL", "REF", "REVISION", "READY", "OBJECTS", "AGE"];

/// `botctl get gitsources`: one line per source.
pub fn table(items: &[Value]) -> String {
    let mut rows = vec![TABLE_HEADER.map(String::from).to_vec()];
    rows.extend(items.iter().map(|i| table_row(i, None)));
    columns(&rows)
}

/// `botctl get gitsources -w`: the row of one watch event (`DELETED` shows as `Deleted` in
/// READY), under the header when `header`; fixed widths, since rows come one by one.
pub fn watch_row(event: &str, item: &Value, header: bool) -> String {
    let ready = (event == "DELETED").then_some("Deleted");
    let widths = [24, 40, 16, 22, 16, 7];
    let mut out = String::new();
    if header {
        out.push_str(&fixed_row(&widths, &TABLE_HEADER.map(String::from)));
    }
    out.push_str(&fixed_row(&widths, &table_row(item, ready)));
    out
}

/// One row of the table; its cells are escaped (`s`).
fn table_row(i: &Value, ready_override: Option<&str>) -> Vec<String> {
    let ready = if let Some(r) = ready_override {
        r.to_string()
    } else if !s(i, "/metadata/deletionTimestamp").is_empty() {
        "Terminating".to_string()
    } else if i.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        "Suspended".into()
    } else {
        match condition(i, "Ready") {
            Some(c) if s(c, "/status") == "True" => "True".into(),
            Some(c) => s(c, "/reason"),
            None => "Pending".into(),
        }
    };
    vec![
        s(i, "/metadata/name"),
        s(i, "/spec/url"),
        reference(i),
        short(&s(i, "/status/lastAppliedRevision")),
        ready,
        i.pointer("/status/inventory")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
            .to_string(),
        age(&s(i, "/metadata/creationTimestamp")),
    ]
}

/// `botctl status gitsource/NAME`.
pub fn status(obj: &Value, events: &[Value]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("{k:<13}{v}\n"));
    line(&mut out, "Name:", s(obj, "/metadata/name"));
    line(&mut out, "URL:", s(obj, "/spec/url"));
    line(
        &mut out,
        "Ref:",
        format!("{}, path {}", reference(obj), s(obj, "/spec/path")),
    );
    line(
        &mut out,
        "Policy:",
        format!(
            "interval {}, timeout {}, prune {}, allowEmpty {}, wait {}{}",
            s(obj, "/spec/interval"),
            s(obj, "/spec/timeout"),
            obj.pointer("/spec/prune")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            obj.pointer("/spec/allowEmpty")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            obj.pointer("/spec/wait")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
                ", SUSPENDED"
            } else {
                ""
            },
        ),
    );
    if obj.pointer("/status").is_none() {
        out.push_str("             (not reconciled yet: is the controller running?)\n");
    }
    let or_none = |v: String| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v
        }
    };
    line(
        &mut out,
        "Applied:",
        or_none(s(obj, "/status/lastAppliedRevision")),
    );
    line(
        &mut out,
        "Attempted:",
        or_none(s(obj, "/status/lastAttemptedRevision")),
    );
    let next = s(obj, "/status/nextPollTime");
    if !next.is_empty() {
        line(&mut out, "Next poll:", next);
    }
    if let Some(b) = obj.pointer("/status/backoff") {
        line(
            &mut out,
            "Backoff:",
            format!(
                "{} failures, retry in {:.0}s",
                b.get("failures").and_then(Value::as_u64).unwrap_or(0),
                b.get("retryAfterSeconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            ),
        );
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
                    s(c, "/status"),
                    s(c, "/reason"),
                    age(&s(c, "/lastTransitionTime")),
                    s(c, "/message"),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        _ => out.push_str("  (none reported yet)\n"),
    }
    out.push_str("\nInventory:\n");
    match obj.pointer("/status/inventory").and_then(Value::as_array) {
        Some(is) if !is.is_empty() => {
            let mut rows = vec![["  KIND", "NAME", "FILE"].map(String::from).to_vec()];
            for i in is {
                rows.push(vec![
                    format!("  {}", s(i, "/kind")),
                    s(i, "/name"),
                    s(i, "/file"),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        _ => out.push_str("  (none)\n"),
    }
    out.push_str("\nHistory:\n");
    match obj.pointer("/status/history").and_then(Value::as_array) {
        Some(hs) if !hs.is_empty() => {
            let mut rows = vec![["  REVISION", "RESULT", "OBJECTS", "AGE", "MESSAGE"]
                .map(String::from)
                .to_vec()];
            for h in hs {
                rows.push(vec![
                    format!("  {}", short(&s(h, "/revision"))),
                    s(h, "/result"),
                    h.get("objects")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        .to_string(),
                    age(&s(h, "/time")),
                    s(h, "/message"),
                ]);
            }
            out.push_str(&columns(&rows));
        }
        _ => out.push_str("  (none)\n"),
    }
    events_section(&mut out, events);
    out
}

/// `botctl delete gitsource/NAME [--cascade]`.
/// With `wait`, follows the source's watch until it is gone (its clusters released or, with
/// `cascade`, deletion requested), or `timeout` (exit 1).
pub async fn delete(
    client: &Client,
    name: &str,
    cascade: bool,
    wait: bool,
    timeout: Duration,
) -> Result<u8> {
    let object = path_of("gitsources", name)?;
    let path = format!("{object}{}", if cascade { "?cascade=true" } else { "" });
    let reply = client.send(Method::DELETE, &path, None).await?;
    outln!("{}", s(&reply.body, "/message"));
    if !wait {
        return Ok(0);
    }
    crate::follow::wait_for(client, Kind::GitSource, name, &WaitFor::Delete, timeout).await
}

/// `botctl sync NAME`: asks for a poll now and waits until the controller handled it,
/// printing the revision it applied (exit 0) or why it failed (exit 1).
pub async fn sync(client: &Client, name: &str, wait: bool, timeout: Duration) -> Result<u8> {
    let reply = client
        .send(
            Method::POST,
            &format!("{}/sync", path_of("gitsources", name)?),
            None,
        )
        .await?;
    let token = s(&reply.body, "/token");
    if !wait {
        outln!("gitsource/{name} sync requested");
        return Ok(0);
    }
    // On the watch: the controller records the token as `status.lastHandledSync` when done.
    let path = crate::follow::watch_path(Kind::GitSource, name)?;
    let handled = crate::follow::until(client, &path, |obj| match obj {
        None => bail!("gitsource/{name} was deleted before the sync was handled"),
        Some(o) if s(o, "/status/lastHandledSync") == token => Ok(Some(o.clone())),
        Some(_) => Ok(None),
    });
    let obj = match tokio::time::timeout(timeout, handled).await {
        Ok(r) => r?,
        Err(_) => bail!("gitsource/{name}: the sync was not handled within {timeout:?}; is the controller running? (`botctl status gitsource/{name}`)"),
    };
    let ready = condition(&obj, "Ready");
    let ok = ready.is_some_and(|c| s(c, "/status") == "True");
    let applied = s(&obj, "/status/lastAppliedRevision");
    if ok {
        outln!("gitsource/{name} synced: {applied}");
        return Ok(0);
    }
    let (reason, message) = ready
        .map(|c| (s(c, "/reason"), s(c, "/message")))
        .unwrap_or_default();
    errln!("gitsource/{name} sync handled but not Ready: {reason}: {message}");
    if !applied.is_empty() {
        errln!("still applied: {applied}");
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn status_names_the_revision_the_failing_file_and_the_inventory() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let obj = json!({
            "metadata": {"name": "fleet"},
            "spec": {"url": "file:///srv/b.git", "ref": {"branch": "main"}, "path": "clusters", "interval": "1m", "timeout": "60s"},
            "status": {
                "lastAppliedRevision": format!("main@sha1:{sha}"),
                "conditions": [{"type": "Ready", "status": "False", "reason": "ValidationFailed", "message": "clusters/b.yaml: spec.replicas: \u{1b}[31m", "lastTransitionTime": ""}],
                "inventory": [{"kind": "BotCluster", "name": "a", "file": "clusters/a.yaml"}],
                "history": [{"revision": format!("main@sha1:{sha}"), "result": "Applied", "time": "", "objects": 1}]
            }
        });
        let out = super::status(&obj, &[]);
        assert!(
            out.contains(&format!("Applied:     main@sha1:{sha}")),
            "{out}"
        );
        assert!(out.contains("clusters/b.yaml: spec.replicas"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "escape sequences reach the terminal: {out}"
        );
        assert!(out.contains("BotCluster  a     clusters/a.yaml"), "{out}");
        assert!(out.contains("main@sha1:0123456  Applied"), "{out}");
    }
}
