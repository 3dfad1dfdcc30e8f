//! The request table of one upstream connection, shared by both transports.
//!
//! Many clients of the proxy send requests through one backend connection,
//! each with ids and progress tokens of its own choosing, which may collide.
//! This table is where the connection gives every request an id of its own
//! (a counter from 1), swaps the caller's progress token for one unique on
//! the connection, and routes what comes back — the response, progress
//! notifications — to the caller that is waiting for it.
//!
//! The table also knows whether the connection is alive: [`Pending::close`]
//! fails every request in flight, refuses new ones and records why, so a
//! transport only has to say *that* its connection died, once.
//!
//! A caller that stops waiting (its future is dropped) must tell the backend
//! with `notifications/cancelled`, but a `Drop` cannot do I/O. [`InFlight`]
//! therefore hands the notification to the transport's [`CancelSink`]
//! without waiting (a channel the transport drains, or its own queue), so
//! the dropper is never delayed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::client::{self, ClientLink};
use super::{ProgressSink, UpstreamError};
use crate::jsonrpc::{self, ErrorObject};

/// The `reason` sent in `notifications/cancelled` when a caller stops waiting.
pub(crate) const CANCEL_REASON: &str = "the client of mcp-proxy stopped waiting for the answer";

/// Where [`InFlight`] sends the `notifications/cancelled` messages of
/// abandoned requests; the transport delivers them. Any function that
/// queues without waiting, so a transport can put a cancellation in line
/// with its requests; usually an unbounded channel's sender.
#[derive(Clone)]
pub(crate) struct CancelSink(Arc<dyn Fn(Value) -> bool + Send + Sync>);

impl CancelSink {
    /// A sink that hands each cancellation to `queue`, which says whether
    /// the transport took it.
    pub(crate) fn new(queue: impl Fn(Value) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(queue))
    }

    /// Hands over one cancellation; false when the transport is gone.
    fn send(&self, cancellation: Value) -> bool {
        (self.0)(cancellation)
    }
}

impl From<mpsc::UnboundedSender<Value>> for CancelSink {
    fn from(sender: mpsc::UnboundedSender<Value>) -> Self {
        Self::new(move |message| sender.send(message).is_ok())
    }
}

/// The answer a waiting request receives: the `result` member, or the error.
type Answer = Result<Value, UpstreamError>;

/// The request table of one connection. See the module docs.
pub(crate) struct Pending {
    backend: String,
    next_id: AtomicU64,
    cancels: CancelSink,
    state: Mutex<State>,
    closed: CancellationToken,
}

#[derive(Default)]
struct State {
    requests: HashMap<u64, Entry>,
    /// The backend's own requests being asked of a client, by the
    /// backend's id (its `notifications/cancelled` ends them).
    asks: HashMap<String, CancellationToken>,
    /// Set once, by [`Pending::close`].
    close_reason: Option<String>,
}

struct Entry {
    answer: oneshot::Sender<Answer>,
    /// The caller's own progress token and where its progress goes. The
    /// upstream token is the request's upstream id.
    progress: Option<(Value, Option<ProgressSink>)>,
    /// The way back to the client of the call, when it has one.
    client: Option<ClientSlot>,
}

/// A request's [`ClientLink`], and a token cancelled when the request
/// leaves the table however it leaves (answered, failed, abandoned, the
/// connection closed): what the backend asks the client for it is
/// bounded by the request's own life.
struct ClientSlot {
    link: ClientLink,
    ended: CancellationToken,
    _guard: DropGuard,
}

impl ClientSlot {
    fn new(link: ClientLink) -> Self {
        let ended = CancellationToken::new();
        Self {
            link,
            _guard: ended.clone().drop_guard(),
            ended,
        }
    }
}

/// Why a backend's request to a client has no client to go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoClient {
    /// No call of a client is in flight on the connection (or the request
    /// it came with is no client's: a mirror's copy, a listing).
    None,
    /// Calls of this many sessions are in flight, and nothing tells which
    /// one the request is for.
    Several(usize),
}

impl Pending {
    /// A table for the connection to `backend`; abandoned requests are
    /// announced on `cancels`.
    pub(crate) fn new(backend: impl Into<String>, cancels: impl Into<CancelSink>) -> Arc<Self> {
        Arc::new(Self {
            backend: backend.into(),
            next_id: AtomicU64::new(1),
            cancels: cancels.into(),
            state: Mutex::new(State::default()),
            closed: CancellationToken::new(),
        })
    }

