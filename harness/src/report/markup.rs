//! Escaping text from outside (scenario and check names, backends' error
//! messages) for XML markup, which the JUnit report and the HTML page (a
//! well-formed XHTML document) both are.

use super::controls::{REPLACEMENT, is_unsafe};

/// Escapes text for an attribute value: markup characters and quotes
/// become entities, line breaks and tabs character references (a parser
/// would otherwise turn them into spaces), and characters XML 1.0 forbids
/// U+FFFD (see [`escape_text`]), as do the other control characters
/// ([`controls`](super::controls)).
pub fn escape(text: &str) -> String {
    escape_with(text, true)
}

/// Escapes text for element content, where line breaks and tabs may stay.
pub fn escape_text(text: &str) -> String {
    escape_with(text, false)
}

fn escape_with(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if !attribute => out.push(c),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if is_unsafe(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    out
}
