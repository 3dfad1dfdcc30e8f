//! Client sessions of the streamable-HTTP endpoint.
//!
//! A session is created by `initialize` and named by the `Mcp-Session-Id`
//! header after it. It remembers the negotiated protocol version, the
//! client's in-flight requests (so `notifications/cancelled` can stop the
//! right one), its resource subscriptions, and the sender of its optional
//! GET event stream, through which the proxy pushes `list_changed` and other
//! server notifications. Sessions idle for longer than the configured time
//! are forgotten.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::AbortHandle;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::platform::{RandomSessionIds, SessionIds};

/// How many undelivered notifications a session's event stream may queue
/// before further ones are dropped (a stalled client must not grow memory).
const STREAM_QUEUE: usize = 256;

/// One client session.
pub struct Session {
    id: String,
    protocol_version: String,
    last_seen: Mutex<Instant>,
    in_flight: Mutex<HashMap<String, AbortHandle>>,
    subscriptions: Mutex<HashSet<String>>,
    stream: Mutex<Option<mpsc::Sender<Value>>>,
    /// The least severe log level the client asked for (`logging/setLevel`);
    /// `None` until it asks, and then it gets no backend log messages.
    log_severity: Mutex<Option<u8>>,
}

impl Session {
    /// The `Mcp-Session-Id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The protocol version agreed at `initialize`.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    fn touch(&self) {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Remember a request in flight under the client's own id, so that a later
    /// `notifications/cancelled` can abort it. False (and nothing tracked)
    /// when a request with that id is already in flight: ids must not be
    /// reused within a session.
    pub fn track(&self, request_id: &Value, handle: AbortHandle) -> bool {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match in_flight.entry(request_id.to_string()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(handle);
                true
            }
        }
    }

    /// Forget a finished request.
    pub fn untrack(&self, request_id: &Value) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request_id.to_string());
    }

    /// Abort the request the client cancelled; true if it was still running.
    pub fn cancel(&self, request_id: &Value) -> bool {
        let handle = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request_id.to_string());
        handle.map(|handle| handle.abort()).is_some()
    }

    /// Add or remove a resource subscription.
    pub fn set_subscribed(&self, uri: &str, subscribed: bool) {
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
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(uri)
    }

    /// Receive backend log messages of this severity rank and above.
    pub fn set_log_severity(&self, severity: u8) {
        *self
            .log_severity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(severity);
    }

    /// Whether a log message of this severity rank is for this session.
    pub fn wants_log(&self, severity: u8) -> bool {
        self.log_severity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|least| severity >= least)
    }

    /// Open the session's event stream (replacing an older one) and return its receiver.
    pub fn open_stream(&self) -> mpsc::Receiver<Value> {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        *self.stream.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Push a notification to the session's event stream, if it has one open.
    /// Dropped (and logged) when the client does not keep up.
    pub fn push(&self, message: &Value) {
        let stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = stream.as_ref()
            && sender.try_send(message.clone()).is_err()
        {
            tracing::debug!(session = %self.id, "event stream closed or full; notification dropped");
        }
    }

    /// Whether the client holds the session's event stream open.
    fn is_listening(&self) -> bool {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Close the event stream (shutdown, session deleted).
    pub fn close_stream(&self) {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// Why a request's session could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// No `Mcp-Session-Id` header (HTTP 400).
    Missing,
    /// An id the proxy does not know or has expired (HTTP 404).
    Unknown,
}

/// All live sessions.
pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    ids: Arc<dyn SessionIds>,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(Arc::new(RandomSessionIds))
    }
}

impl SessionStore {
    /// An empty store whose sessions are named by `ids`.
    pub fn new(ids: Arc<dyn SessionIds>) -> Self {
        Self {
            sessions: RwLock::default(),
            ids,
        }
    }

    /// Create a session for a client that just initialized.
    pub fn create(&self, protocol_version: &str) -> Arc<Session> {
        let session = Arc::new(Session {
            id: self.ids.next(),
            protocol_version: protocol_version.to_owned(),
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashSet::new()),
            stream: Mutex::new(None),
            log_severity: Mutex::new(None),
        });
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(session.id.clone(), Arc::clone(&session));
        session
    }

    /// Look a session up by the header value, and mark it used.
    pub fn get(&self, id: Option<&str>) -> Result<Arc<Session>, SessionError> {
        let id = id.ok_or(SessionError::Missing)?;
        let session = self
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or(SessionError::Unknown)?;
        session.touch();
        Ok(session)
    }

    /// End a session (DELETE): its in-flight requests are aborted.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(session) = &removed {
            session.close_stream();
            // Aborted in id order (see `all`).
            let mut in_flight: Vec<(String, AbortHandle)> = session
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .collect();
            in_flight.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (_, handle) in in_flight {
                handle.abort();
            }
        }
        removed.is_some()
    }

    /// Every live session, for broadcasting notifications, in id order:
    /// what is sent (and so woken) first must not depend on the hash map's
    /// random order, or a simulation would not replay from its seed.
    pub fn all(&self) -> Vec<Arc<Session>> {
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
    pub fn count(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Forget sessions idle for longer than `idle` with nothing in flight.
    pub fn expire_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = sessions.len();
        sessions.retain(|_, session| {
            let last_seen = *session
                .last_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let busy = !session
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
                || session.is_listening();
            busy || now.duration_since(last_seen) < idle
        });
        before - sessions.len()
    }

    /// Close every event stream, so that a graceful HTTP shutdown is not held
    /// open by long-lived GET streams.
    pub fn close_streams(&self) {
        for session in self.all() {
            session.close_stream();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unknown_ids_are_told_apart() {
        let store = SessionStore::default();
        let session = store.create("2025-06-18");
        assert_eq!(store.get(None).err(), Some(SessionError::Missing));
        assert_eq!(store.get(Some("nope")).err(), Some(SessionError::Unknown));
        assert_eq!(
            store
                .get(Some(session.id()))
                .map(|s| s.protocol_version().to_owned()),
            Ok("2025-06-18".to_owned())
        );
        assert!(store.remove(session.id()));
        assert_eq!(
            store.get(Some(session.id())).err(),
            Some(SessionError::Unknown)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_expire_and_busy_ones_stay() {
        let store = SessionStore::default();
        let idle = store.create("2025-06-18");
        let busy = store.create("2025-06-18");
        let listening = store.create("2025-06-18");
        let (_pending, handle) = futures_util::future::abortable(std::future::pending::<()>());
        assert!(busy.track(&Value::from(1), handle));
        let _stream = listening.open_stream();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(store.expire_idle(Duration::from_secs(60)), 1);
        assert!(store.get(Some(idle.id())).is_err());
        assert!(store.get(Some(busy.id())).is_ok());
        assert!(
            store.get(Some(listening.id())).is_ok(),
            "an open event stream keeps a session"
        );
    }

    #[tokio::test]
    async fn cancel_aborts_the_tracked_request() {
        let store = SessionStore::default();
        let session = store.create("2025-06-18");
        let (pending, handle) = futures_util::future::abortable(std::future::pending::<()>());
        assert!(session.track(&Value::from("a"), handle));
        let (_other, duplicate) = futures_util::future::abortable(std::future::pending::<()>());
        assert!(
            !session.track(&Value::from("a"), duplicate),
            "an id in flight is not reused"
        );
        assert!(session.cancel(&Value::from("a")));
        assert!(pending.await.is_err(), "the request was aborted");
        assert!(!session.cancel(&Value::from("a")));
    }
}
