//! Reading answers: JSON-RPC errors relayed unchanged, HTTP error statuses
//! and bad bodies as protocol errors that leave the connection usable, and
//! answers sent as event streams with progress and server requests on them.

use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, Request, ResponseTemplate};

use super::*;

#[tokio::test]
async fn relays_json_rpc_errors_from_a_real_server() {
    let url = tower_server(false).await;
    let (connection, _, _events) = connect(&url).await;
    let params = json!({"name": "no-such-tool", "arguments": {}});
    let error = within(connection.request("tools/call", Some(params), None, Outbound::default()))
        .await
        .unwrap_err();
    let UpstreamError::JsonRpc(error) = error else {
        panic!("expected a JSON-RPC error, got {error:?}")
    };
    assert_eq!(error.code, jsonrpc::INVALID_PARAMS);
    assert!(error.message.contains("no-such-tool"), "{}", error.message);
    let error = within(connection.request("no/such/method", None, None, Outbound::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::JsonRpc(ref error) if error.code == jsonrpc::METHOD_NOT_FOUND),
        "{error:?}"
    );
    // Still usable.
    within(connection.request("ping", None, None, Outbound::default()))
        .await
        .unwrap();
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn reads_answers_sent_as_event_streams() {
    let url = tower_server(true).await;
    let (connection, init, _events) = connect(&url).await;
    assert_eq!(init["serverInfo"]["name"], json!("tower-backend"));
    let call = |n: i64| {
        let connection = connection.clone();
        async move {
            connection
                .request(
                    "tools/call",
                    Some(json!({"name": "echo", "arguments": {"n": n}})),
                    None,
                    Outbound::default(),
                )
                .await
        }
    };
    let (a, b) = within(async { tokio::join!(call(1), call(2)) }).await;
    assert_eq!(text_of(&a.unwrap()), r#"{"n":1}"#);
    assert_eq!(text_of(&b.unwrap()), r#"{"n":2}"#);
    let error = within(connection.request(
        "tools/call",
        Some(json!({"name": "nope"})),
        None,
        Outbound::default(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(error, UpstreamError::JsonRpc(_)), "{error:?}");
}

#[tokio::test]
async fn http_errors_are_protocol_errors_and_the_connection_survives() {
    let server = mock_backend().await;
    on_tool(
        &server,
        "boom",
        ResponseTemplate::new(500).set_body_string("kaput ".repeat(100)),
    )
    .await;
    on_tool(&server, "ok", answer(json!({"fine": true}))).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let error = call(&connection, "boom").await.unwrap_err();
    let UpstreamError::Protocol(message) = error else {
        panic!("expected Protocol, got {error:?}")
    };
    assert!(
        message.starts_with("HTTP 500 Internal Server Error: kaput kaput"),
        "{message}"
    );
    assert!(message.len() < 300, "body quoted briefly: {message}");
    assert_eq!(
        call(&connection, "ok").await.unwrap(),
        json!({"fine": true})
    );
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn a_json_rpc_error_sent_with_an_error_status_is_relayed_unchanged() {
    let server = mock_backend().await;
    let refuse = |request: &Request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let error = json!({"code": -32602, "message": "bad input", "data": {"field": "q"}});
        ResponseTemplate::new(400)
            .set_body_json(json!({"jsonrpc": "2.0", "id": body["id"], "error": error}))
    };
    on_tool(&server, "strict", refuse).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let error = call(&connection, "strict").await.unwrap_err();
    let UpstreamError::JsonRpc(error) = error else {
        panic!("expected the backend's JSON-RPC error, got {error:?}")
    };
    assert_eq!(error.code, -32602);
    assert_eq!(error.message, "bad input");
    assert_eq!(error.data, Some(json!({"field": "q"})));
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn bad_bodies_are_protocol_errors_and_the_connection_survives() {
    let server = mock_backend().await;
    on_tool(
        &server,
        "html",
        ResponseTemplate::new(200).set_body_raw("<html>", "text/html; charset=utf-8"),
    )
    .await;
    on_tool(
        &server,
        "broken",
        ResponseTemplate::new(200).set_body_raw("{\"jsonrpc\": ", "application/json"),
    )
    .await;
    on_tool(
        &server,
        "other-id",
        ResponseTemplate::new(200)
            .set_body_json(json!({"jsonrpc": "2.0", "id": 999, "result": {}})),
    )
    .await;
    on_tool(&server, "accepted", ResponseTemplate::new(202)).await;
    on_tool(&server, "ok", answer(json!({"fine": true}))).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    for (tool, expected) in [
        ("html", "unexpected content type `text/html`"),
        ("broken", "response body is not JSON"),
        ("other-id", "does not answer request"),
        ("accepted", "202"),
    ] {
        let error = call(&connection, tool).await.unwrap_err();
        assert!(
            matches!(&error, UpstreamError::Protocol(message) if message.contains(expected)),
            "{tool}: {error:?}"
        );
    }
    assert_eq!(
        call(&connection, "ok").await.unwrap(),
        json!({"fine": true})
    );
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn event_stream_answers_carry_progress_and_server_requests() {
    let server = mock_backend().await;
    // The proxy's answer to the server's ping.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"id": "srv-1", "result": {}})))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let stream = |request: &Request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let token = body["params"]["_meta"]["progressToken"].clone();
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                              "params": {"progressToken": token, "progress": 1}});
        let ping = json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"});
        let log =
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "hi"}});
        let done = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"streamed": true}});
        let sse = format!(
            ": comment\r\nid: 1\r\ndata: {progress}\r\n\r\nevent: message\ndata: {ping}\n\ndata: {log}\n\ndata: {done}\n\n"
        );
        ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
    };
    on_tool(&server, "stream", stream).await;
    let cut = ResponseTemplate::new(200).set_body_raw(
        "data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
        "text/event-stream",
    );
    on_tool(&server, "cut", cut).await;
    let (connection, _, mut events) = connect(&server.uri()).await;

    let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
    let params = json!({"name": "stream", "_meta": {"progressToken": 77}});
    let result =
        within(connection.request("tools/call", Some(params), Some(sink), Outbound::default()))
            .await
            .unwrap();
    assert_eq!(result, json!({"streamed": true}));
    assert_eq!(
        progress.try_recv().unwrap()["params"]["progressToken"],
        json!(77)
    );
    assert_eq!(
        events.try_recv().unwrap()["method"],
        json!("notifications/message")
    );
    within(async {
        loop {
            let requests = server.received_requests().await.unwrap();
            if requests.iter().any(|request| {
                serde_json::from_slice::<Value>(&request.body)
                    .is_ok_and(|body| body["id"] == json!("srv-1"))
            }) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // A stream that ends without our answer.
    let error = call(&connection, "cut").await.unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Lost("event stream ended before the response".into())
    );
    assert_eq!(events.try_recv().unwrap()["method"], json!("x"));
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn a_server_request_on_a_calls_stream_goes_to_that_calls_client() {
    use crate::upstream::client::testing::scripted;
    use crate::upstream::client::with_client;

    let server = mock_backend().await;
    let asking = |request: &Request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let sampling = json!({"jsonrpc": "2.0", "id": "srv-9", "method": "sampling/createMessage",
                              "params": {"maxTokens": 1}});
        let done = json!({"jsonrpc": "2.0", "id": body["id"], "result": {"asked": true}});
        ResponseTemplate::new(200)
            .set_body_raw(
                format!("data: {sampling}\n\ndata: {done}\n\n"),
                "text/event-stream",
            )
            // Sent once the other session's call is surely in flight.
            .set_delay(Duration::from_millis(300))
    };
    on_tool(&server, "asks", asking).await;
    let done = answer(json!({}));
    let slow = move |request: &Request| done(request).set_delay(Duration::from_secs(2));
    on_tool(&server, "slow", slow).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let (link_a, mut asked_a) = scripted("a");
    let (link_b, mut asked_b) = scripted("b");
    let a = with_client(
        link_a,
        connection.request(
            "tools/call",
            Some(json!({"name": "asks"})),
            None,
            Outbound::default(),
        ),
    );
    let b = with_client(
        link_b,
        connection.request(
            "tools/call",
            Some(json!({"name": "slow"})),
            None,
            Outbound::default(),
        ),
    );
    let (a, b) = within(async { tokio::join!(a, b) }).await;
    assert_eq!(a.unwrap(), json!({"asked": true}));
    assert!(b.is_ok());
    assert_eq!(
        asked_a.try_recv().map(|(method, _)| method),
        Ok("sampling/createMessage".to_owned()),
        "the client of the call whose stream carried it was asked, though two sessions have calls in flight"
    );
    assert!(asked_b.try_recv().is_err(), "the other client was not");
}
