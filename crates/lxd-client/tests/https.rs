//! The HTTPS transport against the real LXD, on loopback only.
//!
//! Only built with `--features https`. The test makes LXD listen on a free
//! `127.0.0.1` port (only if `core.https_address` is unset), trusts a throwaway
//! client certificate made with the `openssl` CLI, and undoes both afterwards,
//! even on failure. Skips like the other live tests when there is no LXD, or when LXD
//! already listens beyond loopback (failing instead under a truthy `CI`:
//! `test_support::require`).
#![cfg(feature = "https")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lxd_client::{Client, Error, EventType};
use serde_json::json;
use test_support::{require, skip, Missing};

struct Restore {
    socket: std::path::PathBuf,
    cert_fingerprint: Option<String>,
    reset_address: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let socket = self.socket.clone();
        let cert = self.cert_fingerprint.take();
        let reset = self.reset_address;
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let lxd = Client::unix(&socket).expect("client");
                if let Some(fp) = cert {
                    let path = format!("/1.0/certificates/{fp}");
                    if let Err(e) = lxd.request("DELETE", &path, None).await {
                        eprintln!("restore: {e}");
                    }
                }
                if reset {
                    let body = json!({"config": {"core.https_address": ""}});
                    if let Err(e) = lxd.request("PATCH", "/1.0", Some(&body)).await {
                        eprintln!("restore: {e}");
                    }
                }
            });
        })
        .join();
    }
}

fn openssl_identity(dir: &Path) -> (Vec<u8>, String) {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=lxdc-test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .status()
        .expect("openssl CLI is needed for this test");
    assert!(status.success(), "openssl failed");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let key_pem = std::fs::read_to_string(&key).expect("key");
    // LXD takes the certificate as base64 DER: the PEM body without armour.
    let b64: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    (format!("{cert_pem}{key_pem}").into_bytes(), b64)
}

#[tokio::test]
async fn https_with_client_certificate_and_pinned_fingerprint() {
    let socket = Client::default_socket_path();
    let found = if socket.exists() {
        Ok(())
    } else {
        Err(Missing::new(
            format!("no LXD at {}", socket.display()),
            "start LXD first (cargo xtask lxd-up)",
        ))
    };
    let Some(()) = require(found) else { return };
    let lxd = Client::unix(&socket).expect("client");
    let server = lxd.server().await.expect("server");
    let current = server
        .config
        .get("core.https_address")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let mut restore = Restore {
        socket: socket.clone(),
        cert_fingerprint: None,
        reset_address: false,
    };
    let address = if current.is_empty() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let body = json!({"config": {"core.https_address": address}});
        restore.reset_address = true;
        lxd.request("PATCH", "/1.0", Some(&body))
            .await
            .expect("listen on loopback");
        address
    } else if current.starts_with("127.0.0.1:") {
        current
    } else {
        skip(Missing::new(
            format!("LXD already listens on {current}, not on loopback"),
            "unset core.https_address, or set it to a 127.0.0.1 address",
        ));
        return;
    };
    let pin = lxd
        .server()
        .await
        .expect("server")
        .environment
        .certificate_fingerprint;

    let dir = tempfile::tempdir().expect("tempdir");
    let (identity, cert_b64) = openssl_identity(dir.path());
    let name = format!("lxdc-test-{}", std::process::id());
    lxd.request(
        "POST",
        "/1.0/certificates",
        Some(&json!({"type": "client", "name": name, "certificate": cert_b64})),
    )
    .await
    .expect("trust the test certificate");
    let trusted = lxd
        .request("GET", "/1.0/certificates?recursion=1", None)
        .await
        .expect("certificates");
    restore.cert_fingerprint = trusted
        .as_array()
        .and_then(|certs| {
            certs
                .iter()
                .find(|c| c["name"] == name.as_str())
                .and_then(|c| c["fingerprint"].as_str())
        })
        .map(str::to_owned);
    assert!(restore.cert_fingerprint.is_some(), "certificate not listed");

    let url = format!("https://{address}");
    let remote = Client::https(&url, &identity, &pin).expect("https client");
    let info = remote.server().await.expect("GET /1.0 over HTTPS");
    assert_eq!(info.auth, "trusted");
    remote.list_instances(None).await.expect("list over HTTPS");
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        remote.events(&[EventType::Lifecycle]),
    )
    .await
    .expect("events within 10 s");
    assert!(events.is_ok(), "wss events: {events:?}");

    // A wrong pin is refused before any request is answered.
    let wrong = Client::https(&url, &identity, &"00".repeat(32)).expect("client");
    let err = wrong.server().await.expect_err("wrong pin");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match the pinned one"),
        "{err}"
    );
}
