//! The last loading stage: [`RawConfig`] → [`Config`], applying defaults
//! and the rules that relate several values.
//!
//! This module reads the list of backends and the keys of one backend that
//! no other module owns (`name`, `concurrency`, `rate_limit`, `hedging`,
//! `safe_to_repeat`); the rest is one module per concern: `proxy` (the
//! `proxy` section), `transport` (`command`… or `url` and `headers`),
//! `pool` (replicas), `resilience` (`reconnect`, `timeout`, `retry`,
//! `circuit_breaker`), `traffic` (roles), `shaping`, and the sections of
//! identity and security: `auth` (`auth:`, and the rule that a proxy reachable
//! from other hosts needs it), `authorization`, `audit` and `admin`.
//!
//! Values read from `*_file` keys (tokens, secrets) are collected as the
//! config's [`Secrets`], like the values of `${VAR}` (added by the caller).
//!
//! The raw structs carry no positions; an error finds its line by looking
//! its key path up in the [`Node`] tree (the tree and the raw structs have
//! the same shape, because one was deserialized from the other). A value
//! that was defaulted has no line of its own, so the lookup falls back to
//! the table that would have held it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;
use super::raw::{RawBackend, RawConfig, RawRateLimit, TransportKind};
use super::source::{Node, Seg, path_string};
use super::{
    ADMIN_TOOLS_NAME, BackendConfig, Config, DEFAULT_INIT_TIMEOUT, DEFAULT_WAIT_FOR_READY,
    HedgePolicy, ProxySettings, RateLimit, Secrets,
};

mod admin;
mod audit;
mod auth;
mod authorization;
mod pool;
mod proxy;
mod resilience;
mod shaping;
mod traffic;
mod transport;

/// The most `concurrency.max` allowed (a semaphore's practical bound).
const MAX_CONCURRENCY: usize = 1_000_000;

/// Turns the deserialized file into a [`Config`]; `tree` supplies lines,
/// `base_dir` anchors relative `cwd`s.
pub(crate) fn validate(
    raw: RawConfig,
    tree: &Node,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let v = Validator {
        tree,
        base_dir,
        secrets: RefCell::default(),
    };
    let proxy = v.proxy(raw.proxy)?;
    let backends_path = [key("backends")];
    if raw.backends.is_empty() {
        return Err(v.error(&backends_path, "at least one backend is required"));
    }
    let mut backends: Vec<BackendConfig> = Vec::with_capacity(raw.backends.len());
    let mut first_index: HashMap<String, usize> = HashMap::new();
    for (i, raw_backend) in raw.backends.into_iter().enumerate() {
        let path = [key("backends"), Seg::Index(i)];
        let backend = v.backend(raw_backend, &path, &proxy, base_dir)?;
        if let Some(&first) = first_index.get(&backend.name) {
            let first_line = tree.line_near(&[key("backends"), Seg::Index(first), key("name")]);
            return Err(v.error(
                &child(&path, "name"),
                format!(
                    "duplicate backend name {:?} (first at line {first_line})",
                    backend.name
                ),
            ));
        }
        first_index.insert(backend.name.clone(), i);
        backends.push(backend);
    }
    v.roles(&backends)?;
    let authorization = raw.authorization.map(|a| v.authorization(a)).transpose()?;
    let auth = raw
        .auth
        .map(|a| v.auth(a, authorization.as_ref()))
        .transpose()?;
    v.exposure(&proxy, auth.is_some())?;
    let audit = raw.audit.map(|a| v.audit(a)).transpose()?;
    let admin = v.admin(raw.admin)?;
    Ok(Config {
        proxy,
        backends,
        auth,
        authorization,
        audit,
        admin,
        secrets: v.secrets.into_inner(),
    })
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn child(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(key(k));
    p
}

struct Validator<'a> {
    tree: &'a Node,
    /// Anchors relative `cwd`s, `*_file`s and the audit file.
    base_dir: &'a Path,
    /// The values read from `*_file` keys so far.
    secrets: RefCell<Secrets>,
}

