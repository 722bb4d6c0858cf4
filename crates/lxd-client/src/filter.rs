//! Server-side list filters (`?filter=`, the `api_filtering` extension).

use std::fmt;

use crate::Error;

/// A server-side filter for [`crate::Client::list_instances`]: clauses joined by `and`.
///
/// ```
/// use lxd_client::Filter;
/// let f = Filter::new()
///     .eq("config.user.botcluster.cluster", "demo")
///     .ne("status", "Stopped");
/// assert_eq!(
///     f.to_string(),
///     r"config.user.botcluster.cluster eq ^demo$ and status ne ^Stopped$",
/// );
/// ```
///
/// # How LXD matches (5.0.2, `lxd/filter`)
///
/// - A clause's value is a **Go regular expression**, matched **case-insensitively**
///   against string fields; it is anchored with `^…$` unless it already contains
///   `^` or `$`. [`Filter::eq`] and [`Filter::ne`] therefore escape the value and add
///   the anchors themselves, so `eq("user.x", "a.b")` matches exactly `a.b` (or
///   `A.B`: case is still ignored — compare again client-side if case matters).
/// - Whitespace in a value would split the clause (LXD tokenises on whitespace), so
///   it is sent as a `\x{…}` regex escape.
/// - Only string fields can match (`name`, `status`, `config.*`,
///   `expanded_config.*`, `devices.<dev>.<key>`, `type`, `location`…). Booleans and
///   numbers (`ephemeral`, `status_code`) never match anything.
/// - A missing config key reads as `""`, so `eq("config.user.x", "")` selects the
///   instances *without* that key.
/// - A malformed filter is answered with HTTP 500.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    key: String,
    op: &'static str,
    /// Already a regex, escaped as needed.
    pattern: String,
}

impl Filter {
    /// An empty filter (matches everything).
    pub fn new() -> Self {
        Filter::default()
    }

    /// Adds `key eq value`, `value` matched literally (but case-insensitively).
    pub fn eq(self, key: impl Into<String>, value: &str) -> Self {
        self.push(key.into(), "eq", anchored_literal(value))
    }

    /// Adds `key ne value`, `value` matched literally (but case-insensitively).
    pub fn ne(self, key: impl Into<String>, value: &str) -> Self {
        self.push(key.into(), "ne", anchored_literal(value))
    }

    /// Adds `key eq <regex>`: `regex` is a Go (RE2) regular expression, anchored by
    /// LXD unless it contains `^` or `$`. Whitespace in it is escaped for you.
    ///
    /// ```
    /// # use lxd_client::Filter;
    /// let f = Filter::new().matches("name", "web-[0-9]+");
    /// assert_eq!(f.to_string(), "name eq web-[0-9]+");
    /// ```
    pub fn matches(self, key: impl Into<String>, regex: &str) -> Self {
        self.push(key.into(), "eq", escape_whitespace(regex))
    }

    fn push(mut self, key: String, op: &'static str, pattern: String) -> Self {
        self.clauses.push(Clause { key, op, pattern });
        self
    }

    /// True when the filter has no clause.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The filter expression, checked: keys must be non-empty and contain no
    /// whitespace, or LXD would misparse the expression.
    pub(crate) fn to_query_value(&self) -> Result<String, Error> {
        for c in &self.clauses {
            if c.key.is_empty() || c.key.chars().any(char::is_whitespace) {
                return Err(Error::InvalidArgument(format!(
                    "filter key {:?} must be non-empty and contain no whitespace",
                    c.key
                )));
            }
        }
        Ok(self.to_string())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{} {} {}", c.key, c.op, c.pattern)?;
        }
        Ok(())
    }
}

/// `^<value with regex metacharacters escaped>$`.
///
/// Writing the anchors ourselves matters: LXD only adds them when the pattern has
/// no `^`/`$`, and an escaped `\$` in the value would otherwise turn the match into
/// an unanchored substring search.
fn anchored_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('^');
    for ch in value.chars() {
        push_escaped(&mut out, ch, true);
    }
    out.push('$');
    out
}

fn escape_whitespace(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len());
    for ch in regex.chars() {
        push_escaped(&mut out, ch, false);
    }
    out
}

fn push_escaped(out: &mut String, ch: char, meta: bool) {
    // The set Go's regexp.QuoteMeta escapes.
    const META: &str = r"\.+*?()|[]{}^$";
    if ch.is_whitespace() || ch.is_control() {
        // LXD splits the filter with strings.Fields, which splits on Unicode
        // whitespace: never let one reach the server raw.
        out.push_str(&format!(r"\x{{{:x}}}", u32::from(ch)));
    } else if meta && META.contains(ch) {
        out.push('\\');
        out.push(ch);
    } else {
        out.push(ch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filter_is_anchored_and_escaped() {
        let f = Filter::new().eq("config.user.botcluster.cluster", "demo");
        assert_eq!(
            f.to_query_value().unwrap(),
            "config.user.botcluster.cluster eq ^demo$"
        );
    }

    #[test]
    fn regex_metacharacters_are_escaped() {
        let f = Filter::new().eq("config.user.v", r"1.2+(x)|[y]{z}*?^$\");
        assert_eq!(
            f.to_string(),
            r"config.user.v eq ^1\.2\+\(x\)\|\[y\]\{z\}\*\?\^\$\\$"
        );
    }

    #[test]
    fn whitespace_never_reaches_the_server() {
        let f = Filter::new().eq("description", "two  words\tand\na line");
        let q = f.to_query_value().unwrap();
        assert_eq!(
            q,
            r"description eq ^two\x{20}\x{20}words\x{9}and\x{a}a\x{20}line$"
        );
        // LXD tokenises with strings.Fields: exactly key, op, value.
        assert_eq!(q.split_whitespace().count(), 3);
    }

    #[test]
    fn empty_value_selects_missing_key() {
        assert_eq!(
            Filter::new().eq("config.user.x", "").to_string(),
            "config.user.x eq ^$"
        );
    }

    #[test]
    fn clauses_are_joined_with_and() {
        let f = Filter::new()
            .eq("config.user.a", "1")
            .ne("status", "Stopped")
            .matches("name", "web-.*");
        assert_eq!(
            f.to_string(),
            "config.user.a eq ^1$ and status ne ^Stopped$ and name eq web-.*"
        );
    }

    #[test]
    fn keys_with_whitespace_are_rejected() {
        let err = Filter::new().eq("config.user a", "x").to_query_value();
        assert!(matches!(err, Err(Error::InvalidArgument(_))));
        let err = Filter::new().eq("", "x").to_query_value();
        assert!(matches!(err, Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn words_that_look_like_operators_stay_values() {
        // "and" / "or" / "not" as values cannot be confused with LXD's keywords.
        assert_eq!(
            Filter::new().eq("config.user.x", "and").to_string(),
            "config.user.x eq ^and$"
        );
    }
}
