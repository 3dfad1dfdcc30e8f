//! Client sessions of the streamable-HTTP endpoint, and the bounds on
//! what clients may hold in the proxy.
//!
//! A session is created by `initialize` and named by the `Mcp-Session-Id`
//! header after it. It remembers the client's in-flight requests (so `notifications/cancelled` can stop the
//! right one), its resource subscriptions, and the sender of its optional
//! GET event stream, through which the proxy pushes `list_changed` and other
//! server notifications. With `auth:`, a session belongs to the caller
//! that initialized it: a request of another subject, or of the same
//! subject with other roles, does not find it; so the roles the gateway
//! judges its lists and calls by are the session's own.
//!
//! The store also owns the bounds that keep clients from growing the
//! proxy's memory without end, so that what a session holds is counted in
//! one place ([`Limits`]): sessions at once (`max_sessions`), requests in
//! flight per session and over all (`max_in_flight_per_session`,
//! `max_in_flight`), each request's progress queue (`progress_queue`), and
//! idle expiry. A session is idle once it has sent no request and got no
//! answer for `session_idle_timeout`; an open GET stream is not activity (an
//! abandoned one would otherwise keep it forever), and a request in flight
//! keeps it only until the request ends, or at most the longest call
//! timeout after it started. An expired session is ended as DELETE ends
//! it: its event stream closes and its requests still in flight are
//! aborted.
//!
//! What a backend asks a session's client (sampling, elicitation, roots)
//! is the session's too: `asks.rs`.

mod asks;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::AbortHandle;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::platform::{RandomSessionIds, SessionIds};
use crate::upstream::ProgressSink;
use crate::upstream::client::ClientLink;

/// How many undelivered notifications a session's event stream may queue
/// before further ones are dropped (a stalled client must not grow memory).
const STREAM_QUEUE: usize = 256;

/// One client session.
pub(crate) struct Session {
    id: Arc<str>,
    last_seen: Mutex<Instant>,
    in_flight: Mutex<HashMap<String, Call>>,
    /// Numbers the session's calls, so a finished call forgets only itself
    /// when the client reused its id after cancelling it.
    next_call: AtomicU64,
    /// Set once the session is deleted or expired.
    ended: AtomicBool,
    subscriptions: Mutex<HashSet<String>>,
    stream: Mutex<Option<mpsc::Sender<Value>>>,
    /// The least severe log level the client asked for (`logging/setLevel`);
    /// `None` until it asks, and then it gets no backend log messages.
    log_severity: Mutex<Option<u8>>,
    /// Who initialized it (with `auth:`): only requests of the same
    /// subject with the same roles find it, so the roles the gateway judges
    /// its lists and calls by are the same for every request of it.
    caller: Option<Arc<Caller>>,
    /// The `Authorization` header of its latest request, kept only for
    /// `forward_auth` backends.
    credential: RwLock<Option<http::HeaderValue>>,
    /// The `capabilities` the client declared at `initialize`.
    client_capabilities: OnceLock<Value>,
    /// The requests backends asked of the client that wait for answers.
    asks: Mutex<asks::Asks>,
}

/// A request in flight in a session.
struct Call {
    number: u64,
    abort: AbortHandle,
    started: Instant,
}

impl Session {
    /// The `Mcp-Session-Id`.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The id, shared with the calls the session makes.
    pub(crate) fn shared_id(&self) -> Arc<str> {
        Arc::clone(&self.id)
    }

