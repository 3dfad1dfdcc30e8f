//! The last loading stage: [`RawConfig`] → [`Config`], applying defaults
//! and the rules that relate several values.
//!
//! This module reads the list of backends and the keys of one backend that
//! no other module owns (`name`, `concurrency`, `rate_limit`, `hedging`,
//! `safe_to_repeat`); the rest is one module per concern: `proxy` (the
//! `proxy` section), `transport` (`command`… or `url` and `headers`),
//! `pool` (replicas), `resilience` (`reconnect`, `timeout`, `retry`,
//! `circuit_breaker`), `traffic` (roles) and `shaping`.
//!
//! The raw structs carry no positions; an error finds its line by looking
//! its key path up in the [`Node`] tree (the tree and the raw structs have
//! the same shape, because one was deserialized from the other). A value
//! that was defaulted has no line of its own, so the lookup falls back to
//! the table that would have held it.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;
use super::raw::{RawBackend, RawConfig, TransportKind};
use super::source::{Node, Seg, path_string};
use super::{
    BackendConfig, Config, DEFAULT_INIT_TIMEOUT, DEFAULT_WAIT_FOR_READY, HedgePolicy,
    ProxySettings, RateLimit,
};

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
    let v = Validator { tree };
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
    Ok(Config {
        proxy,
        backends,
        ..Config::default()
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
        let rate_limit = match &raw.rate_limit {
            None => None,
            Some(r) => {
                let p = child(path, "rate_limit");
                if r.requests == 0 {
                    return Err(self.error(&child(&p, "requests"), "must be at least 1"));
                }
                if r.per.0.is_zero() {
                    return Err(self.error(&child(&p, "per"), "must be greater than zero"));
                }
                Some(RateLimit {
                    requests: r.requests,
                    per: r.per.0,
                })
            }
        };
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
        Ok(BackendConfig {
            role,
            shaping,
            forward_auth: false,
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
