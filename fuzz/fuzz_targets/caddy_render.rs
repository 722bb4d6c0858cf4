//! Any valid spec with a load balancer → its Caddy server: JSON that reads back equal, and no
//! user string can become a Caddy placeholder (every `{` the renderer did not write itself is
//! escaped as `\{`, which Caddy's replacer passes through literally).
#![no_main]

use botcluster_api::yaml::{botcluster_from_value, parse_values, Limits};
use botcluster_proxy::{render, ProxyCapabilities};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The placeholders the renderer itself writes (rate-limit keys).
const OURS: &[&str] = &[
    "http.request.remote.host",
    "http.request.header.Authorization",
];

/// Placeholders Caddy's replacer would expand in `s`: a `{` not preceded by `\`, up to `}`.
fn placeholders(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && (i == 0 || b[i - 1] != b'\\') {
            if let Some(end) = s[i + 1..].find('}') {
                out.push(&s[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out)
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(values) = parse_values(text, Limits::default()) else {
        return;
    };
    for v in values {
        let Ok(bc) = botcluster_from_value(v) else {
            continue;
        };
        let Some(lb) = &bc.spec.load_balancer else {
            continue;
        };
        for caps in [
            ProxyCapabilities::default(),
            ProxyCapabilities { rate_limit: true },
        ] {
            let r = render(
                bc.name(),
                lb,
                &bc.spec.health,
                &bc.spec.circuit_breaker,
                &["127.0.0.1:20001".to_string(), "[::1]:20002".to_string()],
                &caps,
            );
            let text = serde_json::to_string(&r.server).expect("serializes");
            let back: Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(back, r.server);
            let mut all = Vec::new();
            strings(&r.server, &mut all);
            for s in all {
                for p in placeholders(s) {
                    assert!(
                        OURS.contains(&p),
                        "user text became placeholder {{{p}}} in {s:?}"
                    );
                }
            }
        }
    }
});
