//! The connection as a whole: the handshake and a session on a real
//! server, the session's headers and its end (expired, shut down, DELETEd),
//! requests in flight and dropped, and failing to connect at all.

use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::upstream::{Connection, PROTOCOL_VERSION};

#[tokio::test]
async fn initializes_and_calls_tools_on_a_real_server() {
    let url = tower_server(false).await;
    let (connection, init, _events) = connect(&url).await;
    assert_eq!(init["serverInfo"]["name"], json!("tower-backend"));
    assert_eq!(init["protocolVersion"], json!(PROTOCOL_VERSION));
    assert!(connection.inner.link.poster.has_session);

    let result = within(connection.request(
        "tools/call",
        Some(json!({"name": "echo", "arguments": {"x": 1}})),
        None,
        Outbound::default(),
    ))
    .await
    .unwrap();
    assert_eq!(text_of(&result), r#"{"x":1}"#);
    let tools = within(connection.request("tools/list", None, None, Outbound::default()))
        .await
        .unwrap();
    assert_eq!(tools["tools"].as_array().map(Vec::len), Some(2));
    within(connection.request("ping", None, None, Outbound::default()))
        .await
        .unwrap();
    within(
        connection
            .inner
            .link
            .notify("notifications/roots/list_changed", None),
    )
    .await
    .unwrap();

    within(connection.shutdown()).await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("connection shut down")
    );
    assert_eq!(
        within(connection.request("ping", None, None, Outbound::default())).await,
        Err(UpstreamError::Connect("connection shut down".into()))
    );
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn sends_the_expected_headers_and_deletes_the_session() {
    let server = mock_backend().await;
    on_tool(&server, "ok", answer(json!({"content": []}))).await;
    let (connection, init, _events) = connect(&server.uri()).await;
    assert_eq!(init["protocolVersion"], json!("2025-06-18"));
    call(&connection, "ok").await.unwrap();
    within(connection.shutdown()).await;
    let requests = server.received_requests().await.unwrap();
    let posts: Vec<&Request> = requests
        .iter()
        .filter(|request| request.method == "POST")
        .collect();
    for post in &posts {
        assert_eq!(post.headers["content-type"], "application/json");
        assert_eq!(
            post.headers["accept"],
            "application/json, text/event-stream"
        );
        assert_eq!(post.headers["x-api-key"], "secret");
    }
    assert!(
        posts[0].headers.get("mcp-session-id").is_none(),
        "initialize has no session yet"
    );
    assert_eq!(posts.last().unwrap().headers["mcp-session-id"], "sess-1");
    let delete = requests
        .iter()
        .find(|request| request.method == "DELETE")
        .expect("session deleted");
    assert_eq!(delete.headers["mcp-session-id"], "sess-1");
}

#[tokio::test]
async fn an_expired_session_closes_the_connection() {
    let server = mock_backend().await;
    on_tool(&server, "gone", ResponseTemplate::new(404)).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let error = call(&connection, "gone").await.unwrap_err();
    assert_eq!(error, UpstreamError::Lost("session expired".into()));
    within(connection.closed()).await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("session expired")
    );
    // Later calls are never sent.
    assert_eq!(
        call(&connection, "gone").await,
        Err(UpstreamError::Connect("session expired".into()))
    );
}

#[tokio::test]
async fn slow_headers_leave_the_request_pending_until_they_come() {
    let server = mock_backend().await;
    let late = answer(json!({"late": true}));
    let slow = move |request: &Request| late(request).set_delay(Duration::from_millis(1500));
    on_tool(&server, "slow", slow).await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let in_flight = {
        let connection = connection.clone();
        tokio::spawn(async move { call(&connection, "slow").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished());
    assert_eq!(connection.inner.link.pending.len(), 1);
    assert_eq!(
        within(in_flight).await.unwrap().unwrap(),
        json!({"late": true})
    );
}

#[tokio::test]
async fn a_dropped_request_posts_a_cancellation() {
    let server = mock_backend().await;
    on_tool(
        &server,
        "never",
        ResponseTemplate::new(200).set_delay(Duration::from_secs(60)),
    )
    .await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"method": "notifications/cancelled"}),
        ))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let dropped =
        tokio::time::timeout(Duration::from_millis(300), call(&connection, "never")).await;
    assert!(dropped.is_err());
    let cancellation = within(async {
        loop {
            let requests = server.received_requests().await.unwrap();
            let found = requests.iter().find_map(|request| {
                let body: Value = serde_json::from_slice(&request.body).ok()?;
                (body["method"] == json!("notifications/cancelled"))
                    .then_some((body, request.headers.clone()))
            });
            if let Some(found) = found {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let (body, headers) = cancellation;
    assert_eq!(body["params"]["requestId"], json!(2));
    assert_eq!(headers["mcp-session-id"], "sess-1");
    assert!(connection.inner.link.pending.is_empty());
}

#[tokio::test]
async fn shutdown_fails_requests_in_flight() {
    let server = mock_backend().await;
    on_tool(
        &server,
        "never",
        ResponseTemplate::new(200).set_delay(Duration::from_secs(60)),
    )
    .await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let in_flight = {
        let connection = connection.clone();
        tokio::spawn(async move { call(&connection, "never").await })
    };
    within(async {
        while connection.inner.link.pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(connection.shutdown()).await;
    assert_eq!(
        within(in_flight).await.unwrap(),
        Err(UpstreamError::Lost("connection shut down".into()))
    );
    within(connection.closed()).await;
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let (events, _received) = mpsc::unbounded_channel();
    let url = format!("http://{address}/mcp");
    let error = within(HttpConnection::connect(
        &transport(&url),
        &settings(),
        events,
    ))
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&error, UpstreamError::Connect(message) if message.contains("refused")),
        "{error:?}"
    );
    let (events, _received) = mpsc::unbounded_channel();
    let error = within(Connection::connect(
        &transport("not a url"),
        &settings(),
        events,
    ))
    .await
    .err()
    .unwrap();
    assert!(matches!(error, UpstreamError::Connect(_)));
}

#[tokio::test]
async fn a_server_that_never_answers_initialize_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let settings = ConnectSettings {
        platform: crate::platform::Platform::os(),
        init_timeout: Duration::from_millis(500),
        ..settings()
    };
    let (events, _received) = mpsc::unbounded_channel();
    let error = within(HttpConnection::connect(
        &transport(&server.uri()),
        &settings,
        events,
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(
        error,
        UpstreamError::InitTimeout(Duration::from_millis(500))
    );
}
