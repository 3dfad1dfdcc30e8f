//! What makes two calls "identical" for the cache and for coalescing:
//! one [`RequestKey`], built here so that the two can never disagree.

use std::sync::Arc;

use serde_json::Value;

/// What identifies one request for caching and coalescing: the backend, the
/// method, the backend's own name or URI, the arguments in canonical JSON
/// (object keys sorted, so {"a":1,"b":2} and {"b":2,"a":1} are one key), and the
/// caller identity (None until auth exists). Shared: the cache and the
/// coalescer each keep a copy, which costs a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RequestKey(Arc<Parts>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct Parts {
    /// Index of the backend in the config.
    backend: usize,
    /// The JSON-RPC method, e.g. `tools/call` or `resources/read`.
    method: &'static str,
    /// The tool or prompt name, or the resource URI, as the backend knows it
    /// (the namespace prefix already taken off).
    target: String,
    /// The arguments in canonical JSON; empty when the request had none.
    arguments: String,
    /// Who asked, so that one caller's answer is never served to another;
    /// under a sticky canary split, also which side of it the caller is on.
    caller: Option<String>,
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
        method: &'static str,
        target: &str,
        arguments: Option<&Value>,
        caller: Option<&str>,
    ) -> Self {
        Self(Arc::new(Parts {
            backend,
            method,
            target: target.to_owned(),
            arguments: arguments.map(canonical_json).unwrap_or_default(),
            caller: caller.map(str::to_owned),
        }))
    }
}

/// `value` as JSON with every object's keys sorted, at any depth, and no
/// whitespace: one text per value, whatever order its keys came in (the
/// audit log digests it too).
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // Only JSON was written: strings as serde_json escapes them, so UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes straight into one buffer: a key is built for every call a cache
/// or coalescing applies to, so no string is allocated per member.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// A string, number, boolean or null as compact JSON. Writing to a `Vec`
/// cannot fail, nor can serializing these.
fn write_scalar(scalar: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, scalar);
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
            key(Some(&b)).0.arguments,
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
        assert_eq!(key(Some(&args)).0.arguments, r#"{"q\"uote":"line\nbreak"}"#);
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
