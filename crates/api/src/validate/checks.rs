//! The collector every check pushes its problems to, and the checks several sections share
//! (durations, paths, `host:port`, host names).

use std::net::IpAddr;

use super::FieldError;

pub use crate::quantity::MAX_DURATION;

pub(super) struct Errors(pub(super) Vec<FieldError>);

impl Errors {
    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    /// Records the error of a rule that returns `Err(message)`.
    pub(super) fn rule(&mut self, field: &str, r: Result<(), String>) {
        if let Err(m) = r {
            self.push(field, m);
        }
    }
    pub(super) fn check(&mut self, ok: bool, field: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.push(field, message());
        }
    }
    pub(super) fn duration(
        &mut self,
        field: &str,
        d: &crate::Duration,
    ) -> Option<std::time::Duration> {
        match d.parse() {
            Ok(v) if v > MAX_DURATION => {
                self.push(
                    field,
                    format!(
                        "\"{d}\" is longer than {}h, the longest duration any setting here takes; shorten it",
                        MAX_DURATION.as_secs() / 3600
                    ),
                );
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, e);
                None
            }
        }
    }
    pub(super) fn positive_duration(
        &mut self,
        field: &str,
        d: &crate::Duration,
    ) -> Option<std::time::Duration> {
        let v = self.duration(field, d)?;
        if v.is_zero() {
            self.push(field, "must be longer than 0; use e.g. \"10s\"");
            return None;
        }
        Some(v)
    }
    pub(super) fn path(&mut self, field: &str, p: &str) {
        self.check(p.starts_with('/'), field, || {
            format!("\"{p}\" must start with '/', e.g. \"/api/health\"")
        });
        self.check(
            !p.chars().any(|c| c.is_whitespace() || c.is_control()),
            field,
            || format!("\"{p}\" contains whitespace or control characters"),
        );
    }
    pub(super) fn host_port(&mut self, field: &str, addr: &str) {
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                self.check(
                    is_hostname(host) || host.parse::<IpAddr>().is_ok(),
                    field,
                    || format!("\"{addr}\": \"{host}\" is not a host name or IP address"),
                )
            }
            _ => self.push(
                field,
                format!("\"{addr}\" is not host:port; write e.g. \"redis-1:6379\""),
            ),
        }
    }
}

pub(super) fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