    /// The backend name, for logs.
    pub(crate) fn backend(&self) -> &str {
        &self.backend
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The lock is never held across code that can panic; if it were
        // poisoned the map is still consistent, so keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Register a new request: allocate its upstream id, swap its progress
    /// token (if any) for one unique on this connection, and build the
    /// message to send. Fails at once if the connection is closed.
    pub(crate) fn start(
        self: &Arc<Self>,
        method: &str,
        mut params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<(Value, InFlight), UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let original_token = params
            .as_mut()
            .and_then(|params| swap_progress_token(params, id));
        let (answer, receiver) = oneshot::channel();
        {
            let mut state = self.state();
            if state.close_reason.is_some() {
                drop(state);
                return Err(self.not_sent());
            }
            let progress = original_token.map(|token| (token, progress));
            let client = client::current().map(ClientSlot::new);
            state.requests.insert(
                id,
                Entry {
                    answer,
                    progress,
                    client,
                },
            );
        }
        let message = jsonrpc::request(Value::from(id), method, params);
        let in_flight = InFlight {
            pending: Arc::clone(self),
            id,
            answer: Some(receiver),
            cancel_on_drop: true,
        };
        Ok((message, in_flight))
    }

    /// Hand a response to the request it answers. A response for an id this
    /// table does not know (never issued, already answered, or abandoned) is
    /// logged and dropped. Returns whether it reached a waiting request.
    pub(crate) fn resolve(&self, response: Value) -> bool {
        let Some(id) = response.get("id").and_then(upstream_id) else {
            let id = response.get("id").map(Value::to_string).unwrap_or_default();
            tracing::warn!(
                backend = %self.backend,
                id,
                "response with an id mcp-proxy never issued; dropped"
            );
            return false;
        };
        let Some(entry) = self.state().requests.remove(&id) else {
            if id == 0 || id >= self.next_id.load(Ordering::Relaxed) {
                tracing::warn!(
                    backend = %self.backend,
                    id,
                    "response with an id mcp-proxy never issued; dropped"
                );
            } else {
                tracing::warn!(
                    backend = %self.backend,
                    id,
                    "response to a request that is no longer pending; dropped"
                );
            }
            return false;
        };
        let answer = match response.get("error") {
            Some(error) => Err(UpstreamError::JsonRpc(ErrorObject::from_value(error))),
            None => Ok(match response {
                Value::Object(mut object) => object.remove("result").unwrap_or(Value::Null),
                _ => Value::Null,
            }),
        };
        // The caller may have stopped waiting a moment ago; nothing to do then.
        let _ = entry.answer.send(answer);
        true
    }

    /// Route a `notifications/progress` from the backend to the request it
    /// belongs to, with the caller's own token restored. Progress for a token
    /// this table does not know is logged and dropped, and so is progress
    /// its request's full queue has no room for (see [`ProgressSink`]).
    /// Returns whether it reached a sink.
    pub(crate) fn progress(&self, mut notification: Value) -> bool {
        let token = notification
            .get("params")
            .and_then(|params| params.get("progressToken"));
        let Some(id) = token.and_then(upstream_id) else {
            let token = token.map(Value::to_string).unwrap_or_default();
            tracing::warn!(
                backend = %self.backend,
                token,
                "progress for a token mcp-proxy never issued; dropped"
            );
            return false;
        };
        let target = {
            let state = self.state();
            state
                .requests
                .get(&id)
                .and_then(|entry| entry.progress.clone())
        };
        let Some((original, sink)) = target else {
            // Usually progress that lost the race with its own response.
            tracing::debug!(backend = %self.backend, id, "progress for a finished request");
            return false;
        };
        let Some(sink) = sink else {
            tracing::debug!(backend = %self.backend, id, "progress nobody asked for");
            return false;
        };
        if let Some(params) = notification
            .get_mut("params")
            .and_then(Value::as_object_mut)
        {
            params.insert("progressToken".into(), original);
        }
        sink.send(notification)
    }

    /// The client a backend's request is for, and a token cancelled when
    /// the call it serves ends. `related`: the upstream id of the request
    /// whose answer stream carried it (HTTP), which decides alone. Without
    /// one (stdio, the GET stream), the calls in flight decide: those of
    /// one session only, the oldest of them; none, or several sessions',
    /// and there is no telling.
    pub(crate) fn client_for(
        &self,
        related: Option<u64>,
    ) -> Result<(ClientLink, CancellationToken), NoClient> {
        let state = self.state();
        let parts = |slot: &ClientSlot| (slot.link.clone(), slot.ended.clone());
        if let Some(id) = related {
            return state
                .requests
                .get(&id)
                .and_then(|entry| entry.client.as_ref())
                .map(parts)
                .ok_or(NoClient::None);
        }
        let mut linked: Vec<(u64, &ClientSlot)> = state
            .requests
            .iter()
            .filter_map(|(id, entry)| entry.client.as_ref().map(|slot| (*id, slot)))
            .collect();
        linked.sort_unstable_by_key(|(id, _)| *id);
        let mut sessions: Vec<&str> = linked.iter().map(|(_, slot)| slot.link.session()).collect();
        sessions.sort_unstable();
        sessions.dedup();
        match (sessions.len(), linked.first()) {
            (1, Some((_, slot))) => Ok(parts(slot)),
            (0, _) | (_, None) => Err(NoClient::None),
            (several, _) => Err(NoClient::Several(several)),
        }
    }

    /// Record the backend's request `id` as being asked of a client, ended
    /// by `until`; [`Pending::cancel_ask`] cancels it.
    pub(crate) fn start_ask(&self, id: &Value, until: CancellationToken) {
        self.state().asks.insert(id.to_string(), until);
    }

    /// The backend cancelled its request `id`: stop asking the client.
    /// Returns whether it was being asked.
    pub(crate) fn cancel_ask(&self, id: &Value) -> bool {
        let until = self.state().asks.remove(&id.to_string());
        until.map(|until| until.cancel()).is_some()
    }

    /// The client answered (or the asking ended) for the backend's request
    /// `id`; false when the backend cancelled it meanwhile, and so wants
    /// no answer.
    pub(crate) fn finish_ask(&self, id: &Value) -> bool {
        self.state().asks.remove(&id.to_string()).is_some()
    }

    /// Fail one request in flight with `error`; false if it is not pending.
    pub(crate) fn fail(&self, id: u64, error: UpstreamError) -> bool {
        let Some(entry) = self.state().requests.remove(&id) else {
            return false;
        };
        let _ = entry.answer.send(Err(error));
        true
    }

    /// The connection is dead: record why, fail every request in flight and
    /// every later one with [`UpstreamError::Lost`], and wake
    /// [`Pending::closed`]. Only the first reason counts; returns whether
    /// this call was the one that closed the table.
    pub(crate) fn close(&self, reason: impl Into<String>) -> bool {
        let reason = reason.into();
        let entries: Vec<Entry> = {
            let mut state = self.state();
            if state.close_reason.is_some() {
                return false;
            }
            state.close_reason = Some(reason.clone());
            // In id order, not the map's: the waiters wake in this order and
            // may draw from seeded generators (retry jitter), so a replay
            // from the same seed must see the same order.
            let mut entries: Vec<(u64, Entry)> = state.requests.drain().collect();
            entries.sort_unstable_by_key(|(id, _)| *id);
            entries.into_iter().map(|(_, entry)| entry).collect()
        };
        tracing::info!(backend = %self.backend, %reason, "upstream connection closed");
        for entry in entries {
            let _ = entry.answer.send(Err(UpstreamError::Lost(reason.clone())));
        }
        self.closed.cancel();
        true
    }

    /// Resolves once [`Pending::close`] has been called.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Whether [`Pending::close`] has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Why the connection was closed, once it has been.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.state().close_reason.clone()
    }

