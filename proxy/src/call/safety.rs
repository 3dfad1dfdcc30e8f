//! Whether a call may be repeated once it may have reached the backend,
//! and whether it only reads: decided once per call, when the gateway
//! builds it, and carried down to every stage that asks (coalescing,
//! caching, failover, retry, hedging).
//!
//! MCP lets a server say so per tool (`annotations.readOnlyHint`,
//! `annotations.idempotentHint`); reads (`resources/read`, `prompts/get`)
//! are safe by nature; and the operator may name more tools in
//! `safe_to_repeat.tools` (patterns, `get_*`). Anything else — above all a
//! tool with side effects and no hints — is repeated only when it provably
//! never reached the backend.

use serde_json::Value;

use super::Method;
use crate::glob;

/// What may be done with a call beyond sending it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Safety {
    /// It may run twice without harm: retried, hedged, failed over or
    /// coalesced after it may have reached the backend.
    pub(crate) repeatable: bool,
    /// It only reads, so its answer may be served from a cache (an
    /// idempotent write is repeatable, but must run each time).
    pub(crate) read_only: bool,
}

impl Safety {
    /// Neither repeatable nor read-only: what a call is unless shown otherwise.
    pub(crate) const UNSAFE: Safety = Safety {
        repeatable: false,
        read_only: false,
    };

    /// The safety of `method` addressing `target` (the backend's own tool
    /// name, for `tools/call`). `tools` is the backend's tool list as
    /// listed, with annotations; `patterns` its `safe_to_repeat.tools`.
    pub(crate) fn of(method: Method, target: &str, tools: &[Value], patterns: &[String]) -> Self {
        match method {
            Method::ResourcesRead | Method::PromptsGet => Safety {
                repeatable: true,
                read_only: true,
            },
            Method::Ping | Method::List(_) => Safety {
                repeatable: true,
                read_only: false,
            },
            Method::ToolsCall => {
                let hints = tools
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(target))
                    .and_then(|t| t.get("annotations"));
                let hinted =
                    |hint: &str| hints.is_some_and(|a| a.get(hint) == Some(&Value::Bool(true)));
                let read_only = hinted("readOnlyHint");
                Safety {
                    repeatable: read_only
                        || hinted("idempotentHint")
                        || patterns.iter().any(|p| glob::matches(p, target)),
                    read_only,
                }
            }
            _ => Safety::UNSAFE,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::backend::ListKind;

    fn tool(name: &str, tools: &[Value], patterns: &[String]) -> Safety {
        Safety::of(Method::ToolsCall, name, tools, patterns)
    }

    #[test]
    fn only_reads_and_read_only_tools_are_read_only() {
        let tools = vec![
            json!({"name": "lookup", "annotations": {"readOnlyHint": true}}),
            json!({"name": "put", "annotations": {"idempotentHint": true}}),
        ];
        assert!(tool("lookup", &tools, &[]).read_only);
        assert!(!tool("put", &tools, &[]).read_only);
        assert!(!tool("missing", &tools, &[]).read_only);
        assert!(Safety::of(Method::ResourcesRead, "file:///a", &tools, &[]).read_only);
        assert!(!tool("", &tools, &[]).read_only);
    }

    #[test]
    fn hints_reads_and_patterns_make_a_call_safe() {
        let tools = vec![
            json!({"name": "lookup", "annotations": {"readOnlyHint": true}}),
            json!({"name": "put", "annotations": {"idempotentHint": true}}),
            json!({"name": "send", "annotations": {"readOnlyHint": false}}),
            json!({"name": "get_user"}),
        ];
        let patterns = vec!["get_*".to_owned()];
        assert!(tool("lookup", &tools, &[]).repeatable);
        assert!(tool("put", &tools, &[]).repeatable);
        assert!(!tool("send", &tools, &[]).repeatable);
        assert!(!tool("get_user", &tools, &[]).repeatable);
        assert!(tool("get_user", &tools, &patterns).repeatable);
        assert!(!tool("unknown", &tools, &[]).repeatable);
        assert!(!tool("", &tools, &[]).repeatable);
        assert!(Safety::of(Method::ResourcesRead, "", &[], &[]).repeatable);
        assert!(Safety::of(Method::PromptsGet, "", &[], &[]).repeatable);
        assert!(Safety::of(Method::List(ListKind::Tools), "", &[], &[]).repeatable);
        assert!(!Safety::of(Method::ResourcesSubscribe, "", &[], &[]).repeatable);
    }
}
