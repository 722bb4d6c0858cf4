//! Is a Redis there? One `PING` over TCP (RESP), answered `+PONG` (or `-NOAUTH`, which also
//! proves a Redis listens). Knows nothing of bots.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `Ok(())` when `addr` (`host:port`) answers like a Redis within `timeout`, else why not.
pub async fn ping(addr: &str, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n")
            .await
            .map_err(|e| format!("cannot send PING: {e}"))?;
        let mut buf = [0u8; 64];
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| format!("no answer to PING: {e}"))?;
        let answer = String::from_utf8_lossy(&buf[..n]);
        if answer.starts_with("+PONG") || answer.starts_with("-NOAUTH") {
            Ok(())
        } else if n == 0 {
            Err("closed the connection without answering PING".to_string())
        } else {
            Err(format!(
                "answered {:?} to PING, not +PONG: not a Redis?",
                answer.trim_end()
            ))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer to PING within {timeout:?}")),
    }
}
