//! botctl facing hostile names and hostile stored strings: names are checked and
//! percent-encoded before they reach a URL, and nothing a server returns can drive the
//! terminal (ESC sequences, BEL, CR, forged lines) in human-readable output.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

mod support;

use support::{repo, Serve};

fn botctl(server: &str, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_botctl"))
        .args(args)
        .current_dir(repo())
        .env("BOTCLUSTER_DATA_DIR", data)
        .env("BOTCLUSTER_SERVER", server)
        .env("BOTCLUSTER_TOKEN", "t")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn names_with_slashes_or_dots_never_reach_a_url() {
    let s = Serve::api_only();
    let (dir, addr) = (&s.dir, &s.addr);
    let run = |args: &[&str]| s.botctl(args);
    let o = run(&["apply", "-f", "examples/minimal.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    for args in [
        &["delete", "x/../minimal"][..],
        &["delete", "..%2Fminimal"],
        &["delete", "x%2F..%2F..%2Fminimal"],
        &["status", "../minimal"],
        &["wait", "x/../minimal", "--for", "delete", "--timeout", "1s"],
    ] {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} succeeded: {}", text(&o));
        assert!(
            text(&o).contains("BotCluster name"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = run(&["get", "minimal"]);
    assert!(o.status.success(), "minimal was deleted: {}", text(&o));
    // The operator's own ports are refused at apply time: its --port-range (default
    // 20000-20999) and the API's listen port.
    let port = addr.rsplit_once(':').unwrap().1;
    for (extra, what) in [
        (
            "  hostPorts: {start: 20500, end: 20510}\n".to_string(),
            "--port-range",
        ),
        (
            format!("  loadBalancer: {{listen: \"{addr}\"}}\n"),
            "the botcluster API's own",
        ),
        (
            format!("  loadBalancer: {{listen: \":{port}\"}}\n"),
            "the botcluster API's own",
        ),
    ] {
        let f = dir.path().join("ports.yaml");
        std::fs::write(
            &f,
            format!("apiVersion: botcluster.io/v1alpha1\nkind: BotCluster\nmetadata:\n  name: ports\nspec:\n  image: botcluster-botserver\n{extra}"),
        )
        .unwrap();
        let o = run(&["apply", "-f", f.to_str().unwrap()]);
        assert!(!o.status.success(), "{extra}: {}", text(&o));
        assert!(text(&o).contains(what), "{extra}: {}", text(&o));
    }
    assert!(
        !run(&["get", "ports"]).status.success(),
        "a refused cluster was stored"
    );
    let o = run(&["get", "../../../metrics"]);
    assert!(!o.status.success());
    assert!(!text(&o).contains("botcluster_http"), "{}", text(&o));
}

/// A stand-in server that answers every request with hostile strings, as a compromised or
/// older server (or old stored data) could.
fn hostile_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let evil = "web\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31m\r\nFAKE-LINE";
    let obj = json!({
        "apiVersion": "botcluster.io/v1alpha1", "kind": "BotCluster",
        "metadata": {"name": "web", "generation": 1, "creationTimestamp": evil,
                     "labels": {"k": evil}},
        "spec": {"image": evil, "replicas": 1},
        "status": {
            "observedGeneration": 1, "replicas": 1, "readyReplicas": 0,
            "conditions": [{"type": "Ready", "status": "False", "reason": evil, "message": evil,
                            "lastTransitionTime": evil}],
            "instances": [{"name": evil, "state": evil, "health": evil, "url": evil}],
            "autoscaler": {"desiredReplicas": 1, "decidedBy": evil, "currentMetrics": {evil: 1.0}},
            "backoff": {"failures": 1, "retryAfterSeconds": 1.0, "lastError": evil},
            "proxy": {"synced": false, "url": evil}
        }
    });
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let (code, answer) = match request_line.split(' ').collect::<Vec<_>>()[..] {
                ["GET", p, _] if p.contains("/events") => (
                    200,
                    json!({"name": "web", "events": [{"time": evil, "type": evil, "reason": evil, "message": evil}]}),
                ),
                // `botctl get` lists in pages: `?limit=500`.
                ["GET", p, _] if p.split('?').next() == Some("/api/v1/botclusters") => {
                    (200, json!({"items": [obj.clone()]}))
                }
                ["GET", _, _] => (200, obj.clone()),
                ["DELETE", _, _] => (
                    200,
                    json!({"name": "web", "result": "deleted", "message": evil}),
                ),
                _ => (
                    400,
                    json!({"code": "Invalid", "message": evil,
                                  "fieldErrors": [{"field": evil, "message": evil}]}),
                ),
            };
            let body = answer.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn stored_strings_cannot_drive_the_terminal_in_any_human_readable_output() {
    let server = hostile_server();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["status", "web"][..],
        &["get"],
        &["get", "web"],
        &["apply", "-f", "examples/minimal.yaml"],
        &["apply", "-f", "examples/minimal.yaml", "--dry-run"],
        &["delete", "web"],
        &["diff", "-f", "examples/minimal.yaml"],
    ] {
        let o = botctl(&server, dir.path(), args);
        let all = text(&o);
        assert!(
            !all.contains(['\u{1b}', '\u{7}', '\r']),
            "{args:?} printed raw control characters:\n{all:?}"
        );
        assert!(
            !all.lines().any(|l| l.starts_with("FAKE-LINE")),
            "{args:?}: {all}"
        );
        assert!(
            all.contains("\\u{1b}"),
            "{args:?} should show the escape: {all}"
        );
    }
    // Machine-readable output stays exact (JSON escapes the characters itself).
    let o = botctl(&server, dir.path(), &["get", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["spec"]["image"].as_str().unwrap().contains('\u{1b}'));
}
