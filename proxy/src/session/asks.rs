//! What a backend asks a client (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`) on its way through a session.
//!
//! The session owns its requests to the client: their ids (the proxy's
//! own, counted per session, so backends' ids never meet), the waiters of
//! their answers, and their bound. A request is passed on only when the
//! client declared the capability it needs at `initialize` (and the
//! sub-capability: sampling with `tools` or a context, elicitation in `url`
//! mode); otherwise it is refused as that client would refuse it, `-32601`.
//! It goes on the call's own event stream (the POST that is being answered
//! as one), else on the session's GET stream; the client answers with a
//! POST of a JSON-RPC response, which `front/mcp.rs` hands to
//! [`Session::answer`].
//!
//! Nothing here waits without an end: the wait ends with the answer, the
//! call it serves (cancelled, timed out, answered), the backend's own
//! `notifications/cancelled`, the session's end, or the longest call
//! timeout; when it ends without an answer the client is told with
//! `notifications/cancelled` and the backend gets an error. At most
//! [`MAX_ASKS`] wait in a session at once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::jsonrpc::{self, ErrorObject};
use crate::platform::BoxFuture;
use crate::upstream::client::Client;

/// Requests to one client that may wait for answers at once.
pub(crate) const MAX_ASKS: usize = 32;

/// The session's requests to its client that wait for answers.
#[derive(Default)]
pub(super) struct Asks {
    next_id: u64,
    waiting: HashMap<String, oneshot::Sender<Value>>,
}

impl Asks {
    /// Forget every waiter: their requests fail (the session ended).
    pub(super) fn clear(&mut self) {
        self.waiting.clear();
    }
}

impl Session {
    /// Record the client's capabilities from its `initialize` params.
    pub(crate) fn set_client_capabilities(&self, capabilities: Option<&Value>) {
        let _ = self
            .client_capabilities
            .set(capabilities.cloned().unwrap_or(Value::Null));
    }

    /// Whether its client declared something a backend may ask it for
    /// (`sampling`, `elicitation`, `roots`).
    pub(crate) fn may_be_asked(&self) -> bool {
        self.client_capabilities
            .get()
            .and_then(Value::as_object)
            .is_some_and(|declared| {
                ["sampling", "elicitation", "roots"]
                    .iter()
                    .any(|capability| declared.contains_key(*capability))
            })
    }

    /// Hand a client's JSON-RPC response to the request it answers; false
    /// when no request of the proxy waits under its id.
    pub(crate) fn answer(&self, response: Value) -> bool {
        let Some(id) = response.get("id") else {
            return false;
        };
        let waiter = self.asks().waiting.remove(&id.to_string());
        waiter.is_some_and(|waiter| waiter.send(response).is_ok())
    }

    fn asks(&self) -> std::sync::MutexGuard<'_, Asks> {
        self.asks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new request's id and the receiver of its answer; `None` when the
    /// session ended or [`MAX_ASKS`] already wait.
    fn register(&self) -> Option<(Value, oneshot::Receiver<Value>)> {
        let mut asks = self.asks();
        if self.has_ended() || asks.waiting.len() >= MAX_ASKS {
            return None;
        }
        asks.next_id += 1;
        let id = Value::from(asks.next_id);
        let (sender, receiver) = oneshot::channel();
        asks.waiting.insert(id.to_string(), sender);
        Some((id, receiver))
    }

    /// Put a message on `stream` (the call's), else on the GET stream;
    /// false when neither takes it.
    fn deliver(&self, stream: Option<&mpsc::Sender<Value>>, message: &Value) -> bool {
        let on_call = stream.is_some_and(|stream| stream.try_send(message.clone()).is_ok());
        on_call || self.push(message)
    }
}

/// Forgets a request's waiter however its wait ends.
struct Waiting<'a> {
    session: &'a Session,
    key: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.session.asks().waiting.remove(&self.key);
    }
}

/// The capability (dotted path) `method` with `params` needs that
/// `declared` lacks, if any.
fn missing_capability(declared: &Value, method: &str, params: Option<&Value>) -> Option<String> {
    let param = |name: &str| params.and_then(|params| params.get(name));
    let has = |path: &str| declared.pointer(path).is_some_and(Value::is_object);
    let needed: Vec<&str> = match method {
        "sampling/createMessage" => {
            let mut needed = vec!["sampling"];
            if param("tools").is_some() || param("toolChoice").is_some() {
                needed.push("sampling.tools");
            }
            if param("includeContext").is_some_and(|context| context != "none") {
                needed.push("sampling.context");
            }
            needed
        }
        "elicitation/create" => {
            if param("mode").is_some_and(|mode| mode == "url") {
                vec!["elicitation", "elicitation.url"]
            } else {
                // An empty `elicitation` declares form mode (2025-11-25).
                let empty = declared
                    .get("elicitation")
                    .and_then(Value::as_object)
                    .is_some_and(|elicitation| elicitation.is_empty());
                if empty {
                    vec!["elicitation"]
                } else {
                    vec!["elicitation", "elicitation.form"]
                }
            }
        }
        "roots/list" => vec!["roots"],
        _ => return Some(method.to_owned()),
    };
    needed
        .into_iter()
        .find(|path| !has(&format!("/{}", path.replace('.', "/"))))
        .map(str::to_owned)
}

