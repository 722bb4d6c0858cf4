//! Where Caddy's admin API listens, and parsing the ways people write that down.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The address of Caddy's admin API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Plain HTTP over TCP, as `host:port` (Caddy's default is `localhost:2019`).
    Tcp(String),
    /// HTTP over a unix socket at this path.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses the forms people use for an admin address.
    ///
    /// | Input | Endpoint |
    /// |---|---|
    /// | `http://127.0.0.1:2019`, `http://localhost:2019/` | TCP `127.0.0.1:2019` |
    /// | `127.0.0.1:2019`, `localhost:2019` (Caddy's `admin.listen` form) | TCP |
    /// | `unix:///run/caddy/admin.sock` (URL form) | unix socket `/run/caddy/admin.sock` |
    /// | `unix//run/caddy/admin.sock` (Caddy's `admin.listen` form) | unix socket |
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] for `https://` (the TLS "remote admin" listener is not
    /// supported), other schemes, a path after `host:port`, a missing port, or a relative
    /// socket path.
    pub fn parse(input: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            input: input.to_string(),
            reason: format!(
                "{reason}; use `http://HOST:PORT`, `HOST:PORT`, `unix:///PATH/admin.sock` or \
                 `unix//PATH/admin.sock`"
            ),
        };
        let s = input.trim();
        if let Some(path) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix/"))
        {
            if !path.starts_with('/') {
                return Err(invalid("the socket path must be absolute"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let authority = if let Some(rest) = s.strip_prefix("http://") {
            rest.strip_suffix('/').unwrap_or(rest)
        } else if s.contains("://") {
            return Err(invalid(
                "only plain HTTP over TCP or a unix socket is supported",
            ));
        } else {
            s
        };
        if authority.contains('/') {
            return Err(invalid("the admin address takes no path"));
        }
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint::Tcp(authority.to_string()))
            }
            _ => Err(invalid("expected HOST:PORT with a numeric port")),
        }
    }

    /// The form Caddy expects in `admin.listen`: `127.0.0.1:2019` or `unix//path`.
    pub fn caddy_listen(&self) -> String {
        match self {
            Endpoint::Tcp(addr) => addr.clone(),
            Endpoint::Unix(path) => format!("unix/{}", path.display()),
        }
    }
}

impl fmt::Display for Endpoint {
    /// `http://host:port` or `unix:///path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "http://{addr}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Endpoint> {
        Endpoint::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        let tcp = Endpoint::Tcp("127.0.0.1:2019".into());
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:2019").ok(),
            Some(tcp.clone())
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:2019/").ok(),
            Some(tcp.clone())
        );
        assert_eq!(Endpoint::parse(" 127.0.0.1:2019 ").ok(), Some(tcp.clone()));
        assert_eq!(
            Endpoint::parse("[::1]:2019").ok(),
            Some(Endpoint::Tcp("[::1]:2019".into()))
        );
        let unix = Endpoint::Unix("/run/caddy/admin.sock".into());
        assert_eq!(
            Endpoint::parse("unix:///run/caddy/admin.sock").ok(),
            Some(unix.clone())
        );
        assert_eq!(
            Endpoint::parse("unix//run/caddy/admin.sock").ok(),
            Some(unix.clone())
        );
        assert_eq!(tcp.to_string(), "http://127.0.0.1:2019");
        assert_eq!(unix.to_string(), "unix:///run/caddy/admin.sock");
        assert_eq!(unix.caddy_listen(), "unix//run/caddy/admin.sock");
        assert_eq!(tcp.caddy_listen(), "127.0.0.1:2019");
    }

    #[test]
    fn unusable_forms_are_rejected_with_the_accepted_ones() {
        for bad in [
            "https://127.0.0.1:2019",
            "http://127.0.0.1:2019/config",
            "127.0.0.1",
            "localhost:http",
            "unix://relative.sock",
            "",
        ] {
            let err = Endpoint::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("unix:///PATH/admin.sock"), "{err}");
        }
    }
}
