//! Name patterns: `*` matches any run of characters (also none), every
//! other character only itself. Used for tool names in `safe_to_repeat`
//! (and by mcp-harness for scenario selectors, so both agree).

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (also none) and every other character only itself.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has been stretched to:
    // on a mismatch, that star swallows one more character. Retrying only the
    // last star is enough (an earlier star could only take what the later
    // one can), so the work is at most pattern × text, never exponential.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_match_runs_and_other_characters_only_themselves() {
        assert!(matches("get_*", "get_user"));
        assert!(matches("get_*", "get_"));
        assert!(!matches("get_*", "set_user"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("lookup", "lookup"));
        assert!(!matches("lookup", "lookups"));
        assert!(matches("*", ""));
        assert!(matches("*", "files/read"));
        assert!(matches("files/*", "files/read"));
        assert!(matches("files/read", "files/read"));
        assert!(matches("*/read", "files/read"));
        assert!(matches("f*s/*d", "files/read"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(matches("a*a*a", "aaaa"));
        assert!(matches("**", "x"));
        assert!(matches("é*", "éa"));
        assert!(!matches("files/*", "db/read"));
        assert!(!matches("files/read", "files/reads"));
        assert!(!matches("files/read", "files/rea"));
        assert!(!matches("a*b", "aXbY"));
        assert!(!matches("", "x"));
        assert!(!matches("?", "x"), "only * is special");
    }
}
