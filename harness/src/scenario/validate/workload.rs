//! The `workload` section: clients (and their identities, read by
//! `identity.rs`), the closed or open load model, the call mix and the call
//! timeout, with their defaults and bounds.

use std::time::Duration;

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::{KeyPath, Validator};

/// Default `workload.call_timeout`.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `open.max_in_flight`.
const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Default `open.max_missed_share`. A slot sent more than a period late
/// counts as missed, so a busy machine misses some from scheduling jitter
/// alone (up to 7 % at 400 calls/s, each a few ms late, on a loaded
/// two-CPU debug build), although those calls were still sent and timed
/// from their slots. A tenth tolerates that, and still fails a run whose
/// harness cannot keep the rate or whose proxy stalled into `max_in_flight`.
const DEFAULT_MAX_MISSED_SHARE: f64 = 0.1;
/// Most client sessions, calls in flight, or open-loop calls per second: far
/// beyond any loopback test, low enough that a typo cannot exhaust memory.
const MAX_LOAD: usize = 100_000;

impl Validator<'_> {
    pub(super) fn workload(
        &self,
        raw: RawWorkload,
        path: &KeyPath,
        issuer: Option<&Issuer>,
    ) -> Result<Workload, ConfigError> {
        let identities = self.identities(
            raw.identities.unwrap_or_default(),
            &path.key("identities"),
            issuer,
        )?;
        let carried = identities.last().map_or(0, |i| i.clients.end);
        let clients = match raw.clients {
            Some(n) if carried > 0 && n != carried => {
                return Err(self.error(
                    &path.key("clients"),
                    format!("the identities have {carried} clients in all; leave `clients` out or make it {carried}"),
                ));
            }
            Some(n) => n,
            None if carried > 0 => carried,
            None => 1,
        };
        if !(1..=MAX_LOAD).contains(&clients) {
            return Err(self.error(&path.key("clients"), format!("must be 1 to {MAX_LOAD}")));
        }
        let mode = match (raw.closed, raw.open) {
            (Some(c), None) => {
                if !(1..=MAX_LOAD).contains(&c.concurrency) {
                    return Err(self.error(
                        &path.key("closed").key("concurrency"),
                        format!("must be 1 to {MAX_LOAD}"),
                    ));
                }
                LoadMode::Closed {
                    concurrency: c.concurrency,
                }
            }
            (None, Some(o)) => {
                if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= MAX_LOAD as f64) {
                    return Err(self.error(
                        &path.key("open").key("rate"),
                        format!("must be > 0 and at most {MAX_LOAD} (calls per second)"),
                    ));
                }
                let max_in_flight = o.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
                if !(1..=MAX_LOAD).contains(&max_in_flight) {
                    return Err(self.error(
                        &path.key("open").key("max_in_flight"),
                        format!("must be 1 to {MAX_LOAD}"),
                    ));
                }
                let max_missed_share = o.max_missed_share.unwrap_or(DEFAULT_MAX_MISSED_SHARE);
                if !(0.0..=1.0).contains(&max_missed_share) {
                    return Err(self.error(
                        &path.key("open").key("max_missed_share"),
                        "must be between 0 and 1",
                    ));
                }
                LoadMode::Open {
                    rate: o.rate,
                    max_in_flight,
                    max_missed_share,
                }
            }
            (Some(_), Some(_)) => {
                return Err(self.error(path, "choose closed or open, not both"));
            }
            (None, None) => return Err(self.error(path, "needs closed or open")),
        };
        if raw.calls.is_empty() {
            return Err(self.error(&path.key("calls"), "at least one call is required"));
        }
        let mut calls = Vec::new();
        for (i, c) in raw.calls.into_iter().enumerate() {
            let p = path.key("calls").index(i);
            let weight = c.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(self.error(&p.key("weight"), "must be > 0"));
            }
            if c.tool.is_empty() {
                return Err(self.error(&p.key("tool"), "must not be empty"));
            }
            let arguments = c.arguments.unwrap_or_default();
            if arguments.contains_key("harness_call") {
                return Err(self.error(
                    &p.key("arguments").key("harness_call"),
                    "is set by the harness on every call",
                ));
            }
            calls.push(CallMix {
                tool: c.tool,
                arguments,
                weight,
            });
        }
        let call_timeout = raw.call_timeout.map_or(DEFAULT_CALL_TIMEOUT, |d| d.0);
        if call_timeout.is_zero() {
            return Err(self.error(&path.key("call_timeout"), "must be greater than zero"));
        }
        Ok(Workload {
            clients,
            mode,
            calls,
            call_timeout,
            identities,
        })
    }
}
