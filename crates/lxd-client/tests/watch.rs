//! The event watcher against a fake LXD events endpoint on a temporary unix
//! socket: no daemon needed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lxd_client::{Backoff, Client, EventType, WatchItem};
use tokio::net::UnixListener;
use tokio_tungstenite::tungstenite::Message;

fn event(action: &str, name: &str) -> Message {
    Message::text(format!(
        r#"{{"type":"lifecycle","timestamp":"2026-11-28T08:00:00Z","location":"none","project":"default",
            "metadata":{{"action":"{action}","source":"/1.0/instances/{name}","context":{{}}}}}}"#
    ))
}

async fn next(stream: &mut lxd_client::WatchStream) -> WatchItem {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch item within 10 s")
        .expect("watch streams never end")
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        stable_after: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn watcher_backs_off_exponentially_while_lxd_is_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = Client::unix(dir.path().join("absent.socket")).expect("client");
    let mut watch = client.watch_events(&[EventType::Lifecycle], fast_backoff());
    let mut delays = Vec::new();
    for _ in 0..4 {
        match next(&mut watch).await {
            WatchItem::Disconnected { error, retry_in } => {
                assert!(error.to_string().contains("absent.socket"), "{error}");
                delays.push(retry_in.as_millis());
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
    assert_eq!(delays, [10, 20, 40, 40]);
}

#[tokio::test]
async fn watcher_reconnects_and_says_events_were_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lxd.socket");
    let listener = UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        // First connection: one event, then the server goes away.
        let (s, _) = listener.accept().await.expect("accept 1");
        let mut ws = tokio_tungstenite::accept_async(s).await.expect("ws 1");
        ws.send(event("instance-started", "a")).await.expect("send");
        ws.close(None).await.expect("close");
        drop(ws);
        // Second connection: one event, then stay open.
        let (s, _) = listener.accept().await.expect("accept 2");
        let mut ws = tokio_tungstenite::accept_async(s).await.expect("ws 2");
        ws.send(event("instance-stopped", "b")).await.expect("send");
        while ws.next().await.is_some() {}
    });

    let client = Client::unix(&path).expect("client");
    let mut watch = client.watch_events(&[EventType::Lifecycle], fast_backoff());
    assert!(matches!(next(&mut watch).await, WatchItem::Connected));
    match next(&mut watch).await {
        WatchItem::Event(e) => {
            let l = e.lifecycle().expect("lifecycle");
            assert_eq!(
                (l.action.as_str(), l.instance_name()),
                ("instance-started", Some("a"))
            );
        }
        other => panic!("expected event, got {other:?}"),
    }
    assert!(matches!(
        next(&mut watch).await,
        WatchItem::Disconnected { .. }
    ));
    assert!(matches!(next(&mut watch).await, WatchItem::Reconnected));
    match next(&mut watch).await {
        WatchItem::Event(e) => {
            assert_eq!(e.lifecycle().expect("lifecycle").action, "instance-stopped")
        }
        other => panic!("expected event, got {other:?}"),
    }
    drop(watch);
    server.abort();
}

#[tokio::test]
async fn subscription_answers_pings_even_when_not_polled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lxd.socket");
    let listener = UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(s).await.expect("ws");
        ws.send(Message::Ping("keepalive".into()))
            .await
            .expect("ping");
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("connection ended before a pong: {other:?}"),
            }
        }
    });
    let client = Client::unix(&path).expect("client");
    let _events = client
        .events(&[EventType::Lifecycle])
        .await
        .expect("events");
    // `_events` is never polled: the pong must come from the client's reader task.
    let pong = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("pong within 10 s")
        .expect("server task");
    assert_eq!(pong, b"keepalive");
}

#[tokio::test]
async fn a_refused_websocket_reports_lxds_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lxd.socket");
    let listener = UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let body = r#"{"type":"error","status":"","status_code":0,"operation":"","error_code":403,"error":"not authorized","metadata":null}"#;
        let resp = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
    });
    let client = Client::unix(&path).expect("client");
    let err = client
        .events(&[EventType::Lifecycle, EventType::Operation])
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("GET /1.0/events?type=lifecycle%2Coperation"),
        "{text}"
    );
    assert!(
        text.contains("403") || text.contains("not authorized"),
        "{text}"
    );
}
