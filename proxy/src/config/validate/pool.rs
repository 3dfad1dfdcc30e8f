//! The keys of a replica pool: `url` or `endpoints`, `load_balancing` and
//! `outlier_detection`.

use std::collections::HashMap;

use super::super::raw::{RawBackend, RawOutlier};
use super::super::source::Seg;
use super::super::{ConfigError, LoadBalancing, OutlierPolicy};
use super::transport::check_url;
use super::{Validator, child};

impl Validator<'_> {
    /// `url` (one endpoint) or `endpoints` (a pool), exactly one of them.
    pub(super) fn urls(&self, raw: &RawBackend, path: &[Seg]) -> Result<Vec<String>, ConfigError> {
        let list = match (&raw.url, &raw.endpoints) {
            (Some(_), Some(_)) => {
                return Err(self.key_error(
                    path,
                    "endpoints",
                    "give either \"url\" (one endpoint) or \"endpoints\" (replicas), not both",
                ));
            }
            (None, None) => {
                return Err(self.error(
                    path,
                    "missing key \"url\" (or \"endpoints\"), required for transport \"http\"",
                ));
            }
            (Some(url), None) => {
                check_url(url).map_err(|m| self.error(&child(path, "url"), m))?;
                return Ok(vec![url.clone()]);
            }
            (None, Some(list)) => list,
        };
        let list_path = child(path, "endpoints");
        if list.is_empty() {
            return Err(self.error(&list_path, "must list at least one URL"));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, url) in list.iter().enumerate() {
            let mut p = list_path.clone();
            p.push(Seg::Index(i));
            check_url(url).map_err(|m| self.error(&p, m))?;
            if let Some(first) = seen.insert(url.as_str(), i) {
                return Err(self.error(
                    &p,
                    format!("the same URL as endpoints[{first}]: replicas must differ"),
                ));
            }
        }
        Ok(list.clone())
    }

    pub(super) fn load_balancing(
        &self,
        raw: Option<&str>,
        path: &[Seg],
    ) -> Result<LoadBalancing, ConfigError> {
        match raw {
            None | Some("least_requests") => Ok(LoadBalancing::LeastRequests),
            Some("round_robin") => Ok(LoadBalancing::RoundRobin),
            Some("random") => Ok(LoadBalancing::Random),
            Some(other) => Err(self.error(
                &child(path, "load_balancing"),
                format!(
                    "unknown load balancing {other:?}; expected round_robin, least_requests or random"
                ),
            )),
        }
    }

    pub(super) fn outlier(
        &self,
        raw: &RawOutlier,
        path: &[Seg],
    ) -> Result<OutlierPolicy, ConfigError> {
        let defaults = OutlierPolicy::default();
        let consecutive_failures = raw
            .consecutive_failures
            .unwrap_or(defaults.consecutive_failures);
        if consecutive_failures == 0 {
            return Err(self.error(&child(path, "consecutive_failures"), "must be at least 1"));
        }
        let base_ejection = raw.base_ejection.map_or(defaults.base_ejection, |d| d.0);
        if base_ejection.is_zero() {
            return Err(self.error(&child(path, "base_ejection"), "must be greater than zero"));
        }
        let max_ejection = raw.max_ejection.map_or(defaults.max_ejection, |d| d.0);
        if max_ejection < base_ejection {
            let (at, default) = if raw.max_ejection.is_some() {
                ("max_ejection", "")
            } else {
                ("base_ejection", ", the default")
            };
            return Err(self.error(
                &child(path, at),
                format!(
                    "max_ejection ({max_ejection:?}{default}) must not be less than base_ejection ({base_ejection:?})"
                ),
            ));
        }
        let max_ejection_percent = raw
            .max_ejection_percent
            .unwrap_or(defaults.max_ejection_percent);
        if max_ejection_percent > 100 {
            return Err(self.error(&child(path, "max_ejection_percent"), "must be 0 to 100"));
        }
        Ok(OutlierPolicy {
            consecutive_failures,
            base_ejection,
            max_ejection,
            max_ejection_percent,
        })
    }
}
