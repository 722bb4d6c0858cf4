//! The redis-server that `cargo xtask redis-up` runs: its `host:port`, if it answers.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::tally::Missing;

/// Names another server for the tests (default: redis-up's `127.0.0.1:56379`).
pub const ADDR_VAR: &str = "BOTCLUSTER_TEST_REDIS";

/// The test Redis's `host:port` when it answers `PING`, else what is missing.
pub fn redis_addr() -> Result<String, Missing> {
    let addr = std::env::var(ADDR_VAR)
        .ok()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:56379".to_string());
    let ok = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|sa| TcpStream::connect_timeout(&sa, Duration::from_secs(1)).ok())
        .is_some_and(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 8];
            s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
                && s.read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
        });
    if ok {
        Ok(addr)
    } else {
        Err(Missing::new(
            format!("no Redis answers PING on {addr}"),
            "run `cargo xtask redis-up`, or name one in BOTCLUSTER_TEST_REDIS",
        ))
    }
}
