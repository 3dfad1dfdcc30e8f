//! What a backend offers: its capabilities and the four lists (tools,
//! resources, resource templates, prompts), fetched through every page.
//!
//! The lists are kept as the backend sent them; namespacing happens in the
//! gateway's catalog, so a backend's listing can be replaced alone when it
//! announces `list_changed`.

use serde_json::{Map, Value, json};

use crate::upstream::{Connection, Outbound, UpstreamError};

/// A safety stop for a backend whose `nextCursor` never ends.
const MAX_PAGES: usize = 1000;

/// One of the four listable kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ListKind {
    /// `tools/list` → `tools`.
    Tools,
    /// `resources/list` → `resources`.
    Resources,
    /// `resources/templates/list` → `resourceTemplates`.
    ResourceTemplates,
    /// `prompts/list` → `prompts`.
    Prompts,
}

impl ListKind {
    /// All four, in listing order.
    pub(crate) const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Resources,
        ListKind::ResourceTemplates,
        ListKind::Prompts,
    ];

    /// The list method.
    pub(crate) fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
            ListKind::Prompts => "prompts/list",
        }
    }

    /// The member of the list result that holds the items.
    pub(crate) fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Prompts => "prompts",
        }
    }

    /// The capability that must be advertised for the list to exist.
    pub(crate) fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Resources | ListKind::ResourceTemplates => "resources",
            ListKind::Prompts => "prompts",
        }
    }

    /// The kind a `notifications/*/list_changed` method announces, if any.
    pub(crate) fn from_list_changed(method: &str) -> Option<&'static [ListKind]> {
        match method {
            "notifications/tools/list_changed" => Some(&[ListKind::Tools]),
            "notifications/resources/list_changed" => {
                Some(&[ListKind::Resources, ListKind::ResourceTemplates])
            }
            "notifications/prompts/list_changed" => Some(&[ListKind::Prompts]),
            _ => None,
        }
    }

    /// The notification the proxy sends its clients when this kind changed.
    pub(crate) fn list_changed(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Resources | ListKind::ResourceTemplates => {
                "notifications/resources/list_changed"
            }
            ListKind::Prompts => "notifications/prompts/list_changed",
        }
    }
}

/// The items of the four listable kinds: a backend's own (in [`Listing`])
/// or the proxy's aggregate (in the gateway's catalog).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lists {
    /// Tools.
    pub tools: Vec<Value>,
    /// Resources.
    pub resources: Vec<Value>,
    /// Resource templates.
    pub resource_templates: Vec<Value>,
    /// Prompts.
    pub prompts: Vec<Value>,
}

impl Lists {
    /// The items of one kind.
    pub(crate) fn items(&self, kind: ListKind) -> &[Value] {
        match kind {
            ListKind::Tools => &self.tools,
            ListKind::Resources => &self.resources,
            ListKind::ResourceTemplates => &self.resource_templates,
            ListKind::Prompts => &self.prompts,
        }
    }

    /// The items of one kind, to replace or extend.
    pub(crate) fn items_mut(&mut self, kind: ListKind) -> &mut Vec<Value> {
        match kind {
            ListKind::Tools => &mut self.tools,
            ListKind::Resources => &mut self.resources,
            ListKind::ResourceTemplates => &mut self.resource_templates,
            ListKind::Prompts => &mut self.prompts,
        }
    }
}

/// A backend's capabilities and lists, as last fetched.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Listing {
    /// `capabilities` from the backend's `initialize` result.
    pub capabilities: Map<String, Value>,
    /// Items of each kind, in the backend's order.
    pub lists: Lists,
}

impl Listing {
    /// Capabilities from an `initialize` result, with empty lists.
    pub(crate) fn from_initialize(init: &Value) -> Self {
        let capabilities = init
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Self {
            capabilities,
            ..Self::default()
        }
    }

    /// Whether the backend advertises the capability a kind needs.
    pub(crate) fn offers(&self, kind: ListKind) -> bool {
        self.capabilities.contains_key(kind.capability())
    }
}

/// Fetch every page of one list. A kind the backend does not offer is empty.
pub(crate) async fn fetch(
    connection: &Connection,
    kind: ListKind,
) -> Result<Vec<Value>, UpstreamError> {
    let mut items = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.take().map(|cursor| json!({ "cursor": cursor }));
        let result = connection
            .request(kind.method(), params, None, Outbound::default())
            .await?;
        if let Some(page) = result.get(kind.field()).and_then(Value::as_array) {
            items.extend(page.iter().filter(|item| item.is_object()).cloned());
        }
        match result.get("nextCursor") {
            Some(next) if next.is_string() => cursor = Some(next.clone()),
            _ => return Ok(items),
        }
    }
    tracing::warn!(
        kind = kind.method(),
        "backend kept paginating; stopped after {MAX_PAGES} pages"
    );
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decide_what_is_offered() {
        let listing = Listing::from_initialize(
            &json!({"capabilities": {"tools": {}, "resources": {"subscribe": true}}}),
        );
        assert!(listing.offers(ListKind::Tools));
        assert!(listing.offers(ListKind::ResourceTemplates));
        assert!(!listing.offers(ListKind::Prompts));
    }

    #[test]
    fn list_changed_names_its_kinds() {
        assert_eq!(
            ListKind::from_list_changed("notifications/resources/list_changed"),
            Some(&[ListKind::Resources, ListKind::ResourceTemplates][..])
        );
        assert_eq!(ListKind::from_list_changed("notifications/message"), None);
    }
}
