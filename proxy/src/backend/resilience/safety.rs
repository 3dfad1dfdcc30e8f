//! Whether a call is safe to repeat once it may have reached the backend.
//!
//! MCP lets a server say so per tool (`annotations.readOnlyHint`,
//! `annotations.idempotentHint`); reads (`resources/read`, `prompts/get`,
//! the `*/list` methods, `ping`) are safe by nature; and the operator may
//! name more tools in `safe_to_repeat.tools` (patterns, `get_*`). Anything
//! else — above all a tool with side effects and no hints — is repeated only
//! when it provably never reached the backend.

use serde_json::Value;

use crate::glob;

/// Whether `method` with `params` may be repeated. `tools` is the backend's
/// own tool list (as listed, with annotations); `patterns` the configured
/// `safe_to_repeat.tools`.
pub(crate) fn safe_to_repeat(
    method: &str,
    params: Option<&Value>,
    tools: &[Value],
    patterns: &[String],
) -> bool {
    match method {
        "resources/read" | "prompts/get" | "ping" => true,
        m if m.ends_with("/list") => true,
        "tools/call" => {
            let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
                return false;
            };
            patterns.iter().any(|p| glob::matches(p, name))
                || hinted(tools, name, &["readOnlyHint", "idempotentHint"])
        }
        _ => false,
    }
}

/// Whether a call only reads: a read method, or a tool the server marks
/// `readOnlyHint` (an idempotent write is safe to repeat, but its answer
/// must not be served from a cache instead of running it).
pub(crate) fn read_only(method: &str, params: Option<&Value>, tools: &[Value]) -> bool {
    match method {
        "resources/read" | "prompts/get" => true,
        "tools/call" => params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|name| hinted(tools, name, &["readOnlyHint"])),
        _ => false,
    }
}

/// Whether the listed tool `name` carries any of `hints` as `true`.
fn hinted(tools: &[Value], name: &str, hints: &[&str]) -> bool {
    tools
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|t| t.get("annotations"))
        .is_some_and(|a| hints.iter().any(|h| a.get(h) == Some(&Value::Bool(true))))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{read_only, safe_to_repeat};

    #[test]
    fn only_reads_and_read_only_tools_are_read_only() {
        let tools = vec![
            json!({"name": "lookup", "annotations": {"readOnlyHint": true}}),
            json!({"name": "put", "annotations": {"idempotentHint": true}}),
        ];
        let call = |name: &str| json!({"name": name});
        assert!(read_only("tools/call", Some(&call("lookup")), &tools));
        assert!(!read_only("tools/call", Some(&call("put")), &tools));
        assert!(!read_only("tools/call", Some(&call("missing")), &tools));
        assert!(read_only("resources/read", None, &tools));
        assert!(!read_only("tools/call", None, &tools));
    }

    #[test]
    fn hints_reads_and_patterns_make_a_call_safe() {
        let tools = vec![
            json!({"name": "lookup", "annotations": {"readOnlyHint": true}}),
            json!({"name": "put", "annotations": {"idempotentHint": true}}),
            json!({"name": "send", "annotations": {"readOnlyHint": false}}),
            json!({"name": "get_user"}),
        ];
        let call = |name: &str| json!({"name": name, "arguments": {}});
        let patterns = vec!["get_*".to_owned()];
        assert!(safe_to_repeat(
            "tools/call",
            Some(&call("lookup")),
            &tools,
            &[]
        ));
        assert!(safe_to_repeat(
            "tools/call",
            Some(&call("put")),
            &tools,
            &[]
        ));
        assert!(!safe_to_repeat(
            "tools/call",
            Some(&call("send")),
            &tools,
            &[]
        ));
        assert!(!safe_to_repeat(
            "tools/call",
            Some(&call("get_user")),
            &tools,
            &[]
        ));
        assert!(safe_to_repeat(
            "tools/call",
            Some(&call("get_user")),
            &tools,
            &patterns
        ));
        assert!(!safe_to_repeat(
            "tools/call",
            Some(&call("unknown")),
            &tools,
            &[]
        ));
        assert!(!safe_to_repeat("tools/call", None, &tools, &[]));
        assert!(safe_to_repeat("resources/read", None, &[], &[]));
        assert!(safe_to_repeat("prompts/get", None, &[], &[]));
        assert!(safe_to_repeat("tools/list", None, &[], &[]));
        assert!(!safe_to_repeat("resources/subscribe", None, &[], &[]));
    }
}
