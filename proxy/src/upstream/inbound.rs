//! What to do with a message a backend sends, whatever the transport.
//!
//! Both transports receive the same four kinds of message — responses,
//! progress, other notifications, and requests from the server — and must
//! treat them alike, so the decision lives here once. The transport only
//! delivers the replies this module returns.
//!
//! The proxy declares to its backends the client capabilities it can pass
//! on (see `handshake.rs`). It answers `ping` itself; a backend's
//! `sampling/createMessage`, `elicitation/create` or `roots/list` goes to
//! the client of the call it serves ([`Pending::client_for`]), and the
//! client's answer comes back unchanged under the backend's id; with no
//! such client, or any other method, the answer is "method not found"
//! (`-32601`, what a client lacking the capability answers), saying why.

use std::sync::Arc;

use serde_json::{Value, json};

use super::EventSink;
use super::pending::{NoClient, Pending};
use crate::jsonrpc::{self, ErrorObject, Kind};
use crate::platform::BoxFuture;

/// The message in the JSON-RPC error the proxy answers server requests
/// it cannot pass on with.
pub(super) const UNSUPPORTED_METHOD: &str = "method not supported by mcp-proxy";

/// The backend's requests that a client may answer (each under a
/// capability the client declares).
const CLIENT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

/// How many characters of a bad message go into a log line.
pub(super) const PREVIEW_CHARS: usize = 200;

/// A reply the transport sends the backend for one of its requests.
pub(crate) enum Reply {
    /// Ready now.
    Now(Value),
    /// Once the client answered; `None` when the backend cancelled its
    /// request meanwhile (a cancelled request is not answered).
    Later(BoxFuture<'static, Option<Value>>),
}

impl Reply {
    /// The reply once it is ready (at once for [`Reply::Now`]).
    pub(crate) async fn ready(self) -> Option<Value> {
        match self {
            Reply::Now(reply) => Some(reply),
            Reply::Later(reply) => reply.await,
        }
    }
}

/// Route one message (or a batch) from the backend: responses and progress
/// to the [`Pending`] table, other notifications to `events`, requests to
/// the client of the call they serve. `related`: the upstream id of the
/// request whose answer stream carried the message (HTTP), if any. Returns
/// the replies the transport must send back, one per server request.
pub(crate) fn route(
    message: Value,
    pending: &Arc<Pending>,
    events: &EventSink,
    related: Option<u64>,
) -> Vec<Reply> {
    let mut replies = Vec::new();
    match message {
        Value::Array(batch) => {
            for message in batch {
                route_one(message, pending, events, related, &mut replies);
            }
        }
        message => route_one(message, pending, events, related, &mut replies),
    }
    replies
}

fn route_one(
    message: Value,
    pending: &Arc<Pending>,
    events: &EventSink,
    related: Option<u64>,
    replies: &mut Vec<Reply>,
) {
    match jsonrpc::kind(&message) {
        Kind::Response => {
            pending.resolve(message);
        }
        Kind::Notification => match message.get("method").and_then(Value::as_str) {
            Some("notifications/progress") => {
                pending.progress(message);
            }
            Some("notifications/cancelled") => {
                // The server gave up on one of its requests to a client.
                let cancelled = message
                    .pointer("/params/requestId")
                    .is_some_and(|id| pending.cancel_ask(id));
                tracing::debug!(
                    backend = pending.backend(),
                    cancelled,
                    "server sent notifications/cancelled"
                );
            }
            _ => {
                // The receiver may be gone while the backend is being replaced.
                let _ = events.send(message);
            }
        },
        Kind::Request => replies.push(server_request(message, pending, related)),
        Kind::Invalid => {
            tracing::warn!(
                backend = pending.backend(),
                message = %preview(&message.to_string()),
                "backend sent something that is not a JSON-RPC message; dropped"
            );
        }
    }
}

/// The reply to a request of the server: `ping` at once, a client's
/// method once its client answered, anything else refused.
fn server_request(message: Value, pending: &Arc<Pending>, related: Option<u64>) -> Reply {
    let Value::Object(mut message) = message else {
        let error = ErrorObject::new(jsonrpc::INVALID_REQUEST, "not a request");
        return Reply::Now(jsonrpc::error_response(Value::Null, &error));
    };
    let id = message.remove("id").unwrap_or(Value::Null);
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        _ => String::new(),
    };
    if method == "ping" {
        return Reply::Now(jsonrpc::response(id, json!({})));
    }
    if !CLIENT_METHODS.contains(&method.as_str()) {
        tracing::debug!(
            backend = pending.backend(),
            method,
            "refused a server request"
        );
        let error = ErrorObject::new(jsonrpc::METHOD_NOT_FOUND, UNSUPPORTED_METHOD);
        return Reply::Now(jsonrpc::error_response(id, &error));
    }
    let (link, ended) = match pending.client_for(related) {
        Ok(found) => found,
        Err(why) => {
            tracing::debug!(
                backend = pending.backend(),
                method,
                ?why,
                "no client to ask"
            );
            return Reply::Now(jsonrpc::error_response(id, &no_client(&method, &why)));
        }
    };
    let until = ended.child_token();
    pending.start_ask(&id, until.clone());
    let asked = link.ask(&method, message.remove("params"), until);
    let pending = Arc::clone(pending);
    Reply::Later(Box::pin(async move {
        let answer = asked.await;
        if !pending.finish_ask(&id) {
            return None;
        }
        Some(match answer {
            Ok(Value::Object(mut response)) => {
                response.insert("id".into(), id);
                Value::Object(response)
            }
            Ok(other) => {
                let message = format!(
                    "the client answered with something that is not a JSON-RPC response: {}",
                    preview(&other.to_string())
                );
                jsonrpc::error_response(id, &ErrorObject::new(jsonrpc::INTERNAL_ERROR, message))
            }
            Err(error) => jsonrpc::error_response(id, &error),
        })
    }))
}

