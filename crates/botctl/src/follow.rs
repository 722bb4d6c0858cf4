//! Following changes through the server's watch: `get -w`, `status -w`, `wait`, for every
//! [`Kind`] (BotCluster, GitSource) with the same loops.
//!
//! Every loop here is the Kubernetes client's: list (one snapshot, paged), then watch from the
//! list's resourceVersion; on a `BOOKMARK` remember its resourceVersion; when the stream ends
//! (the server's timeout) watch again from the last one; on 410 list again.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::client::{is_gone, is_not_found, query_escape, Client, Watch};
use crate::kind::Kind;
use crate::terminal::escape;
use crate::Output;

/// What one watch line means to a follower.
enum Step {
    /// An object changed (`ADDED`, `MODIFIED`, `DELETED`).
    Change(String, Value),
    /// The server's stream ended or asked for a re-list.
    Relist,
    /// The stream ended normally: resume from the last resourceVersion.
    Resume,
}

fn rv_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The collection path of `kind` with selectors: `labelSelector` and, for one object,
/// `fieldSelector` (the name checked first, as `Kind::object_path` does).
fn collection(kind: Kind, name: Option<&str>, selector: Option<&str>) -> Result<String> {
    if let Some(n) = name {
        kind.object_path(n)?;
    }
    let mut q = Vec::new();
    if let Some(l) = selector {
        q.push(format!("labelSelector={}", query_escape(l)));
    }
    if let Some(n) = name {
        q.push(format!(
            "fieldSelector={}",
            query_escape(&format!("metadata.name={n}"))
        ));
    }
    Ok(if q.is_empty() {
        kind.collection()
    } else {
        format!("{}?{}", kind.collection(), q.join("&"))
    })
}

/// Reads one step of a watch, keeping `rv` at the newest resourceVersion seen.
async fn step(w: &mut Watch, rv: &mut String) -> Result<Step> {
    loop {
        let Some(ev) = w.next().await? else {
            return Ok(Step::Resume);
        };
        let t = ev.get("type").and_then(Value::as_str).unwrap_or("");
        let obj = ev.get("object").cloned().unwrap_or(Value::Null);
        match t {
            "BOOKMARK" => {
                if let Some(v) = rv_of(&obj) {
                    *rv = v;
                }
            }
            "ERROR" => {
                if obj.get("code").and_then(Value::as_u64) == Some(410) {
                    return Ok(Step::Relist);
                }
                bail!(
                    "the watch failed: {}",
                    escape(obj.get("message").and_then(Value::as_str).unwrap_or("?"))
                );
            }
            "ADDED" | "MODIFIED" | "DELETED" => {
                if let Some(v) = rv_of(&obj) {
                    *rv = v;
                }
                return Ok(Step::Change(t.to_string(), obj));
            }
            other => bail!(
                "the watch sent an event of unknown type {:?}",
                escape(other)
            ),
        }
    }
}

