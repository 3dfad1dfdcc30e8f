//! Request shaping between the session and the traffic layer: what a
//! primary's clients may see and call, what its calls carry, and which
//! calls need not reach a backend at all.
//!
//! ```text
//! filter (expose/hide) -> alias -> arguments (defaults, injections)
//!   -> size limit -> cache -> coalesce -> traffic (canary, mirror, failover)
//! ```
//!
//! [`rules`] decides names and arguments. Then a repeated read may be
//! answered from a short-lived [`cache`] of successful answers, and
//! identical calls that are in flight together are folded into one call by
//! [`coalesce`]. Both decide what "identical" means through one
//! [`RequestKey`], built here so that the two can never disagree. Because
//! the cache sits before the traffic layer, a cache hit is neither mirrored
//! nor sent to a canary; because the rules come first, a hidden tool cannot
//! be reached through an alias or a canary.
//!
//! Only reads are cached (`resources/read`, and tools the server marks
//! `readOnlyHint`) and only calls safe to repeat are coalesced (two
//! identical idempotent writes in flight may share one), never a call whose
//! client asked for progress (the others would get none).

pub(crate) mod cache;
pub(crate) mod coalesce;
pub(crate) mod rules;

use std::time::Duration;

use serde_json::Value;

use crate::config::{BackendConfig, CachePolicy};
use crate::jsonrpc::ErrorObject;
use cache::{CacheCounts, ResponseCache};
use coalesce::Coalescer;
use rules::Rules;

/// One primary's shaping.
pub(crate) struct Shaper {
    pub(crate) rules: Rules,
    cache: Option<(ResponseCache, CachePolicy)>,
    coalescer: Option<Coalescer<ErrorObject>>,
}

impl Shaper {
    pub(crate) fn new(config: &BackendConfig) -> Self {
        let shaping = &config.shaping;
        Self {
            rules: Rules::new(shaping),
            cache: shaping
                .cache
                .map(|policy| (ResponseCache::new(policy.max_entries), policy)),
            coalescer: shaping.coalesce.then(Coalescer::new),
        }
    }

    /// How long an answer to `method` may be reused, when it may.
    pub(crate) fn cache_ttl(&self, method: &str) -> Option<Duration> {
        let (_, policy) = self.cache.as_ref()?;
        match method {
            "tools/call" => policy.tools,
            "resources/read" => policy.resources,
            _ => None,
        }
    }

    pub(crate) fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref().map(|(cache, _)| cache)
    }

    pub(crate) fn coalescer(&self) -> Option<&Coalescer<ErrorObject>> {
        self.coalescer.as_ref()
    }

    /// Cache hits and misses, and calls that joined one in flight.
    pub(crate) fn counts(&self) -> (CacheCounts, u64) {
        (
            self.cache().map(ResponseCache::counts).unwrap_or_default(),
            self.coalescer.as_ref().map_or(0, Coalescer::coalesced),
        )
    }
}

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
