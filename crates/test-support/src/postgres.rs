//! The PostgreSQL that `cargo xtask pg-up` runs: its URL, if something answers there.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::tally::Missing;

/// Names another server's URL for the tests (default: pg-up's).
pub const URL_VAR: &str = "BOTCLUSTER_TEST_POSTGRES";
/// `cargo xtask pg-up`'s URL (fixed port and dev-only credentials, see docs/sharding.md).
pub const DEFAULT_URL: &str = "postgres://botcluster:botcluster@127.0.0.1:54329/postgres";

/// The test server's URL when its port answers, else what is missing.
pub fn postgres_url() -> Result<String, Missing> {
    let url = std::env::var(URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let hostport = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:54329")
        .to_string();
    let addr: Option<SocketAddr> = hostport.to_socket_addrs().ok().and_then(|mut a| a.next());
    match addr {
        Some(a) if TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok() => Ok(url),
        _ => Err(Missing::new(
            format!("no PostgreSQL answers on {hostport}"),
            "run `cargo xtask pg-up`, or name a server in BOTCLUSTER_TEST_POSTGRES",
        )),
    }
}
