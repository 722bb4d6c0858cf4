//! What a test reads off a cluster: an instance's health, its host ports, the files it
//! serves, the status's instance URLs and conditions.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

pub async fn health(url: &str) -> Option<Value> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?
        .get(format!("{url}/api/health"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The distinct host-port listen addresses of these containers' proxy devices.
pub fn host_ports(c: &[lxd_client::Instance]) -> BTreeSet<String> {
    c.iter()
        .filter_map(|i| {
            i.devices
                .get("botcluster-http")
                .and_then(|d| d.get("listen"))
                .cloned()
        })
        .collect()
}

/// `/etc/botserver/app.conf` as each instance of the cluster object serves it.
pub async fn app_confs(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for u in instance_urls(obj) {
        let conf = reqwest::get(format!("{u}/sim/files?path=/etc/botserver/app.conf"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        out.push(conf);
    }
    out
}

pub fn instance_urls(obj: &Value) -> Vec<String> {
    obj.pointer("/status/instances")
        .and_then(Value::as_array)
        .map(|is| {
            is.iter()
                .filter_map(|i| i.get("url").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
}
