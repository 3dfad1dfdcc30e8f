//! One client request as it travels down: parsed once at the top of the
//! gateway into a [`Method`], and, for a request a backend answers, built
//! once into a [`Call`] that every stage below takes and passes on.
//!
//! ```text
//! gateway (parse, resolve the name or URI, decide safety)
//!   -> shaping (cache, coalesce) -> traffic (split, mirror, failover)
//!   -> backend (resilience, pool) -> upstream
//! ```
//!
//! The call carries what the stages ask of it, decided in one place: the
//! method, the backend the client addressed, the backend's own name or URI,
//! the params as the backend will receive them, the client's progress sink
//! and whether the call may be repeated or served from a cache
//! ([`safety`]), and its trace (the proxy's span of it). No stage below the gateway matches a method string again
//! or scans a tool list.

mod safety;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::backend::{CallError, ListKind};
use crate::jsonrpc::ErrorObject;
use crate::trace::CallTrace;
use crate::upstream::ProgressSink;
pub(crate) use safety::{Safety, ToolSafety};

/// A request method the proxy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `initialize` (answered by the front before a session exists).
    Initialize,
    /// `ping`.
    Ping,
    /// One of the four list methods, answered from the catalog.
    List(ListKind),
    /// `tools/call`.
    ToolsCall,
    /// `prompts/get`.
    PromptsGet,
    /// `resources/read`.
    ResourcesRead,
    /// `resources/subscribe`.
    ResourcesSubscribe,
    /// `resources/unsubscribe`.
    ResourcesUnsubscribe,
    /// `completion/complete`.
    Complete,
    /// `logging/setLevel`.
    SetLogLevel,
}

impl Method {
    /// Every method, for lookups by name.
    const ALL: [Method; 13] = [
        Method::Initialize,
        Method::Ping,
        Method::List(ListKind::Tools),
        Method::List(ListKind::Resources),
        Method::List(ListKind::ResourceTemplates),
        Method::List(ListKind::Prompts),
        Method::ToolsCall,
        Method::PromptsGet,
        Method::ResourcesRead,
        Method::ResourcesSubscribe,
        Method::ResourcesUnsubscribe,
        Method::Complete,
        Method::SetLogLevel,
    ];

    /// The method a JSON-RPC `method` string names, if the proxy knows it.
    pub(crate) fn parse(method: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == method)
    }

    /// The method's name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Initialize => "initialize",
            Method::Ping => "ping",
            Method::List(kind) => kind.method(),
            Method::ToolsCall => "tools/call",
            Method::PromptsGet => "prompts/get",
            Method::ResourcesRead => "resources/read",
            Method::ResourcesSubscribe => "resources/subscribe",
            Method::ResourcesUnsubscribe => "resources/unsubscribe",
            Method::Complete => "completion/complete",
            Method::SetLogLevel => "logging/setLevel",
        }
    }

    /// Whether the call uses a primary's items (a tool, a prompt, a
    /// resource's contents), so shaping's cache and coalescing and the
    /// traffic layer's canaries, mirrors and failovers apply to it.
    pub(crate) fn is_routed(self) -> bool {
        matches!(
            self,
            Method::ToolsCall | Method::PromptsGet | Method::ResourcesRead
        )
    }
}

/// One request on its way to a backend.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The backend the client addressed (for a routed call, the primary;
    /// the traffic layer may send it to a canary or a standby).
    pub(crate) backend: usize,
    /// The tool or prompt as the backend names it (prefix taken off,
    /// alias resolved), or the resource URI; empty when the method
    /// addresses neither.
    pub(crate) target: String,
    /// The params as the backend receives them.
    pub(crate) params: Option<Value>,
    /// Where the call's progress notifications go, when the client asked
    /// for them. Only one attempt on one backend relays them.
    pub(crate) progress: Option<ProgressSink>,
    /// Whether it may be repeated or cached, decided by the addressed
    /// backend's listing and config (canaries, mirrors and standbys serve
    /// the same tools, so their answer is the primary's; until the primary
    /// has listed, the first of them that has).
    pub(crate) safety: Safety,
    /// The client session that sent it.
    pub(crate) session: Arc<str>,
    /// Who may share its answer through the cache or coalescing: the
    /// caller's subject (with `auth:`), and under a sticky canary split the
    /// side the session is on. `None`: anyone.
    pub(crate) audience: Option<String>,
    /// The client's `Authorization` header, carried only when some backend
    /// has `forward_auth` (each backend sends it on only if it has).
    pub(crate) credential: Option<http::HeaderValue>,
    /// The call's trace: each attempt opens its span under the call's and
    /// tells the backend ([`crate::trace`]). `None`: the call is not traced
    /// (subscriptions, log levels).
    pub(crate) trace: Option<CallTrace>,
}

impl Call {
    /// A call with nothing decided yet beyond what it sends where: no
    /// progress, not safe to repeat, shared with anyone, from no session.
    /// For what bypasses shaping and traffic (subscriptions, completion,
    /// log levels); the gateway's `resolve` builds the routed ones.
    pub(crate) fn new(method: Method, backend: usize, params: Option<Value>) -> Self {
        Self {
            method,
            backend,
            target: String::new(),
            params,
            progress: None,
            safety: Safety::UNSAFE,
            session: Arc::from(""),
            audience: None,
            credential: None,
            trace: None,
        }
    }

    /// The JSON-RPC method on the wire.
    pub(crate) fn method_name(&self) -> &'static str {
        self.method.as_str()
    }

    /// The call without its progress sink: what a mirror, a follower's
    /// shared call or a fallback that must not relay progress receives.
    pub(crate) fn without_progress(&self) -> Self {
        Self {
            progress: None,
            ..self.clone()
        }
    }
}

/// The rest of the path below a stage, as tower layers wrap an inner
/// service: a stage decides what to do with a call and hands it on by
/// [`Next::run`]. The future owns what it uses, so a stage may share it
/// between callers (coalescing) or let it outlive the one that started it.
pub(crate) trait Next: Send + Sync {
    /// Runs `call` through everything below.
    fn run(&self, call: Call) -> impl Future<Output = Result<Value, ErrorObject>> + Send + 'static;
}

/// The backends at the bottom of the stages, by config index: what the
/// traffic stage needs to send a call to the backend it chose.
pub(crate) trait Backends {
    /// Sends `call` to the backend at `backend` (the chosen one, which may
    /// be another than `call.backend`, the one the client addressed) and
    /// waits for its answer.
    fn call(
        &self,
        backend: usize,
        call: Call,
    ) -> impl Future<Output = Result<Value, CallError>> + Send;

    /// A mirror's copy of `call` for the backend at `backend`, to run in a
    /// task of its own; its answer is dropped.
    fn copy(&self, backend: usize, call: Call) -> impl Future<Output = ()> + Send + 'static;

    /// The backend's name, as errors and logs tell it.
    fn name(&self, backend: usize) -> &str;
}

impl<F, Fut> Next for F
where
    F: Fn(Call) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, ErrorObject>> + Send + 'static,
{
    fn run(&self, call: Call) -> impl Future<Output = Result<Value, ErrorObject>> + Send + 'static {
        self(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_from_its_own_name_only() {
        for method in Method::ALL {
            assert_eq!(Method::parse(method.as_str()), Some(method));
        }
        assert_eq!(Method::parse("tools/cal"), None);
        assert_eq!(Method::parse("notifications/initialized"), None);
    }
}
