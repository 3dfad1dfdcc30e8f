//! Request shaping between the gateway and the traffic layer: what a
//! primary's clients may see and call, what its calls carry, and which
//! calls need not reach a backend at all.
//!
//! ```text
//! rules, applied by the gateway's resolve:
//!   filter (expose/hide) -> alias -> arguments (defaults, injections) -> size limit
//! Shaper::serve:
//!   cache -> coalesce -> next (traffic: canary, mirror, failover)
//! ```
//!
//! [`rules`] decides names and arguments; the gateway applies them while it
//! resolves a client's name into a [`Call`], since an unknown or hidden
//! name never becomes one. Then [`Shaper::serve`] takes the call: a
//! repeated read may be answered from a short-lived [`cache`] of
//! successful answers, and identical calls that are in flight together are
//! folded into one call by [`coalesce`]; anything else goes to `next`.
//! Both decide what "identical" means through one [`RequestKey`]
//! ([`key`]), so that the two can never disagree. Because the cache sits
//! before the traffic layer, a cache hit is neither mirrored nor sent to a
//! canary; because the rules come first, a hidden tool cannot be reached
//! through an alias or a canary.
//!
//! Only reads are cached (`resources/read`, and tools the server marks
//! `readOnlyHint`) and only calls safe to repeat are coalesced
//! (two identical idempotent writes in flight may share one), never a call
//! whose client asked for progress (the others would get none): the call's
//! [`Safety`](crate::call::Safety) says which.

pub(crate) mod cache;
pub(crate) mod coalesce;
pub(crate) mod key;
pub(crate) mod rules;

use std::time::Duration;

use serde_json::Value;

use crate::call::{Call, Method, Next};
use crate::config::{CachePolicy, Shaping};
use crate::jsonrpc::ErrorObject;
use cache::{CacheCounts, ResponseCache};
use coalesce::Coalescer;
pub(crate) use key::RequestKey;
use rules::Rules;

/// One primary's shaping.
pub(crate) struct Shaper {
    pub(crate) rules: Rules,
    cache: Option<(ResponseCache, CachePolicy)>,
    coalescer: Option<Coalescer<ErrorObject>>,
}

impl Shaper {
    pub(crate) fn new(shaping: &Shaping) -> Self {
        Self {
            rules: Rules::new(shaping),
            cache: shaping
                .cache
                .map(|policy| (ResponseCache::new(policy.max_entries), policy)),
            coalescer: shaping.coalesce.then(Coalescer::new),
        }
    }

    /// Serves a call addressed to this primary, its names and arguments
    /// already shaped: from the cache, joined to an identical call in
    /// flight, or by `next`.
    pub(crate) async fn serve<N: Next>(&self, call: Call, next: &N) -> Result<Value, ErrorObject> {
        let ttl = self
            .cache_ttl(call.method)
            .filter(|_| call.safety.read_only);
        let coalescer = self
            .coalescer
            .as_ref()
            .filter(|_| call.progress.is_none() && call.safety.repeatable);
        if ttl.is_none() && coalescer.is_none() {
            return next.run(call).await;
        }
        let key = RequestKey::new(
            call.backend,
            call.method_name(),
            &call.target,
            call.params.as_ref().and_then(|p| p.get("arguments")),
            call.audience.as_deref(),
        );
        if ttl.is_some()
            && let Some(hit) = self.cache().and_then(|cache| cache.get(&key))
        {
            return Ok(hit);
        }
        let result = match coalescer {
            // The shared call belongs to every waiter: `next` owns what it uses.
            Some(coalescer) => coalescer.run(key.clone(), || next.run(call)).await,
            None => next.run(call).await,
        };
        if let (Some(ttl), Some(cache), Ok(value)) = (ttl, self.cache(), &result)
            && value.get("isError") != Some(&Value::Bool(true))
        {
            cache.put(key, value.clone(), ttl);
        }
        result
    }

    /// How long an answer to `method` may be reused, when it may.
    fn cache_ttl(&self, method: Method) -> Option<Duration> {
        let (_, policy) = self.cache.as_ref()?;
        match method {
            Method::ToolsCall => policy.tools,
            Method::ResourcesRead => policy.resources,
            _ => None,
        }
    }

    fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_ref().map(|(cache, _)| cache)
    }

    /// Cache hits and misses, and calls that joined one in flight.
    pub(crate) fn counts(&self) -> (CacheCounts, u64) {
        (
            self.cache().map(ResponseCache::counts).unwrap_or_default(),
            self.coalescer.as_ref().map_or(0, Coalescer::coalesced),
        )
    }
}

#[cfg(test)]
mod tests;
