//! Owning one subtree of a config that others share: read it, compare it, write only it.

use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::etag::Etag;

/// How many times the `ensure_*` helpers re-read and retry after losing a race.
const ATTEMPTS: usize = 3;

/// What an `ensure_*` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Caddy already had an equal value; nothing was written.
    Unchanged,
    /// Nothing was there; the value was created (one PUT).
    Created,
    /// A different value was there; it was replaced (one PATCH guarded by its ETag).
    Replaced,
}

impl Applied {
    /// Whether a write was made (and so Caddy reloaded its config).
    pub fn changed(self) -> bool {
        self != Applied::Unchanged
    }
}

/// The config path of the HTTP server called `name`: `apps/http/servers/<name>`.
pub fn server_path(name: &str) -> String {
    format!("apps/http/servers/{name}")
}

/// Whether two config values mean the same to Caddy.
///
/// Object key order never matters (this is [`Value`]'s own equality, with or without
/// serde_json's `preserve_order`). On top of that, numbers are compared by value: Caddy keeps
/// its config as Go `any` values, so every number comes back as a float64 printed the shortest
/// way. Verified on Caddy 2.6.2: `1.0` reads back as `1`, `1e3` as `1000`, `-0.0` as `-0`,
/// and integers beyond 2^53 are rounded (`9007199254740993` reads back as `9007199254740992`).
/// Plain `==` would call `1.0` and `1` different and make a reconciler push forever.
///
/// Nothing else is normalised, because Caddy 2.6.2 changes nothing else: it adds no default
/// fields on read-back and keeps `null` values and empty objects as written.
pub fn semantically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| semantically_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| semantically_equal(v, w)))
        }
        _ => a == b,
    }
}

impl Client {
    /// Reads the HTTP server called `name` (`/config/apps/http/servers/<name>`) with its ETag.
    ///
    /// # Errors
    /// As [`Client::get_config`].
    pub async fn server(&self, name: &str) -> Result<Option<(Value, Etag)>> {
        self.get_config(&server_path(check_name(name)?)).await
    }

    /// Makes the HTTP server called `name` equal to `server`, touching nothing else.
    ///
    /// This is [`Client::ensure_config`] on `apps/http/servers/<name>`; see it for the flow
    /// and guarantees. On an empty config (no `apps` at all) the `apps/http/servers` objects
    /// are created around the server.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a name with `/` or characters that cannot be sent; otherwise
    /// as [`Client::ensure_config`].
    pub async fn ensure_server(&self, name: &str, server: &Value) -> Result<Applied> {
        self.ensure_config(&server_path(check_name(name)?), server)
            .await
    }

    /// Removes the HTTP server called `name`, if it is there.
    ///
    /// # Errors
    /// As [`Client::remove_config`].
    pub async fn remove_server(&self, name: &str) -> Result<bool> {
        self.remove_config(&server_path(check_name(name)?)).await
    }

