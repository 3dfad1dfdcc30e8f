//! A primary's naming and argument rules: what is visible (`expose`,
//! `hide`), what a tool is called (`aliases`), and what its calls carry
//! (`default_arguments`, `inject_arguments`, `max_argument_size`).
//!
//! Everything here speaks the backend's own names (after the prefix is
//! stripped). Visibility is decided on the backend's real name: a hidden
//! tool stays hidden under an alias, and an alias's target is listed and
//! called only as the alias (a rename, not a second name). The same rules
//! apply to the listing and to calls, so what a client cannot list it
//! cannot call.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::backend::ListKind;
use crate::config::{Injection, NamePatterns, Shaping};
use crate::glob;
use crate::jsonrpc::{self, ErrorObject};

/// One primary's rules.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    expose: NamePatterns,
    hide: NamePatterns,
    /// Client-facing name → backend name.
    alias_to: HashMap<String, String>,
    /// Backend name → client-facing name.
    alias_from: HashMap<String, String>,
    default_arguments: Map<String, Value>,
    inject: Vec<Injection>,
    max_argument_size: Option<usize>,
}

/// Why a call's arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) size: usize,
    pub(crate) limit: usize,
}

impl Rules {
    pub(crate) fn new(shaping: &Shaping) -> Self {
        Self {
            expose: shaping.expose.clone(),
            hide: shaping.hide.clone(),
            alias_to: shaping
                .aliases
                .iter()
                .map(|a| (a.from.clone(), a.to.clone()))
                .collect(),
            alias_from: shaping
                .aliases
                .iter()
                .map(|a| (a.to.clone(), a.from.clone()))
                .collect(),
            default_arguments: shaping.default_arguments.clone(),
            inject: shaping.inject_arguments.clone(),
            max_argument_size: shaping.max_argument_size,
        }
    }

    /// Whether the backend's item `name` (a tool or prompt name, a resource
    /// URI or template) of `kind` may be listed and used.
    pub(crate) fn visible(&self, kind: ListKind, name: &str) -> bool {
        let any = |list: &[String]| list.iter().any(|p| glob::matches(p, name));
        kind_patterns(&self.expose, kind).is_none_or(any)
            && !kind_patterns(&self.hide, kind).is_some_and(any)
    }

    /// The name clients see for the backend's tool `own`, or `None` when it
    /// is hidden.
    pub(crate) fn listed_tool(&self, own: &str) -> Option<String> {
        if !self.visible(ListKind::Tools, own) {
            return None;
        }
        Some(
            self.alias_from
                .get(own)
                .cloned()
                .unwrap_or_else(|| own.to_owned()),
        )
    }

    /// The backend's tool a client's `name` calls, or `None` when it names
    /// nothing the client may call (hidden, or renamed by an alias).
    pub(crate) fn called_tool(&self, name: &str) -> Option<String> {
        let own = match self.alias_to.get(name) {
            Some(target) => target.clone(),
            // A renamed tool answers only to its alias.
            None if self.alias_from.contains_key(name) => return None,
            None => name.to_owned(),
        };
        self.visible(ListKind::Tools, &own).then_some(own)
    }

    /// Completes the arguments of a call to the backend's tool `tool`:
    /// `default_arguments` where the client gave nothing, then each
    /// matching injection (over the client's value only with `overwrite`).
    pub(crate) fn shape_arguments(&self, tool: &str, arguments: &mut Map<String, Value>) {
        for (key, value) in &self.default_arguments {
            arguments
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        for injection in self.inject.iter().filter(|i| glob::matches(&i.tool, tool)) {
            for (key, value) in &injection.arguments {
                if injection.overwrite || !arguments.contains_key(key) {
                    arguments.insert(key.clone(), value.clone());
                }
            }
        }
    }

    /// Completes the params of a call of the tool `own` (`name` as the
    /// client called it) with the configured arguments, then checks their
    /// size.
    pub(crate) fn shape_tool_params(
        &self,
        own: &str,
        name: &str,
        params: &mut Value,
    ) -> Result<(), ErrorObject> {
        if self.touches_arguments() {
            let arguments = params
                .as_object_mut()
                .map(|p| p.entry("arguments").or_insert_with(|| json!({})));
            // Arguments that are not an object are the backend's to refuse.
            if let Some(Value::Object(arguments)) = arguments {
                self.shape_arguments(own, arguments);
            }
        }
        if let Some(arguments) = params.get("arguments")
            && let Err(TooLarge { size, limit }) = self.check_size(arguments)
        {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_PARAMS,
                format!(
                    "the arguments of {name} take {size} bytes, over the backend's max_argument_size of {limit} bytes"
                ),
            )
            .with_data(json!({ "size": size, "max_argument_size": limit })));
        }
        Ok(())
    }

    /// Whether `arguments`, as JSON, stay within `max_argument_size`.
    pub(crate) fn check_size(&self, arguments: &Value) -> Result<(), TooLarge> {
        let Some(limit) = self.max_argument_size else {
            return Ok(());
        };
        // Counting without building the text: serde_json writes into a sink.
        let mut counter = ByteCounter(0);
        let _ = serde_json::to_writer(&mut counter, arguments);
        if counter.0 > limit {
            return Err(TooLarge {
                size: counter.0,
                limit,
            });
        }
        Ok(())
    }

    /// Whether any rule would change a call's arguments (so the caller can
    /// skip the work when none would).
    pub(crate) fn touches_arguments(&self) -> bool {
        !self.default_arguments.is_empty() || !self.inject.is_empty()
    }
}

