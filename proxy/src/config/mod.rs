//! Configuration: one schema, read from YAML or TOML (chosen by extension),
//! validated whole before anything starts.
//!
//! Loading runs in stages, one module each, so each can be tested alone:
//!
//! 1. `source` parses the text into one tree for both formats, where every
//!    key and value remembers its line;
//! 2. `expand` replaces `${VAR}` in every string value;
//! 3. `de` deserializes the tree strictly (unknown keys are errors) into
//!    the shapes of `raw`, with `duration` and `size` reading their units;
//! 4. `validate` applies defaults and cross-field rules, producing the
//!    validated types of `model` (re-exported here: [`Config`] and its parts).
//!
//! Every error is a [`ConfigError`] naming the file, the line and the key
//! path, e.g. `proxy.yaml:7: backends[1]: unknown key "comand"`. Loading
//! stops at the first error.

mod de;
pub mod document;
mod duration;
mod expand;
mod model;
mod raw;
mod size;
mod source;
mod validate;

use std::fmt;
use std::path::Path;

pub use duration::parse_duration;
pub use model::*;

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.yaml` or `.yml`.
    Yaml,
    /// `.toml`.
    Toml,
}

impl Format {
    /// The format a file's extension names (`.yaml`, `.yml`, `.toml`, in any case).
    pub fn from_path(path: &Path) -> Result<Format, ConfigError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("toml") => Ok(Format::Toml),
            _ => Err(ConfigError {
                file: path.display().to_string(),
                line: None,
                path: String::new(),
                message: "unknown config file extension; expected .yaml, .yml or .toml".into(),
            }),
        }
    }
}

/// Why a config could not be loaded, and where.
///
/// Displays as `{file}:{line}: {path}: {message}`, leaving out `:{line}`
/// when there is no line and `{path}: ` when the path is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was named to the loader.
    pub file: String,
    /// The 1-based line, when the error concerns a place in the file.
    pub line: Option<usize>,
    /// The key path, e.g. `backends[1].env.LOG_LEVEL`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Loads the config at `path`: format from the extension, `${VAR}` from the
/// process environment, relative paths from the file's folder.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let format = Format::from_path(path)?;
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file_name.clone(),
        line: None,
        path: String::new(),
        message: format!("cannot read the config file: {e}"),
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    load_str(&text, format, &file_name, base_dir, &|name| {
        std::env::var(name).ok()
    })
}

/// Loads a config from `text`. `file_name` is used in errors only;
/// `base_dir` anchors relative `cwd`s; `env` answers `${VAR}` lookups.
pub fn load_str(
    text: &str,
    format: Format,
    file_name: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let tree = source::parse(text, format).map_err(|e| ConfigError {
        file: file_name.to_owned(),
        ..e
    })?;
    document::load_tree(tree, file_name, base_dir, env)
}

#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
