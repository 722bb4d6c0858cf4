//! Free loopback ports.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (the OS picks it).
///
/// **Caveat**: the port is free when this returns, not reserved; bind it soon.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// `127.0.0.1:PORT` with a [`free_port`].
pub fn free_loopback_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}
