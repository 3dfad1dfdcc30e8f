//! Scenario files: one YAML file per behaviour under test.
//!
//! Loading runs in stages, like the proxy's own config (and on the proxy's
//! public document API, so errors read the same): the text becomes a
//! line-tracking tree; `raw` reads the harness's keys strictly (unknown keys
//! are errors); `validate` settles choices, references and time windows into
//! the types of `model`; `proxy` validates the inline proxy config with the
//! proxy's own loader. Every error is a [`ConfigError`] that names the file,
//! the line and the key path. The format is documented in `docs/scenarios.md`.

mod codes;
mod model;
mod proxy;
mod raw;
mod validate;

use std::path::Path;

pub use codes::{CodeOverlay, FailureKind};
pub use mcp_proxy::config::ConfigError;
use mcp_proxy::config::Format;
use mcp_proxy::config::document::{from_node, parse};
pub use model::*;
pub use proxy::{FakeAddress, JWKS_URL_PLACEHOLDER, to_json};
pub use validate::{fmt_duration, occurrences};

/// Loads and validates the scenario at `path`.
pub fn load(path: &Path) -> Result<Scenario, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        path: String::new(),
        message: format!("cannot read the scenario: {e}"),
    })?;
    load_str(&text, path)
}

/// Loads a scenario from `text`; `path` names it in errors and anchors
/// relative paths of the proxy section.
pub fn load_str(text: &str, path: &Path) -> Result<Scenario, ConfigError> {
    let file = path.display().to_string();
    let with_file = |e: ConfigError| ConfigError {
        file: file.clone(),
        ..e
    };
    let tree = parse(text, Format::Yaml).map_err(with_file)?;
    let raw: raw::RawScenario = from_node(&tree).map_err(with_file)?;
    let v = validate::Validator {
        tree: &tree,
        file: &file,
    };
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    v.scenario(raw, path, base_dir)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod identity_tests;
