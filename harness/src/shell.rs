//! Quoting for a POSIX shell, the one rule for every command line the
//! harness writes: a placeholder's value in a `--target-cmd` (a stdio
//! fake's command, `{config}`) and a report's replay command.

/// `word` as one shell word: unchanged when it holds only characters no
/// shell treats specially, else in single quotes (a quote inside becomes
/// `'\''`).
pub(crate) fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_and_others_are_single_quoted() {
        assert_eq!(quote("/opt/mcp-proxy"), "/opt/mcp-proxy");
        assert_eq!(quote("a=1,b:2@x%y+z"), "a=1,b:2@x%y+z");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("/tmp/my run/gw.toml"), "'/tmp/my run/gw.toml'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }
}
