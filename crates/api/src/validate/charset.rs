//! The characters each destination allows, one rule per destination: LXD names (profiles,
//! networks), LXD image references, HTTP header values (Caddy writes them into responses),
//! POSIX paths inside containers, and `KEY=VALUE` lines of the env file. Every rule says what
//! is allowed, so a refusal tells the user what to write instead.
//!
//! Above these, [`super::strings`] refuses control characters in every string of a document
//! (they would reach terminals, logs and LXD config), whatever its field.

/// The env file the operator writes into each container when `spec.env` is set: one
/// `KEY=VALUE` line per variable, values verbatim (no quoting), so a value must not hold a
/// line break. `spec.files` may not name this path.
pub const ENV_FILE: &str = "/etc/botserver/botserver.env";

/// The bots' settings file the operator writes when the spec has `cache`, `vectorDb`,
/// `fallback` or a load balancer `rateLimit` (controller `botconfig`); `spec.files` may not
/// name it then.
pub const BOT_CONFIG_PATH: &str = "/opt/gbo/conf/botcluster.json";

/// An LXD object name (profile, network): 1 to `max` of `A-Z a-z 0-9 . _ -`, starting with a
/// letter or digit. LXD puts these in URL paths and device config.
pub fn lxd_name(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty; name an existing LXD object, e.g. \"default\"".into());
    }
    if s.len() > max {
        return Err(format!(
            "{s:?} is {} characters; LXD takes at most {max}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{s:?} contains {c:?}; LXD names use only letters, digits, '.', '_' and '-'"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{s:?} must start with a letter or digit"));
    }
    Ok(())
}

/// An LXD image reference: an alias (`botcluster-botserver`, `debian/12`, `images:debian/12`)
/// or a fingerprint: 1-255 of `A-Z a-z 0-9 . _ - / :`, starting with a letter or digit, no
/// `..` component.
pub fn image_ref(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(
            "is empty; name an LXD image alias or fingerprint, e.g. \"botcluster-botserver\""
                .into(),
        );
    }
    if s.len() > 255 {
        return Err(format!(
            "is {} characters; LXD aliases take at most 255",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':')))
    {
        return Err(format!(
            "{s:?} contains {c:?}; image aliases and fingerprints use only letters, digits, '.', '_', '-', '/' and ':'"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{s:?} must start with a letter or digit"));
    }
    if s.split(['/', ':']).any(|p| p == "..") {
        return Err(format!(
            "{s:?} has a \"..\" component; name the image itself"
        ));
    }
    Ok(())
}

/// An HTTP header value (RFC 9110 field-value): visible ASCII, spaces and tabs inside, none at
/// either end; no CR, LF, NUL or other control character (they would split or end the header).
pub fn header_value(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(matches!(c, ' ' | '\t') || c.is_ascii_graphic()))
    {
        return Err(format!(
            "contains {c:?}; header values are visible ASCII characters and spaces (no line breaks or control characters)"
        ));
    }
    if s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return Err(format!(
            "{s:?} starts or ends with whitespace, which HTTP strips; remove it"
        ));
    }
    Ok(())
}

/// An absolute POSIX path of a file inside the container: starts with `/`, no NUL or control
/// character, no empty, `.` or `..` component, not a directory, not the operator's env file.
pub fn container_file_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "{p:?} must be an absolute path inside the container, e.g. \"/etc/botserver/app.conf\""
        ));
    }
    if let Some(c) = p.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{p:?} contains the control character {c:?}; paths here are printable text"
        ));
    }
    if p.ends_with('/') {
        return Err(format!("{p:?} names a directory; name a file"));
    }
    if p[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{p:?} has an empty, \".\" or \"..\" component; write the path plainly, e.g. \"/etc/botserver/app.conf\""
        ));
    }
    if p == ENV_FILE {
        return Err(format!(
            "{p:?} is the env file the operator writes from spec.env; put variables in spec.env or use another path"
        ));
    }
    Ok(())
}

/// A variable name of the env file: `A-Z a-z 0-9 _`, not starting with a digit.
pub fn env_name(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not an environment variable name; use letters, digits and '_', not starting with a digit"
        ))
    }
}

/// A value of the env file: any text without a line break, NUL or other control character
/// (a newline would write a second variable).
pub fn env_value(v: &str) -> Result<(), String> {
    match v.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "contains {c:?}; env values are one line of printable text (a line break would start another variable)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, accepted) per rule: what each destination allows and refuses.
    #[test]
    fn each_destination_gets_its_charset() {
        type Rule = fn(&str) -> Result<(), String>;
        let profile: Rule = |s| lxd_name(s, 63);
        let table: &[(&str, Rule, &[&str], &[&str])] = &[
            (
                "lxd name",
                profile,
                &["default", "bot.v2", "gpu_1", "A-1"],
                &[
                    "",
                    "-x",
                    ".hidden",
                    "a/b",
                    "a b",
                    "a\x1b[2J",
                    "a\nb",
                    "a;rm",
                    "a$(x)",
                    "é",
                    &"a".repeat(64),
                ],
            ),
            (
                "image",
                image_ref,
                &[
                    "botcluster-botserver",
                    "debian/12",
                    "images:debian/12",
                    "0123456789ab",
                ],
                &[
                    "",
                    " ",
                    "a b",
                    "x\x07",
                    "x\x1b]0;pwn\x07",
                    "a\0",
                    "../x",
                    "a/../b",
                    "-x",
                    "a;b",
                    "a`b`",
                    "a\nb",
                    &"a".repeat(256),
                ],
            ),
            (
                "header value",
                header_value,
                &[
                    "nosniff",
                    "max-age=31536000; includeSubDomains",
                    "default-src 'self'",
                    "a\tb",
                    "",
                ],
                &[
                    "a\r\nSet-Cookie: x=1",
                    "a\nb",
                    "a\0",
                    "\x1b[31m",
                    " padded",
                    "trailing ",
                    "caf\u{e9}",
                ],
            ),
            (
                "file path",
                container_file_path,
                &[
                    "/etc/botserver/app.conf",
                    "/opt/bot/config.csv",
                    "/a.b/c-d_e",
                ],
                &[
                    "etc/x", "/a/../b", "/..", "/a//b", "/a/./b", "/a/", "/a\0b", "/a\nb",
                    "/a\x1bb", ENV_FILE,
                ],
            ),
            (
                "env name",
                env_name,
                &["A", "_X", "DB_URL2"],
                &["", "1A", "A-B", "A B", "A=B", "A\n"],
            ),
            (
                "env value",
                env_value,
                &["", "postgres://u:p@h/db", "a b $x `y` 'z'", "ünïcödé"],
                &["a\nB=evil", "a\r", "a\0", "a\x1b[2J", "a\tb"],
            ),
        ];
        for (rule, f, good, bad) in table {
            for s in *good {
                assert!(f(s).is_ok(), "{rule}: {s:?} refused: {:?}", f(s));
            }
            for s in *bad {
                let e = f(s).expect_err(&format!("{rule}: {s:?} accepted"));
                assert!(e.len() > 15, "{rule}: terse message {e:?}");
            }
        }
    }
}