    /// The error for a message that could not be sent because the
    /// connection is closed (or closing): it never reached the backend.
    pub(crate) fn not_sent(&self) -> UpstreamError {
        UpstreamError::Connect(
            self.close_reason()
                .unwrap_or_else(|| "connection closed".into()),
        )
    }

    /// The error for a request whose connection closed while it waited for
    /// its answer: it may have reached the backend.
    pub(crate) fn lost(&self) -> UpstreamError {
        UpstreamError::Lost(
            self.close_reason()
                .unwrap_or_else(|| "connection closed".into()),
        )
    }

    /// Whether the request with this upstream id still waits for an answer.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.state().requests.contains_key(&id)
    }

    /// How many requests wait for an answer.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state().requests.len()
    }

    /// Whether no request waits for an answer.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, id: u64) -> bool {
        self.state().requests.remove(&id).is_some()
    }
}

/// Replace `params._meta.progressToken` (a string or an integer) with the
/// upstream id; returns the caller's token if there was one.
fn swap_progress_token(params: &mut Value, id: u64) -> Option<Value> {
    let token = params.get_mut("_meta")?.get_mut("progressToken")?;
    if !jsonrpc::is_valid_id(token) {
        return None;
    }
    Some(std::mem::replace(token, Value::from(id)))
}

