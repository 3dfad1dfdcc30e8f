//! The hot path's parts, within a benchmark's reach: compiled only with
//! the `bench-internals` feature, for the micro-benchmarks in
//! `benches/hot_path.rs`.
//!
//! The crate's modules stay private to everyone else. This facade owns no
//! logic: each function calls the one the proxy runs per call and each
//! type wraps the proxy's own, so what a benchmark measures is the
//! proxy's code, part by part, and a regression shows in the part it is in
//! (the walk of one `tools/call` is in ARCHITECTURE.md). It is not an API:
//! it follows the internals and changes with them.
//!
//! - [`is_request`] and [`knows_method`]: how the front classifies a
//!   parsed POST body and the gateway parses its method;
//! - [`RequestTable`]: one upstream connection's request table: the
//!   proxy's own id out, the backend's answer routed back by it;
//! - [`response`]: the client's response, under the client's own id;
//! - [`Router`]: a running proxy's name resolution, `backend/tool` into
//!   the call its backend gets;
//! - [`Sessions`]: the session store: a session found by its
//!   `Mcp-Session-Id`, a request admitted to it and released.

use std::sync::Arc;

use futures_util::future::AbortHandle;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::call::{Call, Method};
use crate::gateway::Gateway;
use crate::jsonrpc::{self, Kind};
use crate::server::RunningProxy;
use crate::session::{self, SessionStore};
use crate::upstream::pending::{self, Pending};
use crate::upstream::{EventSink, inbound};

/// Whether a parsed message is a request (`jsonrpc::kind`), as
/// `front::mcp::post` decides for every POST body.
pub fn is_request(message: &Value) -> bool {
    jsonrpc::kind(message) == Kind::Request
}

/// Whether the proxy knows a request's method (`call::Method::parse`), as
/// `Gateway::handle` decides once per request.
pub fn knows_method(method: &str) -> bool {
    Method::parse(method).is_some()
}

/// The response the front sends its client: `result` under the client's
/// own `id` (`jsonrpc::response`).
pub fn response(id: Value, result: Value) -> Value {
    jsonrpc::response(id, result)
}

/// One upstream connection's request table (`upstream::pending`), and
/// the sinks a live connection routes beside it: notifications that
/// belong to no request, and the cancellations of abandoned requests.
pub struct RequestTable {
    pending: Arc<Pending>,
    events: EventSink,
    _events: mpsc::UnboundedReceiver<Value>,
    _cancellations: mpsc::UnboundedReceiver<Value>,
}

impl RequestTable {
    /// An empty table of a connection to `backend`.
    pub fn new(backend: &str) -> Self {
        let (cancels, cancellations) = mpsc::unbounded_channel();
        let (events, events_receiver) = mpsc::unbounded_channel();
        Self {
            pending: Pending::new(backend, cancels),
            events,
            _events: events_receiver,
            _cancellations: cancellations,
        }
    }

    /// Register a request (`Pending::start`): the message to send
    /// upstream, under the proxy's own id, and the request's waiter.
    pub fn start(&self, method: &str, params: Option<Value>) -> Result<(Value, Waiter), String> {
        self.pending
            .start(method, params, None)
            .map(|(message, in_flight)| (message, Waiter(in_flight)))
            .map_err(|error| error.to_string())
    }

    /// Route a message from the backend (`upstream::inbound::route`): a
    /// response goes to the request it answers. Returns the replies owed
    /// to the backend's own requests that are ready at once (with no
    /// call of a client in flight, all of them are).
    pub fn route(&self, message: Value) -> Vec<Value> {
        inbound::route(message, &self.pending, &self.events, None)
            .into_iter()
            .filter_map(|reply| match reply {
                inbound::Reply::Now(reply) => Some(reply),
                inbound::Reply::Later(_) => None,
            })
            .collect()
    }
}

/// A request registered in a [`RequestTable`] (`pending::InFlight`).
pub struct Waiter(pending::InFlight);

impl Waiter {
    /// The proxy's own id of the request upstream.
    pub fn id(&self) -> u64 {
        self.0.id()
    }

    /// The answer: the backend's `result`, or its error as text.
    pub async fn answer(self) -> Result<Value, String> {
        self.0.wait().await.map_err(|error| error.to_string())
    }
}

/// A running proxy's name resolution (`Gateway::resolve`), for a session
/// of its own.
pub struct Router {
    gateway: Arc<Gateway>,
    session: Arc<session::Session>,
}

impl Router {
    /// The router of `proxy`; `None` when it has no room for a session.
    pub fn of(proxy: &RunningProxy) -> Option<Self> {
        let app = proxy.app();
        Some(Self {
            gateway: app.live.current(),
            session: app.sessions.create(None)?,
        })
    }

    /// Resolve a `tools/call` with these params into its call, as the
    /// gateway does for each one; the error's message when it is refused.
    pub fn tools_call(&self, params: Value) -> Result<Resolved, String> {
        self.gateway
            .resolve(&self.session, Method::ToolsCall, Some(params), None)
            .map(Resolved)
            .map_err(|error| error.message)
    }
}

/// A resolved call (`call::Call`).
pub struct Resolved(Call);

impl Resolved {
    /// The index of the backend it addresses, in config order.
    pub fn backend(&self) -> usize {
        self.0.backend
    }

    /// The tool as the backend names it.
    pub fn target(&self) -> &str {
        &self.0.target
    }

    /// Whether it may be repeated, by the backend's listing.
    pub fn repeatable(&self) -> bool {
        self.0.safety.repeatable
    }
}

/// The session store (`session::SessionStore`), within the config's
/// default bounds, naming sessions with random ids as
/// `Platform::os()` does.
#[derive(Default)]
pub struct Sessions(SessionStore);

impl Sessions {
    /// A new session, as `initialize` creates it; `None` at `max_sessions`.
    pub fn create(&self) -> Option<Session> {
        self.0.create(None).map(Session)
    }

    /// The session an `Mcp-Session-Id` names, as the front looks it up
    /// for every request after `initialize`.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.0.get(Some(id), None).ok().map(Session)
    }

    /// Admit a request of `session` under the client's id
    /// (`SessionStore::admit`); `None` when it is refused. Dropping the
    /// guard releases it, as the end of the request does.
    pub fn admit(
        &self,
        session: &Session,
        request_id: &Value,
        abort: AbortHandle,
    ) -> Option<Admitted> {
        self.0
            .admit(&session.0, request_id, abort)
            .ok()
            .map(|in_flight| Admitted {
                _in_flight: in_flight,
            })
    }
}

/// A client session (`session::Session`).
pub struct Session(Arc<session::Session>);

impl Session {
    /// Its `Mcp-Session-Id`.
    pub fn id(&self) -> &str {
        self.0.id()
    }
}

/// A request admitted to its session; released when dropped.
pub struct Admitted {
    _in_flight: session::InFlight,
}
