//! The unix transport keeps no connection open between requests. LXD 5.0 serves its unix
//! socket with an accept loop that reads each new connection's first bytes before accepting
//! the next one, so a connection left open without a request (a pooled client's spare)
//! stops LXD's whole API until it closes. Checked against a fake LXD on a temporary socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lxd_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// Answers every request on a connection with `{"type":"sync",...}` (keep-alive), counting
/// the connections open right now.
async fn fake_lxd(listener: UnixListener, open: Arc<AtomicUsize>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let open = open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut pending = Vec::new();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    // A little work, so concurrent requests overlap.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let body = r#"{"type":"sync","status":"Success","status_code":200,"metadata":{"api_version":"1.0"}}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_stays_open_after_the_requests_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lxd.socket");
    let listener = UnixListener::bind(&path).expect("bind");
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(fake_lxd(listener, open.clone()));
    let client = Client::unix(&path).expect("client");
    // Bursts of concurrent requests, then single ones: what the operator does in a pass.
    for _ in 0..5 {
        let calls = (0..16).map(|_| client.request("GET", "/1.0", None));
        for r in futures_util::future::join_all(calls).await {
            r.expect("the fake answers");
        }
        client.request("GET", "/1.0", None).await.expect("one more");
    }
    // The last response was read; give the closes a moment to arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        0,
        "connections left open after every request ended (each would stall LXD 5.0's API)"
    );
}
