//! The `authorization` section: each role's rules over tools, resources and
//! prompts, and what applies when none matches.

use std::collections::BTreeMap;

use super::super::raw::{RawAccessRule, RawAuthorization, RawRuleScope};
use super::super::source::Seg;
use super::super::{Access, AccessRule, Authorization, ConfigError};
use super::{Validator, child, key};

impl Validator<'_> {
    pub(super) fn authorization(
        &self,
        raw: RawAuthorization,
    ) -> Result<Authorization, ConfigError> {
        let path = [key("authorization")];
        let default = match raw.default.as_deref() {
            None | Some("deny") => Access::Deny,
            Some("allow") => Access::Allow,
            Some(other) => {
                return Err(self.error(
                    &child(&path, "default"),
                    format!("expected \"allow\" or \"deny\", found {other:?}"),
                ));
            }
        };
        let roles_path = child(&path, "roles");
        let mut roles = BTreeMap::new();
        for (name, rules) in raw.roles.unwrap_or_default() {
            if name.trim().is_empty() || name.contains(char::is_whitespace) {
                return Err(self.key_error(
                    &roles_path,
                    &name,
                    format!(
                        "invalid role name {name:?}: a role is a scope, one word without spaces"
                    ),
                ));
            }
            let role_path = child(&roles_path, &name);
            let rules = rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let mut p = role_path.clone();
                    p.push(Seg::Index(i));
                    self.access_rule(rule, &p)
                })
                .collect::<Result<Vec<_>, _>>()?;
            roles.insert(name, rules);
        }
        Ok(Authorization { default, roles })
    }

    fn access_rule(&self, raw: &RawAccessRule, path: &[Seg]) -> Result<AccessRule, ConfigError> {
        let (access, k, scope): (Access, &str, &RawRuleScope) = match (&raw.allow, &raw.deny) {
            (Some(scope), None) => (Access::Allow, "allow", scope),
            (None, Some(scope)) => (Access::Deny, "deny", scope),
            (Some(_), Some(_)) => {
                return Err(self.key_error(
                    path,
                    "deny",
                    "a rule is \"allow\" or \"deny\", not both: write two rules",
                ));
            }
            (None, None) => {
                return Err(self.error(path, "a rule needs \"allow\" or \"deny\""));
            }
        };
        let p = child(path, k);
        let backend = scope.backend.clone().unwrap_or_else(|| "*".to_owned());
        if backend.is_empty() {
            return Err(self.error(&child(&p, "backend"), "must not be empty"));
        }
        let patterns = |list: &Option<Vec<String>>, kind: &str| -> Result<_, ConfigError> {
            if let Some(list) = list {
                for (i, pattern) in list.iter().enumerate() {
                    if pattern.is_empty() {
                        let mut pp = child(&p, kind);
                        pp.push(Seg::Index(i));
                        return Err(self.error(&pp, "must not be empty"));
                    }
                }
            }
            Ok(list.clone())
        };
        Ok(AccessRule {
            access,
            tools: patterns(&scope.tools, "tools")?,
            resources: patterns(&scope.resources, "resources")?,
            prompts: patterns(&scope.prompts, "prompts")?,
            backend,
        })
    }
}
