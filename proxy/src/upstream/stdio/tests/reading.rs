//! What the child writes to stdout: answers out of order, JSON-RPC errors,
//! progress, notifications and the child's own requests routed; garbage,
//! over-long lines and blank ones skipped.

use serde_json::json;
use tokio::io::BufReader;

use super::super::reader::{LineRead, parse_line, read_capped_line};
use super::*;

#[tokio::test]
async fn concurrent_requests_answered_out_of_order_reach_their_callers() {
    let (connection, _, _events) = start("normal").await;
    let call = |tag: &'static str| {
        let connection = connection.clone();
        async move {
            connection
                .request("gather", Some(json!({"n": 3, "tag": tag})), None)
                .await
        }
    };
    let (a, b, c) = within(async { tokio::join!(call("a"), call("b"), call("c")) }).await;
    assert_eq!(a.unwrap(), json!({"tag": "a"}));
    assert_eq!(b.unwrap(), json!({"tag": "b"}));
    assert_eq!(c.unwrap(), json!({"tag": "c"}));
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn json_rpc_errors_are_relayed_unchanged() {
    let (connection, _, _events) = start("normal").await;
    let error = within(connection.request("fail", None, None))
        .await
        .unwrap_err();
    let UpstreamError::JsonRpc(error) = error else {
        panic!("expected a JSON-RPC error, got {error:?}")
    };
    assert_eq!(error.code, -32042);
    assert_eq!(error.message, "nope");
    assert_eq!(error.data, Some(json!({"why": ["because"], "n": 1.5})));
    // The connection is fine afterwards.
    within(connection.request("echo", None, None))
        .await
        .unwrap();
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn progress_reaches_the_caller_with_its_own_token() {
    let (connection, _, _events) = start("normal").await;
    let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
    let params = json!({"name": "slow", "_meta": {"progressToken": "client-token"}});
    let result = within(connection.request("progress", Some(params), Some(sink)))
        .await
        .unwrap();
    // Upstream saw the connection's own token, not the caller's.
    assert_ne!(result["sawToken"], json!("client-token"));
    let notification = progress.try_recv().unwrap();
    assert_eq!(
        notification,
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
               "params": {"progressToken": "client-token", "progress": 1, "total": 2, "message": "half"}})
    );
    // The progress for a token never issued went nowhere.
    assert!(progress.try_recv().is_err());
    within(connection.shutdown()).await;
}

#[tokio::test]
#[tracing_test::traced_test]
async fn survives_garbage_on_stdout() {
    let (connection, _, mut events) = start("normal").await;
    let answer = within(connection.request("garbage", None, None))
        .await
        .unwrap();
    assert_eq!(answer, json!({"survived": true}));
    let event = events.try_recv().unwrap();
    assert_eq!(event["params"]["data"], json!("batched"));
    // notifications/cancelled from the server is not an event.
    assert!(events.try_recv().is_err());
    let echo = within(connection.request("echo", Some(json!({"after": "garbage"})), None))
        .await
        .unwrap();
    assert_eq!(echo["params"], json!({"after": "garbage"}));
    assert_eq!(connection.close_reason(), None);
    assert!(logs_contain("not JSON"));
    assert!(logs_contain("not UTF-8"));
    assert!(logs_contain("over-long line"));
    assert!(logs_contain("never issued"));
    assert!(logs_contain("backend=fake"));
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn answers_server_requests() {
    let (connection, _, _events) = start("normal").await;
    let answers = within(connection.request("ask", None, None)).await.unwrap();
    assert_eq!(
        answers["s1"],
        json!({"jsonrpc": "2.0", "id": "s1", "result": {}})
    );
    assert_eq!(answers["s2"]["error"]["code"], json!(-32601));
    assert_eq!(
        answers["s2"]["error"]["data"]["reason"],
        json!("no_client"),
        "no client's call is in flight: {answers}"
    );
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn passes_server_requests_to_the_client_of_the_call_in_flight() {
    let (connection, _, _events) = start("normal").await;
    let (link, mut asked) = crate::upstream::client::testing::scripted("s");
    let call = crate::upstream::client::with_client(link, connection.request("ask", None, None));
    let answers = within(call).await.unwrap();
    assert_eq!(asked.recv().await.unwrap().0, "roots/list");
    assert_eq!(
        answers["s2"],
        json!({"jsonrpc": "2.0", "id": "s2", "result": {"role": "assistant"}}),
        "the client's answer reached the child under the child's id"
    );
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn notifications_go_to_the_event_sink() {
    let (connection, _, mut events) = start("normal").await;
    within(connection.request("notify", None, None))
        .await
        .unwrap();
    let event = within(events.recv()).await.unwrap();
    assert_eq!(
        event,
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    );
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn capped_lines_are_read_in_bounded_memory() {
    let input: Vec<u8> = [&b"short\n"[..], &[b'y'; 100], b"\nlast without newline"].concat();
    // A tiny buffer so lines span many reads.
    let mut reader = BufReader::with_capacity(7, &input[..]);
    let mut line = Vec::new();
    assert_eq!(
        read_capped_line(&mut reader, &mut line, 10).await.unwrap(),
        LineRead::Line
    );
    assert_eq!(line, b"short");
    assert_eq!(
        read_capped_line(&mut reader, &mut line, 10).await.unwrap(),
        LineRead::Truncated(100)
    );
    assert_eq!(line, vec![b'y'; 10]);
    assert_eq!(
        read_capped_line(&mut reader, &mut line, 100).await.unwrap(),
        LineRead::Line
    );
    assert_eq!(line, b"last without newline");
    assert_eq!(
        read_capped_line(&mut reader, &mut line, 100).await.unwrap(),
        LineRead::Eof
    );
}

#[test]
fn parses_only_utf8_json_lines() {
    assert_eq!(parse_line(b"{\"a\":1}\r", "b"), Some(json!({"a": 1})));
    assert_eq!(parse_line(b"  ", "b"), None);
    assert_eq!(parse_line(b"{", "b"), None);
    assert_eq!(parse_line(b"\xff", "b"), None);
}
