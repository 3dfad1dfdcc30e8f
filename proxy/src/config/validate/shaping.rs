//! The shaping keys of a backend: `expose`, `hide`, `aliases`,
//! `default_arguments`, `inject_arguments`, `max_argument_size`, `cache`,
//! `coalesce`. They belong on a primary: a canary, mirror or failover gets
//! the calls as its primary shaped them, so shaping keys there would be
//! silently ignored — they are an error instead.

use std::collections::HashMap;

use super::super::raw::{RawBackend, RawNameLists};
use super::super::source::Seg;
use super::super::{Alias, CachePolicy, ConfigError, Injection, NamePatterns, Shaping};
use super::{Validator, child};

/// Default `cache.max_entries`, and the most allowed.
const DEFAULT_CACHE_ENTRIES: usize = 1000;
const MAX_CACHE_ENTRIES: usize = 1_000_000;

impl Validator<'_> {
    pub(super) fn shaping(
        &self,
        raw: &RawBackend,
        path: &[Seg],
        role_key: Option<&str>,
    ) -> Result<Shaping, ConfigError> {
        let present = [
            ("expose", raw.expose.is_some()),
            ("hide", raw.hide.is_some()),
            ("aliases", raw.aliases.is_some()),
            ("default_arguments", raw.default_arguments.is_some()),
            ("inject_arguments", raw.inject_arguments.is_some()),
            ("max_argument_size", raw.max_argument_size.is_some()),
            ("cache", raw.cache.is_some()),
            ("coalesce", raw.coalesce.is_some()),
        ];
        if let (Some(role), Some((key, _))) = (role_key, present.iter().find(|(_, set)| *set)) {
            return Err(self.key_error(
                path,
                key,
                format!(
                    "{key} belongs on the primary: a backend with {role} gets the calls as its primary shaped them"
                ),
            ));
        }
        let mut aliases: Vec<Alias> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, alias) in raw.aliases.iter().flatten().enumerate() {
            let mut p = child(path, "aliases");
            p.push(Seg::Index(i));
            for (key, value) in [("from", &alias.from), ("to", &alias.to)] {
                if value.is_empty() {
                    return Err(self.error(&child(&p, key), "must not be empty"));
                }
            }
            if let Some(first) = seen.insert(alias.from.as_str(), i) {
                return Err(self.error(
                    &child(&p, "from"),
                    format!("{:?} is already the alias at aliases[{first}]", alias.from),
                ));
            }
            aliases.push(Alias {
                from: alias.from.clone(),
                to: alias.to.clone(),
            });
        }
        let mut inject_arguments = Vec::new();
        for (i, injection) in raw.inject_arguments.iter().flatten().enumerate() {
            let mut p = child(path, "inject_arguments");
            p.push(Seg::Index(i));
            if injection.tool.is_empty() {
                return Err(self.error(&child(&p, "tool"), "must not be empty"));
            }
            inject_arguments.push(Injection {
                tool: injection.tool.clone(),
                arguments: injection.arguments.clone(),
                overwrite: injection.overwrite.unwrap_or(false),
            });
        }
        let max_argument_size = match raw.max_argument_size {
            Some(size) if size.0 == 0 => {
                return Err(self.error(
                    &child(path, "max_argument_size"),
                    "must be greater than zero",
                ));
            }
            size => size.map(|s| s.0),
        };
        let cache = match &raw.cache {
            None => None,
            Some(cache) => {
                let p = child(path, "cache");
                if cache.tools.is_none() && cache.resources.is_none() {
                    return Err(self.error(
                        &p,
                        "name what to cache: tools (a TTL), resources (a TTL), or both",
                    ));
                }
                for (key, ttl) in [("tools", cache.tools), ("resources", cache.resources)] {
                    if ttl.is_some_and(|d| d.0.is_zero()) {
                        return Err(self.error(&child(&p, key), "must be greater than zero"));
                    }
                }
                let max_entries = cache.max_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
                if !(1..=MAX_CACHE_ENTRIES).contains(&max_entries) {
                    return Err(self.error(
                        &child(&p, "max_entries"),
                        format!("must be 1 to {MAX_CACHE_ENTRIES}"),
                    ));
                }
                Some(CachePolicy {
                    tools: cache.tools.map(|d| d.0),
                    resources: cache.resources.map(|d| d.0),
                    max_entries,
                })
            }
        };
        Ok(Shaping {
            expose: self.patterns(raw.expose.as_ref(), &child(path, "expose"))?,
            hide: self.patterns(raw.hide.as_ref(), &child(path, "hide"))?,
            aliases,
            default_arguments: raw.default_arguments.clone().unwrap_or_default(),
            inject_arguments,
            max_argument_size,
            cache,
            coalesce: raw.coalesce.unwrap_or(false),
        })
    }

    fn patterns(
        &self,
        raw: Option<&RawNameLists>,
        path: &[Seg],
    ) -> Result<NamePatterns, ConfigError> {
        let Some(raw) = raw else {
            return Ok(NamePatterns::default());
        };
        for (key, list) in [
            ("tools", &raw.tools),
            ("resources", &raw.resources),
            ("prompts", &raw.prompts),
        ] {
            for (i, pattern) in list.iter().flatten().enumerate() {
                if pattern.is_empty() {
                    let mut p = child(path, key);
                    p.push(Seg::Index(i));
                    return Err(self.error(&p, "must not be empty"));
                }
            }
        }
        Ok(NamePatterns {
            tools: raw.tools.clone(),
            resources: raw.resources.clone(),
            prompts: raw.prompts.clone(),
        })
    }
}
