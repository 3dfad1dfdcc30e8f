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

use std::collections::HashMap;

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
            Method::ToolsCall => {
                let listed = tools
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(target));
                Self::tool(target, listed, patterns)
            }
            _ => Self::method(method),
        }
    }

    /// What a method is by nature (a tool call is unsafe unless shown
    /// otherwise).
    fn method(method: Method) -> Self {
        match method {
            Method::ResourcesRead | Method::PromptsGet => Safety {
                repeatable: true,
                read_only: true,
            },
            Method::Ping | Method::List(_) => Safety {
                repeatable: true,
                read_only: false,
            },
            _ => Safety::UNSAFE,
        }
    }

    /// A call of the tool `name`, as the backend listed it (`None`: not
    /// listed, so only `patterns` can make it safe).
    fn tool(name: &str, listed: Option<&Value>, patterns: &[String]) -> Self {
        let hints = listed.and_then(|t| t.get("annotations"));
        let hinted = |hint: &str| hints.is_some_and(|a| a.get(hint) == Some(&Value::Bool(true)));
        let read_only = hinted("readOnlyHint");
        Safety {
            repeatable: read_only
                || hinted("idempotentHint")
                || patterns.iter().any(|p| glob::matches(p, name)),
            read_only,
        }
    }
}

/// The safety of every tool of one listing, worked out once when the
/// backend lists, so that deciding a call's safety is one lookup.
#[derive(Debug, Default)]
pub(crate) struct ToolSafety {
    tools: HashMap<String, Safety>,
}

impl ToolSafety {
    /// Each of `tools` (as listed) under `patterns` (`safe_to_repeat.tools`).
    pub(crate) fn new(tools: &[Value], patterns: &[String]) -> Self {
        let mut by_name = HashMap::with_capacity(tools.len());
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                // A name listed twice is the first one, as a lookup finds it.
                by_name
                    .entry(name.to_owned())
                    .or_insert_with(|| Safety::tool(name, Some(tool), patterns));
            }
        }
        Self { tools: by_name }
    }

    /// The safety of `method` addressing `target`; `patterns` are the ones
    /// the table was built with, for a tool the listing does not have.
    pub(crate) fn of(&self, method: Method, target: &str, patterns: &[String]) -> Safety {
        match method {
            Method::ToolsCall => self
                .tools
                .get(target)
                .copied()
                .unwrap_or_else(|| Safety::tool(target, None, patterns)),
            _ => Safety::method(method),
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

    #[test]
    fn the_table_of_a_listing_agrees_with_a_lookup_in_it() {
        let tools = vec![
            json!({"name": "lookup", "annotations": {"readOnlyHint": true}}),
            json!({"name": "put", "annotations": {"idempotentHint": true}}),
            json!({"name": "send"}),
            json!({"name": "send", "annotations": {"readOnlyHint": true}}),
            json!({"no name": true}),
        ];
        let patterns = vec!["get_*".to_owned()];
        let table = ToolSafety::new(&tools, &patterns);
        for name in ["lookup", "put", "send", "get_user", "unknown", ""] {
            assert_eq!(
                table.of(Method::ToolsCall, name, &patterns),
                tool(name, &tools, &patterns),
                "{name}"
            );
        }
        assert_eq!(
            table.of(Method::ResourcesRead, "file:///a", &patterns),
            Safety::of(Method::ResourcesRead, "file:///a", &tools, &patterns)
        );
    }
}
