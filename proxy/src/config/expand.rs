//! `${VAR}` expansion of every string value in the tree.
//!
//! Expansion happens on the tree, before deserialization, so it covers every
//! string the schema has (`command`, `args`, `env`, `url`, `headers`, even
//! `listen`) without each field opting in, and so an unset variable is
//! reported at the line and key path of the value that uses it. Keys are
//! never expanded: they are names, not data.
//!
//! Syntax: `${NAME}` where `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; `$${` is a
//! literal `${`; a `$` not followed by `{` is literal. Anything else after
//! `${` (defaults like `${A:-b}`, an empty name, no closing `}`) is an
//! error, not a silent literal. The result is not expanded again.
//!
//! Every value a reference was replaced with is returned: it may be a
//! token or a password, so it becomes one of the config's
//! [`Secrets`](super::Secrets), redacted wherever the config is printed.

use super::ConfigError;
use super::source::{Node, Seg, Value, path_string};

/// Expands `${VAR}` in every string value of `node`, looking names up with
/// `env`; returns the values that were substituted.
pub(crate) fn expand_tree(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ConfigError> {
    let mut substituted = Vec::new();
    walk(node, env, &mut Vec::new(), &mut substituted)?;
    Ok(substituted)
}

fn walk(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<Seg>,
    substituted: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => {
            *s = expand_into(s, env, substituted).map_err(|message| ConfigError {
                file: String::new(),
                line: Some(node.line),
                path: path_string(path),
                message,
            })?;
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                let result = walk(item, env, path, substituted);
                path.pop();
                result?;
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                path.push(Seg::Key(entry.key.clone()));
                let result = walk(&mut entry.value, env, path, substituted);
                path.pop();
                result?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands one string; the error is the message to report.
#[cfg(test)]
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_into(text, env, &mut Vec::new())
}

/// Expands one string, pushing each substituted value onto `substituted`.
fn expand_into(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    substituted: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(close) = tail.find('}') else {
                return Err("unterminated \"${\": close it with \"}\", or write \"$${\" for a literal \"${\"".into());
            };
            let name = &tail[..close];
            if !is_var_name(name) {
                return Err(format!(
                    "invalid variable reference \"${{{name}}}\": names are letters, digits and _ \
                     (not starting with a digit); write \"$${{\" for a literal \"${{\""
                ));
            }
            match env(name) {
                Some(value) => {
                    out.push_str(&value);
                    substituted.push(value);
                }
                None => return Err(format!("environment variable {name:?} is not set")),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::config::source::parse;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("${HOME}".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_references() {
        assert_eq!(expand("${HOME}/bin", &env).unwrap(), "/home/me/bin");
        assert_eq!(expand("a${EMPTY}b${HOME}", &env).unwrap(), "ab/home/me");
        assert_eq!(expand("no refs", &env).unwrap(), "no refs");
    }

    #[test]
    fn dollars_that_are_not_references_stay() {
        assert_eq!(expand("$$${HOME}", &env).unwrap(), "$${HOME}");
        assert_eq!(expand("$${HOME}", &env).unwrap(), "${HOME}");
        assert_eq!(expand("cost: $5 $", &env).unwrap(), "cost: $5 $");
        assert_eq!(expand("$HOME", &env).unwrap(), "$HOME");
    }

    #[test]
    fn values_are_not_expanded_twice() {
        assert_eq!(expand("${TRICKY}", &env).unwrap(), "${HOME}");
    }

    #[test]
    fn errors() {
        assert_eq!(
            expand("${NOPE}", &env).unwrap_err(),
            "environment variable \"NOPE\" is not set"
        );
        assert_eq!(
            expand("x ${HOME", &env).unwrap_err(),
            "unterminated \"${\": close it with \"}\", or write \"$${\" for a literal \"${\""
        );
        assert!(
            expand("${}", &env)
                .unwrap_err()
                .starts_with("invalid variable reference \"${}\"")
        );
        assert!(
            expand("${A:-b}", &env)
                .unwrap_err()
                .starts_with("invalid variable reference \"${A:-b}\"")
        );
        assert!(expand("${1A}", &env).is_err());
    }

    #[test]
    fn tree_errors_have_the_value_line_and_path() {
        let mut tree = parse(
            "a:\n  - x\n  - env:\n      LOG: \"${NOPE}\"\n",
            Format::Yaml,
        )
        .unwrap();
        let e = expand_tree(&mut tree, &env).unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (Some(4), "a[1].env.LOG"));
        assert_eq!(e.message, "environment variable \"NOPE\" is not set");
    }

    #[test]
    fn substituted_values_are_returned() {
        let mut tree = parse(
            "a: [\"x${HOME}y\", \"$${HOME}\", \"${EMPTY}\"]\n",
            Format::Yaml,
        )
        .unwrap();
        let substituted = expand_tree(&mut tree, &env).unwrap();
        assert_eq!(substituted, vec!["/home/me".to_owned(), String::new()]);
    }

    #[test]
    fn keys_are_not_expanded() {
        let mut tree = parse("${HOME}: ${HOME}\n", Format::Yaml).unwrap();
        expand_tree(&mut tree, &env).unwrap();
        let Value::Map(entries) = &tree.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].key, "${HOME}");
        assert_eq!(entries[0].value.value, Value::Str("/home/me".into()));
    }
}
