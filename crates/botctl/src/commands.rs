//! The client commands.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use botcluster_api::import::import_config_csv;
use botcluster_api::yaml::{parse_values, Limits};
use reqwest::Method;
use serde_json::Value;

use crate::client::{is_not_found, object_path, query_escape, Client, ServerError};
use crate::follow;
use crate::kind::{target, Kind};
use crate::terminal::escape;
use crate::{Conn, Output};

/// One document read from a file, with where it came from.
struct Doc {
    source: String,
    index: usize,
    value: Value,
}

impl Doc {
    fn name(&self) -> Option<&str> {
        self.value.pointer("/metadata/name").and_then(Value::as_str)
    }
    fn place(&self) -> String {
        format!("{} (document {})", self.source, self.index + 1)
    }
}

fn read_source(arg: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        out.push(("<stdin>".into(), text));
        return Ok(());
    }
    let path = Path::new(arg);
    let meta = std::fs::metadata(path).with_context(|| format!("{arg}: cannot read it"))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{arg}: cannot list the directory"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{arg}: the directory holds no .yaml, .yml or .json files");
        }
        for f in files {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("{}: cannot read it", f.display()))?;
            out.push((f.display().to_string(), text));
        }
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{arg}: cannot read it"))?;
        out.push((arg.to_string(), text));
    }
    Ok(())
}

fn read_docs(files: &[String]) -> Result<Vec<Doc>> {
    let mut sources = Vec::new();
    for f in files {
        read_source(f, &mut sources)?;
    }
    let mut docs = Vec::new();
    for (source, text) in sources {
        let values =
            parse_values(&text, Limits::default()).map_err(|e| anyhow!("{source}: {e}"))?;
        for (index, value) in values.into_iter().enumerate() {
            docs.push(Doc {
                source: source.clone(),
                index,
                value,
            });
        }
    }
    if docs.is_empty() {
        bail!("no documents found in {}", files.join(", "));
    }
    Ok(docs)
}

fn doc_name(d: &Doc) -> Result<String> {
    let name = d.name().ok_or_else(|| {
        anyhow!(
            "{}: metadata.name is missing; every object needs a name",
            d.place()
        )
    })?;
    botcluster_api::validate::validate_name(name)
        .map_err(|m| anyhow!("{}: metadata.name: {m}", d.place()))?;
    Ok(name.to_string())
}

