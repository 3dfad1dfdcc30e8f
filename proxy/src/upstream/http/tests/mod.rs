//! Tests of the streamable-HTTP client, by the part they exercise
//! (`connection`, `posting`, `faults`, `answers`, `event_stream`), and the
//! helpers they share: connecting, a real MCP server (tower-mcp over axum)
//! and a scripted one (wiremock) that completes the handshake.

mod answers;
mod connection;
mod event_stream;
mod faults;
mod posting;

use std::collections::BTreeMap;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tower_mcp::extract::{Context, RawArgs};
use tower_mcp::{CallToolResult, HttpTransport, McpRouter, ToolBuilder};
use wiremock::matchers::{body_partial_json, header, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

/// Generous bound on anything a test waits for: tests assert outcomes,
/// not speed.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("test timed out")
}

fn transport(url: &str) -> TransportConfig {
    let headers = BTreeMap::from([("x-api-key".to_owned(), "secret".to_owned())]);
    TransportConfig::Http {
        url: url.to_owned(),
        headers,
    }
}

fn settings() -> ConnectSettings {
    ConnectSettings {
        platform: crate::platform::Platform::os(),
        backend: "remote".into(),
        client_name: "mcp-proxy-test".into(),
        client_version: "9.9.9".into(),
        init_timeout: Duration::from_secs(20),
    }
}

async fn connect(url: &str) -> (HttpConnection, Value, UnboundedReceiver<Value>) {
    let (events, received) = mpsc::unbounded_channel();
    let (connection, init) = within(HttpConnection::connect(
        &transport(url),
        &settings(),
        events,
    ))
    .await
    .unwrap();
    (connection, init, received)
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

// ---- a real MCP server: tower-mcp over axum on 127.0.0.1 ----

async fn tower_server(sse_responses: bool) -> String {
    let echo = ToolBuilder::new("echo")
        .description("Echo the arguments")
        .extractor_handler((), |RawArgs(args): RawArgs| async move {
            Ok(CallToolResult::text(args.to_string()))
        })
        .build();
    let slow = ToolBuilder::new("slow")
        .description("Report progress, announce a list change, then answer")
        .extractor_handler((), |ctx: Context, RawArgs(_args): RawArgs| async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            ctx.report_progress(0.5, Some(1.0), Some("half")).await;
            ctx.notify_tools_list_changed();
            tokio::time::sleep(Duration::from_millis(700)).await;
            Ok(CallToolResult::text("done"))
        })
        .build();
    let router = McpRouter::new()
        .server_info("tower-backend", "0.0.1")
        .tool(echo)
        .tool(slow);
    let app = HttpTransport::new(router)
        .sse_responses(sse_responses)
        .into_router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/")
}

// ---- raw faults from a server that is not an MCP server: wiremock ----

/// Answer with a JSON-RPC response carrying the request's own id.
fn answer(result: Value) -> impl Fn(&Request) -> ResponseTemplate {
    move |request: &Request| {
        let id = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .map(|body| body["id"].clone());
        ResponseTemplate::new(200)
            .set_body_json(json!({"jsonrpc": "2.0", "id": id, "result": result.clone()}))
    }
}

/// A wiremock server that completes the handshake with session `sess-1`
/// and offers no GET stream.
async fn mock_backend() -> MockServer {
    mock_backend_with_stream(ResponseTemplate::new(405)).await
}

/// The same, answering GET with `stream`.
async fn mock_backend_with_stream(stream: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    let init = json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "mock", "version": "1"}});
    let init_answer = answer(init);
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"method": "initialize"})))
        .and(header("x-api-key", "secret"))
        .respond_with(move |request: &Request| {
            init_answer(request).insert_header("Mcp-Session-Id", "sess-1")
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"method": "notifications/initialized"}),
        ))
        .and(header("mcp-session-id", "sess-1"))
        .and(header("mcp-protocol-version", "2025-06-18"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(stream)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn on_tool(server: &MockServer, name: &str, response: impl wiremock::Respond + 'static) {
    Mock::given(method("POST"))
        .and(body_partial_json(
            json!({"method": "tools/call", "params": {"name": name}}),
        ))
        .and(header("mcp-session-id", "sess-1"))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn call(connection: &HttpConnection, name: &str) -> Result<Value, UpstreamError> {
    within(connection.request(
        "tools/call",
        Some(json!({"name": name})),
        None,
        Outbound::default(),
    ))
    .await
}

async fn gets(server: &MockServer) -> Vec<Request> {
    let requests = server.received_requests().await.unwrap();
    requests
        .into_iter()
        .filter(|request| request.method == "GET")
        .collect()
}
