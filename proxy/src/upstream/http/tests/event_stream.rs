//! The GET event stream: notifications that belong to no request, a
//! server that offers none, and reopening a broken one until shutdown.

use serde_json::json;
use wiremock::ResponseTemplate;

use super::super::event_stream::STREAM_BACKOFF_INITIAL;
use super::*;

#[tokio::test]
async fn progress_and_notifications_arrive_on_the_get_stream() {
    let url = tower_server(false).await;
    let (connection, _, mut events) = connect(&url).await;
    let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
    let params =
        json!({"name": "slow", "arguments": {}, "_meta": {"progressToken": "caller-token"}});
    let result =
        within(connection.request("tools/call", Some(params), Some(sink), Outbound::default()))
            .await
            .unwrap();
    assert_eq!(text_of(&result), "done");
    let notification = progress
        .try_recv()
        .expect("progress arrived before the answer");
    assert_eq!(notification["method"], json!("notifications/progress"));
    assert_eq!(
        notification["params"]["progressToken"],
        json!("caller-token")
    );
    assert_eq!(notification["params"]["progress"], json!(0.5));
    let event = within(events.recv()).await.unwrap();
    assert_eq!(event["method"], json!("notifications/tools/list_changed"));
}

#[tokio::test]
async fn a_server_without_an_event_stream_is_left_alone() {
    let server = mock_backend().await;
    let (connection, _, _events) = connect(&server.uri()).await;
    within(async {
        while gets(&server).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Well past the first reopen delay: a 405 is not retried.
    tokio::time::sleep(STREAM_BACKOFF_INITIAL * 3).await;
    let gets = gets(&server).await;
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].headers["accept"], "text/event-stream");
    assert_eq!(gets[0].headers["mcp-session-id"], "sess-1");
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn a_broken_event_stream_is_reopened_until_shutdown() {
    let event =
        "id: 5\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    let server = mock_backend_with_stream(
        ResponseTemplate::new(200).set_body_raw(event, "text/event-stream"),
    )
    .await;
    let (connection, _, mut events) = connect(&server.uri()).await;
    for _ in 0..2 {
        let event = within(events.recv()).await.unwrap();
        assert_eq!(event["method"], json!("notifications/tools/list_changed"));
    }
    let gets_before = gets(&server).await;
    assert!(gets_before.len() >= 2);
    assert!(gets_before[0].headers.get("last-event-id").is_none());
    assert_eq!(gets_before[1].headers["last-event-id"], "5");
    within(connection.shutdown()).await;
    let count = gets(&server).await.len();
    tokio::time::sleep(STREAM_BACKOFF_INITIAL * 3).await;
    assert_eq!(
        gets(&server).await.len(),
        count,
        "no reopening after shutdown"
    );
}
