//! The MCP admin tools (`proxy.admin_tools`): the proxy's own view of its
//! backends as tools any MCP client can call, listed under
//! [`ADMIN_TOOLS_NAME`] like a backend's (`proxy/backends`,
//! `proxy/errors`) and judged by the same `authorization:` rules, with
//! `proxy` as their backend's name. They read what `/admin/backends`
//! reads, cut down to the backends whose items the caller may use; they
//! change nothing. A rule whose backend pattern matches `proxy` — the
//! default `*` too — allows them, and without `authorization:` every
//! caller may use them.

use serde_json::{Value, json};

use super::Gateway;
use crate::auth::ItemKind;
use crate::backend::ListKind;
use crate::config::ADMIN_TOOLS_NAME;
use crate::jsonrpc::{self, ErrorObject};
use crate::session::Session;

/// `proxy/backends`: every backend's state.
const BACKENDS: &str = "backends";
/// `proxy/errors`: the last failed calls.
const ERRORS: &str = "errors";

impl Gateway {
    /// The admin tool a `tools/call` names, if admin tools are on and
    /// `name` is one of theirs (`proxy/<tool>`).
    pub(super) fn admin_tool<'a>(&self, name: &'a str) -> Option<&'a str> {
        if !self.admin_tools {
            return None;
        }
        let (backend, tool) = name.split_once(self.separator.as_str())?;
        (backend == ADMIN_TOOLS_NAME).then_some(tool)
    }

    /// The admin tools `session`'s caller may see, as `tools/list` shows them.
    pub(super) fn admin_tool_list(&self, session: &Session) -> Vec<Value> {
        if !self.admin_tools {
            return Vec::new();
        }
        [
            (
                BACKENDS,
                "Every backend of the proxy: its state, last error, restarts, calls in flight, circuit breaker, retries, hedges, timeouts, and each endpoint's state and ejection.",
                json!({}),
            ),
            (
                ERRORS,
                "The last failed calls to backends (up to 100), newest first: how long ago, the backend, the method and the error.",
                json!({ "backend": { "type": "string", "description": "Only this backend's failures." } }),
            ),
        ]
        .into_iter()
        .filter(|(tool, ..)| self.admin_access(session, tool).is_ok())
        .map(|(tool, description, properties)| {
            json!({
                "name": format!("{ADMIN_TOOLS_NAME}{}{tool}", self.separator),
                "description": description,
                "inputSchema": { "type": "object", "properties": properties },
                "annotations": { "readOnlyHint": true, "idempotentHint": true, "openWorldHint": false },
            })
        })
        .collect()
    }

    /// Answer a call of the admin tool `tool`.
    pub(super) fn call_admin_tool(
        &self,
        session: &Session,
        tool: &str,
        params: Option<&Value>,
    ) -> Result<Value, ErrorObject> {
        self.admin_access(session, tool)?;
        // A caller sees only the backends whose items it may use.
        let visible: Vec<usize> = (0..self.backends().len())
            .filter(|&index| self.may_hear(session, index))
            .collect();
        let structured = match tool {
            BACKENDS => {
                let statuses = self.statuses();
                let shown: Vec<_> = visible.iter().map(|&index| &statuses[index]).collect();
                json!({ "backends": shown })
            }
            ERRORS => {
                let backend = match params.and_then(|p| p.pointer("/arguments/backend")) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(name)) => Some(name.as_str()),
                    Some(other) => {
                        return Err(ErrorObject::new(
                            jsonrpc::INVALID_PARAMS,
                            format!("\"backend\" is a backend's name, not {other}"),
                        ));
                    }
                };
                let names: Vec<&str> = visible
                    .iter()
                    .map(|&index| self.backends()[index].name())
                    .collect();
                let errors: Vec<_> = self
                    .backends
                    .recent()
                    .shown(backend)
                    .into_iter()
                    .filter(|failure| names.contains(&failure.backend.as_str()))
                    .collect();
                json!({ "errors": errors })
            }
            _ => {
                return Err(ErrorObject::new(
                    jsonrpc::INVALID_PARAMS,
                    format!(
                        "unknown tool: {ADMIN_TOOLS_NAME}{}{tool} (the admin tools are {BACKENDS} and {ERRORS})",
                        self.separator
                    ),
                ));
            }
        };
        let text = serde_json::to_string_pretty(&structured).unwrap_or_default();
        Ok(json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": structured,
        }))
    }

    /// Whether `session`'s caller may use the admin tool `tool`: the rules
    /// of `authorization:` for a backend named [`ADMIN_TOOLS_NAME`].
    pub(super) fn admin_access(&self, session: &Session, tool: &str) -> Result<(), ErrorObject> {
        self.check_named_access(session, ItemKind::Tool, ADMIN_TOOLS_NAME, tool)
    }

    /// A list as the session sees it (`tools/list`: the admin tools after
    /// the backends' own).
    pub(super) fn listed_items(&self, session: &Session, kind: ListKind) -> Vec<Value> {
        let mut items = self.visible_items(session, kind);
        if kind == ListKind::Tools {
            items.extend(self.admin_tool_list(session));
        }
        items
    }
}
