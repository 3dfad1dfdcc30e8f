//! A `reload` fault: the proxy is given a new `proxy:` section at a time —
//! the section as the reloads before it left it, with this one's `patch`
//! merged in. Each patched section is validated here by the proxy's own
//! loader, so a reload meant to be applied that the proxy would refuse is
//! an error in the scenario (with the patch's lines), and one meant to be
//! rejected must really be invalid.

use std::path::Path;

use mcp_proxy::config::ConfigError;
use mcp_proxy::config::document::Value;

use super::super::model::*;
use super::super::proxy::{backend_name, merge_patch, removes, section_of};
use super::super::raw::*;
use super::{KeyPath, Validator};

/// What a reload fault needs besides its own keys.
pub(super) struct ReloadContext<'a> {
    pub(super) base_dir: &'a Path,
    pub(super) fakes: &'a [FakeSpec],
    pub(super) issuer: Option<&'a Issuer>,
}

impl Validator<'_> {
    /// The action of a `reload` fault at `path`, given the section in force
    /// before it (`current`, which an applied reload moves on).
    pub(super) fn reload_action(
        &self,
        f: &RawFault,
        reload: &RawReload,
        path: &KeyPath,
        trigger: &Trigger,
        current: &mut Option<ProxySection>,
        context: &ReloadContext<'_>,
    ) -> Result<FaultAction, ConfigError> {
        for (key, set) in [
            ("fake", f.fake.is_some()),
            ("issuer", f.issuer.is_some()),
            ("tool", f.tool.is_some()),
            ("outage", f.outage.is_some()),
            ("exit_code", f.exit_code.is_some()),
            ("latency", f.latency.is_some()),
            ("outcomes", f.outcomes.is_some()),
            ("network", f.network.is_some()),
            ("rotate_key", f.rotate_key.is_some()),
        ] {
            if set {
                return Err(self.error(
                    &path.key(key),
                    "a reload fault is of the proxy: it has `reload` and its time (`at`) only",
                ));
            }
        }
        match trigger {
            Trigger::Time {
                length: None,
                every: None,
                ..
            } => {}
            Trigger::Time { length, .. } => {
                let key = if length.is_some() { "for" } else { "every" };
                return Err(self.error(
                    &path.key(key),
                    "a reload happens once, at `at` (its phase lasts to the end of the run)",
                ));
            }
            Trigger::Calls(_) => {
                return Err(self.error(&path.key("calls"), "a reload is triggered by time (`at`)"));
            }
        }
        let Some(before) = current.as_ref() else {
            return Err(self.error(
                &path.key("reload"),
                "reloads the proxy's config: the scenario needs a `proxy:` section",
            ));
        };
        let patch_path = path.key("reload").key("patch");
        let Some(patch) = self.tree.get(&patch_path.0) else {
            return Err(self.error(&patch_path, "missing"));
        };
        self.patch_shape(patch, &patch_path, before)?;
        let merged = merge_patch(&before.tree, patch);
        let section = section_of(self, &merged, &patch_path, context.fakes, context.issuer)?;
        let expect = match reload.expect {
            None | Some(RawReloadExpect::Applied) => ReloadExpect::Applied,
            Some(RawReloadExpect::Rejected) => ReloadExpect::Rejected,
        };
        let valid = section.validate(self.file, context.base_dir, context.fakes, context.issuer);
        match (valid, expect) {
            (Ok(_), ReloadExpect::Applied) => *current = Some(section.clone()),
            (Err(error), ReloadExpect::Applied) => return Err(error),
            (Err(_), ReloadExpect::Rejected) => {}
            (Ok(_), ReloadExpect::Rejected) => {
                return Err(self.error(
                    &path.key("reload").key("expect"),
                    "the patched config is valid: the proxy would apply it, not reject it",
                ));
            }
        }
        Ok(FaultAction::Reload {
            section: Box::new(section),
            expect,
            restart: reload.restart.unwrap_or(false),
        })
    }

    /// A patch is a map; its `backends`, if any, a list of items that each
    /// name their backend, and `remove: true` stands alone.
    fn patch_shape(
        &self,
        patch: &mcp_proxy::config::document::Node,
        path: &KeyPath,
        before: &ProxySection,
    ) -> Result<(), ConfigError> {
        let Value::Map(entries) = &patch.value else {
            return Err(self.error(path, "a patch of the proxy section: a map of its keys"));
        };
        let Some(backends) = entries.iter().find(|e| e.key == "backends") else {
            return Ok(());
        };
        let Value::Seq(items) = &backends.value.value else {
            return Err(self.error(
                &path.key("backends"),
                "a list of backends, each with its `name`",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = path.key("backends").index(i);
            if backend_name(item).is_none() {
                return Err(self.error(
                    &item_path,
                    "names the backend it changes, adds or removes (`name`)",
                ));
            }
            if let Value::Map(keys) = &item.value {
                if keys.iter().any(|e| e.key == "remove") && !removes(item) {
                    return Err(self.error(
                        &item_path.key("remove"),
                        "write `true`, or leave the key out",
                    ));
                }
                if removes(item) && keys.len() > 2 {
                    return Err(self.error(
                        &item_path.key("remove"),
                        "a removed backend has `name` and `remove: true` only",
                    ));
                }
                let name = backend_name(item).unwrap_or_default();
                if removes(item) && !before.has_backend(name) {
                    return Err(self.error(
                        &item_path.key("name"),
                        format!("no backend named {name:?} to remove (the proxy section as the reloads before left it)"),
                    ));
                }
            }
        }
        Ok(())
    }
}
