//! What to do with a message a backend sends, whatever the transport.
//!
//! Both transports receive the same four kinds of message — responses,
//! progress, other notifications, and requests from the server — and must
//! treat them alike, so the decision lives here once. The transport only
//! delivers the replies this module returns.
//!
//! The proxy offers its backends no client capabilities (`initialize` sends
//! `"capabilities": {}`): it answers `ping` and refuses every other server
//! request (sampling, roots, elicitation) with "method not found".

use serde_json::{Value, json};

use super::EventSink;
use super::pending::Pending;
use crate::jsonrpc::{self, ErrorObject, Kind};

/// The message in the JSON-RPC error the proxy answers server requests with.
pub(super) const UNSUPPORTED_METHOD: &str = "method not supported by mcp-proxy";

/// How many characters of a bad message go into a log line.
pub(super) const PREVIEW_CHARS: usize = 200;

/// Route one message (or a batch) from the backend: responses and progress
/// to the [`Pending`] table, other notifications to `events`. Returns the
/// replies the transport must send back, one per server request.
pub(crate) fn route(message: Value, pending: &Pending, events: &EventSink) -> Vec<Value> {
    let mut replies = Vec::new();
    match message {
        Value::Array(batch) => {
            for message in batch {
                route_one(message, pending, events, &mut replies);
            }
        }
        message => route_one(message, pending, events, &mut replies),
    }
    replies
}

fn route_one(message: Value, pending: &Pending, events: &EventSink, replies: &mut Vec<Value>) {
    match jsonrpc::kind(&message) {
        Kind::Response => {
            pending.resolve(message);
        }
        Kind::Notification => match message.get("method").and_then(Value::as_str) {
            Some("notifications/progress") => {
                pending.progress(message);
            }
            Some("notifications/cancelled") => {
                // We never let the server run anything for us, so there is
                // nothing of ours it could cancel.
                tracing::debug!(
                    backend = pending.backend(),
                    "server sent notifications/cancelled; ignored"
                );
            }
            _ => {
                // The receiver may be gone while the backend is being replaced.
                let _ = events.send(message);
            }
        },
        Kind::Request => {
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let method = message
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if method == "ping" {
                replies.push(jsonrpc::response(id, json!({})));
            } else {
                tracing::debug!(
                    backend = pending.backend(),
                    method,
                    "refused a server request"
                );
                let error = ErrorObject::new(jsonrpc::METHOD_NOT_FOUND, UNSUPPORTED_METHOD);
                replies.push(jsonrpc::error_response(id, &error));
            }
        }
        Kind::Invalid => {
            tracing::warn!(
                backend = pending.backend(),
                message = %preview(&message.to_string()),
                "backend sent something that is not a JSON-RPC message; dropped"
            );
        }
    }
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
        let replies = route(batch, &pending, &events);
        assert_eq!(
            replies,
            vec![
                json!({"jsonrpc": "2.0", "id": "s1", "result": {}}),
                json!({"jsonrpc": "2.0", "id": 7,
                       "error": {"code": -32601, "message": UNSUPPORTED_METHOD}}),
            ]
        );
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
