//! Label and field selectors, with Kubernetes' syntax and meaning.
//!
//! A label selector is requirements joined by `,` (all must hold):
//! `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`, `key` (exists),
//! `!key` (does not exist). As in Kubernetes, `!=` and `notin` also match objects without the
//! label. A field selector supports `metadata.name` with `=`, `==` and `!=`.

use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value`, `key==value`.
    Equals(String, String),
    /// `key!=value`.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => !labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector; the empty one matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Whether every requirement holds.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// Parses Kubernetes' selector syntax. The error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let mut out = Vec::new();
        p.skip_ws();
        if p.done() {
            return Ok(LabelSelector(out));
        }
        loop {
            out.push(p.requirement()?);
            p.skip_ws();
            if p.done() {
                return Ok(LabelSelector(out));
            }
            if !p.eat(b",") {
                return Err(p.error("expected \",\" between requirements"));
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &[u8]) -> bool {
        if self.s[self.i..].starts_with(tok) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    fn error(&self, what: &str) -> String {
        format!("{what} at character {}", self.i + 1)
    }
    /// A run of characters allowed in keys and values.
    fn word(&mut self) -> String {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"-_./".contains(c))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn key(&mut self) -> Result<String, String> {
        self.skip_ws();
        let at = self.i;
        let k = self.word();
        check_key(&k).map_err(|e| format!("{e} at character {}", at + 1))?;
        Ok(k)
    }
    fn value(&mut self) -> Result<String, String> {
        self.skip_ws();
        let at = self.i;
        let v = self.word();
        check_value(&v).map_err(|e| format!("{e} at character {}", at + 1))?;
        Ok(v)
    }
    fn set(&mut self) -> Result<Vec<String>, String> {
        self.skip_ws();
        if !self.eat(b"(") {
            return Err(
                self.error("expected \"(\" to open the set of values, as in `key in (a,b)`")
            );
        }
        let mut vs = Vec::new();
        loop {
            vs.push(self.value()?);
            self.skip_ws();
            if self.eat(b")") {
                break;
            }
            if !self.eat(b",") {
                return Err(self.error("expected \",\" or \")\" in the set of values"));
            }
        }
        if vs.iter().all(String::is_empty) {
            return Err(self.error("the set of values is empty"));
        }
        Ok(vs)
    }
    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        if self.eat(b"!") {
            let k = self.key()?;
            return Ok(Requirement::DoesNotExist(k));
        }
        let k = self.key()?;
        self.skip_ws();
        if self.done() || self.s[self.i] == b',' {
            return Ok(Requirement::Exists(k));
        }
        if self.eat(b"==") || self.eat(b"=") {
            return Ok(Requirement::Equals(k, self.value()?));
        }
        if self.eat(b"!=") {
            return Ok(Requirement::NotEquals(k, self.value()?));
        }
        if self.eat(b"notin") {
            return Ok(Requirement::NotIn(k, self.set()?));
        }
        if self.eat(b"in") {
            return Ok(Requirement::In(k, self.set()?));
        }
        Err(self.error(&format!(
            "after key \"{k}\" expected =, ==, !=, in, notin, or \",\""
        )))
    }
}

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A label key: `[prefix/]name`, name at most 63 characters of `[A-Za-z0-9_.-]` starting and
/// ending alphanumeric; prefix a DNS subdomain of at most 253.
fn check_key(k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err("expected a label key".into());
    }
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key \"{k}\": the prefix before \"/\" must be a DNS subdomain (lowercase letters, digits, '-', '.')"
            ));
        }
    }
    if !name_part_ok(name) {
        return Err(format!(
            "label key \"{k}\" must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() || name_part_ok(v) {
        Ok(())
    } else {
        Err(format!(
            "label value \"{v}\" must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// A field selector: only `metadata.name` is indexed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// `metadata.name=X` requirements.
    pub name_is: Vec<String>,
    /// `metadata.name!=X` requirements.
    pub name_is_not: Vec<String>,
}

impl FieldSelector {
    /// Parses `metadata.name=X[,metadata.name!=Y]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = FieldSelector::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, neg, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!("\"{part}\" is not FIELD=VALUE or FIELD!=VALUE"));
            };
            if field.trim() != "metadata.name" {
                return Err(format!(
                    "field \"{}\" cannot be selected on; only metadata.name can",
                    field.trim()
                ));
            }
            let v = value.trim().to_string();
            if neg {
                out.name_is_not.push(v)
            } else {
                out.name_is.push(v)
            }
        }
        Ok(out)
    }

    /// Whether an object of this name is selected.
    pub fn matches(&self, name: &str) -> bool {
        self.name_is.iter().all(|n| n == name) && !self.name_is_not.iter().any(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Cases from Kubernetes' `labels.Parse` semantics (`selector_test.go`): `!=` and `notin`
    /// match objects without the key, `in` needs it, an empty selector matches everything.
    #[test]
    fn selectors_match_like_kubernetes() {
        let web = labels(&[("team", "bots"), ("tier", "web"), ("env", "prod")]);
        let bare = labels(&[]);
        let empty_value = labels(&[("team", "")]);
        let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
            ("", &web, true),
            ("", &bare, true),
            ("team=bots", &web, true),
            ("team==bots", &web, true),
            ("team = bots", &web, true),
            ("team=other", &web, false),
            ("team=bots", &bare, false),
            ("team!=bots", &web, false),
            ("team!=other", &web, true),
            ("team!=bots", &bare, true),
            ("team", &web, true),
            ("team", &bare, false),
            ("!team", &web, false),
            ("!team", &bare, true),
            ("env in (prod,staging)", &web, true),
            ("env in (staging)", &web, false),
            ("env in (prod)", &bare, false),
            ("env notin (prod)", &web, false),
            ("env notin (staging, dev)", &web, true),
            ("env notin (prod)", &bare, true),
            ("team=bots,tier!=canary", &web, true),
            ("team=bots,tier=canary", &web, false),
            ("team=bots, env in (prod), !legacy", &web, true),
            ("team=", &empty_value, true),
            ("team=", &web, false),
            ("team", &empty_value, true),
            (
                "botcluster.io/owner=x",
                &labels(&[("botcluster.io/owner", "x")]),
                true,
            ),
            ("team in (bots,)", &empty_value, true),
        ];
        for (sel, l, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(l), *want, "{sel:?} on {l:?}");
        }
    }

    #[test]
    fn malformed_selectors_say_what_and_where() {
        for (sel, says) in [
            ("team in bots", "expected \"(\""),
            ("team in ()", "the set of values is empty"),
            ("team in (a", "expected \",\" or \")\""),
            ("team > 3", "expected =, ==, !=, in, notin"),
            ("=bots", "expected a label key"),
            ("team=bots,", "expected a label key"),
            ("team=bo ts", "expected \",\" between requirements"),
            ("-team=x", "label key \"-team\""),
            ("team=-x", "label value \"-x\""),
            ("Bad_Prefix/x=1", "prefix before \"/\""),
            ("!team=x", "expected \",\" between requirements"),
            (&format!("team={}", "a".repeat(64)), "at most 63"),
        ] {
            let e = LabelSelector::parse(sel).expect_err(sel);
            assert!(e.contains(says), "{sel:?}: {e}");
            assert!(e.contains("at character"), "{sel:?}: {e}");
        }
    }

    fn render(r: &Requirement, ws: &str) -> String {
        match r {
            Requirement::Equals(k, v) => format!("{k}{ws}={ws}{v}"),
            Requirement::NotEquals(k, v) => format!("{k}{ws}!={ws}{v}"),
            Requirement::In(k, vs) => format!("{k} in{ws}({})", vs.join(",")),
            Requirement::NotIn(k, vs) => format!("{k} notin{ws}({ws}{}{ws})", vs.join(", ")),
            Requirement::Exists(k) => k.clone(),
            Requirement::DoesNotExist(k) => format!("!{ws}{k}"),
        }
    }

    fn requirement() -> impl proptest::strategy::Strategy<Value = Requirement> {
        use proptest::prelude::*;
        let key = prop_oneof![
            "[a-z][a-z0-9]{0,5}",
            "[a-z]{1,4}\\.io/[a-z][a-z0-9_.-]{0,4}[a-z]"
        ];
        let value = "([a-z0-9]([a-z0-9_.-]{0,4}[a-z0-9])?)?";
        let values = proptest::collection::vec("[a-z0-9]{1,4}", 1..4);
        prop_oneof![
            (key.clone(), value).prop_map(|(k, v)| Requirement::Equals(k, v)),
            (key.clone(), value).prop_map(|(k, v)| Requirement::NotEquals(k, v)),
            (key.clone(), values.clone()).prop_map(|(k, v)| Requirement::In(k, v)),
            (key.clone(), values).prop_map(|(k, v)| Requirement::NotIn(k, v)),
            key.clone().prop_map(Requirement::Exists),
            key.prop_map(Requirement::DoesNotExist),
        ]
    }

    proptest::proptest! {
        /// Whatever is written in the syntax parses back to the same requirements, whatever the
        /// spacing.
        #[test]
        fn written_selectors_parse_back_to_themselves(
            reqs in proptest::collection::vec(requirement(), 1..5),
            ws in "[ ]{0,2}",
        ) {
            let text = reqs.iter().map(|r| render(r, &ws)).collect::<Vec<_>>().join(&format!("{ws},{ws}"));
            let parsed = LabelSelector::parse(&text);
            proptest::prop_assert_eq!(parsed, Ok(LabelSelector(reqs)), "{}", text);
        }

        /// Any text is either a selector or a message; never a panic.
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text);
        }
    }

    #[test]
    fn field_selectors_know_only_the_name() {
        let f = FieldSelector::parse("metadata.name=web").unwrap();
        assert!(f.matches("web") && !f.matches("api"));
        let f = FieldSelector::parse("metadata.name==web").unwrap();
        assert!(f.matches("web"));
        let f = FieldSelector::parse("metadata.name!=web").unwrap();
        assert!(!f.matches("web") && f.matches("api"));
        assert!(FieldSelector::parse("").unwrap().matches("x"));
        let e = FieldSelector::parse("spec.replicas=1").unwrap_err();
        assert!(e.contains("only metadata.name"), "{e}");
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
