//! The aggregated namespace the proxy shows its clients.
//!
//! Built from every backend's last [`Listing`]: tool and prompt names become
//! `backend<separator>name`, resources and resource templates keep their URIs
//! (URIs are identities that clients receive from other places too, such as
//! `resource_link` content, so rewriting them would break links) and get the
//! prefix on their `name`. A read is routed by exact URI first, then by the
//! longest literal prefix of a resource template. Rebuilt whole whenever a
//! backend's listing changes; readers hold an `Arc` snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::backend::{Backend, ListKind, Listing, Lists};
use crate::shaping::rules::Rules;

/// One snapshot of everything the proxy lists.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    lists: Lists,
    resource_routes: HashMap<String, usize>,
    template_routes: Vec<TemplateRoute>,
    capabilities: Map<String, Value>,
    /// Whose each listed item is, in list order, so that a list can be cut
    /// down to what one caller may see.
    owners: HashMap<ListKind, Vec<Owner>>,
}

/// The backend a listed item comes from, and the name access rules know it
/// by: a tool's or prompt's name without the prefix (a tool's alias, if it
/// has one), a resource's URI, a template's URI template.
#[derive(Debug)]
pub(crate) struct Owner {
    /// The backend's index in config order.
    pub backend: usize,
    /// The item's name for access rules.
    pub name: String,
}

#[derive(Debug)]
struct TemplateRoute {
    template: String,
    literal_prefix: String,
    backend: usize,
}

impl Catalog {
    /// Aggregate the listings of all backends, in config order, each as
    /// its shaping `rules` show it (`rules[i]` belongs to `backends[i]`).
    pub(crate) fn build(backends: &[Arc<Backend>], rules: &[&Rules], separator: &str) -> Self {
        let mut catalog = Catalog::default();
        for (index, backend) in backends.iter().enumerate() {
            // A canary's, mirror's or failover's names are its primary's.
            if !backend.serves_own_traffic() {
                continue;
            }
            let listing = backend.listing();
            catalog.add(index, backend.name(), &listing, rules[index], separator);
        }
        catalog
    }

    fn add(
        &mut self,
        index: usize,
        backend: &str,
        listing: &Listing,
        rules: &Rules,
        separator: &str,
    ) {
        let named = |item: &Value, name: &str| -> Option<Value> {
            let mut item = item.as_object()?.clone();
            let name = format!("{backend}{separator}{name}");
            item.insert("name".into(), Value::String(name));
            Some(Value::Object(item))
        };
        let own_name = |item: &Value| item.get("name").and_then(Value::as_str).map(str::to_owned);
        let prefixed = |item: &Value| named(item, &own_name(item)?);
        for tool in &listing.lists.tools {
            let Some(listed) = own_name(tool).and_then(|own| rules.listed_tool(&own)) else {
                continue;
            };
            if let Some(item) = named(tool, &listed) {
                self.push(ListKind::Tools, item, index, listed);
            }
        }
        for prompt in &listing.lists.prompts {
            let Some(own) = own_name(prompt).filter(|n| rules.visible(ListKind::Prompts, n)) else {
                continue;
            };
            if let Some(item) = named(prompt, &own) {
                self.push(ListKind::Prompts, item, index, own);
            }
        }
        for resource in &listing.lists.resources {
            let Some(uri) = resource.get("uri").and_then(Value::as_str) else {
                continue;
            };
            if !rules.visible(ListKind::Resources, uri) {
                continue;
            }
            if let Some(&owner) = self.resource_routes.get(uri) {
                tracing::warn!(
                    uri,
                    backend,
                    owner,
                    "resource URI listed by two backends; the first keeps it"
                );
                continue;
            }
            self.resource_routes.insert(uri.to_owned(), index);
            if let Some(item) = prefixed(resource) {
                self.push(ListKind::Resources, item, index, uri.to_owned());
            }
        }
        for template in &listing.lists.resource_templates {
            let Some(uri_template) = template.get("uriTemplate").and_then(Value::as_str) else {
                continue;
            };
            if !rules.visible(ListKind::ResourceTemplates, uri_template) {
                continue;
            }
            let literal_prefix = uri_template
                .split('{')
                .next()
                .unwrap_or_default()
                .to_owned();
            self.template_routes.push(TemplateRoute {
                template: uri_template.to_owned(),
                literal_prefix,
                backend: index,
            });
            if let Some(item) = prefixed(template) {
                self.push(
                    ListKind::ResourceTemplates,
                    item,
                    index,
                    uri_template.to_owned(),
                );
            }
        }
        self.merge_capabilities(&listing.capabilities);
    }

    /// List `item` of `kind`, owned by `backend` under `name`.
    fn push(&mut self, kind: ListKind, item: Value, backend: usize, name: String) {
        self.lists.items_mut(kind).push(item);
        self.owners
            .entry(kind)
            .or_default()
            .push(Owner { backend, name });
    }

    /// The union of what backends offer. `listChanged` is always on for the
    /// lists because the proxy re-lists and notifies whenever a backend's
    /// lists change or it comes back.
    fn merge_capabilities(&mut self, offered: &Map<String, Value>) {
        for (name, value) in offered {
            match name.as_str() {
                "tools" | "prompts" => {
                    self.capabilities
                        .insert(name.clone(), json!({ "listChanged": true }));
                }
                "resources" => {
                    let subscribe = value
                        .get("subscribe")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let entry = self
                        .capabilities
                        .entry("resources")
                        .or_insert_with(|| json!({ "listChanged": true }));
                    if subscribe {
                        entry["subscribe"] = Value::Bool(true);
                    }
                }
                "completions" | "logging" => {
                    self.capabilities.insert(name.clone(), json!({}));
                }
                _ => {}
            }
        }
    }