    /// Who the session belongs to (`None` without `auth:`).
    pub(crate) fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// The `Authorization` header of the session's latest request, if it
    /// was kept (see [`Session::set_credential`]).
    pub(crate) fn credential(&self) -> Option<http::HeaderValue> {
        self.credential
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keep the request's `Authorization` header, for `forward_auth`.
    pub(crate) fn set_credential(&self, credential: Option<http::HeaderValue>) {
        *self
            .credential
            .write()
            .unwrap_or_else(PoisonError::into_inner) = credential;
    }

    /// Whether the session was deleted or expired.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Call>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Abort the request the client cancelled; true if it was still running.
    pub(crate) fn cancel(&self, request_id: &Value) -> bool {
        let call = self.calls().remove(&request_id.to_string());
        call.map(|call| call.abort.abort()).is_some()
    }

    /// Idle: no request and no answer for `idle`, and every request in
    /// flight started at least `call_limit` ago (it should have ended by
    /// its timeout; one that has not does not hold the session).
    fn is_idle(&self, now: Instant, idle: Duration, call_limit: Duration) -> bool {
        let last_seen = *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now.duration_since(last_seen) >= idle
            && self
                .calls()
                .values()
                .all(|call| now.duration_since(call.started) >= call_limit)
    }

    /// End the session: close its stream, abort its requests in id order
    /// (see [`SessionStore::all`]).
    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.close_stream();
        self.asks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let mut calls: Vec<(String, Call)> = self.calls().drain().collect();
        calls.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, call) in calls {
            call.abort.abort();
        }
    }

    /// Add or remove a resource subscription.
    pub(crate) fn set_subscribed(&self, uri: &str, subscribed: bool) {
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if subscribed {
            subscriptions.insert(uri.to_owned());
        } else {
            subscriptions.remove(uri);
        }
    }

    /// Whether the session subscribed to a resource.
    pub(crate) fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(uri)
    }

    /// Receive backend log messages of this severity rank and above.
    pub(crate) fn set_log_severity(&self, severity: u8) {
        *self
            .log_severity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(severity);
    }

    /// Whether a log message of this severity rank is for this session.
    pub(crate) fn wants_log(&self, severity: u8) -> bool {
        self.log_severity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|least| severity >= least)
    }

    /// Open the session's event stream (replacing an older one) and return its receiver.
    pub(crate) fn open_stream(&self) -> mpsc::Receiver<Value> {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Push a message to the session's event stream, if it has one open.
    /// Dropped (and logged) when the client does not keep up; returns
    /// whether the stream took it.
    pub(crate) fn push(&self, message: &Value) -> bool {
        let stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = stream.as_ref() else {
            return false;
        };
        let taken = sender.try_send(message.clone()).is_ok();
        if !taken {
            tracing::debug!(session = %self.id, "event stream closed or full; message dropped");
        }
        taken
    }

    /// Close the event stream (shutdown, session deleted).
    pub(crate) fn close_stream(&self) {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// Why a request's session could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// No `Mcp-Session-Id` header (HTTP 400).
    Missing,
    /// An id the proxy does not know or has expired (HTTP 404).
    Unknown,
}

/// The bounds on clients (the `proxy:` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Sessions at once.
    pub max_sessions: usize,
    /// Requests in flight at once, over all sessions.
    pub max_in_flight: usize,
    /// Requests in flight at once in one session.
    pub max_in_flight_per_session: usize,
    /// Progress notifications queued per request.
    pub progress_queue: usize,
    /// A session without requests or answers for this long is idle.
    pub idle_timeout: Duration,
    /// How long a request in flight keeps its session from idling: the
    /// longest a call may take by its timeout.
    pub call_limit: Duration,
}

impl Default for Limits {
    /// The defaults of the config keys.
    fn default() -> Self {
        let proxy = crate::config::ProxySettings::default();
        Self {
            max_sessions: proxy.max_sessions,
            max_in_flight: proxy.max_in_flight,
            max_in_flight_per_session: proxy.max_in_flight_per_session,
            progress_queue: proxy.progress_queue,
            idle_timeout: proxy.session_idle_timeout,
            call_limit: proxy.default_call_timeout,
        }
    }
}

/// Why a new request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The session ended (deleted, or expired) while the request arrived.
    SessionEnded,
    /// A request with this id is already in flight in the session.
    DuplicateId,
    /// The session has `max_in_flight_per_session` requests in flight.
    SessionInFlight(usize),
    /// The proxy has `max_in_flight` requests in flight.
    ProxyInFlight(usize),
}

/// The bounds' counters, for `/admin/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Live sessions.
    pub sessions: usize,
    /// Requests in flight, over all sessions.
    pub in_flight: usize,
    /// `initialize` refused at `max_sessions`.
    pub refused_sessions: u64,
    /// Requests refused at `max_in_flight_per_session`.
    pub refused_session_in_flight: u64,
    /// Requests refused at `max_in_flight`.
    pub refused_proxy_in_flight: u64,
    /// Sessions ended as idle.
    pub expired: u64,
    /// Progress notifications dropped because their request's queue was full.
    pub progress_dropped: u64,
}

