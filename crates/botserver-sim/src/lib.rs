//! A tiny std-only stand-in for General Bots' botserver, run inside busybox test containers.
//!
//! It answers `GET /api/health` in botserver's shape, answers every other path with its
//! instance name, and has control endpoints (`/sim/...`) and a config file
//! (`/etc/botserver/sim.json`) that make it unhealthy, slow, busy or queued on demand. It
//! routes keys with the shard map the operator writes (`/api/shards/route`, see `shards`) and
//! enforces the rate limit it is given (`ratelimit`).
//! See `docs/lxd-setup.md` for how it is packed into the LXD test image.

use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub mod http;
pub mod ratelimit;
pub mod shards;
pub mod sim;

pub use sim::Sim;

/// How long a connection may take to send its request or accept our response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` forever, one thread per connection.
pub fn serve(listener: TcpListener, sim: Arc<Sim>) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            // A connection that died before accept is its own problem, not the server's.
            Err(e) => {
                eprintln!("botserver-sim: accept: {e}");
                continue;
            }
        };
        let sim = Arc::clone(&sim);
        let spawned = thread::Builder::new()
            .name("conn".into())
            .spawn(move || handle_connection(&sim, stream));
        if let Err(e) = spawned {
            eprintln!("botserver-sim: cannot start a connection thread: {e}");
        }
    }
    Ok(())
}

/// Reads one request from `stream`, answers it and closes the connection.
pub fn handle_connection(sim: &Sim, stream: TcpStream) {
    let _open = sim.connection_opened();
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut reader = BufReader::new(&stream);
    let (response, head_only) = match http::read_request(&mut reader) {
        Ok(req) => (sim.respond(&req), req.method == "HEAD"),
        Err(err) => match err.response() {
            Some(resp) => (resp.with_header("X-Botserver-Instance", sim.name()), false),
            None => return,
        },
    };
    if http::write_response(&mut &stream, &response, head_only).is_err() {
        return;
    }
    // Close gracefully: closing with unread input (say, after a 400) would send a reset that
    // can destroy the response before the client reads it. So end our side, then drain a little.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = std::io::copy(&mut reader.take(1 << 20), &mut std::io::sink());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::SocketAddr;

    fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = std::env::temp_dir().join("botserver-sim-no-config-dir");
        let sim = Arc::new(Sim::new("bs-net-0", dir));
        thread::spawn(move || serve(listener, sim));
        addr
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn health_over_loopback_is_json_and_closes_the_connection() {
        let addr = start();
        let out = exchange(addr, b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Connection: close\r\n"));
        assert!(out.contains("X-Botserver-Instance: bs-net-0\r\n"));
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], "healthy");
        // This request's own connection is open while it is answered.
        assert!(v["metrics"]["connections"].as_u64().unwrap() >= 1);
    }

    #[test]
    fn head_over_loopback_has_no_body() {
        let addr = start();
        let out = exchange(addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(out.contains("Content-Length: 9\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn garbage_over_loopback_gets_400_even_with_unread_input() {
        let addr = start();
        let mut raw = b"NOT HTTP\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 100_000));
        let out = exchange(addr, &raw);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    }
}
