//! What reaches an operator's terminal: every human-readable line botctl prints goes through
//! [`escape_lines`] (the `outln!`/`out!`/`errln!` macros), and every stored value a table or the
//! status page shows goes through [`escape`], so a stored string holding ESC sequences, BEL,
//! CR or a line break cannot set the title, clear the screen, or forge a line. `-o json` and
//! `-o yaml` print serialized text as is (their serializers already escape control characters).

use std::borrow::Cow;

/// Characters shown escaped: C0 and C1 controls, DEL, and the Unicode bidirectional controls
/// (which reorder what follows them on screen, "Trojan Source").
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_where(s: &str, unsafe_: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&unsafe_) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One value for a table cell or a line: every unsafe character escaped, line breaks too.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_where(s, is_unsafe)
}

/// Text made of lines: unsafe characters escaped, line breaks kept.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c != '\n' && is_unsafe(c))
}

/// `println!` for people: the line's control characters escaped.
macro_rules! outln {
    ($($arg:tt)*) => {
        println!("{}", $crate::terminal::escape_lines(&format!($($arg)*)))
    };
}

/// `print!` for people: control characters escaped, line breaks kept.
macro_rules! out {
    ($($arg:tt)*) => {
        print!("{}", $crate::terminal::escape_lines(&format!($($arg)*)))
    };
}

/// `eprintln!` for people: the line's control characters escaped.
macro_rules! errln {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::terminal::escape_lines(&format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_bells_and_line_breaks_are_shown_not_obeyed() {
        assert_eq!(escape("plain ünï"), "plain ünï");
        assert_eq!(
            escape("img\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "img\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(escape("a\nFAKE LINE\r"), "a\\nFAKE LINE\\r");
        assert_eq!(escape("x\u{202e}cod.exe"), "x\\u{202e}cod.exe");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_lines("one\ntwo\u{1b}[K\n"), "one\ntwo\\u{1b}[K\n");
    }
}
