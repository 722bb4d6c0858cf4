//! The CI policy: when is a missing real component (LXD, Caddy, promtool) a failure?

/// The environment variable CI systems set.
pub const CI_VAR: &str = "CI";

/// Whether this run must exercise the real components, from the environment's `CI`.
///
/// See [`requires_real_components`] for which values mean yes.
pub fn real_components_required() -> bool {
    requires_real_components(std::env::var(CI_VAR).ok().as_deref())
}

/// Whether a `CI` value (`None` when unset) means "the real components are required".
///
/// **Guarantees**: every value that is set and not falsy means yes: `true`, `1`, `yes`,
/// `True`, `on`, or anything else a CI system may put there. Falsy values are the empty
/// string, `0`, `false`, `no` and `off`, in any case and with surrounding whitespace.
///
/// Why so broad: a CI run that skips its end-to-end tests goes green while proving nothing,
/// so only values that clearly say "not CI" may allow skipping. (Checking `== "true"` let
/// `CI=1` skip everything.)
pub fn requires_real_components(ci: Option<&str>) -> bool {
    let Some(value) = ci else { return false };
    let value = value.trim().to_ascii_lowercase();
    !matches!(value.as_str(), "" | "0" | "false" | "no" | "off")
}

#[cfg(test)]
mod tests {
    use super::requires_real_components;

    #[test]
    fn any_ci_value_but_an_explicit_no_requires_the_real_components() {
        let table: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("   "), false),
            (Some("0"), false),
            (Some("false"), false),
            (Some("False"), false),
            (Some("FALSE"), false),
            (Some("no"), false),
            (Some("No"), false),
            (Some("off"), false),
            (Some("OFF"), false),
            (Some(" false\n"), false),
            (Some("true"), true),
            (Some("True"), true),
            (Some("TRUE"), true),
            (Some("1"), true),
            (Some("yes"), true),
            (Some("on"), true),
            (Some("2"), true),
            (Some("github-actions"), true),
            (Some(" 1 "), true),
            (Some("00"), true),
        ];
        for &(value, expected) in table {
            assert_eq!(
                requires_real_components(value),
                expected,
                "CI={value:?} should {}require the real components",
                if expected { "" } else { "not " }
            );
        }
    }
}