/// All live sessions.
pub(crate) struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    ids: Arc<dyn SessionIds>,
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
    refused_sessions: AtomicU64,
    refused_session_in_flight: AtomicU64,
    refused_proxy_in_flight: AtomicU64,
    expired: AtomicU64,
    progress_dropped: Arc<AtomicU64>,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(Arc::new(RandomSessionIds), Limits::default())
    }
}

/// Holds a request's place in the in-flight bounds; dropped when the
/// request ends (answered, cancelled or aborted), which frees the place and
/// counts as the session's activity.
#[must_use = "the request is in flight while the guard lives"]
pub(crate) struct InFlight {
    session: Arc<Session>,
    key: String,
    number: u64,
    total: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        let mut calls = self.session.calls();
        if calls
            .get(&self.key)
            .is_some_and(|call| call.number == self.number)
        {
            calls.remove(&self.key);
        }
        drop(calls);
        self.session.touch();
    }
}

impl SessionStore {
    /// An empty store whose sessions are named by `ids`, within `limits`.
    pub(crate) fn new(ids: Arc<dyn SessionIds>, limits: Limits) -> Self {
        Self {
            sessions: RwLock::default(),
            ids,
            limits,
            in_flight: Arc::default(),
            refused_sessions: AtomicU64::new(0),
            refused_session_in_flight: AtomicU64::new(0),
            refused_proxy_in_flight: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            progress_dropped: Arc::default(),
        }
    }

