//! The `authorization:` rules: which tools, resources and prompts each
//! role may see and use.
//!
//! A caller may use an item when no rule of any of its roles denies it and
//! one allows it; when none matches, `default` decides. A deny always wins,
//! whatever the order of roles or rules. A rule matches an item when its
//! `backend` pattern matches the item's backend and, if it names any kinds
//! (`tools`, `resources`, `prompts`), one pattern of the item's kind
//! matches its name; a rule that names no kind covers all three. Patterns
//! are [`crate::glob`]'s (`*` any run), as elsewhere in the config.

use super::{Item, ItemKind};
use crate::config::{Access, AccessRule, Authorization};
use crate::glob;

/// The `authorization:` rules.
pub(crate) struct Policy {
    config: Authorization,
}

impl Policy {
    /// From the config.
    pub(crate) fn new(config: &Authorization) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// Whether a caller with `roles` may see and use `item`: a matching
    /// deny of any role refuses, else a matching allow of any role allows,
    /// else `default`.
    pub(crate) fn allows(&self, roles: &[String], item: Item<'_>) -> bool {
        let mut allowed = false;
        for role in roles {
            match self.verdict(role, item) {
                Some(Access::Deny) => return false,
                Some(Access::Allow) => allowed = true,
                None => {}
            }
        }
        allowed || self.config.default == Access::Allow
    }

    /// A role that would be allowed `item` (and not denied it), for a 403's `scope`.
    pub(crate) fn role_allowing(&self, item: Item<'_>) -> Option<&str> {
        self.config
            .roles
            .keys()
            .find(|role| self.verdict(role, item) == Some(Access::Allow))
            .map(String::as_str)
    }

    /// What `role`'s rules say about `item`: deny if any matching rule
    /// denies, allow if one allows, nothing if none matches.
    fn verdict(&self, role: &str, item: Item<'_>) -> Option<Access> {
        let mut verdict = None;
        for rule in self
            .config
            .roles
            .get(role)?
            .iter()
            .filter(|rule| covers(rule, item))
        {
            match rule.access {
                Access::Deny => return Some(Access::Deny),
                Access::Allow => verdict = Some(Access::Allow),
            }
        }
        verdict
    }
}

