//! The line-tracking document model behind the loader, as a public API.
//!
//! Tools that embed a proxy config inside a larger file of their own (the
//! `mcp-harness` scenario files carry one inline) parse the whole file with
//! [`parse`], read their own keys with [`from_node`] (strict serde: unknown
//! keys are errors, every error has a line and a key path), and hand the
//! embedded part to [`load_tree`]. Errors then read exactly as `mcp-proxy`'s
//! own, with lines of the outer file. Paths in errors are relative to the node
//! given; the caller prefixes its own path when it reports them.

use std::path::Path;

pub use super::de::from_node;
pub use super::duration::ConfigDuration;
pub use super::source::{Entry, Node, Seg, Value, parse, path_string};
use super::{Config, ConfigError, expand, raw, validate};

/// Loads a proxy config from an already parsed tree: `${VAR}` expansion
/// through `env`, strict deserialization, validation. `file_name` is put into
/// errors; `base_dir` anchors relative `cwd`s and `*_file`s. The values
/// substituted for `${VAR}` join the config's secrets.
pub fn load_tree(
    mut tree: Node,
    file_name: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut stages = || {
        let substituted = expand::expand_tree(&mut tree, env)?;
        let raw: raw::RawConfig = from_node(&tree)?;
        let mut config = validate::validate(raw, &tree, base_dir)?;
        config.secrets.add(substituted);
        Ok(config)
    };
    stages().map_err(|e| ConfigError {
        file: file_name.to_owned(),
        ..e
    })
}
