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
//! Failover is for health only ([`CallError::fails_over`]): a bad request,
//! a backend's JSON-RPC error or a tool's error result is the answer, not a
//! reason to ask someone else (mcp-proxy 0.6 fails over on any JSON-RPC
//! error, invalid params included). And like a retry, it repeats a call
//! that may have run (a timeout, a lost connection) only when the call is
//! safe to repeat; one that never left ([`CallError::never_sent`]) may
//! always go. A canary that fails falls back to its primary before the
//! standbys.
//!
//! [`Traffic::serve`] runs this for one call over [`Backends`] (what it
//! needs from below: a backend by index, to call, to copy to, to name);
//! [`Stage`] is it as the `Next` of the shaping stage above.

pub(crate) mod mirror;
pub(crate) mod split;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::call::{Backends, Call, Next};
use crate::config::{Config, Role};
use crate::jsonrpc::ErrorObject;
use mirror::Mirror;
use split::Split;

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
                    unsafe_calls,
                    ..
                } => mirrors.push(
                    Mirror::new(i, percent, max_in_flight, stream(i, 0x9e37_79b9_7f4a_7c15))
                        .copying_unsafe(unsafe_calls),
                ),
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

/// The traffic stage over `B`, as the shaping stage's `Next`.
pub(crate) struct Stage<B> {
    traffic: Arc<Traffic>,
    backends: Arc<B>,
}

impl<B> Stage<B> {
    pub(crate) fn new(traffic: Arc<Traffic>, backends: Arc<B>) -> Self {
        Self { traffic, backends }
    }
}

impl<B: Backends + Send + Sync + 'static> Next for Stage<B> {
    fn run(&self, call: Call) -> impl Future<Output = Result<Value, ErrorObject>> + Send + 'static {
        let traffic = Arc::clone(&self.traffic);
        let backends = Arc::clone(&self.backends);
        async move { traffic.serve(call, &*backends).await }
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
    fn route(&self, backend: usize) -> Option<&Route> {
        self.routes.get(backend)?.as_ref()
    }

    /// Sends a call addressed to its primary through the primary's route:
    /// mirror copies, the canary split, failover on a health failure.
    /// Without a route it goes to the primary alone.
    pub(crate) async fn serve<B: Backends>(
        &self,
        call: Call,
        backends: &B,
    ) -> Result<Value, ErrorObject> {
        let primary = call.backend;
        let Some(route) = self.route(primary) else {
            return backends
                .call(primary, call)
                .await
                .map_err(|error| error.to_error_object());
        };
        debug_assert!(call.method.is_routed());
        for mirror in &route.mirrors {
            mirror.copy(call.safety, || {
                backends.copy(mirror.backend, call.without_progress())
            });
        }
        let chosen = route.split.choose(&call.session).unwrap_or(primary);
        // Progress goes to one backend only (another would count from zero
        // again): to a fallback only while every attempt before never left.
        let mut spare_progress = call.progress.clone();
        let spare = call.without_progress();
        let mut failed = match backends.call(chosen, call).await {
            Err(error) if error.fails_over() => error,
            answered => return answered.map_err(|error| error.to_error_object()),
        };
        // A failed canary falls back to its primary first, then the standbys.
        let fallbacks = (chosen != primary)
            .then_some(primary)
            .into_iter()
            .chain(route.failovers.iter().copied());
        for fallback in fallbacks {
            // A call that may have run (a timeout, a lost connection) runs
            // elsewhere only when it is safe to repeat, as for retries.
            if !failed.never_sent() {
                if !spare.safety.repeatable {
                    break;
                }
                spare_progress = None;
            }
            let mut again = spare.clone();
            again.progress.clone_from(&spare_progress);
            match backends.call(fallback, again).await {
                Err(error) if error.fails_over() => {
                    tracing::debug!(backend = backends.name(fallback), %error, "fallback failed too");
                    failed = error;
                }
                answered => {
                    tracing::debug!(
                        from = backends.name(chosen),
                        to = backends.name(fallback),
                        "failed over"
                    );
                    return answered.map_err(|error| error.to_error_object());
                }
            }
        }
        // The client hears about the backend it addressed, not a hidden one.
        Err(failed.told_as(backends.name(primary)).to_error_object())
    }

    /// Who may share the answers of `session`'s calls to `backend` (the
    /// cache, coalescing): under a sticky canary split, the side `session`
    /// is on, or a session would see the other side's answers; else anyone.
    pub(crate) fn audience(&self, backend: usize, session: &str) -> Option<String> {
        let split = &self.route(backend)?.split;
        split
            .is_sticky()
            .then(|| format!("side:{}", split.choose(session).unwrap_or(backend)))
    }

    /// The backends that serve `primary`'s calls besides it: its
    /// canaries, then its standbys, then its mirrors.
    pub(crate) fn serving(&self, primary: usize) -> impl Iterator<Item = usize> + '_ {
        self.route(primary).into_iter().flat_map(|route| {
            route
                .split
                .canaries()
                .chain(route.failovers.iter().copied())
                .chain(route.mirrors.iter().map(|mirror| mirror.backend))
        })
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

#[cfg(test)]
mod tests;
