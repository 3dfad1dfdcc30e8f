//! The traffic layer: which backend serves a call addressed to a primary.
//!
//! ```text
//! canary split (seeded, per call or per session)
//!   -> mirror copies (sampled, fire and forget, bounded)
//!   -> the chosen backend's own stack
//!   -> failover, in priority order, when it failed for its health
//! ```
//!
//! Canaries, mirrors and failovers are backends with a role
//! (`canary_of`, `mirror_of`, `failover_for`); their own names are neither
//! listed nor callable (the catalog and the router skip them), and they
//! receive the calls as the primary's shaping made them, `_meta` included.
//! The traffic layer applies to the calls that address a primary's items —
//! `tools/call`, `prompts/get`, `resources/read`; subscriptions, completion
//! and log levels stay with the primary.
//!
//! Failover is for health only (see [`is_health_failure`]): a bad request,
//! a backend's JSON-RPC error or a tool's error result is the answer, not a
//! reason to ask someone else (mcp-proxy 0.6 fails over on any JSON-RPC
//! error, invalid params included). And like a retry, it repeats a call
//! that may have run (a timeout, a lost connection) only when the call is
//! safe to repeat; one that never left ([`never_sent`]) may always go. A
//! canary that fails falls back to its primary before the standbys.

pub(crate) mod mirror;
pub(crate) mod split;

use crate::backend::{CallError, Refusal};
use crate::config::{Config, Role};
use mirror::Mirror;
use split::Split;

/// Methods the canary, mirror and failover apply to.
pub(crate) const ROUTED_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// How one primary's calls are spread.
pub(crate) struct Route {
    pub(crate) split: Split,
    pub(crate) mirrors: Vec<Mirror>,
    /// Backend indices, in the order they are tried.
    pub(crate) failovers: Vec<usize>,
}

impl Route {
    /// The route of the backend at `primary`: `None` when it has a role
    /// itself, or no canary, mirror or failover serves it.
    fn of(config: &Config, primary: usize) -> Option<Self> {
        let name = &config.backends[primary].name;
        if config.backends[primary].role != Role::Primary {
            return None;
        }
        // One stream per consumer, so adding a mirror does not move the split.
        let stream = |i: usize, salt: u64| config.proxy.seed ^ (i as u64 + 1).wrapping_mul(salt);
        let mut canaries = Vec::new();
        let mut mirrors = Vec::new();
        let mut failovers: Vec<(u32, usize)> = Vec::new();
        for (i, backend) in config.backends.iter().enumerate() {
            if backend.role.primary() != Some(name.as_str()) {
                continue;
            }
            match backend.role {
                Role::Canary { weight, sticky, .. } => canaries.push((i, weight, sticky)),
                Role::Mirror {
                    percent,
                    max_in_flight,
                    ..
                } => mirrors.push(Mirror::new(
                    i,
                    percent,
                    max_in_flight,
                    stream(i, 0x9e37_79b9_7f4a_7c15),
                )),
                Role::Failover { priority, .. } => failovers.push((priority, i)),
                Role::Primary => {}
            }
        }
        if canaries.is_empty() && mirrors.is_empty() && failovers.is_empty() {
            return None;
        }
        // By priority; config order breaks ties.
        failovers.sort();
        Some(Self {
            split: Split::new(canaries, stream(primary, 0xc2b2_ae3d_27d4_eb4f)),
            mirrors,
            failovers: failovers.into_iter().map(|(_, i)| i).collect(),
        })
    }
}

/// The routes of every primary, by backend index (`None` for a backend
/// with a role).
pub(crate) struct Traffic {
    routes: Vec<Option<Route>>,
}

impl Traffic {
    /// The routes `config` describes, drawing from the proxy's seed.
    pub(crate) fn new(config: &Config) -> Self {
        let routes = (0..config.backends.len())
            .map(|primary| Route::of(config, primary))
            .collect();
        Self { routes }
    }

    /// The route of the primary at `backend` (`None` for a backend with a
    /// role, and for a primary without canaries, mirrors or failovers).
    pub(crate) fn route(&self, backend: usize) -> Option<&Route> {
        self.routes.get(backend)?.as_ref()
    }

    /// Under a sticky canary split, which side `session` is on, as a key
    /// part: answers shared between sessions (cache, coalescing) must not
    /// cross sides, or a session would see the other side's answers.
    pub(crate) fn sticky_side(&self, backend: usize, session: &str) -> Option<String> {
        let split = &self.route(backend)?.split;
        split
            .is_sticky()
            .then(|| format!("side:{}", split.choose(session).unwrap_or(backend)))
    }

    /// The mirror at backend index `backend`, wherever it is configured.
    pub(crate) fn mirror(&self, backend: usize) -> Option<&Mirror> {
        self.routes
            .iter()
            .flatten()
            .flat_map(|route| &route.mirrors)
            .find(|mirror| mirror.backend == backend)
    }
}

/// Whether a failed call provably never ran at the backend (not connected,
/// connection refused, refused by the proxy), so it may run elsewhere
/// whether or not it is safe to repeat.
pub(crate) fn never_sent(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Unavailable { .. }
            | CallError::Refused { .. }
            | CallError::Upstream {
                error: crate::upstream::UpstreamError::Connect(_),
                ..
            }
    )
}

/// Whether a failure is about the backend's health, so another backend may
/// serve the call: it could not be reached or did not answer (transport,
/// timeout, not connected), its breaker is open, or every endpoint is
/// ejected. A backend's JSON-RPC error is its answer; the proxy's rate and
/// concurrency limits are its own decisions about load, not health.
pub(crate) fn is_health_failure(error: &CallError) -> bool {
    match error {
        CallError::Unavailable { .. } | CallError::Timeout { .. } => true,
        CallError::Refused { reason, .. } => {
            matches!(reason, Refusal::BreakerOpen | Refusal::Ejected)
        }
        CallError::Upstream {
            error: crate::upstream::UpstreamError::JsonRpc(_),
            ..
        } => false,
        CallError::Upstream { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::jsonrpc::ErrorObject;
    use crate::upstream::UpstreamError;

    #[test]
    fn only_health_failures_fail_over() {
        let backend = || "p".to_owned();
        let health = [
            CallError::Unavailable {
                backend: backend(),
                reason: "down".into(),
            },
            CallError::Timeout {
                backend: backend(),
                after: Duration::from_secs(1),
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::BreakerOpen,
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::Ejected,
            },
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::Lost("reset".into()),
            },
        ];
        for error in &health {
            assert!(is_health_failure(error), "{error}");
        }
        let answers = [
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::JsonRpc(ErrorObject::new(-32602, "bad params")),
            },
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::JsonRpc(ErrorObject::new(-32603, "internal")),
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::RateLimit,
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::Concurrency,
            },
        ];
        for error in &answers {
            assert!(!is_health_failure(error), "{error}");
        }
        let [unavailable, timeout, breaker, ejected, lost] = &health;
        for sent in [timeout, lost] {
            assert!(!never_sent(sent), "{sent}");
        }
        for unsent in [unavailable, breaker, ejected] {
            assert!(never_sent(unsent), "{unsent}");
        }
        assert!(never_sent(&CallError::Upstream {
            backend: backend(),
            error: UpstreamError::Connect("refused".into()),
        }));
    }
}