/// Opens a watch from `rv`; None when `rv` is too old (410: list again).
async fn open(client: &Client, path: &str, rv: &str) -> Result<Option<Watch>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    match client
        .watch(&format!("{path}{sep}watch=true&resourceVersion={rv}"))
        .await
    {
        Ok(w) => Ok(Some(w)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `botctl get [KIND] [NAME] [-l SELECTOR] -w`: what exists, then every change, until
/// interrupted.
pub async fn get(
    client: &Client,
    kind: Kind,
    name: Option<&str>,
    selector: Option<&str>,
    output: Output,
    // `--output-watch-events`: each change as `{type, object}`.
    events: bool,
) -> Result<u8> {
    let path = collection(kind, name, selector)?;
    let mut header = true;
    let mut print = |t: &str, obj: &Value| -> Result<()> {
        let event = || serde_json::json!({"type": t, "object": obj});
        match (output, events) {
            (Output::Table, _) => {
                out!("{}", kind.watch_row(t, obj, header));
                header = false;
            }
            (Output::Json, false) => println!("{}", serde_json::to_string_pretty(obj)?),
            (Output::Json, true) => println!("{}", serde_json::to_string(&event())?),
            (Output::Yaml, with_type) => {
                let yaml = if with_type {
                    serde_saphyr::to_string(&event())
                } else {
                    serde_saphyr::to_string(obj)
                };
                print!("---\n{}", yaml.map_err(|e| anyhow!("rendering YAML: {e}"))?);
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        Ok(())
    };
    loop {
        let (items, mut rv) = client.list_all(&path).await?;
        if let (Some(n), true) = (name, items.is_empty()) {
            bail!(not_found(kind, n));
        }
        for i in &items {
            print("ADDED", i)?;
        }
        if items.is_empty() && output == Output::Table {
            errln!(
                "No {}s yet; watching for changes (Ctrl-C to stop).",
                kind.title()
            );
        }
        'watch: loop {
            let Some(mut w) = open(client, &path, &rv).await? else {
                break 'watch;
            };
            loop {
                match step(&mut w, &mut rv).await? {
                    Step::Change(t, obj) => print(&t, &obj)?,
                    Step::Resume => continue 'watch,
                    Step::Relist => break 'watch,
                }
            }
        }
    }
}

/// "BotCluster "x" not found" with the command that lists what exists.
fn not_found(kind: Kind, name: &str) -> String {
    format!(
        "{} \"{}\" not found; `{}` lists the ones that exist",
        kind.title(),
        escape(name),
        kind.list_command()
    )
}

/// `botctl status [KIND/]NAME -w`: the status page, printed again on every change of the
/// object, until it is deleted.
pub async fn status(client: &Client, kind: Kind, name: &str, events: usize) -> Result<u8> {
    let path = collection(kind, Some(name), None)?;
    loop {
        let (items, mut rv) = client.list_all(&path).await?;
        let Some(obj) = items.into_iter().next() else {
            bail!(not_found(kind, name));
        };
        print_status(client, kind, name, &obj, events).await?;
        'watch: loop {
            let Some(mut w) = open(client, &path, &rv).await? else {
                break 'watch;
            };
            loop {
                match step(&mut w, &mut rv).await? {
                    Step::Change(t, _) if t == "DELETED" => {
                        outln!("{}/{name} deleted", kind.prefix());
                        return Ok(0);
                    }
                    Step::Change(_, obj) => {
                        println!();
                        print_status(client, kind, name, &obj, events).await?;
                    }
                    Step::Resume => continue 'watch,
                    Step::Relist => break 'watch,
                }
            }
        }
    }
}

/// The status page of `obj` (a `kind`) with its newest events.
pub async fn print_status(
    client: &Client,
    kind: Kind,
    name: &str,
    obj: &Value,
    events: usize,
) -> Result<()> {
    let ev = match client
        .get(&format!(
            "{}/events?limit={}",
            kind.object_path(name)?,
            events.clamp(1, 500)
        ))
        .await
    {
        Ok(ev) => ev,
        // Deleted since `obj` was read (`status -w` learns it from the next event): the page
        // of what was read, without events.
        Err(e) if is_not_found(&e) => Value::Null,
        Err(e) => return Err(e),
    };
    out!(
        "{}",
        kind.status_page(
            obj,
            ev.get("events")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        )
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// What `botctl wait` waits for.
pub enum WaitFor {
    /// A condition with a status.
    Condition { type_: String, status: String },
    /// The object to be gone.
    Delete,
}

/// Parses `--for`.
pub fn parse_for(s: &str) -> Result<WaitFor> {
    if s == "delete" {
        return Ok(WaitFor::Delete);
    }
    let rest = s.strip_prefix("condition=").ok_or_else(|| {
        anyhow!("--for \"{s}\": write condition=TYPE[=STATUS] (e.g. condition=Ready) or delete")
    })?;
    let (type_, status) = match rest.split_once('=') {
        Some((t, st)) => (t, st),
        None => (rest, "True"),
    };
    let status = match status.to_ascii_lowercase().as_str() {
        "true" => "True",
        "false" => "False",
        "unknown" => "Unknown",
        _ => bail!("--for \"{s}\": the status must be True, False or Unknown"),
    };
    if type_.is_empty() {
        bail!("--for \"{s}\": name the condition, e.g. condition=Ready");
    }
    Ok(WaitFor::Condition {
        type_: type_.to_string(),
        status: status.to_string(),
    })
}

/// Whether `obj` (None: absent) satisfies `what`, and a note on where it stands.
fn check(kind: Kind, name: &str, what: &WaitFor, obj: Option<&Value>) -> Result<(bool, String)> {
    let prefix = kind.prefix();
    Ok(match (what, obj) {
        (WaitFor::Delete, None) => (true, format!("{prefix}/{name} deleted")),
        (WaitFor::Delete, Some(_)) => (false, "still present".to_string()),
        (WaitFor::Condition { .. }, None) => bail!(
            "{prefix}/{name} not found{}",
            match kind {
                // A bare name is a BotCluster's: say how to name the other kind.
                Kind::BotCluster => format!(
                    "; `botctl get` lists the BotClusters (for a GitSource write gitsource/{name})"
                ),
                Kind::GitSource => "; `botctl get gitsources` lists the GitSources".to_string(),
            }
        ),
        (WaitFor::Condition { type_, status }, Some(o)) => {
            let generation = o
                .pointer("/metadata/generation")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let cond = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
                });
            let field = |k: &str| {
                cond.and_then(|c| c.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let observed = cond
                .and_then(|c| c.get("observedGeneration"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let got = if cond.is_some() {
                field("status")
            } else {
                "Unknown"
            };
            // A condition computed for an older generation says nothing about this one.
            let done = got == status && observed >= generation;
            let note = if done {
                format!("{prefix}/{name} condition met: {type_}={status}")
            } else if cond.is_none() {
                format!("{type_} not reported yet")
            } else {
                format!("{type_}={got} {}: {}", field("reason"), field("message"))
            };
            (done, note)
        }
    })
}

/// `botctl wait` and `delete --wait`: follows the object's watch until `what` holds or
/// `timeout` passes (exit 1 then).
/// Lists `path` (one object, by `fieldSelector`), then follows its watch until `done` gives
/// `Some` for the object as it is now (`None` when absent or deleted); re-lists on 410. The
/// one loop behind `wait`, `delete --wait` and `sync`.
pub async fn until<T>(
    client: &Client,
    path: &str,
    mut done: impl FnMut(Option<&Value>) -> Result<Option<T>>,
) -> Result<T> {
    loop {
        let (items, mut rv) = client.list_all(path).await?;
        if let Some(t) = done(items.first())? {
            return Ok(t);
        }
        'watch: loop {
            let Some(mut w) = open(client, path, &rv).await? else {
                break 'watch;
            };
            loop {
                let obj = match step(&mut w, &mut rv).await? {
                    Step::Change(t, _) if t == "DELETED" => None,
                    Step::Change(_, obj) => Some(obj),
                    Step::Resume => continue 'watch,
                    Step::Relist => break 'watch,
                };
                if let Some(t) = done(obj.as_ref())? {
                    return Ok(t);
                }
            }
        }
    }
}

/// The collection path that lists and watches only `name` (`fieldSelector`), for [`until`].
pub fn watch_path(kind: Kind, name: &str) -> Result<String> {
    collection(kind, Some(name), None)
}

pub async fn wait_for(
    client: &Client,
    kind: Kind,
    name: &str,
    what: &WaitFor,
    timeout: Duration,
) -> Result<u8> {
    let started = Instant::now();
    let mut last_note = String::new();
    let path = collection(kind, Some(name), None)?;
    let mut note = |n: String| {
        if n != last_note {
            errln!("waiting: {n}");
            last_note = n;
        }
        last_note.clone()
    };
    let follow = until(client, &path, |obj| {
        let (done, n) = check(kind, name, what, obj)?;
        if done {
            return Ok(Some(n));
        }
        note(n);
        Ok(None)
    });
    match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), follow).await {
        Ok(Ok(done)) => {
            outln!("{done}");
            Ok(0)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            errln!(
                "error: timed out after {:?} waiting for {}/{name}: {last_note}",
                timeout,
                kind.prefix()
            );
            Ok(1)
        }
    }
}