/// Whether `rule` is about `item`.
fn covers(rule: &AccessRule, item: Item<'_>) -> bool {
    if !glob::matches(&rule.backend, item.backend) {
        return false;
    }
    if rule.tools.is_none() && rule.resources.is_none() && rule.prompts.is_none() {
        return true;
    }
    let patterns = match item.kind {
        ItemKind::Tool => &rule.tools,
        ItemKind::Resource => &rule.resources,
        ItemKind::Prompt => &rule.prompts,
    };
    patterns
        .iter()
        .flatten()
        .any(|pattern| glob::matches(pattern, item.name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn rule(access: Access, backend: &str, tools: Option<&[&str]>) -> AccessRule {
        AccessRule {
            access,
            backend: backend.into(),
            tools: tools.map(|t| t.iter().map(|s| (*s).into()).collect()),
            resources: None,
            prompts: None,
        }
    }

    fn tool<'a>(backend: &'a str, name: &'a str) -> Item<'a> {
        Item {
            kind: ItemKind::Tool,
            backend,
            name,
        }
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).into()).collect()
    }

    /// The example of the contract.
    fn example(default: Access) -> Policy {
        Policy::new(&Authorization {
            default,
            roles: BTreeMap::from([
                (
                    "reader".to_owned(),
                    vec![
                        rule(Access::Allow, "search", Some(&["find_*", "get"])),
                        rule(Access::Deny, "*", Some(&["*delete*"])),
                    ],
                ),
                ("writer".to_owned(), vec![rule(Access::Allow, "*", None)]),
            ]),
        })
    }

    #[test]
    fn deny_wins_then_allow_then_the_default() {
        let policy = example(Access::Deny);
        let reader = roles(&["reader"]);
        assert!(policy.allows(&reader, tool("search", "find_user")));
        assert!(policy.allows(&reader, tool("search", "get")));
        assert!(!policy.allows(&reader, tool("search", "getx")));
        assert!(!policy.allows(&reader, tool("files", "find_user")));
        assert!(!policy.allows(&reader, tool("search", "find_delete_all")));
        // A writer may use anything, but a reader's deny still wins.
        assert!(policy.allows(&roles(&["writer"]), tool("search", "find_delete_all")));
        assert!(!policy.allows(
            &roles(&["writer", "reader"]),
            tool("search", "find_delete_all")
        ));
        assert!(!policy.allows(
            &roles(&["reader", "writer"]),
            tool("search", "find_delete_all")
        ));
        // No roles, or unknown ones: the default.
        assert!(!policy.allows(&[], tool("search", "get")));
        assert!(!policy.allows(&roles(&["admin"]), tool("search", "get")));
        let open = example(Access::Allow);
        assert!(open.allows(&[], tool("files", "read")));
        assert!(!open.allows(&reader, tool("files", "delete")));
    }

    #[test]
    fn a_rule_naming_no_kind_covers_all_three_and_one_naming_some_only_those() {
        let policy = example(Access::Deny);
        let writer = roles(&["writer"]);
        let reader = roles(&["reader"]);
        for kind in [ItemKind::Tool, ItemKind::Resource, ItemKind::Prompt] {
            let item = Item {
                kind,
                backend: "files",
                name: "file:///etc/passwd",
            };
            assert!(policy.allows(&writer, item));
        }
        // The reader's `tools` allow says nothing of a prompt named alike.
        let prompt = Item {
            kind: ItemKind::Prompt,
            backend: "search",
            name: "get",
        };
        assert!(!policy.allows(&reader, prompt));
        let with_resources = Policy::new(&Authorization {
            default: Access::Deny,
            roles: BTreeMap::from([(
                "docs".to_owned(),
                vec![AccessRule {
                    resources: Some(vec!["file:///docs/*".into()]),
                    ..rule(Access::Allow, "*", None)
                }],
            )]),
        });
        let resource = |name| Item {
            kind: ItemKind::Resource,
            backend: "files",
            name,
        };
        assert!(with_resources.allows(&roles(&["docs"]), resource("file:///docs/a.md")));
        assert!(!with_resources.allows(&roles(&["docs"]), resource("file:///etc/a")));
        assert!(!with_resources.allows(&roles(&["docs"]), tool("files", "file:///docs/a.md")));
    }

    #[test]
    fn the_scope_of_a_403_names_a_role_that_allows_and_does_not_deny() {
        let policy = example(Access::Deny);
        assert_eq!(policy.role_allowing(tool("search", "get")), Some("reader"));
        assert_eq!(policy.role_allowing(tool("files", "get")), Some("writer"));
        // The reader denies it; the writer allows it.
        assert_eq!(
            policy.role_allowing(tool("search", "delete")),
            Some("writer")
        );
        let none = Policy::new(&Authorization {
            default: Access::Deny,
            roles: BTreeMap::from([("r".to_owned(), vec![rule(Access::Deny, "*", None)])]),
        });
        assert_eq!(none.role_allowing(tool("a", "b")), None);
    }

    fn arbitrary_rule() -> impl Strategy<Value = AccessRule> {
        let pattern = prop::sample::select(vec!["*", "a", "b", "a*", "*b", "ab"]);
        let patterns = prop::option::of(prop::collection::vec(pattern.clone(), 0..3));
        (
            any::<bool>(),
            pattern,
            patterns.clone(),
            patterns.clone(),
            patterns,
        )
            .prop_map(|(allow, backend, tools, resources, prompts)| AccessRule {
                access: if allow { Access::Allow } else { Access::Deny },
                backend: backend.into(),
                tools: tools.map(|p| p.into_iter().map(Into::into).collect()),
                resources: resources.map(|p| p.into_iter().map(Into::into).collect()),
                prompts: prompts.map(|p| p.into_iter().map(Into::into).collect()),
            })
    }

    proptest! {
        #[test]
        fn an_item_a_matching_deny_covers_is_never_allowed(
            rules in prop::collection::btree_map(
                prop::sample::select(vec!["r1", "r2", "r3"]).prop_map(String::from),
                prop::collection::vec(arbitrary_rule(), 0..4),
                0..4,
            ),
            default_allow in any::<bool>(),
            caller in prop::collection::vec(prop::sample::select(vec!["r1", "r2", "r3", "r4"]).prop_map(String::from), 0..4),
            kind in prop::sample::select(vec![ItemKind::Tool, ItemKind::Resource, ItemKind::Prompt]),
            backend in prop::sample::select(vec!["a", "b", "ab", "ba"]),
            name in prop::sample::select(vec!["a", "b", "ab", "ba", ""]),
        ) {
            let config = Authorization {
                default: if default_allow { Access::Allow } else { Access::Deny },
                roles: rules,
            };
            let policy = Policy::new(&config);
            let item = Item { kind, backend, name };
            let matching = |access| caller.iter().any(|role| {
                config.roles.get(role).is_some_and(|rules| {
                    rules.iter().any(|rule| rule.access == access && covers(rule, item))
                })
            });
            let allowed = policy.allows(&caller, item);
            if matching(Access::Deny) {
                prop_assert!(!allowed);
            } else if matching(Access::Allow) {
                prop_assert!(allowed);
            } else {
                prop_assert_eq!(allowed, default_allow);
            }
            // The role a 403 names allows the item on its own.
            if let Some(role) = policy.role_allowing(item) {
                prop_assert!(policy.allows(&[role.to_owned()], item) || default_allow);
                let alone = Policy::new(&Authorization { default: Access::Deny, roles: config.roles.clone() });
                prop_assert!(alone.allows(&[role.to_owned()], item));
            }
        }
    }
}