impl Validator<'_> {
    /// An error at the value `path` names (or the nearest table that exists).
    fn error(&self, path: &[Seg], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: String::new(),
            line: Some(self.tree.line_near(path)),
            path: path_string(path),
            message: message.into(),
        }
    }

    /// An error about the key `k` of the table at `path`, at the key's line.
    fn key_error(&self, path: &[Seg], k: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: String::new(),
            line: Some(self.tree.key_line(&child(path, k))),
            path: path_string(path),
            message: message.into(),
        }
    }

    fn backend(
        &self,
        raw: RawBackend,
        path: &[Seg],
        proxy: &ProxySettings,
        base_dir: &Path,
    ) -> Result<BackendConfig, ConfigError> {
        self.backend_name(&raw.name, path, &proxy.separator)?;
        if proxy.admin_tools && raw.name == ADMIN_TOOLS_NAME {
            return Err(self.error(
                &child(path, "name"),
                format!("{ADMIN_TOOLS_NAME:?} names the admin tools (proxy.admin_tools): choose another name"),
            ));
        }
        if let Some(foreign) = raw.foreign_keys().first() {
            return Err(self.key_error(
                path,
                foreign,
                format!(
                    "key {foreign:?} is not valid for transport {:?}",
                    raw.transport.as_str()
                ),
            ));
        }
        let endpoints = match raw.transport {
            TransportKind::Stdio => vec![self.stdio(&raw, path, base_dir)?],
            TransportKind::Http => self.http(&raw, path)?,
        };
        let load_balancing = self.load_balancing(raw.load_balancing.as_deref(), path)?;
        let outlier_detection = raw
            .outlier_detection
            .as_ref()
            .map(|o| self.outlier(o, &child(path, "outlier_detection")))
            .transpose()?;
        let init_timeout = raw.init_timeout.map_or(DEFAULT_INIT_TIMEOUT, |d| d.0);
        if init_timeout.is_zero() {
            return Err(self.error(&child(path, "init_timeout"), "must be greater than zero"));
        }
        let reconnect = self.reconnect(raw.reconnect.as_ref(), &child(path, "reconnect"))?;
        let wait_for_ready = raw.wait_for_ready.map_or(DEFAULT_WAIT_FOR_READY, |d| d.0);
        let timeout = self.timeout(
            raw.timeout.as_ref(),
            &child(path, "timeout"),
            proxy.default_call_timeout,
        )?;
        let retry = raw
            .retry
            .as_ref()
            .map(|r| self.retry(r, &timeout, path))
            .transpose()?;
        let safe_to_repeat = raw
            .safe_to_repeat
            .as_ref()
            .map(|s| s.tools.clone())
            .unwrap_or_default();
        for (i, pattern) in safe_to_repeat.iter().enumerate() {
            if pattern.is_empty() {
                let mut p = child(&child(path, "safe_to_repeat"), "tools");
                p.push(Seg::Index(i));
                return Err(self.error(&p, "must not be empty"));
            }
        }
        let max_concurrency = match &raw.concurrency {
            Some(c) if !(1..=MAX_CONCURRENCY).contains(&c.max) => {
                return Err(self.error(
                    &child(&child(path, "concurrency"), "max"),
                    format!("must be 1 to {MAX_CONCURRENCY}"),
                ));
            }
            c => c.as_ref().map(|c| c.max),
        };
        let rate_limit = raw
            .rate_limit
            .as_ref()
            .map(|r| self.rate_limit(r, &child(path, "rate_limit")))
            .transpose()?;
        let circuit_breaker = raw
            .circuit_breaker
            .as_ref()
            .map(|b| self.breaker(b, &child(path, "circuit_breaker")))
            .transpose()?;
        let hedging = match &raw.hedging {
            None => None,
            Some(h) => {
                let p = child(path, "hedging");
                if h.delay.0.is_zero() {
                    return Err(self.error(&child(&p, "delay"), "must be greater than zero"));
                }
                let max_hedges = h.max_hedges.unwrap_or(1);
                if !(1..=5).contains(&max_hedges) {
                    return Err(self.error(&child(&p, "max_hedges"), "must be 1 to 5"));
                }
                if let Some(per_try) = timeout.per_try
                    && h.delay.0 >= per_try
                {
                    return Err(self.error(
                        &child(&p, "delay"),
                        format!("must be shorter than timeout.per_try ({per_try:?})"),
                    ));
                }
                Some(HedgePolicy {
                    delay: h.delay.0,
                    max_hedges,
                })
            }
        };
        let role = self.role(&raw, path)?;
        let shaping = self.shaping(&raw, path, role.kind().key())?;
        let capabilities = raw
            .capabilities
            .as_ref()
            .map(|names| self.capabilities(names, &child(path, "capabilities")))
            .transpose()?;
        Ok(BackendConfig {
            capabilities,
            role,
            shaping,
            forward_auth: raw.forward_auth.unwrap_or(false),
            name: raw.name,
            endpoints,
            load_balancing,
            outlier_detection,
            init_timeout,
            reconnect,
            wait_for_ready,
            timeout,
            retry,
            safe_to_repeat,
            max_concurrency,
            rate_limit,
            circuit_breaker,
            hedging,
        })
    }

    /// `capabilities: [tools, resources, ...]` at `path`: the MCP
    /// capabilities object the names stand for.
    fn capabilities(
        &self,
        names: &[String],
        path: &[Seg],
    ) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
        const KNOWN: [&str; 6] = [
            "tools",
            "prompts",
            "resources",
            "resources.subscribe",
            "completions",
            "logging",
        ];
        let mut capabilities = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let (capability, value) = match name.as_str() {
                "resources.subscribe" => ("resources", serde_json::json!({ "subscribe": true })),
                known if KNOWN.contains(&known) => (known, serde_json::json!({})),
                _ => {
                    let mut at = path.to_vec();
                    at.push(Seg::Index(i));
                    return Err(self.error(
                        &at,
                        format!("unknown capability {name:?}; one of {KNOWN:?}"),
                    ));
                }
            };
            let entry = capabilities
                .entry(capability)
                .or_insert_with(|| serde_json::json!({}));
            if let (Some(entry), Some(value)) = (entry.as_object_mut(), value.as_object()) {
                entry.extend(value.clone());
            }
        }
        Ok(capabilities)
    }

    /// `rate_limit: { requests, per }` at `path`.
    fn rate_limit(&self, raw: &RawRateLimit, path: &[Seg]) -> Result<RateLimit, ConfigError> {
        if raw.requests == 0 {
            return Err(self.error(&child(path, "requests"), "must be at least 1"));
        }
        if raw.per.0.is_zero() {
            return Err(self.error(&child(path, "per"), "must be greater than zero"));
        }
        Ok(RateLimit {
            requests: raw.requests,
            per: raw.per.0,
        })
    }

    /// A secret given inline (`key`, usually `${VAR}`) or as a file
    /// (`file_key`, relative to the config's folder, surrounding whitespace
    /// trimmed), at most one of the two; a file's content joins the secrets.
    fn secret(
        &self,
        path: &[Seg],
        (k, inline): (&str, Option<&String>),
        (file_key, file): (&str, Option<&String>),
    ) -> Result<Option<String>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.key_error(
                path,
                file_key,
                format!("give {k:?} or {file_key:?}, not both"),
            )),
            (Some(value), None) => {
                if value.is_empty() {
                    return Err(self.error(&child(path, k), "must not be empty"));
                }
                Ok(Some(value.clone()))
            }
            (None, Some(name)) => {
                let p = child(path, file_key);
                if name.is_empty() {
                    return Err(self.error(&p, "must not be empty"));
                }
                let file = self.base_dir.join(name);
                // The message names the file, never its content.
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| self.error(&p, format!("cannot read {}: {e}", file.display())))?;
                let value = text.trim().to_owned();
                if value.is_empty() {
                    return Err(self.error(&p, format!("{} is empty", file.display())));
                }
                self.secrets.borrow_mut().add([value.clone()]);
                Ok(Some(value))
            }
            (None, None) => Ok(None),
        }
    }

    fn backend_name(&self, name: &str, path: &[Seg], separator: &str) -> Result<(), ConfigError> {
        let name_path = child(path, "name");
        if name.is_empty() {
            return Err(self.error(&name_path, "backend name must not be empty"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(self.error(
                &name_path,
                format!(
                    "backend name {name:?} may only contain letters, digits, \"_\", \".\" and \"-\""
                ),
            ));
        }
        if name.contains(separator) {
            return Err(self.error(
                &name_path,
                format!(
                    "backend name {name:?} contains the separator {separator:?} (proxy.separator)"
                ),
            ));
        }
        Ok(())
    }
}