/// The patterns `patterns` gives for `kind`, if any.
fn kind_patterns(patterns: &NamePatterns, kind: ListKind) -> Option<&[String]> {
    match kind {
        ListKind::Tools => patterns.tools.as_deref(),
        ListKind::Prompts => patterns.prompts.as_deref(),
        ListKind::Resources | ListKind::ResourceTemplates => patterns.resources.as_deref(),
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Alias;

    fn patterns(tools: &[&str]) -> NamePatterns {
        NamePatterns {
            tools: Some(tools.iter().map(|t| (*t).to_owned()).collect()),
            ..NamePatterns::default()
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn expose_narrows_and_hide_removes() {
        let rules = Rules::new(&Shaping {
            expose: patterns(&["get_*", "query"]),
            hide: patterns(&["get_secret"]),
            ..Shaping::default()
        });
        assert!(rules.visible(ListKind::Tools, "get_user"));
        assert!(rules.visible(ListKind::Tools, "query"));
        assert!(
            !rules.visible(ListKind::Tools, "delete_user"),
            "not exposed"
        );
        assert!(!rules.visible(ListKind::Tools, "get_secret"), "hidden");
        // Kinds without patterns are not narrowed.
        assert!(rules.visible(ListKind::Prompts, "anything"));
        assert_eq!(rules.called_tool("delete_user"), None);
        assert_eq!(rules.listed_tool("get_secret"), None);
    }

    #[test]
    fn an_alias_renames_and_a_hidden_tool_stays_hidden_under_it() {
        let rules = Rules::new(&Shaping {
            aliases: vec![
                Alias {
                    from: "find".into(),
                    to: "query".into(),
                },
                Alias {
                    from: "peek".into(),
                    to: "secret".into(),
                },
            ],
            hide: patterns(&["secret"]),
            ..Shaping::default()
        });
        assert_eq!(rules.listed_tool("query").as_deref(), Some("find"));
        assert_eq!(rules.called_tool("find").as_deref(), Some("query"));
        assert_eq!(rules.called_tool("query"), None, "renamed, not duplicated");
        assert_eq!(
            rules.called_tool("peek"),
            None,
            "hidden under its alias too"
        );
        assert_eq!(rules.listed_tool("secret"), None);
        assert_eq!(rules.called_tool("other").as_deref(), Some("other"));
    }

    #[test]
    fn defaults_never_overwrite_and_injections_only_with_overwrite() {
        let rules = Rules::new(&Shaping {
            default_arguments: object(json!({ "limit": 10, "locale": "en" })),
            inject_arguments: vec![
                Injection {
                    tool: "query".into(),
                    arguments: object(json!({ "tenant": "acme" })),
                    overwrite: true,
                },
                Injection {
                    tool: "q*".into(),
                    arguments: object(json!({ "trace": true, "locale": "de" })),
                    overwrite: false,
                },
            ],
            ..Shaping::default()
        });
        let mut arguments = object(json!({ "limit": 3, "tenant": "evil" }));
        rules.shape_arguments("query", &mut arguments);
        assert_eq!(
            Value::Object(arguments),
            json!({ "limit": 3, "locale": "en", "tenant": "acme", "trace": true })
        );
        let mut other = Map::new();
        rules.shape_arguments("list", &mut other);
        assert_eq!(Value::Object(other), json!({ "limit": 10, "locale": "en" }));
    }

    #[test]
    fn arguments_over_the_limit_are_refused_with_their_size() {
        let rules = Rules::new(&Shaping {
            max_argument_size: Some(16),
            ..Shaping::default()
        });
        assert_eq!(rules.check_size(&json!({ "q": "short" })), Ok(()));
        assert_eq!(
            rules.check_size(&json!({ "q": "a longer value" })),
            Err(TooLarge {
                size: 22,
                limit: 16
            })
        );
        assert_eq!(
            Rules::new(&Shaping::default()).check_size(&json!("x".repeat(10_000))),
            Ok(())
        );
    }
}
