//! The aggregated namespace the proxy shows its clients.
//!
//! Built from every backend's last [`Listing`]: tool and prompt names become
//! `backend<separator>name`, resources and resource templates keep their URIs
//! (URIs are identities that clients receive from other places too, such as
//! `resource_link` content, so rewriting them would break links) and get the
//! prefix on their `name`. A URI is routed to the backend that owns it
//! ([`Catalog::owner`]): the one that lists it, else the one whose listed URI
//! or template's literal part is its longest prefix, else the only backend
//! serving resources with its scheme, else the only backend serving
//! resources at all. A backend may serve URIs it does not list (server
//! -everything accepts any subscription), so the proxy answers `-32002` in
//! its place only when it cannot tell whose a URI is. Capabilities are the
//! union of what each backend last said it offers, or, for one that never
//! connected yet, what its config implies (`capabilities:`, tools by
//! default). Built when the gateway starts and rebuilt whole whenever a
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
    /// Listed URIs and templates' literal parts, each with its backend, in
    /// config order: who owns a URI no backend lists.
    prefixes: Vec<(String, usize)>,
    /// The backends (in config order) that offer resources, each with the
    /// schemes of the URIs and templates it lists.
    resource_backends: Vec<(usize, Vec<String>)>,
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

/// Why no backend owns a URI: the proxy answers `-32002` in their place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unowned {
    /// No backend offers resources.
    NoResourceBackend,
    /// Several backends offer resources and none lists the URI, a prefix
    /// of it, or (alone) its scheme: the proxy cannot tell whose it is.
    Ambiguous {
        /// How many backends offer resources.
        candidates: usize,
    },
}

impl std::fmt::Display for Unowned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoResourceBackend => write!(f, "no backend serves resources"),
            Self::Ambiguous { candidates } => write!(
                f,
                "no backend lists it or a prefix of it, and {candidates} backends serve \
                 resources (none alone with its scheme), so it cannot be routed"
            ),
        }
    }
}

/// The scheme of a URI (RFC 3986: a letter, then letters, digits, `+`, `-`
/// or `.`, before the first `:`), if it has one.
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
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
            if backend.has_listed() {
                catalog.add(index, backend.name(), &listing, rules[index], separator);
            } else {
                // Never connected yet: what its config says it offers, so
                // a client initializing now knows of its lists.
                let implied = Listing {
                    capabilities: backend.configured_capabilities(),
                    lists: listing.lists.clone(),
                };
                catalog.add(index, backend.name(), &implied, rules[index], separator);
            }
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
            self.prefixes.push((uri.to_owned(), index));
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
            self.prefixes.push((literal_prefix.clone(), index));
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
        if listing.capabilities.contains_key("resources") {
            let mut schemes: Vec<String> = (listing.lists.resources.iter())
                .filter_map(|r| r.get("uri").and_then(Value::as_str))
                .chain(
                    (listing.lists.resource_templates.iter())
                        .filter_map(|t| t.get("uriTemplate").and_then(Value::as_str)),
                )
                .filter_map(scheme)
                .map(str::to_ascii_lowercase)
                .collect();
            schemes.sort_unstable();
            schemes.dedup();
            self.resource_backends.push((index, schemes));
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

    /// Which backend owns a resource URI, listed or not: the one that lists
    /// it; else the one whose listed URI or template's literal part is the
    /// longest prefix of it (the first in config order of equals); else the
    /// only backend offering resources that lists URIs of its scheme; else
    /// the only backend offering resources. Hiding rules are the caller's
    /// to apply.
    pub(crate) fn owner(&self, uri: &str) -> Result<usize, Unowned> {
        if let Some(&backend) = self.resource_routes.get(uri) {
            return Ok(backend);
        }
        let longest = (self.prefixes.iter())
            .filter(|(prefix, _)| uri.starts_with(prefix.as_str()))
            // `max_by_key` keeps the last of equals; reversing makes the
            // first in config order win a tie.
            .rev()
            .max_by_key(|(prefix, _)| prefix.len());
        if let Some(&(_, backend)) = longest {
            return Ok(backend);
        }
        if let Some(scheme) = scheme(uri).map(str::to_ascii_lowercase) {
            let mut same = (self.resource_backends.iter())
                .filter(|(_, schemes)| schemes.contains(&scheme))
                .map(|&(backend, _)| backend);
            if let (Some(backend), None) = (same.next(), same.next()) {
                return Ok(backend);
            }
        }
        match self.resource_backends.as_slice() {
            [] => Err(Unowned::NoResourceBackend),
            [(backend, _)] => Ok(*backend),
            several => Err(Unowned::Ambiguous {
                candidates: several.len(),
            }),
        }
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

    fn tools_only() -> Listing {
        Listing {
            capabilities: json!({"tools": {}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            lists: Lists::default(),
        }
    }

    /// Add a backend that offers resources, listing `resources` and `templates`.
    fn add_resources(catalog: &mut Catalog, index: usize, resources: &[&str], templates: &[&str]) {
        let listing = listing(&[], resources, templates);
        catalog.add(index, "x", &listing, &Rules::default(), "/");
    }

    #[test]
    fn an_unlisted_uri_goes_to_its_owner_by_prefix_then_scheme_then_alone() {
        let mut catalog = Catalog::default();
        catalog.add(0, "tools", &tools_only(), &Rules::default(), "/");
        add_resources(&mut catalog, 1, &["test://static/1"], &["db://{table}"]);
        // One backend serves resources: every URI is its own.
        assert_eq!(catalog.owner("test://watched-resource"), Ok(1));
        assert_eq!(catalog.owner("nowhere://x"), Ok(1));
        assert_eq!(catalog.owner("no scheme at all"), Ok(1));
        add_resources(&mut catalog, 2, &["file:///docs/"], &["test://users/{id}"]);
        // A listed URI or a template's literal part, the longest prefix wins.
        assert_eq!(catalog.owner("file:///docs/readme"), Ok(2));
        assert_eq!(catalog.owner("test://static/1/more"), Ok(1));
        assert_eq!(catalog.owner("test://users/7/x"), Ok(2));
        // By scheme only when one backend alone lists URIs of it.
        assert_eq!(catalog.owner("DB://orders"), Ok(1), "schemes ignore case");
        assert_eq!(catalog.owner("file:///elsewhere"), Ok(2));
        // Two backends list test:// URIs; nobody lists nowhere://.
        let ambiguous = Err(Unowned::Ambiguous { candidates: 2 });
        assert_eq!(catalog.owner("test://watched-resource"), ambiguous);
        assert_eq!(catalog.owner("nowhere://x"), ambiguous);
        // A tools-only proxy has no owner for any URI.
        let mut tools = Catalog::default();
        tools.add(0, "tools", &tools_only(), &Rules::default(), "/");
        assert_eq!(tools.owner("test://x"), Err(Unowned::NoResourceBackend));
    }

    #[test]
    fn a_tie_of_prefixes_goes_to_the_first_backend() {
        let mut catalog = Catalog::default();
        for index in 0..2 {
            add_resources(&mut catalog, index, &[], &["db://users/{id}"]);
        }
        assert_eq!(catalog.owner("db://users/ann"), Ok(0));
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
