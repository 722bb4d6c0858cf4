//! Caddy's config ETags and the client-side computation of them.

use std::fmt;

/// The version tag of one config path, as Caddy defines it: the path that was read and the
/// FNV-1a 32-bit hash of the exact JSON body Caddy returned for it.
///
/// Send it back with a write ([`crate::Client::patch_config`] and friends) to make the write
/// conditional: Caddy re-reads [`Etag::path`], hashes it, and answers 412 (surfaced as
/// [`crate::Error::PreconditionFailed`]) when the hash differs.
///
/// The tag covers only its own path. A tag for `/config/apps/http/servers/edge` does not change
/// when someone edits another server, so guarding a write to one server with it gives no false
/// conflicts in a config shared with others.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Etag {
    path: String,
    hash: String,
}

impl Etag {
    /// An ETag for `path` (a `/config/...` path) with the hex `hash`.
    pub fn new(path: impl Into<String>, hash: impl Into<String>) -> Etag {
        Etag {
            path: path.into(),
            hash: hash.into(),
        }
    }

    /// Parses Caddy's header or trailer value, `"<path> <hash>"` with the quotes.
    ///
    /// Returns `None` for anything else (a weak `W/` tag, a missing field, no quotes).
    pub fn parse(value: &str) -> Option<Etag> {
        let inner = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let mut fields = inner.split_whitespace();
        let (path, hash) = (fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        Some(Etag::new(path, hash))
    }

    /// The config path the tag was computed for, e.g. `/config/apps/http/servers/edge`.
    ///
    /// For a read through `/id/<id>`, Caddy names the expanded `/config/...` path here.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The lowercase hex FNV-1a 32-bit hash of the body, e.g. `071b0ed4`.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The `If-Match` header value: `"<path> <hash>"`, quotes included.
    pub fn header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{} {}\"", self.path, self.hash)
    }
}

/// Computes the ETag Caddy gives `body` when it is the response to `GET <path>`.
///
/// `path` is the request path as Caddy saw it (`/config/...`, including a trailing slash if
/// the request had one); `body` must be the response bytes exactly as received, including the
/// trailing newline Go's JSON encoder writes. Re-serialising a parsed [`serde_json::Value`]
/// does not give the same bytes (Go sorts keys, escapes `<`, `>` and `&`, and formats numbers
/// its own way), so hash what came off the wire.
///
/// Verified to match the tags Caddy 2.6.2 sends (as a trailer) for `/config/` paths. For
/// `/id/<id>` reads the result would be wrong: Caddy names the expanded `/config/...` path,
/// which the client cannot know, so [`crate::Client::get_by_id`] reads Caddy's own tag.
pub fn compute_etag(path: &str, body: &[u8]) -> Etag {
    Etag::new(path, format!("{:08x}", fnv1a32(body)))
}

/// FNV-1a, 32 bits, as Go's `hash/fnv.New32a`.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_published_test_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn computed_tags_match_the_ones_caddy_2_6_2_sent() {
        // Captured from `curl --raw` against Caddy 2.6.2: body and trailer.
        let body = b"{\"admin\":{\"config\":{\"persist\":false},\"listen\":\"127.0.0.1:23019\"}}\n";
        assert_eq!(
            compute_etag("/config/", body).to_string(),
            "\"/config/ 071b0ed4\""
        );
        assert_eq!(compute_etag("/config/apps", b"null\n").hash(), "0e7c22ea");
    }

    #[test]
    fn parse_round_trips_and_rejects_malformed_values() {
        let tag = Etag::parse("\"/config/apps 0e7c22ea\"").expect("valid tag");
        assert_eq!(tag.path(), "/config/apps");
        assert_eq!(tag.hash(), "0e7c22ea");
        assert_eq!(Etag::parse(&tag.header_value()), Some(tag));
        assert_eq!(Etag::parse("/config/apps 0e7c22ea"), None);
        assert_eq!(Etag::parse("\"/config/apps\""), None);
        assert_eq!(Etag::parse("\"/config/apps a b\""), None);
        assert_eq!(Etag::parse("W/\"/config/apps a\""), None);
    }
}
