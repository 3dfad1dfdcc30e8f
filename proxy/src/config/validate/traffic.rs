//! The traffic role keys of a backend (`canary_of` + `weight` + `sticky`,
//! `mirror_of` + `mirror_percent` + `mirror_max_in_flight` + `mirror_unsafe`,
//! `failover_for` +
//! `priority`) and the rules across backends: a role names another backend
//! that serves its own traffic, and the canaries of one primary take at most
//! 100 % of its calls (several canaries are supported; a silent overwrite is
//! not).

use std::collections::HashMap;

use super::super::raw::RawBackend;
use super::super::source::Seg;
use super::super::{BackendConfig, ConfigError, Role};
use super::{Validator, child};

/// Default `mirror_max_in_flight`.
const DEFAULT_MIRROR_MAX_IN_FLIGHT: usize = 64;

impl Validator<'_> {
    /// The role `raw` asks for, with its own keys checked.
    pub(super) fn role(&self, raw: &RawBackend, path: &[Seg]) -> Result<Role, ConfigError> {
        let named: Vec<&str> = [
            raw.canary_of.as_ref().map(|_| "canary_of"),
            raw.mirror_of.as_ref().map(|_| "mirror_of"),
            raw.failover_for.as_ref().map(|_| "failover_for"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [first, second, ..] = named[..] {
            return Err(self.key_error(
                path,
                second,
                format!("a backend has one role: {first} and {second} cannot both be given"),
            ));
        }
        let stray = |key: &'static str, set: bool, owner: &str| -> Result<(), ConfigError> {
            if set && named.first() != Some(&owner) {
                return Err(self.key_error(path, key, format!("{key} needs {owner}")));
            }
            Ok(())
        };
        stray("weight", raw.weight.is_some(), "canary_of")?;
        stray("sticky", raw.sticky.is_some(), "canary_of")?;
        stray("mirror_percent", raw.mirror_percent.is_some(), "mirror_of")?;
        stray(
            "mirror_max_in_flight",
            raw.mirror_max_in_flight.is_some(),
            "mirror_of",
        )?;
        stray("mirror_unsafe", raw.mirror_unsafe.is_some(), "mirror_of")?;
        stray("priority", raw.priority.is_some(), "failover_for")?;
        let percent = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
            let Some(value) = value else {
                return Err(self.error(path, format!("missing key {key:?} (a percent, 0 to 100)")));
            };
            if !(0.0..=100.0).contains(&value) {
                return Err(self.error(&child(path, key), "must be 0 to 100 (a percent)"));
            }
            Ok(value)
        };
        if let Some(of) = &raw.canary_of {
            return Ok(Role::Canary {
                of: of.clone(),
                weight: percent("weight", raw.weight)?,
                sticky: raw.sticky.unwrap_or(false),
            });
        }
        if let Some(of) = &raw.mirror_of {
            let max_in_flight = raw
                .mirror_max_in_flight
                .unwrap_or(DEFAULT_MIRROR_MAX_IN_FLIGHT);
            if max_in_flight == 0 {
                return Err(self.error(&child(path, "mirror_max_in_flight"), "must be at least 1"));
            }
            return Ok(Role::Mirror {
                of: of.clone(),
                percent: percent("mirror_percent", raw.mirror_percent)?,
                max_in_flight,
                unsafe_calls: raw.mirror_unsafe.unwrap_or(false),
            });
        }
        if let Some(of) = &raw.failover_for {
            return Ok(Role::Failover {
                of: of.clone(),
                priority: raw.priority.unwrap_or(0),
            });
        }
        Ok(Role::Primary)
    }

    /// Each role names another backend that is a primary; the canaries of
    /// one primary weigh at most 100 % together.
    pub(super) fn roles(&self, backends: &[BackendConfig]) -> Result<(), ConfigError> {
        let mut canary_weight: HashMap<&str, f64> = HashMap::new();
        for (i, backend) in backends.iter().enumerate() {
            let (Some(of), Some(key)) = (backend.role.primary(), backend.role.kind().key()) else {
                continue;
            };
            let path = [Seg::Key("backends".into()), Seg::Index(i)];
            let at = child(&path, key);
            if of == backend.name {
                return Err(self.error(&at, "a backend cannot serve its own traffic"));
            }
            let Some(target) = backends.iter().find(|b| b.name == of) else {
                return Err(self.error(&at, format!("no backend named {of:?}")));
            };
            if target.role != Role::Primary {
                return Err(self.error(
                    &at,
                    format!("{of:?} serves another backend's traffic itself; name its primary"),
                ));
            }
            if let Role::Canary { weight, .. } = backend.role {
                let total = canary_weight.entry(target.name.as_str()).or_insert(0.0);
                *total += weight;
                if *total > 100.0 {
                    return Err(self.error(
                        &child(&path, "weight"),
                        format!("the canaries of {of:?} add up to {total}%, over 100%"),
                    ));
                }
            }
        }
        Ok(())
    }
}