/// The error a backend's request gets, the data saying why.
fn refusal(code: i64, reason: &str, message: String) -> ErrorObject {
    ErrorObject::new(code, message).with_data(json!({ "reason": reason }))
}

/// One call's way back to its client: the session, the call's own event
/// stream if the client accepts one, and the longest wait.
pub(crate) struct CallClient {
    pub(super) session: Arc<Session>,
    pub(super) stream: Option<mpsc::Sender<Value>>,
    pub(super) limit: Duration,
}

impl Client for CallClient {
    fn session(&self) -> &str {
        self.session.id()
    }

    fn ask(
        &self,
        method: &str,
        params: Option<Value>,
        until: CancellationToken,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        let session = Arc::clone(&self.session);
        let stream = self.stream.clone();
        let limit = self.limit;
        let method = method.to_owned();
        Box::pin(async move {
            let declared = session.client_capabilities.get().unwrap_or(&Value::Null);
            if let Some(capability) = missing_capability(declared, &method, params.as_ref()) {
                let message = format!(
                    "the client did not declare the `{capability}` capability at initialize, \
                     so mcp-proxy does not pass {method} on to it"
                );
                let data = json!({ "reason": "client_capability", "capability": capability });
                return Err(ErrorObject::new(jsonrpc::METHOD_NOT_FOUND, message).with_data(data));
            }
            let Some((id, answer)) = session.register() else {
                let message = format!(
                    "the client's session ended, or {MAX_ASKS} requests to it already wait \
                     for answers; {method} not sent"
                );
                return Err(refusal(
                    jsonrpc::INTERNAL_ERROR,
                    "client_unavailable",
                    message,
                ));
            };
            let _waiting = Waiting {
                session: &session,
                key: id.to_string(),
            };
            let request = jsonrpc::request(id.clone(), &method, params);
            if !session.deliver(stream.as_ref(), &request) {
                let message = format!(
                    "the client has no event stream open (neither the call's nor GET /mcp) \
                     to receive {method}"
                );
                return Err(refusal(
                    jsonrpc::INTERNAL_ERROR,
                    "client_unreachable",
                    message,
                ));
            }
            let ended = tokio::select! {
                biased;
                answer = answer => {
                    return answer.map_err(|_| {
                        let message = format!("the client's session ended before it answered {method}");
                        refusal(jsonrpc::INTERNAL_ERROR, "session_ended", message)
                    });
                }
                () = until.cancelled() => refusal(
                    jsonrpc::REQUEST_CANCELLED,
                    "cancelled",
                    format!("the call {method} was asked for ended (or the request was cancelled) before the client answered"),
                ),
                () = tokio::time::sleep(limit) => refusal(
                    jsonrpc::INTERNAL_ERROR,
                    "timeout",
                    format!("the client did not answer {method} within {limit:?}"),
                ),
            };
            let params = json!({ "requestId": id, "reason": ended.message });
            session.deliver(
                stream.as_ref(),
                &jsonrpc::notification("notifications/cancelled", Some(params)),
            );
            Err(ended)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionStore;

    #[test]
    fn capabilities_are_checked_down_to_the_mode_and_the_tools() {
        let none = json!({});
        let full = json!({"sampling": {"tools": {}, "context": {}}, "elicitation": {"form": {}, "url": {}}, "roots": {}});
        let plain = json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}});
        let missing = |declared: &Value, method: &str, params: Value| {
            missing_capability(declared, method, Some(&params))
        };
        for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
            assert_eq!(missing(&full, method, json!({})), None, "{method}");
            assert_eq!(missing(&plain, method, json!({})), None, "{method}");
            assert!(missing(&none, method, json!({})).is_some(), "{method}");
        }
        assert_eq!(
            missing(&none, "sampling/createMessage", json!({})).as_deref(),
            Some("sampling")
        );
        assert_eq!(
            missing(&plain, "sampling/createMessage", json!({"tools": []})).as_deref(),
            Some("sampling.tools")
        );
        assert_eq!(
            missing(
                &plain,
                "sampling/createMessage",
                json!({"includeContext": "thisServer"})
            )
            .as_deref(),
            Some("sampling.context")
        );
        assert_eq!(
            missing(
                &plain,
                "sampling/createMessage",
                json!({"includeContext": "none"})
            ),
            None
        );
        assert_eq!(
            missing(&plain, "elicitation/create", json!({"mode": "url"})).as_deref(),
            Some("elicitation.url")
        );
        let url_only = json!({"elicitation": {"url": {}}});
        assert_eq!(
            missing(&url_only, "elicitation/create", json!({})).as_deref(),
            Some("elicitation.form")
        );
        assert_eq!(
            missing(&url_only, "elicitation/create", json!({"mode": "url"})),
            None
        );
        assert_eq!(
            missing(&full, "tasks/get", json!({})).as_deref(),
            Some("tasks/get")
        );
    }

    /// A store with one session whose client declared `capabilities`.
    fn declaring(capabilities: Value) -> (SessionStore, Arc<Session>) {
        let store = SessionStore::default();
        let session = store.create(None).unwrap();
        session.set_client_capabilities(Some(&capabilities));
        (store, session)
    }

    fn client(session: &Arc<Session>, limit: Duration) -> (CallClient, mpsc::Receiver<Value>) {
        let (stream, received) = mpsc::channel(8);
        let client = CallClient {
            session: Arc::clone(session),
            stream: Some(stream),
            limit,
        };
        (client, received)
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_goes_on_the_call_stream_and_the_answer_comes_back_whole() {
        let (_store, session) = declaring(json!({"sampling": {}}));
        let (client, mut stream) = client(&session, Duration::from_secs(60));
        let asked = tokio::spawn(client.ask(
            "sampling/createMessage",
            Some(json!({"maxTokens": 5})),
            CancellationToken::new(),
        ));
        let request = stream.recv().await.unwrap();
        assert_eq!(request["method"], "sampling/createMessage");
        assert_eq!(request["params"], json!({"maxTokens": 5}));
        let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": "hi"}});
        assert!(!session.answer(json!({"jsonrpc": "2.0", "id": 999, "result": {}})));
        assert!(session.answer(answer.clone()));
        assert_eq!(asked.await.unwrap(), Ok(answer));
        assert!(!session.answer(json!({"jsonrpc": "2.0", "id": request["id"], "result": {}})));
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_capability_nothing_is_sent_and_the_refusal_names_it() {
        let (_store, session) = declaring(json!({"sampling": {}}));
        let (client, mut stream) = client(&session, Duration::from_secs(60));
        let error = client
            .ask("elicitation/create", None, CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(error.code, jsonrpc::METHOD_NOT_FOUND);
        assert!(error.message.contains("`elicitation`"), "{}", error.message);
        assert_eq!(error.data.unwrap()["capability"], "elicitation");
        assert!(stream.try_recv().is_err(), "nothing reached the client");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_with_the_call_the_bound_or_the_session_and_the_client_is_told() {
        let (store, session) = declaring(json!({"roots": {}}));
        let (client, mut stream) = client(&session, Duration::from_secs(30));

        let until = CancellationToken::new();
        let asked = tokio::spawn(client.ask("roots/list", None, until.clone()));
        let request = stream.recv().await.unwrap();
        until.cancel();
        let error = asked.await.unwrap().unwrap_err();
        assert_eq!(error.code, jsonrpc::REQUEST_CANCELLED);
        let cancelled = stream.recv().await.unwrap();
        assert_eq!(cancelled["method"], "notifications/cancelled");
        assert_eq!(cancelled["params"]["requestId"], request["id"]);

        let asked = tokio::spawn(client.ask("roots/list", None, CancellationToken::new()));
        stream.recv().await.unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        let error = asked.await.unwrap().unwrap_err();
        assert_eq!(error.data.unwrap()["reason"], "timeout");
        assert_eq!(
            stream.recv().await.unwrap()["method"],
            "notifications/cancelled"
        );

        let asked = tokio::spawn(client.ask("roots/list", None, CancellationToken::new()));
        stream.recv().await.unwrap();
        store.remove(session.id());
        let error = asked.await.unwrap().unwrap_err();
        assert_eq!(error.data.unwrap()["reason"], "session_ended");
        assert!(
            session.asks().waiting.is_empty(),
            "no waiter is left behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_stream_open_the_request_fails_at_once() {
        let (_store, session) = declaring(json!({"roots": {}}));
        let client = CallClient {
            session: Arc::clone(&session),
            stream: None,
            limit: Duration::from_secs(30),
        };
        let error = client
            .ask("roots/list", None, CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(error.data.unwrap()["reason"], "client_unreachable");
        let mut get = session.open_stream();
        let asked = tokio::spawn(client.ask("roots/list", None, CancellationToken::new()));
        let request = get.recv().await.unwrap();
        assert_eq!(request["method"], "roots/list", "the GET stream carries it");
        session.answer(json!({"jsonrpc": "2.0", "id": request["id"], "result": {"roots": []}}));
        assert!(asked.await.unwrap().is_ok());
    }
}
