//! Baselines: the real peers the proxy will sit in front of, talked to
//! directly. These pin down what a client sees without the proxy — tool
//! names, error codes, where progress arrives, what a restart looks like — so
//! the proxy tests can ask for the same.
//!
//! - server-everything (third party, stdio) through tower-mcp's `McpClient`;
//! - [`TestBackend`] (tower-mcp, HTTP) through tower-mcp's HTTP client and
//!   through [`RawClient`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tower_mcp::client::{HttpClientTransport, McpClient, StdioClientTransport};
use tower_mcp::{Error, NotificationHandler};

use crate::support::{
    ClientError, ProgressDelivery, RawClient, StreamEvent, TestBackend, server_everything,
    wait_until,
};

/// JSON-RPC "invalid params": what both tower-mcp and our backend answer for
/// an unknown tool or bad arguments.
const INVALID_PARAMS: i64 = -32602;

/// The text of a `tools/call` response message's first content item.
fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
}

/// The names of the `key` list in a list result.
fn names(response: &Value, key: &str, field: &str) -> BTreeSet<String> {
    response["result"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {response}"))
        .iter()
        .map(|item| item[field].as_str().expect("a name").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A tower-mcp client on server-everything over stdio; the child leads its
/// own process group, which `shutdown` signals as a whole.
async fn everything_client(builder: tower_mcp::McpClientBuilder) -> McpClient {
    let command = server_everything();
    let transport = StdioClientTransport::spawn_command(&mut command.tokio_command())
        .await
        .expect("spawn server-everything")
        .close_timeout(Duration::from_secs(5))
        .process_group_shutdown(true);
    let client = builder
        .connect(transport, NotificationHandler::new())
        .await
        .expect("connect to server-everything");
    client
        .initialize("direct-test", "0.1.0")
        .await
        .expect("initialize server-everything");
    client
}

#[tokio::test]
async fn server_everything_over_stdio_lists_tools_and_echoes() {
    let client = everything_client(McpClient::builder()).await;

    let tools = client.list_all_tools().await.expect("tools/list");
    let tool_names: BTreeSet<_> = tools.iter().map(|t| t.name.clone()).collect();
    for expected in ["echo", "get-sum", "trigger-long-running-operation"] {
        assert!(
            tool_names.contains(expected),
            "{expected} in {tool_names:?}"
        );
    }
    let echo = tools.iter().find(|t| t.name == "echo").expect("echo");
    assert_eq!(echo.input_schema["required"], json!(["message"]));

    let result = client
        .call_tool("echo", json!({ "message": "hello" }))
        .await
        .expect("echo");
    assert!(!result.is_error);
    assert_eq!(result.all_text(), "Echo: hello");

    let sum = client
        .call_tool("get-sum", json!({ "a": 2, "b": 3 }))
        .await
        .expect("get-sum");
    assert!(sum.all_text().contains('5'), "{}", sum.all_text());

    client.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn server_everything_reports_bad_arguments_and_unknown_tools_as_tool_errors() {
    // Unlike tower-mcp, the TypeScript SDK server answers both with a result
    // (isError: true) whose text carries the code; no JSON-RPC error.
    let client = everything_client(McpClient::builder()).await;

    let bad = client
        .call_tool("echo", json!({ "msg": "no message field" }))
        .await
        .expect("a result, not a JSON-RPC error");
    assert!(bad.is_error);
    assert!(
        bad.all_text()
            .starts_with("MCP error -32602: Input validation error"),
        "{}",
        bad.all_text()
    );

    let unknown = client
        .call_tool("no-such-tool", json!({}))
        .await
        .expect("a result, not a JSON-RPC error");
    assert!(unknown.is_error);
    assert_eq!(
        unknown.all_text(),
        "MCP error -32602: Tool no-such-tool not found"
    );

    // An unknown method is a real JSON-RPC error.
    let method = client
        .request::<_, Value>("no/such/method", &json!({}))
        .await
        .expect_err("unknown method");
    match method {
        Error::JsonRpc(error) => assert_eq!(error.code, -32601),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }

    client.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn server_everything_sends_progress_over_stdio() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        NotificationHandler::new().on_progress(move |p| seen.lock().unwrap().push(p.progress))
    };
    let command = server_everything();
    let transport = StdioClientTransport::spawn_command(&mut command.tokio_command())
        .await
        .expect("spawn server-everything")
        .process_group_shutdown(true);
    let client = McpClient::builder()
        .request_progress()
        .connect(transport, handler)
        .await
        .expect("connect");
    client
        .initialize("direct-test", "0.1.0")
        .await
        .expect("initialize");

    let result = client
        .call_tool(
            "trigger-long-running-operation",
            json!({ "duration": 1, "steps": 2 }),
        )
        .await
        .expect("long-running operation");
    assert!(!result.is_error, "{}", result.all_text());
    // Progress travels on the same pipe ahead of the response.
    assert_eq!(*seen.lock().unwrap(), vec![1.0, 2.0]);

    client.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn backend_through_tower_mcp_http_client() {
    let backend = TestBackend::start_named("alpha").await;
    let client = McpClient::connect(HttpClientTransport::new(backend.url()))
        .await
        .expect("connect");
    let init = client
        .initialize("direct-test", "0.1.0")
        .await
        .expect("initialize");
    assert_eq!(init.server_info.name, "alpha");

    let tools = client.list_all_tools().await.expect("tools/list");
    let tool_names: BTreeSet<_> = tools.iter().map(|t| t.name.clone()).collect();
    assert_eq!(tool_names, set(&["add", "echo", "fail", "slow", "whoami"]));

    let echo = client
        .call_tool("echo", json!({ "message": "hi" }))
        .await
        .expect("echo");
    assert_eq!(echo.all_text(), "hi");
    let sum = client
        .call_tool("add", json!({ "a": 2, "b": 3 }))
        .await
        .expect("add");
    assert_eq!(sum.all_text(), "5");
    let who = client.call_tool("whoami", json!({})).await.expect("whoami");
    assert_eq!(who.all_text(), "alpha");

    // A tool's own failure is a result, not an error.
    let fail = client
        .call_tool("fail", json!({ "message": "boom" }))
        .await
        .expect("fail answers a result");
    assert!(fail.is_error);
    assert_eq!(fail.all_text(), "boom");

    for (tool, arguments) in [
        ("no-such-tool", json!({})),
        ("add", json!({ "a": "two", "b": 3 })),
    ] {
        match client.call_tool(tool, arguments).await {
            Err(Error::JsonRpc(error)) => assert_eq!(i64::from(error.code), INVALID_PARAMS),
            other => panic!("{tool}: expected a JSON-RPC error, got {other:?}"),
        }
    }

    assert_eq!(
        client.list_all_resources().await.expect("resources").len(),
        1
    );
    assert_eq!(
        client
            .list_all_resource_templates()
            .await
            .expect("templates")
            .len(),
        1
    );
    assert_eq!(client.list_all_prompts().await.expect("prompts").len(), 1);

    client.shutdown().await.expect("shutdown");
    assert_eq!(backend.calls("add"), 2);
}

#[tokio::test]
async fn backend_through_raw_client() {
    let backend = TestBackend::start_named("beta").await;
    let client = RawClient::new(backend.url());
    let init = client.initialize().await;
    assert_eq!(init["serverInfo"]["name"], "beta");
    assert_eq!(client.protocol_version().as_deref(), Some("2025-11-25"));
    assert!(client.session_id().is_some(), "a session id is issued");

    let tools = client.request("tools/list", Value::Null).await;
    assert_eq!(
        names(&tools, "tools", "name"),
        set(&["add", "echo", "fail", "slow", "whoami"])
    );
    let echo_tool = &tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap()["annotations"];
    assert_eq!(echo_tool["readOnlyHint"], true);
    assert_eq!(echo_tool["idempotentHint"], true);

    assert_eq!(
        text(&client.call_tool("echo", json!({ "message": "hi" })).await),
        "hi"
    );
    assert_eq!(
        text(&client.call_tool("add", json!({ "a": 2, "b": 3 })).await),
        "5"
    );
    assert_eq!(
        text(&client.call_tool("add", json!({ "a": 0.5, "b": 1 })).await),
        "1.5"
    );
    assert_eq!(text(&client.call_tool("whoami", json!({})).await), "beta");

    let fail = client.call_tool("fail", json!({ "message": "boom" })).await;
    assert_eq!(fail["result"]["isError"], true);
    assert_eq!(text(&fail), "boom");

    let unknown = client.call_tool("no-such-tool", json!({})).await;
    assert_eq!(unknown["error"]["code"], INVALID_PARAMS);
    assert_eq!(unknown["error"]["message"], "Unknown tool: no-such-tool");
    let bad = client.call_tool("add", json!({ "a": "two", "b": 3 })).await;
    assert_eq!(bad["error"]["code"], INVALID_PARAMS, "{bad}");
    let missing = client.call_tool("echo", json!({})).await;
    assert_eq!(missing["error"]["code"], INVALID_PARAMS, "{missing}");
    let method = client.request("no/such/method", json!({})).await;
    assert_eq!(method["error"]["code"], -32601, "{method}");

    // The other three kinds, each naming the backend.
    let resources = client.request("resources/list", Value::Null).await;
    assert_eq!(names(&resources, "resources", "uri"), set(&["test://info"]));
    let info = client
        .request("resources/read", json!({ "uri": "test://info" }))
        .await;
    assert_eq!(info["result"]["contents"][0]["text"], "test backend beta");
    let templates = client
        .request("resources/templates/list", Value::Null)
        .await;
    assert_eq!(
        names(&templates, "resourceTemplates", "uriTemplate"),
        set(&["test://items/{id}"])
    );
    let item = client
        .request("resources/read", json!({ "uri": "test://items/7" }))
        .await;
    assert_eq!(item["result"]["contents"][0]["text"], "item 7 from beta");
    let prompts = client.request("prompts/list", Value::Null).await;
    assert_eq!(names(&prompts, "prompts", "name"), set(&["greet"]));
    let greet = client
        .request(
            "prompts/get",
            json!({ "name": "greet", "arguments": { "who": "Ada" } }),
        )
        .await;
    assert_eq!(
        greet["result"]["messages"][0]["content"]["text"],
        "Hello, Ada! (from beta)"
    );

    // Ids count up per client, so every answer matched its own request.
    assert!(client.notifications().is_empty());
}

#[tokio::test]
async fn slow_sends_progress_on_the_post_stream_before_its_response() {
    let backend = TestBackend::start().await;
    let client = RawClient::new(backend.url());
    client.initialize().await;

    let response = client
        .call_tool_with_progress("slow", json!({ "ms": 150, "steps": 3 }), "tok-1")
        .await;
    assert_eq!(text(&response), "done");
    let progress = client.take_notifications();
    assert_eq!(progress.len(), 3, "{progress:?}");
    for (step, message) in (1..=3).zip(&progress) {
        assert_eq!(message["method"], "notifications/progress");
        assert_eq!(message["params"]["progressToken"], "tok-1");
        assert_eq!(message["params"]["progress"], step);
        assert_eq!(message["params"]["total"], 3);
    }

    // Without a token: no progress, and a plain JSON answer.
    let body = json!({
        "jsonrpc": "2.0", "id": "plain", "method": "tools/call",
        "params": { "name": "slow", "arguments": { "ms": 10, "steps": 2 } },
    });
    let raw = client
        .post_raw(body.to_string(), &client.standard_headers())
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/json"));
    assert_eq!(raw.messages().len(), 1);

    // With a token: one SSE answer, progress then response.
    let body = json!({
        "jsonrpc": "2.0", "id": "streamed", "method": "tools/call",
        "params": {
            "name": "slow", "arguments": { "ms": 10, "steps": 2 },
            "_meta": { "progressToken": 42 },
        },
    });
    let raw = client
        .post_raw(body.to_string(), &client.standard_headers())
        .await;
    assert_eq!(raw.header("content-type"), Some("text/event-stream"));
    let messages = raw.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["params"]["progressToken"], 42);
    assert_eq!(messages[2]["id"], "streamed");
}

#[tokio::test]
async fn tower_mcp_alone_sends_progress_only_on_the_get_stream() {
    let backend = TestBackend::builder()
        .progress_delivery(ProgressDelivery::GetStream)
        .start()
        .await;
    let client = RawClient::new(backend.url());
    client.initialize().await;
    let mut stream = client.open_get_stream().await;

    let response = client
        .call_tool_with_progress("slow", json!({ "ms": 100, "steps": 2 }), "tok-get")
        .await;
    assert_eq!(text(&response), "done");
    assert!(
        client.notifications().is_empty(),
        "nothing on the POST stream"
    );
    for step in 1..=2 {
        match stream.next(Duration::from_secs(30)).await {
            StreamEvent::Message(message) => {
                assert_eq!(message["params"]["progressToken"], "tok-get");
                assert_eq!(message["params"]["progress"], f64::from(step));
            }
            other => panic!("progress {step}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn whoami_tells_two_backends_apart() {
    let one = TestBackend::start().await;
    let two = TestBackend::start().await;
    assert_ne!(one.name(), two.name());
    assert_ne!(one.addr(), two.addr());
    for backend in [&one, &two] {
        let client = RawClient::new(backend.url());
        client.initialize().await;
        assert_eq!(
            text(&client.call_tool("whoami", json!({})).await),
            backend.name()
        );
    }
}

#[tokio::test]
async fn backend_restarts_on_the_same_port_without_its_sessions() {
    let mut backend = TestBackend::start_named("phoenix").await;
    let addr = backend.addr();
    let client = RawClient::new(backend.url());
    client.initialize().await;
    assert_eq!(
        text(
            &client
                .call_tool("echo", json!({ "message": "before" }))
                .await
        ),
        "before"
    );

    backend.stop().await;
    assert!(!backend.is_running());
    match client.try_request("tools/list", Value::Null).await {
        // Refused, or a pooled connection found closed: either way no answer.
        Err(ClientError::Http(_)) => {}
        other => panic!("a stopped backend answers nothing, got {other:?}"),
    }

    backend.restart().await;
    assert_eq!(backend.addr(), addr);
    // The old session died with the old server.
    let stale = client
        .post_raw(
            json!({ "jsonrpc": "2.0", "id": 99, "method": "tools/list" }).to_string(),
            &client.standard_headers(),
        )
        .await;
    assert_eq!(stale.status, 404, "{}", stale.text());

    let fresh = RawClient::new(backend.url());
    fresh.initialize().await;
    assert_eq!(text(&fresh.call_tool("whoami", json!({})).await), "phoenix");
    // Counts survive the restart.
    assert_eq!(backend.calls("echo"), 1);

    // A stopped backend's address can also be taken by a new one.
    backend.stop().await;
    let successor = TestBackend::start_on(addr).await;
    let client = RawClient::new(successor.url());
    client.initialize().await;
    assert_eq!(
        text(&client.call_tool("whoami", json!({})).await),
        successor.name()
    );
}

#[tokio::test]
async fn stop_closes_open_connections() {
    let mut backend = TestBackend::start().await;
    let client = RawClient::new(backend.url());
    client.initialize().await;
    let mut stream = client.open_get_stream().await;

    // A call in flight when the backend stops fails instead of hanging.
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .try_request(
                    "tools/call",
                    json!({ "name": "slow", "arguments": { "ms": 60_000, "steps": 1 } }),
                )
                .await
        })
    };
    wait_until("the slow call to reach the backend", || {
        let calls = backend.calls("slow");
        async move { calls == 1 }
    })
    .await;

    backend.stop().await;
    assert_eq!(
        stream.next(Duration::from_secs(30)).await,
        StreamEvent::Closed
    );
    let result = in_flight.await.expect("the task ran");
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn backend_transport_edges() {
    // What tower-mcp's transport answers at the HTTP level; the proxy's own
    // front end is held to the transport rules, not necessarily to these.
    let backend = TestBackend::start().await;
    let client = RawClient::new(backend.url());
    client.initialize().await;
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();

    let ok = client
        .post_raw(list.clone(), &client.standard_headers())
        .await;
    assert_eq!(ok.status, 200);

    let mut no_session = client.standard_headers();
    no_session.retain(|(name, _)| name != "mcp-session-id");
    let missing = client.post_raw(list.clone(), &no_session).await;
    // No 400: tower-mcp serves a session-less request (on a session of its
    // own that the client never learns), where the transport rules say 400.
    assert_eq!(missing.status, 200, "{}", missing.text());
    assert!(missing.json()["result"]["tools"].is_array());

    let mut unknown_session = no_session.clone();
    unknown_session.push(("mcp-session-id".into(), "no-such-session".into()));
    let unknown = client.post_raw(list.clone(), &unknown_session).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.json()["error"]["code"], -32005);
    assert_eq!(unknown.json()["id"], Value::Null);

    let mut foreign = client.standard_headers();
    foreign.push(("origin".into(), "https://evil.example".into()));
    let forbidden = client.post_raw(list.clone(), &foreign).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text());

    let bad_json = client
        .post_raw("{ not json", &client.standard_headers())
        .await;
    // A parse error comes back with HTTP 200 and a null id.
    assert_eq!(bad_json.status, 200, "{}", bad_json.text());
    assert_eq!(bad_json.json()["error"]["code"], -32700);
    assert_eq!(bad_json.json()["id"], Value::Null);

    let notification = client
        .notify("notifications/roots/list_changed", Value::Null)
        .await;
    assert_eq!(notification, 202);

    assert_eq!(client.delete_session().await, 200);
    let gone = client.post_raw(list, &client.standard_headers()).await;
    assert_eq!(gone.status, 404, "{}", gone.text());
}
