//! Raw scenario → validated [`Scenario`]: defaults, "exactly one of"
//! choices, names that must refer to something, and time windows resolved
//! against the fault timeline. This module reads the top-level keys and
//! hands each section to its own module: `fakes` (the fakes, their tools,
//! latencies and outcomes), `identity` (the issuer and the workload's
//! identities), `faults`, `workload`, `checks` (`expect`), and
//! `timeline` (phases, windows and durations as written); the proxy section
//! is `super::proxy`'s.
//!
//! The raw structs carry no positions; an error finds its line by looking its
//! key path up in the tree (the two have the same shape, since one was read
//! from the other).

use std::path::Path;
use std::time::Duration;

use mcp_proxy::config::ConfigError;
use mcp_proxy::config::document::{Node, Seg, path_string};

use super::model::Scenario;
use super::raw::RawScenario;

mod checks;
mod fakes;
mod faults;
mod identity;
mod reload;
mod timeline;
mod workload;

use timeline::Phases;
pub use timeline::{fmt_duration, occurrences};

/// Default `grace`.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A key path under construction.
#[derive(Clone, Default)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(&self, k: &str) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Key(k.to_owned()));
        KeyPath(p)
    }

    pub(crate) fn index(&self, i: usize) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        KeyPath(p)
    }
}

pub(crate) struct Validator<'a> {
    pub(crate) tree: &'a Node,
    pub(crate) file: &'a str,
}

impl Validator<'_> {
    /// An error at the value `path` names (or the nearest table that exists).
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.tree.line_near(&path.0)),
            path: path_string(&path.0),
            message: message.into(),
        }
    }

    /// Validates everything but the proxy section.
    pub(crate) fn scenario(
        &self,
        raw: RawScenario,
        file: &Path,
        base_dir: &Path,
    ) -> Result<Scenario, ConfigError> {
        let root = KeyPath::default();
        if raw.name.trim().is_empty() {
            return Err(self.error(&root.key("name"), "must not be empty"));
        }
        if raw.description.contains('\n') {
            return Err(self.error(&root.key("description"), "must be one line"));
        }
        let duration = raw.duration.0;
        if duration.is_zero() {
            return Err(self.error(&root.key("duration"), "must be greater than zero"));
        }
        let fakes = self.fakes(raw.fakes, &root.key("fakes"))?;
        // The proxy section refers to the fakes, so it is read after them.
        let issuer = self.issuer(raw.issuer, &root.key("issuer"), &fakes)?;
        let proxy = super::proxy::read_section(self, self.tree, base_dir, &fakes, issuer.as_ref())?;
        let grace = raw.grace.map_or(DEFAULT_GRACE, |d| d.0);
        let faults = self.faults(
            raw.faults.unwrap_or_default(),
            &root.key("faults"),
            (duration, grace),
            proxy.as_ref(),
            &reload::ReloadContext {
                base_dir,
                fakes: &fakes,
                issuer: issuer.as_ref(),
            },
        )?;
        let phases = Phases::of(&faults, duration);
        let workload = self.workload(raw.workload, &root.key("workload"), issuer.as_ref())?;
        let mut expect = Vec::new();
        for (i, check) in raw.expect.into_iter().enumerate() {
            expect.push(self.check(
                check,
                &root.key("expect").index(i),
                &fakes,
                issuer.as_ref(),
                &workload.identities,
                &phases,
            )?);
        }
        Ok(Scenario {
            file: file.to_owned(),
            name: raw.name,
            description: raw.description,
            seed: raw.seed.unwrap_or(0),
            duration,
            grace,
            proxy,
            fakes,
            issuer,
            faults,
            workload,
            expect,
        })
    }
}