pub async fn apply(conn: &Conn, files: &[String], dry_run: bool, force: bool) -> Result<u8> {
    let docs = read_docs(files)?;
    let client = Client::new(conn)?;
    let mut failed = 0;
    for d in &docs {
        let name = match doc_name(d) {
            Ok(n) => n,
            Err(e) => {
                errln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let kind = Kind::of_document(&d.value);
        let mut query = Vec::new();
        if dry_run {
            query.push("dryRun=true");
        }
        if force && kind == Kind::BotCluster {
            query.push("force=true");
        }
        let path = format!(
            "{}{}{}",
            kind.object_path(&name)?,
            if query.is_empty() { "" } else { "?" },
            query.join("&")
        );
        let what = format!("{}/{name}", kind.prefix());
        match client.send(Method::PUT, &path, Some(&d.value)).await {
            Ok(reply) => {
                let change = reply.change.unwrap_or_else(|| "applied".into());
                if dry_run {
                    outln!("{} {} (dry run)", escape(&what), escape(&change));
                    for step in plan_lines(&reply.body, "plan") {
                        outln!("  - {}", escape(&step));
                    }
                    for note in plan_lines(&reply.body, "notes") {
                        outln!("  # {}", escape(&note));
                    }
                } else {
                    outln!("{} {}", escape(&what), escape(&change));
                }
            }
            Err(e) => match e.downcast_ref::<ServerError>() {
                Some(se) => {
                    errln!("error: {}: {what}: {se}", d.place());
                    failed += 1;
                }
                None => return Err(e),
            },
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

pub async fn get(
    conn: &Conn,
    what: Option<&str>,
    second: Option<&str>,
    selector: Option<&str>,
    output: Output,
    // `-w`, and whether `--output-watch-events` was given.
    watch: Option<bool>,
) -> Result<u8> {
    let (kind, name) = match (what.map(|w| (w, Kind::of_word(w))), second) {
        (Some((_, Some(k))), n) => (k, n),
        (Some((w, None)), None) => {
            let (k, n) = target(w);
            (k, Some(n))
        }
        (Some((w, None)), Some(_)) => {
            bail!("botctl get {w} NAME: the first word must be gitsources or botclusters")
        }
        (None, _) => (Kind::BotCluster, None),
    };
    let client = Client::new(conn)?;
    if let Some(events) = watch {
        if events && output == Output::Table {
            bail!("--output-watch-events needs -o json or -o yaml (the table's rows already say Deleted)");
        }
        return follow::get(&client, kind, name, selector, output, events).await;
    }
    let items: Vec<Value> = match name {
        Some(n) => vec![client.get(&kind.object_path(n)?).await?],
        None => {
            let base = kind.collection();
            let path = match selector {
                Some(l) => format!("{base}?labelSelector={}", query_escape(l)),
                None => base,
            };
            client.list_all(&path).await?.0
        }
    };
    match output {
        Output::Json => {
            let v = if name.is_some() {
                items[0].clone()
            } else {
                serde_json::json!({"items": items})
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Yaml => {
            let docs: Vec<String> = items
                .iter()
                .map(|i| serde_saphyr::to_string(i).map_err(|e| anyhow!("rendering YAML: {e}")))
                .collect::<Result<_>>()?;
            print!("{}", docs.join("---\n"));
        }
        Output::Table if kind == Kind::GitSource => {
            if items.is_empty() {
                errln!("No GitSources. Create one with `botctl apply -f` (see docs/gitops.md).");
            } else {
                out!("{}", kind.table(&items));
            }
        }
        Output::Table => {
            if items.is_empty() {
                errln!("No BotClusters. Create one with `botctl apply -f examples/minimal.yaml`.");
            } else {
                out!("{}", kind.table(&items));
            }
        }
    }
    Ok(0)
}

pub async fn status(conn: &Conn, name: &str, events: usize, watch: bool) -> Result<u8> {
    let client = Client::new(conn)?;
    let (kind, name) = target(name);
    if watch {
        return follow::status(&client, kind, name, events).await;
    }
    let obj = client.get(&kind.object_path(name)?).await?;
    follow::print_status(&client, kind, name, &obj, events).await?;
    Ok(0)
}

fn parse_timeout(t: &str) -> Result<Duration> {
    botcluster_api::quantity::parse_duration(t).map_err(|m| anyhow!("--timeout {m}"))
}

pub async fn delete(
    conn: &Conn,
    name: &str,
    cascade: bool,
    wait_gone: bool,
    timeout: &str,
) -> Result<u8> {
    let timeout = parse_timeout(timeout)?;
    let client = Client::new(conn)?;
    let (kind, name) = target(name);
    if kind == Kind::GitSource {
        return crate::gitsource::delete(&client, name, cascade, wait_gone, timeout).await;
    }
    if cascade {
        bail!("--cascade applies to gitsource/NAME only; a BotCluster's containers are always torn down");
    }
    let reply = client
        .send(Method::DELETE, &object_path(name)?, None)
        .await?;
    let message = reply
        .body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("deleted");
    outln!("{}", escape(message));
    if wait_gone && reply.body.get("result").and_then(Value::as_str) == Some("terminating") {
        return follow::wait_for(
            &client,
            Kind::BotCluster,
            name,
            &follow::WaitFor::Delete,
            timeout,
        )
        .await;
    }
    Ok(0)
}

pub async fn sync(conn: &Conn, name: &str, wait: bool, timeout: &str) -> Result<u8> {
    let timeout = parse_timeout(timeout)?;
    let client = Client::new(conn)?;
    let (_, name) = target(name);
    crate::gitsource::sync(&client, name, wait, timeout).await
}

pub async fn diff(conn: &Conn, files: &[String]) -> Result<u8> {
    let docs = read_docs(files)?;
    let client = Client::new(conn)?;
    let mut differs = false;
    for d in &docs {
        let name = doc_name(d)?;
        if Kind::of_document(&d.value) == Kind::GitSource {
            outln!("gitsource/{}: not compared (diff covers BotClusters; a GitSource's effect shows at its next sync)", escape(&name));
            continue;
        }
        let current = match client.get(&object_path(&name)?).await {
            Ok(v) => Some(v),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e),
        };
        let reply = client
            .send(
                Method::PUT,
                &format!("{}?dryRun=true", object_path(&name)?),
                Some(&d.value),
            )
            .await
            .map_err(|e| anyhow!("{}: botcluster/{name}: {e}", d.place()))?;
        let change = reply
            .body
            .get("change")
            .and_then(Value::as_str)
            .unwrap_or("");
        // The spec may be unchanged while the containers drifted: the plan says so.
        let plan = plan_lines(&reply.body, "plan");
        let notes = plan_lines(&reply.body, "notes");
        if change != "unchanged" {
            differs = true;
            print_spec_diff(&name, &current, &reply.body, &d.source)?;
        } else if !plan.is_empty() {
            outln!("botcluster/{name}: spec unchanged");
        }
        if !plan.is_empty() {
            differs = true;
        }
        if !plan.is_empty() || !notes.is_empty() {
            outln!("# plan for botcluster/{name}:");
            for step in &plan {
                outln!("#   {}", escape(step));
            }
            for note in &notes {
                outln!("#   ({})", escape(note));
            }
        }
    }
    Ok(if differs { 1 } else { 0 })
}

/// The strings of a dry run's `plan` or `notes`, made safe for a terminal.
fn plan_lines(body: &Value, key: &str) -> Vec<String> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| {
                    s.as_str()
                        .unwrap_or_default()
                        .chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Prints the stored spec against the dry run's object as a unified diff.
fn print_spec_diff(name: &str, current: &Option<Value>, reply: &Value, source: &str) -> Result<()> {
    {
        let comparable = |v: &Value| -> Result<String> {
            let v = serde_json::json!({
                "metadata": {"name": name, "labels": v.pointer("/metadata/labels"), "annotations": v.pointer("/metadata/annotations")},
                "spec": v.get("spec"),
            });
            serde_saphyr::to_string(&v).map_err(|e| anyhow!("rendering YAML: {e}"))
        };
        let old = match current {
            Some(c) => comparable(c)?,
            None => String::new(),
        };
        let new = comparable(reply.get("object").unwrap_or(&Value::Null))?;
        let label_old = if current.is_some() {
            format!("botcluster/{name} (stored)")
        } else {
            "/dev/null".into()
        };
        out!(
            "{}",
            similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header(&label_old, &format!("botcluster/{name} ({source})"))
        );
    }
    Ok(())
}

pub async fn wait(conn: &Conn, name: &str, for_: &str, timeout: &str) -> Result<u8> {
    let what = follow::parse_for(for_)?;
    let timeout = parse_timeout(timeout)?;
    let client = Client::new(conn)?;
    let (kind, name) = target(name);
    follow::wait_for(&client, kind, name, &what, timeout).await
}

pub fn import(file: &str, name: &str, image: &str, output: Option<&Path>) -> Result<u8> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("{file}: cannot read it"))?
    };
    botcluster_api::validate::validate_name(name).map_err(|m| anyhow!("--name: {m}"))?;
    let imp = import_config_csv(&text, name, image).map_err(|e| anyhow!("{file}: {e}"))?;
    for w in &imp.warnings {
        errln!("warning: {file}: {w}");
    }
    for (line, key) in &imp.unknown_keys {
        errln!(
            "warning: {file}: line {line}: unknown key {key}; kept in the annotation {}",
            botcluster_api::import::UNMAPPED_ANNOTATION
        );
    }
    let yaml = format!(
        "# yaml-language-server: $schema=https://botcluster.io/schemas/botcluster.schema.json\n# Imported from {file} by botctl import.\n{}",
        serde_saphyr::to_string(&imp.cluster).map_err(|e| anyhow!("rendering YAML: {e}"))?
    );
    match output {
        Some(p) => {
            std::fs::write(p, &yaml).with_context(|| format!("writing {}", p.display()))?;
            errln!("wrote {}", p.display());
        }
        None => print!("{yaml}"),
    }
    Ok(0)
}
