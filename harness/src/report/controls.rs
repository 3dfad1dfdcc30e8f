//! Control characters in text from outside (fault, backend and fake
//! names, a gateway's error messages) made harmless before a report shows
//! it: in a terminal an escape (ESC, C1) could clear the screen or retitle
//! the window, and in XML most C0 characters are not allowed at all.
//!
//! Every C0 character but tab and line feed, DEL, every C1 character and
//! the two non-characters XML forbids (U+FFFE, U+FFFF) become U+FFFD, so
//! the reader sees that something was there. The
//! terminal, the HTML page, its charts and the JUnit file all pass text
//! through [`replaced`] (or test characters with [`is_unsafe`]).

use std::borrow::Cow;

/// The character shown in place of a control character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether `c` is a character that text from outside may not carry into
/// a report: C0 but tab and line feed, DEL, C1, U+FFFE and U+FFFF.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// `text` with every [`is_unsafe`] character replaced by [`REPLACEMENT`].
pub fn replaced(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_unsafe) {
        Cow::Owned(
            text.chars()
                .map(|c| if is_unsafe(c) { REPLACEMENT } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` on one line: [`replaced`], and line feeds and tabs as spaces.
pub fn one_line(text: &str) -> String {
    replaced(text).replace(['\n', '\t'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_c0_c1_controls_are_replaced_but_not_tab_and_newline() {
        assert_eq!(
            replaced("a\u{1b}[2J\u{1b}]0;pwned\u{7}b"),
            "a\u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}b"
        );
        assert_eq!(
            replaced("x\u{0}\r\u{7f}\u{85}\u{9b}\u{FFFE}\u{FFFF}y"),
            "x\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}y"
        );
        assert!(matches!(replaced("tab\there\nok ≤ é"), Cow::Borrowed(_)));
        assert_eq!(one_line("a\nb\tc\r"), "a b c\u{FFFD}");
    }
}