/// The refusal of a client's method no client can be asked for.
fn no_client(method: &str, why: &NoClient) -> ErrorObject {
    let (reason, message) = match why {
        NoClient::None => (
            "no_client",
            format!(
                "mcp-proxy passes {method} on only to the client of a call in flight on this \
                 backend, and there is none"
            ),
        ),
        NoClient::Several(sessions) => (
            "ambiguous_client",
            format!(
                "mcp-proxy cannot tell which of {sessions} clients with calls in flight on this \
                 backend {method} is for"
            ),
        ),
    };
    ErrorObject::new(jsonrpc::METHOD_NOT_FOUND, message).with_data(json!({ "reason": reason }))
}

/// The first [`PREVIEW_CHARS`] characters of `text`, for logs.
pub(super) fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The top-level integer `"id"` of a JSON-RPC response of which only the
/// start is known (a message cut off at the line limit), if it appears whole
/// in that start. Only a key of the outermost object counts, never an `"id"`
/// nested in the result, and a message with a top-level `"method"` (a request
/// from the server, numbered by the server) has none of ours: so a cut-off
/// message can only ever be blamed on its own request.
pub(super) fn top_level_id(prefix: &[u8]) -> Option<u64> {
    let mut depth = 0usize;
    let mut index = 0;
    let mut id = None;
    while index < prefix.len() {
        match prefix[index] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                // A string cut by the end of the prefix ends the scan.
                let Some(end) = string_end(prefix, index + 1) else {
                    break;
                };
                let key = &prefix[index + 1..end];
                let after = skip_space(prefix, end + 1);
                if depth == 1 && prefix.get(after) == Some(&b':') {
                    if key == b"method" {
                        return None;
                    }
                    if key == b"id" && id.is_none() {
                        id = integer_at(prefix, skip_space(prefix, after + 1));
                    }
                }
                index = end;
            }
            _ => {}
        }
        index += 1;
    }
    id
}

