//! What makes two calls "identical" for the cache and for coalescing:
//! one [`RequestKey`], built here so that the two can never disagree.

use serde_json::Value;

/// What identifies one request for caching and coalescing: the backend, the
/// method, the backend's own name or URI, the arguments in canonical JSON
/// (object keys sorted, so {"a":1,"b":2} and {"b":2,"a":1} are one key), and the
/// caller identity (None until auth exists).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey {
    /// Index of the backend in the config.
    pub(crate) backend: usize,
    /// The JSON-RPC method, e.g. `tools/call` or `resources/read`.
    pub(crate) method: String,
    /// The tool or prompt name, or the resource URI, as the backend knows it
    /// (the namespace prefix already taken off).
    pub(crate) target: String,
    /// The arguments in canonical JSON; empty when the request had none.
    pub(crate) arguments: String,
    /// Who asked, so that one caller's answer is never served to another;
    /// under a sticky canary split, also which side of it the caller is on.
    pub(crate) caller: Option<String>,
}

impl RequestKey {
    /// Builds the key of one request.
    ///
    /// `arguments` is the request's `arguments` member only, not its whole
    /// `params`: `_meta` (progress tokens and the like) differs from call to
    /// call without changing the answer, so it must not split the key.
    ///
    /// No arguments and an empty object are kept apart (the empty string
    /// is no JSON text): a server may tell the two apart, and a key that
    /// merges requests the server distinguishes would serve a wrong answer.
    pub(crate) fn new(
        backend: usize,
        method: &str,
        target: &str,
        arguments: Option<&Value>,
        caller: Option<&str>,
    ) -> Self {
        Self {
            backend,
            method: method.to_owned(),
            target: target.to_owned(),
            arguments: arguments.map(canonical_json).unwrap_or_default(),
            caller: caller.map(str::to_owned),
        }
    }
}

/// `value` as compact JSON with the keys of every object sorted.
///
/// serde_json's `Map` is a `BTreeMap`, already sorted, unless its
/// `preserve_order` feature is on. Neither proxy/Cargo.toml nor the
/// workspace asks for it, so the proxy's own build has sorted maps, but the
/// tower-mcp dev-dependency turns it on, so the tests run with maps that
/// keep the order the client sent. The keys are sorted here rather than
/// trusting whichever `Map` a build ends up with.
///
/// Numbers are written as serde_json parsed them, so `1` and `1.0` stay two
/// keys; that only costs a cache miss, never a wrong answer.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Display on a string value writes it quoted and escaped.
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(arguments: Option<&Value>) -> RequestKey {
        RequestKey::new(0, "tools/call", "echo", arguments, None)
    }

    #[test]
    fn key_order_does_not_matter_at_any_depth() {
        // Parsed from text so that, with `preserve_order` on, the two maps
        // really do hold their keys in different orders.
        let a: Value =
            serde_json::from_str(r#"{"a":1,"b":{"x":[{"p":1,"q":2}],"y":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"b":{"y":null,"x":[{"q":2,"p":1}]},"a":1}"#).unwrap();
        assert_eq!(key(Some(&a)), key(Some(&b)));
        assert_eq!(
            key(Some(&b)).arguments,
            r#"{"a":1,"b":{"x":[{"p":1,"q":2}],"y":null}}"#
        );
    }

    #[test]
    fn different_arguments_are_different_keys() {
        assert_ne!(key(Some(&json!({"a": 1}))), key(Some(&json!({"a": 2}))));
        assert_ne!(key(Some(&json!([1, 2]))), key(Some(&json!([2, 1]))));
        assert_ne!(key(None), key(Some(&json!({}))));
        assert_ne!(key(Some(&json!("1"))), key(Some(&json!(1))));
    }

    #[test]
    fn strings_are_escaped_in_keys_and_values() {
        let args = json!({"q\"uote": "line\nbreak"});
        assert_eq!(key(Some(&args)).arguments, r#"{"q\"uote":"line\nbreak"}"#);
    }

    #[test]
    fn backend_method_target_and_caller_are_part_of_the_key() {
        let args = json!({"a": 1});
        let base = RequestKey::new(0, "tools/call", "echo", Some(&args), None);
        assert_ne!(
            base,
            RequestKey::new(1, "tools/call", "echo", Some(&args), None)
        );
        assert_ne!(
            base,
            RequestKey::new(0, "prompts/get", "echo", Some(&args), None)
        );
        assert_ne!(
            base,
            RequestKey::new(0, "tools/call", "other", Some(&args), None)
        );
        assert_ne!(
            base,
            RequestKey::new(0, "tools/call", "echo", Some(&args), Some("alice"))
        );
    }
}