    /// The bounds this store keeps.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Create a session for a client that just initialized; `None` (and
    /// counted) when `max_sessions` are live. It belongs to `caller`: only
    /// requests of the same subject find it later ([`SessionStore::get`]).
    pub(crate) fn create(&self, caller: Option<Arc<Caller>>) -> Option<Arc<Session>> {
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= self.limits.max_sessions {
            self.refused_sessions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let session = Arc::new(Session {
            id: Arc::from(self.ids.next()),
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            subscriptions: Mutex::new(HashSet::new()),
            stream: Mutex::new(None),
            log_severity: Mutex::new(None),
            caller,
            credential: RwLock::new(None),
            client_capabilities: OnceLock::new(),
            asks: Mutex::default(),
        });
        sessions.insert(session.id.to_string(), Arc::clone(&session));
        Some(session)
    }

    /// Look a session up for a request of `caller`, and mark it used. A
    /// session another subject initialized, or the same subject with other
    /// roles (a narrower token, say), is unknown to it, as if it did not
    /// exist: its id is no capability by itself, and one session's requests
    /// are never judged by another token's roles.
    pub(crate) fn get(
        &self,
        id: Option<&str>,
        caller: Option<Arc<Caller>>,
    ) -> Result<Arc<Session>, SessionError> {
        let id = id.ok_or(SessionError::Missing)?;
        let session = self
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or(SessionError::Unknown)?;
        // Roles are kept sorted (`Caller::new`): equal callers compare equal.
        if session.caller.as_deref() != caller.as_deref() {
            return Err(SessionError::Unknown);
        }
        session.touch();
        Ok(session)
    }

    /// Admit a request of `session` under the client's own id, so that a
    /// later `notifications/cancelled` can abort it through `abort`. Refused
    /// (and nothing tracked) when the id is already in flight in the session
    /// (ids must not be reused while in flight), or a bound on requests in
    /// flight is reached (counted).
    pub(crate) fn admit(
        &self,
        session: &Arc<Session>,
        request_id: &Value,
        abort: AbortHandle,
    ) -> Result<InFlight, Refusal> {
        let key = request_id.to_string();
        let mut calls = session.calls();
        // Checked under the lock `end` drains the calls with, after it
        // marks the session ended: a request is either refused here or
        // aborted there.
        if session.has_ended() {
            return Err(Refusal::SessionEnded);
        }
        if calls.contains_key(&key) {
            return Err(Refusal::DuplicateId);
        }
        if calls.len() >= self.limits.max_in_flight_per_session {
            self.refused_session_in_flight
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::SessionInFlight(
                self.limits.max_in_flight_per_session,
            ));
        }
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.limits.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.refused_proxy_in_flight.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::ProxyInFlight(self.limits.max_in_flight));
        }
        let number = session.next_call.fetch_add(1, Ordering::Relaxed);
        calls.insert(
            key.clone(),
            Call {
                number,
                abort,
                started: Instant::now(),
            },
        );
        Ok(InFlight {
            session: Arc::clone(session),
            key,
            number,
            total: Arc::clone(&self.in_flight),
        })
    }

    /// The way back to `session`'s client for one of its calls: on the
    /// call's own event stream `stream` if there is one, else on the
    /// session's GET stream; waits for an answer at most as long as a call
    /// may take.
    pub(crate) fn client_link(
        &self,
        session: &Arc<Session>,
        stream: Option<mpsc::Sender<Value>>,
    ) -> ClientLink {
        ClientLink::new(asks::CallClient {
            session: Arc::clone(session),
            stream,
            limit: self.limits.call_limit,
        })
    }

    /// A channel for messages to the client on one call's own event
    /// stream (progress, and the backends' requests), as long as a
    /// progress queue; [`SessionStore::progress_sink`] puts progress on it.
    pub(crate) fn call_stream(&self) -> (mpsc::Sender<Value>, mpsc::Receiver<Value>) {
        mpsc::channel(self.limits.progress_queue.max(1))
    }

    /// A progress sink onto a call's stream (see [`ProgressSink`]).
    pub(crate) fn progress_sink(&self, stream: mpsc::Sender<Value>) -> ProgressSink {
        ProgressSink::on(stream, Arc::clone(&self.progress_dropped))
    }

    /// End a session (DELETE): its in-flight requests are aborted.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let removed = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(session) = &removed {
            session.end();
        }
        removed.is_some()
    }

    /// Every live session, for broadcasting notifications, in id order:
    /// what is sent (and so woken) first must not depend on the hash map's
    /// random order, or a simulation would not replay from its seed.
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        let mut sessions: Vec<Arc<Session>> = self
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        sessions.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        sessions
    }

    /// Number of live sessions.
    pub(crate) fn count(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The bounds' counters.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            sessions: self.count(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            refused_sessions: self.refused_sessions.load(Ordering::Relaxed),
            refused_session_in_flight: self.refused_session_in_flight.load(Ordering::Relaxed),
            refused_proxy_in_flight: self.refused_proxy_in_flight.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            progress_dropped: self.progress_dropped.load(Ordering::Relaxed),
        }
    }

    /// End every idle session (see the module docs); returns how many.
    pub(crate) fn expire_idle(&self) -> usize {
        let now = Instant::now();
        let mut expired: Vec<Arc<Session>> = Vec::new();
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, session| {
                let idle = session.is_idle(now, self.limits.idle_timeout, self.limits.call_limit);
                if idle {
                    expired.push(Arc::clone(session));
                }
                !idle
            });
        // Ended in id order (see `all`).
        expired.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        for session in &expired {
            session.end();
        }
        self.expired
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// Close every event stream, so that a graceful HTTP shutdown is not held
    /// open by long-lived GET streams.
    pub(crate) fn close_streams(&self) {
        for session in self.all() {
            session.close_stream();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::{Abortable, abortable};

    use super::*;

    fn store(limits: Limits) -> SessionStore {
        SessionStore::new(Arc::new(RandomSessionIds), limits)
    }

    fn pending_call() -> (Abortable<std::future::Pending<()>>, AbortHandle) {
        abortable(std::future::pending::<()>())
    }

    #[test]
    fn missing_and_unknown_ids_are_told_apart() {
        let store = SessionStore::default();
        let session = store.create(None).expect("room for a session");
        assert_eq!(store.get(None, None).err(), Some(SessionError::Missing));
        assert_eq!(
            store.get(Some("nope"), None).err(),
            Some(SessionError::Unknown)
        );
        assert_eq!(
            store
                .get(Some(session.id()), None)
                .map(|s| s.id().to_owned()),
            Ok(session.id().to_owned())
        );
        assert!(store.remove(session.id()));
        assert!(session.has_ended());
        assert_eq!(
            store.get(Some(session.id()), None).err(),
            Some(SessionError::Unknown)
        );
    }

    #[test]
    fn sessions_beyond_max_sessions_are_refused_until_one_ends() {
        let store = store(Limits {
            max_sessions: 2,
            ..Limits::default()
        });
        let first = store.create(None).expect("first");
        assert!(store.create(None).is_some());
        assert!(store.create(None).is_none());
        assert_eq!(store.counts().refused_sessions, 1);
        assert_eq!(store.counts().sessions, 2);
        store.remove(first.id());
        assert!(store.create(None).is_some(), "room again");
    }

    #[test]
    fn requests_beyond_the_in_flight_bounds_are_refused_and_places_come_back() {
        let store = store(Limits {
            max_in_flight: 3,
            max_in_flight_per_session: 2,
            ..Limits::default()
        });
        let a = store.create(None).expect("a");
        let b = store.create(None).expect("b");
        let admit = |session: &Arc<Session>, id: i64| {
            store.admit(session, &Value::from(id), pending_call().1)
        };
        let a1 = admit(&a, 1).expect("a1");
        let _a2 = admit(&a, 2).expect("a2");
        assert_eq!(admit(&a, 3).err(), Some(Refusal::SessionInFlight(2)));
        let _b1 = admit(&b, 1).expect("b1");
        assert_eq!(admit(&b, 2).err(), Some(Refusal::ProxyInFlight(3)));
        assert_eq!(admit(&b, 1).err(), Some(Refusal::DuplicateId));
        let counts = store.counts();
        assert_eq!(
            (
                counts.in_flight,
                counts.refused_session_in_flight,
                counts.refused_proxy_in_flight
            ),
            (3, 1, 1)
        );
        drop(a1);
        assert_eq!(store.counts().in_flight, 2);
        assert!(admit(&b, 2).is_ok(), "a finished request frees its place");
        // A request racing the session's end is refused, not left running
        // where no one would abort it.
        assert!(store.remove(a.id()));
        assert_eq!(admit(&a, 9).err(), Some(Refusal::SessionEnded));
    }

    #[tokio::test]
    async fn cancel_aborts_the_tracked_request_and_its_id_may_be_reused() {
        let store = SessionStore::default();
        let session = store.create(None).expect("session");
        let (pending, handle) = pending_call();
        let first = store
            .admit(&session, &Value::from("a"), handle)
            .expect("admitted");
        assert!(session.cancel(&Value::from("a")));
        assert!(pending.await.is_err(), "the request was aborted");
        assert!(!session.cancel(&Value::from("a")));
        // The client reuses the id before the cancelled request's task ended:
        // that task's end must not forget the new request.
        let (again, handle) = pending_call();
        let _second = store
            .admit(&session, &Value::from("a"), handle)
            .expect("the id is free again");
        drop(first);
        assert!(session.cancel(&Value::from("a")));
        assert!(again.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_even_with_an_open_stream() {
        let store = store(Limits {
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        });
        let idle = store.create(None).expect("idle");
        let listening = store.create(None).expect("listening");
        let used = store.create(None).expect("used");
        let mut stream = listening.open_stream();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.expire_idle(), 0);
        assert!(
            store.get(Some(used.id()), None).is_ok(),
            "a request is activity"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.expire_idle(), 2);
        assert!(store.get(Some(idle.id()), None).is_err());
        assert!(
            store.get(Some(listening.id()), None).is_err(),
            "an open event stream does not keep a session"
        );
        assert_eq!(stream.recv().await, None, "its stream is closed");
        assert!(store.get(Some(used.id()), None).is_ok());
        assert_eq!(store.counts().expired, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_holds_its_session_only_up_to_the_call_limit() {
        let store = store(Limits {
            idle_timeout: Duration::from_secs(60),
            call_limit: Duration::from_secs(90),
            ..Limits::default()
        });
        let busy = store.create(None).expect("busy");
        let answered = store.create(None).expect("answered");
        let (hung, handle) = pending_call();
        let _hung = store
            .admit(&busy, &Value::from(1), handle)
            .expect("admitted");
        let done = store
            .admit(&answered, &Value::from(1), pending_call().1)
            .expect("admitted");
        tokio::time::advance(Duration::from_secs(50)).await;
        drop(done);
        tokio::time::advance(Duration::from_secs(39)).await;
        assert_eq!(store.expire_idle(), 0, "a call in flight within its limit");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.expire_idle(), 1, "past the call limit");
        assert!(busy.has_ended());
        assert!(hung.await.is_err(), "its request is aborted");
        assert!(
            store.get(Some(answered.id()), None).is_ok(),
            "an answer is activity: idle only since it was sent"
        );
    }
}