/// An unsigned integer starting at `from` and visibly complete: followed by
/// `,`, `}` or whitespace (a number cut by the end of the prefix is not).
fn integer_at(bytes: &[u8], from: usize) -> Option<u64> {
    let digits = bytes
        .get(from..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    match bytes.get(from + digits) {
        Some(b',' | b'}') => {}
        Some(byte) if byte.is_ascii_whitespace() => {}
        _ => return None,
    }
    std::str::from_utf8(&bytes[from..from + digits])
        .ok()?
        .parse()
        .ok()
}

/// The index of the quote that closes a JSON string whose body starts at `from`.
fn string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut index = from;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index),
            _ => index += 1,
        }
    }
    None
}

fn skip_space(bytes: &[u8], from: usize) -> usize {
    from + bytes[from.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count()
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::upstream::ProgressSink;
    use crate::upstream::client::testing::scripted;
    use crate::upstream::client::{ClientLink, with_client};

    #[tokio::test]
    async fn routes_every_kind_of_message() {
        let (cancels, _cancelled) = mpsc::unbounded_channel();
        let pending = Pending::new("b", cancels);
        let (events, mut received) = mpsc::unbounded_channel();
        let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
        let (_, flight) = pending
            .start(
                "x",
                Some(json!({"_meta": {"progressToken": "mine"}})),
                Some(sink),
            )
            .unwrap();

        let batch = json!([
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
            {"jsonrpc": "2.0", "id": "s1", "method": "ping"},
            {"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}},
            {"jsonrpc": "2.0", "id": 1, "result": {"ok": true}},
            42,
        ]);
        let replies = now(route(batch, &pending, &events, None));
        assert_eq!(
            replies[0],
            json!({"jsonrpc": "2.0", "id": "s1", "result": {}})
        );
        assert_eq!(replies[1]["id"], json!(7));
        assert_eq!(replies[1]["error"]["code"], json!(-32601));
        assert_eq!(replies[1]["error"]["data"]["reason"], json!("no_client"));
        assert_eq!(replies.len(), 2);
        assert_eq!(
            progress.try_recv().unwrap()["params"]["progressToken"],
            json!("mine")
        );
        assert_eq!(
            received.try_recv().unwrap(),
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        );
        assert!(received.try_recv().is_err());
        assert_eq!(flight.wait().await.unwrap(), json!({"ok": true}));
    }

    /// The replies, all of which must be ready at once.
    fn now(replies: Vec<Reply>) -> Vec<Value> {
        replies
            .into_iter()
            .map(|reply| match reply {
                Reply::Now(reply) => reply,
                Reply::Later(_) => panic!("a reply that waits"),
            })
            .collect()
    }

    async fn ready(reply: Reply) -> Option<Value> {
        reply.ready().await
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_request_goes_to_the_client_of_its_call_and_comes_back_under_its_id() {
        let (cancels, _cancelled) = mpsc::unbounded_channel();
        let pending = Pending::new("b", cancels);
        let (events, _received) = mpsc::unbounded_channel();
        let (link, mut asked) = scripted("s1");
        let (_, flight) = with_client(link, async { pending.start("tools/call", None, None) })
            .await
            .unwrap();
        let request = json!({"jsonrpc": "2.0", "id": "b-7", "method": "sampling/createMessage", "params": {}});
        let mut replies = route(request, &pending, &events, Some(flight.id()));
        let Some(Reply::Later(reply)) = replies.pop() else {
            panic!("the reply waits for the client");
        };
        assert_eq!(asked.recv().await.unwrap().0, "sampling/createMessage");
        assert_eq!(
            reply.await,
            Some(json!({"jsonrpc": "2.0", "id": "b-7", "result": {"role": "assistant"}})),
            "the client's answer, unchanged, under the backend's id"
        );

        // Other methods are refused without asking anyone.
        let other = json!({"jsonrpc": "2.0", "id": 8, "method": "tasks/get"});
        let replies = now(route(other, &pending, &events, Some(flight.id())));
        assert_eq!(replies[0]["error"]["message"], json!(UNSUPPORTED_METHOD));

        // The backend cancels its request: the client's wait ends, no reply.
        let request = json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list"});
        let reply = route(request, &pending, &events, None).pop().unwrap();
        let (_, until) = asked.recv().await.unwrap();
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}});
        assert!(now(route(cancel, &pending, &events, None)).is_empty());
        assert!(until.is_cancelled());
        assert_eq!(
            ready(reply).await,
            None,
            "a cancelled request gets no answer"
        );

        // The call ends: what it asked ends with it, answered with an error.
        let request = json!({"jsonrpc": "2.0", "id": 10, "method": "roots/list"});
        let reply = route(request, &pending, &events, None).pop().unwrap();
        let (_, until) = asked.recv().await.unwrap();
        drop(flight);
        assert!(until.is_cancelled());
        let reply = ready(reply).await.unwrap();
        assert_eq!(reply["id"], json!(10));
        assert_eq!(reply["error"]["message"], json!("ended"));
    }

    #[tokio::test]
    async fn without_a_link_from_the_stream_the_calls_in_flight_decide() {
        let (cancels, _cancelled) = mpsc::unbounded_channel();
        let pending = Pending::new("b", cancels);
        let start = |link: Option<ClientLink>| {
            let pending = Arc::clone(&pending);
            async move {
                match link {
                    Some(link) => with_client(link, async { pending.start("x", None, None) }).await,
                    None => pending.start("x", None, None),
                }
                .unwrap()
                .1
            }
        };
        assert_eq!(pending.client_for(None).unwrap_err(), NoClient::None);
        let listing = start(None).await;
        assert_eq!(
            pending.client_for(None).unwrap_err(),
            NoClient::None,
            "a call of no client"
        );
        assert_eq!(
            pending.client_for(Some(listing.id())).unwrap_err(),
            NoClient::None,
            "the stream of a call of no client links to none"
        );
        let a1 = start(Some(scripted("a").0)).await;
        let _a2 = start(Some(scripted("a").0)).await;
        assert_eq!(pending.client_for(None).unwrap().0.session(), "a");
        let b = start(Some(scripted("b").0)).await;
        assert_eq!(pending.client_for(None).unwrap_err(), NoClient::Several(2));
        assert_eq!(pending.client_for(Some(b.id())).unwrap().0.session(), "b");
        assert_eq!(pending.client_for(Some(a1.id())).unwrap().0.session(), "a");
        drop(b);
        assert_eq!(pending.client_for(None).unwrap().0.session(), "a");
    }

    #[test]
    fn previews_are_short_and_cut_on_char_boundaries() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(500);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
    }

    #[test]
    fn the_top_level_id_of_a_cut_off_message_is_found_and_nested_ones_ignored() {
        assert_eq!(
            top_level_id(br#"{"jsonrpc":"2.0","id": 42,"result":{"x":"#),
            Some(42)
        );
        assert_eq!(
            top_level_id(br#"{"result":{"items":[{"id":5}],"note":"\"id\":7"},"id":9}"#),
            Some(9),
            "nested and quoted ids are not the message's id"
        );
        assert_eq!(top_level_id(br#"{"result":{"items":[{"id":5},"#), None);
        assert_eq!(
            top_level_id(br#"{"id":"text""#),
            None,
            "our ids are integers"
        );
        assert_eq!(top_level_id(b""), None);
    }

    proptest::proptest! {
        #[test]
        fn the_id_scanner_never_panics_on_any_prefix(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = top_level_id(&bytes);
        }

        #[test]
        fn the_id_scanner_finds_the_id_of_any_cut_message(id in 0u64..u64::MAX, cut in 0usize..64) {
            let message = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"id":1,"text":"a\\\"b"}}}}"#);
            let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"#);
            let kept = &message.as_bytes()[..(head.len() + cut).min(message.len())];
            proptest::prop_assert_eq!(top_level_id(kept), Some(id));
        }
    }
}