    /// The namespaced items of one kind.
    pub(crate) fn items(&self, kind: ListKind) -> &[Value] {
        self.lists.items(kind)
    }

    /// The namespaced items of one kind, each with its owner.
    pub(crate) fn owned_items(&self, kind: ListKind) -> impl Iterator<Item = (&Value, &Owner)> {
        self.items(kind)
            .iter()
            .zip(self.owners.get(&kind).into_iter().flatten())
    }

    /// The capabilities the proxy advertises in `initialize`.
    pub(crate) fn capabilities(&self) -> &Map<String, Value> {
        &self.capabilities
    }

    /// Which backend serves a resource URI: an exact listed URI, else the
    /// template with the longest matching literal prefix.
    pub(crate) fn route_uri(&self, uri: &str) -> Option<usize> {
        if let Some(&backend) = self.resource_routes.get(uri) {
            return Some(backend);
        }
        self.template_routes
            .iter()
            .filter(|route| uri.starts_with(&route.literal_prefix))
            // `max_by_key` keeps the last of equals; reversing makes the
            // first backend in config order win a tie.
            .rev()
            .max_by_key(|route| route.literal_prefix.len())
            .map(|route| route.backend)
    }

    /// Which backend owns a resource template (for `completion/complete`).
    pub(crate) fn route_template(&self, uri_template: &str) -> Option<usize> {
        self.template_routes
            .iter()
            .find(|route| route.template == uri_template)
            .map(|route| route.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(tools: &[&str], resources: &[&str], templates: &[&str]) -> Listing {
        Listing {
            capabilities: json!({"tools": {}, "resources": {"subscribe": true}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            lists: Lists {
                tools: tools
                    .iter()
                    .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
                    .collect(),
                resources: resources
                    .iter()
                    .map(|uri| json!({"name": "r", "uri": uri}))
                    .collect(),
                resource_templates: templates
                    .iter()
                    .map(|t| json!({"name": "t", "uriTemplate": t}))
                    .collect(),
                prompts: vec![],
            },
        }
    }

    fn tool_names(catalog: &Catalog) -> Vec<&str> {
        catalog
            .items(ListKind::Tools)
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect()
    }

    #[test]
    fn the_rules_filter_and_rename_what_is_listed_and_routed() {
        use crate::config::{Alias, NamePatterns, Shaping};
        let rules = Rules::new(&Shaping {
            hide: NamePatterns {
                tools: Some(vec!["secret".into()]),
                resources: Some(vec!["file:///private/*".into(), "db://hidden/*".into()]),
                prompts: None,
            },
            aliases: vec![Alias {
                from: "say".into(),
                to: "echo".into(),
            }],
            ..Shaping::default()
        });
        let mut catalog = Catalog::default();
        catalog.add(
            0,
            "a",
            &listing(
                &["echo", "secret", "other"],
                &["file:///private/key", "file:///public"],
                &["db://hidden/{id}", "db://open/{id}"],
            ),
            &rules,
            "/",
        );
        let names = tool_names(&catalog);
        assert_eq!(names, ["a/say", "a/other"]);
        assert_eq!(catalog.route_uri("file:///private/key"), None);
        assert_eq!(catalog.route_uri("file:///public"), Some(0));
        assert_eq!(catalog.route_uri("db://hidden/1"), None);
        assert_eq!(catalog.route_uri("db://open/1"), Some(0));
    }

    #[test]
    fn names_are_prefixed_and_uris_routed() {
        let mut catalog = Catalog::default();
        catalog.add(
            0,
            "a",
            &listing(&["echo"], &["file:///x"], &["db://{table}"]),
            &Rules::default(),
            "/",
        );
        catalog.add(
            1,
            "b",
            &listing(&["echo"], &["file:///x", "file:///y"], &["db://users/{id}"]),
            &Rules::default(),
            "/",
        );
        let names = tool_names(&catalog);
        assert_eq!(names, ["a/echo", "b/echo"]);
        assert_eq!(
            catalog.items(ListKind::Resources).len(),
            2,
            "a duplicate URI is listed once"
        );
        assert_eq!(catalog.route_uri("file:///x"), Some(0));
        assert_eq!(catalog.route_uri("file:///y"), Some(1));
        assert_eq!(catalog.route_uri("db://orders"), Some(0));
        assert_eq!(
            catalog.route_uri("db://users/7"),
            Some(1),
            "longest template prefix wins"
        );
        assert_eq!(catalog.route_uri("http://elsewhere"), None);
        catalog.add(
            2,
            "c",
            &listing(&[], &[], &["db://users/{name}"]),
            &Rules::default(),
            "/",
        );
        assert_eq!(
            catalog.route_uri("db://users/ann"),
            Some(1),
            "a tie goes to the first backend"
        );
        assert_eq!(
            catalog.capabilities()["resources"],
            json!({"listChanged": true, "subscribe": true})
        );
        assert!(!catalog.capabilities().contains_key("prompts"));
    }
}