    /// Makes the config at `path` semantically equal to `desired`, and writes nothing else.
    ///
    /// # Expected flow
    /// 1. `GET /config/<path>`, which gives the value and its ETag.
    /// 2. Equal by [`semantically_equal`]: return [`Applied::Unchanged`]; nothing is written.
    /// 3. Different: `PATCH` it with `If-Match` set to that ETag ([`Applied::Replaced`]).
    /// 4. Missing: `PUT` it, which creates missing parent objects and fails if someone created
    ///    the key meanwhile ([`Applied::Created`]).
    ///
    /// # Guarantees
    /// - Only `path` is written: siblings (say, a user's own server next to ours) are never
    ///   sent, so they survive byte for byte.
    /// - At most one write per call when nobody else writes the same path, and none when the
    ///   value is already right, so an unchanged reconcile costs one GET and no reload.
    /// - When it returns `Ok`, Caddy has loaded a config in which `path` held `desired`.
    ///
    /// # Assumptions
    /// The caller owns `path`: a concurrent writer of the *same* path loses (its value is
    /// replaced on the retry). Writers of other paths never cause a conflict, because the
    /// ETag covers only `path`.
    ///
    /// # Errors
    /// - After losing 3 races in a row, the last [`Error::PreconditionFailed`]
    ///   or [`Error::AlreadyExists`].
    /// - [`Error::Api`] when Caddy rejects the resulting config (`loading new config: ...`);
    ///   the old config keeps running.
    /// - [`Error::NotFound`] when a parent of `path` is an array index that does not exist.
    /// - Transport errors.
    pub async fn ensure_config(&self, path: &str, desired: &Value) -> Result<Applied> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match self.get_config(path).await? {
                Some((current, _)) if semantically_equal(&current, desired) => {
                    return Ok(Applied::Unchanged)
                }
                Some((_, etag)) => self
                    .patch_config(path, desired, Some(&etag))
                    .await
                    .map(|()| Applied::Replaced),
                None => self
                    .put_config(path, desired, None)
                    .await
                    .map(|()| Applied::Created),
            };
            match outcome {
                Err(Error::PreconditionFailed { .. } | Error::AlreadyExists { .. })
                    if attempt < ATTEMPTS =>
                {
                    continue
                }
                // Deleted between our GET and PATCH: go round and create it.
                Err(Error::NotFound { .. }) if attempt < ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    /// Makes the object tagged `"@id": "<id>"` (or a path inside it) semantically equal to
    /// `desired`.
    ///
    /// Same flow and guarantees as [`Client::ensure_config`], except that an id cannot be
    /// created through `/id/`: put the object, with its `@id`, in place with
    /// [`Client::ensure_config`] first. Remember to keep `"@id"` in `desired` when replacing
    /// the whole object, or the id is gone after the write.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; otherwise as [`Client::ensure_config`].
    pub async fn ensure_by_id(&self, id: &str, desired: &Value) -> Result<Applied> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (current, etag) = match self.get_by_id(id).await? {
                Some(found) => found,
                None => {
                    return Err(Error::NotFound {
                        method: "GET".into(),
                        path: format!("/id/{id}"),
                        status: 404,
                        message: format!(
                            "no object with \"@id\": \"{id}\" (create it with ensure_config)"
                        ),
                    })
                }
            };
            if semantically_equal(&current, desired) {
                return Ok(Applied::Unchanged);
            }
            match self.patch_by_id(id, desired, Some(&etag)).await {
                Err(Error::PreconditionFailed { .. }) if attempt < ATTEMPTS => continue,
                other => return other.map(|()| Applied::Replaced),
            }
        }
    }

    /// Deletes the config at `path` if it is there; returns whether it was.
    ///
    /// Reads first, so a missing value costs no write (Caddy itself would answer 200 and
    /// count nothing as removed). The delete is guarded by the ETag just read.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] if the value changed between the read and the delete;
    /// transport and API errors.
    pub async fn remove_config(&self, path: &str) -> Result<bool> {
        match self.get_config(path).await? {
            None => Ok(false),
            Some((_, etag)) => {
                self.delete_config(path, Some(&etag)).await?;
                Ok(true)
            }
        }
    }
}

/// A server name is one path segment.
fn check_name(name: &str) -> Result<&str> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidPath {
            path: name.to_string(),
            reason: "a server name must be one non-empty path segment (no `/`)".into(),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"listen": [":80"], "routes": [{"handle": [], "match": []}]});
        let b = json!({"routes": [{"match": [], "handle": []}], "listen": [":80"]});
        assert!(semantically_equal(&a, &b));
    }

    #[test]
    fn numbers_compare_by_value_as_caddy_rounds_them() {
        // The pairs are (as written, as Caddy 2.6.2 read them back).
        let pairs = [
            (json!(1.0), json!(1)),
            (json!(1e3), json!(1000)),
            (json!(-0.0), json!(0)),
            (
                serde_json::from_str::<Value>("9007199254740993").expect("number"),
                json!(9_007_199_254_740_992_u64),
            ),
            (json!({"max_fails": 5.0}), json!({"max_fails": 5})),
        ];
        for (written, read) in pairs {
            assert!(semantically_equal(&written, &read), "{written} vs {read}");
        }
        assert!(!semantically_equal(&json!(1), &json!(2)));
        assert!(!semantically_equal(&json!(1), &json!("1")));
    }

    #[test]
    fn structure_still_matters() {
        assert!(!semantically_equal(&json!([1, 2]), &json!([2, 1])));
        assert!(!semantically_equal(
            &json!({"a": 1}),
            &json!({"a": 1, "b": null})
        ));
        assert!(!semantically_equal(&json!({"a": {}}), &json!({})));
        assert!(!semantically_equal(&json!({"a": 1}), &json!({"b": 1})));
    }

    #[test]
    fn server_names_are_one_segment() {
        assert_eq!(
            server_path("botcluster-prod"),
            "apps/http/servers/botcluster-prod"
        );
        assert!(check_name("a/b").is_err());
        assert!(check_name("").is_err());
    }
}