/// Read an upstream id (or progress token, which is the same number) as the
/// backend echoes it: the integer itself, or, leniently, its decimal string.
fn upstream_id(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// One request waiting for its answer, and the guard that cancels it
/// upstream if the waiter goes away first.
///
/// Dropping an `InFlight` whose answer has not arrived removes it from the
/// table (with its progress mapping) and queues `notifications/cancelled`
/// with its upstream id on the transport's [`CancelSink`].
pub(crate) struct InFlight {
    pending: Arc<Pending>,
    id: u64,
    /// Taken once the answer has been received.
    answer: Option<oneshot::Receiver<Answer>>,
    cancel_on_drop: bool,
}

impl InFlight {
    /// The upstream id of this request.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Do not send `notifications/cancelled` if this request is dropped
    /// unanswered (MCP forbids cancelling `initialize`).
    pub(crate) fn without_cancel(mut self) -> Self {
        self.cancel_on_drop = false;
        self
    }

    /// Wait for the answer: the `result` member or the error.
    pub(crate) async fn wait(mut self) -> Result<Value, UpstreamError> {
        let Some(receiver) = self.answer.as_mut() else {
            return Err(self.pending.lost());
        };
        let answer = receiver.await;
        self.answer = None;
        match answer {
            Ok(answer) => answer,
            // The table let go of the sender without answering: it is gone.
            Err(_) => Err(self.pending.lost()),
        }
    }

    /// Forget this request without telling the backend: it failed before
    /// reaching it, or the failure has already been reported.
    pub(crate) fn abandon(mut self) {
        self.pending.remove(self.id);
        self.answer = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.answer.is_none() {
            return;
        }
        // Only a request that was still waiting is cancelled: if the table no
        // longer holds it, its answer already arrived or the connection died.
        if self.pending.remove(self.id) && self.cancel_on_drop {
            let params = json!({ "requestId": self.id, "reason": CANCEL_REASON });
            let message = jsonrpc::notification("notifications/cancelled", Some(params));
            if !self.pending.cancels.send(message) {
                tracing::debug!(
                    backend = %self.pending.backend,
                    id = self.id,
                    "transport gone; cancellation not sent"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn table() -> (Arc<Pending>, mpsc::UnboundedReceiver<Value>) {
        let (cancels, cancelled) = mpsc::unbounded_channel();
        (Pending::new("test-backend", cancels), cancelled)
    }

    #[tokio::test]
    async fn ids_count_from_one_and_responses_reach_their_callers() {
        let (pending, _cancelled) = table();
        let (first, first_flight) = pending.start("tools/list", None, None).unwrap();
        let (second, second_flight) = pending
            .start("tools/call", Some(json!({"name": "x"})), None)
            .unwrap();
        assert_eq!(
            first,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        );
        assert_eq!(second["id"], json!(2));
        assert_eq!(second["params"], json!({"name": "x"}));
        assert_eq!(pending.len(), 2);

        // Answered out of order.
        assert!(pending.resolve(json!({"jsonrpc": "2.0", "id": 2, "result": {"n": 2}})));
        assert!(pending.resolve(json!({"jsonrpc": "2.0", "id": 1, "result": {"n": 1}})));
        assert_eq!(first_flight.wait().await.unwrap(), json!({"n": 1}));
        assert_eq!(second_flight.wait().await.unwrap(), json!({"n": 2}));
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn json_rpc_errors_keep_code_message_and_data() {
        let (pending, _cancelled) = table();
        let (_, flight) = pending.start("tools/call", None, None).unwrap();
        let error = json!({"code": -32602, "message": "bad params", "data": {"field": "x"}});
        pending.resolve(json!({"jsonrpc": "2.0", "id": 1, "error": error.clone()}));
        let Err(UpstreamError::JsonRpc(object)) = flight.wait().await else {
            panic!("expected a JSON-RPC error");
        };
        assert_eq!(object.to_value(), error);
    }

    #[tokio::test]
    async fn a_missing_result_is_null() {
        let (pending, _cancelled) = table();
        let (_, flight) = pending.start("ping", None, None).unwrap();
        pending.resolve(json!({"jsonrpc": "2.0", "id": "1", "result": null}));
        assert_eq!(flight.wait().await.unwrap(), Value::Null);
    }

    #[tokio::test]
    async fn unknown_and_malformed_ids_are_dropped() {
        let (pending, _cancelled) = table();
        let (_, flight) = pending.start("ping", None, None).unwrap();
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "id": 99, "result": {}})));
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "id": "abc", "result": {}})));
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "id": -1, "result": {}})));
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "result": {}})));
        assert!(!pending.resolve(json!("not even an object")));
        assert!(pending.contains(1));
        assert!(pending.resolve(json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
        // A second answer for the same id is a duplicate.
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
        assert_eq!(flight.wait().await.unwrap(), json!({}));
    }

    #[tokio::test]
    async fn progress_tokens_are_remapped_both_ways() {
        let (pending, _cancelled) = table();
        let (sink_a, mut progress_a) = ProgressSink::bounded(16, Default::default());
        let (sink_b, mut progress_b) = ProgressSink::bounded(16, Default::default());
        // Two callers chose the same token: upstream they must differ.
        let params = json!({"name": "t", "_meta": {"progressToken": "same", "other": 1}});
        let (message_a, flight_a) = pending
            .start("tools/call", Some(params.clone()), Some(sink_a))
            .unwrap();
        let params_b = json!({"_meta": {"progressToken": 7}});
        let (message_b, flight_b) = pending
            .start("tools/call", Some(params_b), Some(sink_b))
            .unwrap();
        let token_a = message_a["params"]["_meta"]["progressToken"].clone();
        let token_b = message_b["params"]["_meta"]["progressToken"].clone();
        assert_ne!(token_a, json!("same"));
        assert_ne!(token_a, token_b);
        assert_eq!(message_a["params"]["_meta"]["other"], json!(1));
        assert_eq!(message_a["params"]["name"], json!("t"));

        let upstream = |token: &Value, progress: u64| {
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": token, "progress": progress, "total": 10}})
        };
        assert!(pending.progress(upstream(&token_b, 3)));
        assert!(pending.progress(upstream(&token_a, 5)));
        let got_a = progress_a.try_recv().unwrap();
        assert_eq!(
            got_a["params"],
            json!({"progressToken": "same", "progress": 5, "total": 10})
        );
        assert_eq!(got_a["method"], json!("notifications/progress"));
        let got_b = progress_b.try_recv().unwrap();
        assert_eq!(got_b["params"]["progressToken"], json!(7));

        // Completing a request removes its mapping.
        pending.resolve(json!({"jsonrpc": "2.0", "id": flight_a.id(), "result": {}}));
        flight_a.wait().await.unwrap();
        assert!(!pending.progress(upstream(&token_a, 6)));
        assert!(progress_a.try_recv().is_err());
        drop(flight_b);
        assert!(!pending.progress(upstream(&token_b, 4)));
    }

    /// A request with progress token `"t"` whose progress queue holds
    /// `capacity`, counting drops in `dropped`: its upstream message, its
    /// guard and its queue.
    fn with_progress(
        pending: &Arc<Pending>,
        capacity: usize,
        dropped: Arc<AtomicU64>,
    ) -> (Value, InFlight, mpsc::Receiver<Value>) {
        let (sink, progress) = ProgressSink::bounded(capacity, dropped);
        let (message, flight) = pending
            .start(
                "x",
                Some(json!({"_meta": {"progressToken": "t"}})),
                Some(sink),
            )
            .unwrap();
        (message, flight, progress)
    }

    #[tokio::test]
    async fn unknown_or_malformed_progress_is_dropped() {
        let (pending, _cancelled) = table();
        let (_, _flight, mut progress) = with_progress(&pending, 16, Arc::default());
        for notification in [
            json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "t"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 42}}),
            json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}),
            json!({"jsonrpc": "2.0", "method": "notifications/progress"}),
        ] {
            assert!(!pending.progress(notification));
        }
        assert!(progress.try_recv().is_err());
    }

    #[tokio::test]
    async fn progress_beyond_a_full_queue_is_dropped_and_counted() {
        let (pending, _cancelled) = table();
        let dropped = Arc::new(AtomicU64::new(0));
        let (message, _flight, mut progress) = with_progress(&pending, 2, Arc::clone(&dropped));
        let token = message["params"]["_meta"]["progressToken"].clone();
        let upstream = |n: u64| {
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": token, "progress": n}})
        };
        assert!(pending.progress(upstream(1)));
        assert!(pending.progress(upstream(2)));
        assert!(!pending.progress(upstream(3)), "the queue is full");
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(progress.try_recv().unwrap()["params"]["progress"], json!(1));
        assert!(pending.progress(upstream(4)), "room again once read");
        assert_eq!(progress.try_recv().unwrap()["params"]["progress"], json!(2));
        assert_eq!(progress.try_recv().unwrap()["params"]["progress"], json!(4));
    }

    #[tokio::test]
    async fn tokens_that_are_not_ids_and_requests_without_sinks_are_left_alone() {
        let (pending, _cancelled) = table();
        let (message, flight) = pending
            .start("x", Some(json!({"_meta": {"progressToken": 1.5}})), None)
            .unwrap();
        assert_eq!(message["params"]["_meta"]["progressToken"], json!(1.5));
        drop(flight);
        // A token without a sink is still remapped (ids must not collide),
        // and its progress goes nowhere.
        let (message, flight) = pending
            .start("x", Some(json!({"_meta": {"progressToken": "a"}})), None)
            .unwrap();
        let token = message["params"]["_meta"]["progressToken"].clone();
        assert_eq!(token, json!(flight.id()));
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                  "params": {"progressToken": token}});
        assert!(!pending.progress(notification));
    }

    #[tokio::test]
    async fn close_fails_waiters_refuses_new_requests_and_wakes_closed() {
        let (pending, mut cancelled) = table();
        let (_, flight) = pending.start("a", None, None).unwrap();
        let waiter = {
            let pending = Arc::clone(&pending);
            tokio::spawn(async move { pending.closed().await })
        };
        assert!(pending.close("process exited with status 1"));
        assert!(!pending.close("a later reason"));
        let lost = UpstreamError::Lost("process exited with status 1".into());
        assert_eq!(flight.wait().await, Err(lost));
        // A request after the close is never sent.
        assert_eq!(
            pending.start("b", None, None).err(),
            Some(UpstreamError::Connect(
                "process exited with status 1".into()
            ))
        );
        assert_eq!(
            pending.close_reason().as_deref(),
            Some("process exited with status 1")
        );
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Requests failed by the connection's death are not cancelled upstream.
        assert!(cancelled.try_recv().is_err());
    }

    #[tokio::test]
    async fn dropping_a_waiting_request_cancels_it_upstream() {
        let (pending, mut cancelled) = table();
        let (sink, _progress) = ProgressSink::bounded(16, Default::default());
        let (_, flight) = pending
            .start(
                "slow",
                Some(json!({"_meta": {"progressToken": 1}})),
                Some(sink),
            )
            .unwrap();
        let id = flight.id();
        // The caller's future is dropped mid-wait, e.g. by a timeout.
        let waited = tokio::time::timeout(Duration::from_millis(10), flight.wait()).await;
        assert!(waited.is_err());
        assert!(!pending.contains(id));
        let message = cancelled.try_recv().unwrap();
        assert_eq!(
            message,
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": id, "reason": CANCEL_REASON}})
        );
        // Its progress mapping went with it, and a late answer is dropped.
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                              "params": {"progressToken": id}});
        assert!(!pending.progress(progress));
        assert!(!pending.resolve(json!({"jsonrpc": "2.0", "id": id, "result": {}})));
    }

    #[tokio::test]
    async fn finished_abandoned_and_quiet_requests_are_not_cancelled() {
        let (pending, mut cancelled) = table();
        // Answered, but the waiter was dropped before it looked.
        let (_, answered) = pending.start("a", None, None).unwrap();
        pending.resolve(json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        drop(answered);
        // Failed before it reached the backend.
        let (_, abandoned) = pending.start("b", None, None).unwrap();
        abandoned.abandon();
        assert!(pending.is_empty());
        // initialize may not be cancelled.
        let (_, quiet) = pending.start("initialize", None, None).unwrap();
        drop(quiet.without_cancel());
        assert!(pending.is_empty());
        // Completed normally.
        let (_, done) = pending.start("c", None, None).unwrap();
        pending.resolve(json!({"jsonrpc": "2.0", "id": 4, "result": {}}));
        done.wait().await.unwrap();
        assert!(cancelled.try_recv().is_err());
    }

    #[tokio::test]
    async fn dropping_after_the_transport_is_gone_does_not_panic() {
        let (pending, cancelled) = table();
        drop(cancelled);
        let (_, flight) = pending.start("a", None, None).unwrap();
        drop(flight);
        assert!(pending.is_empty());
    }
}
