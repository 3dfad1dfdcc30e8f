//! The supervisor against real backends: a stdio child that dies is
//! respawned, an HTTP backend that is down at start-up is retried until it
//! comes, a session the server forgot is replaced, and each of these events
//! is logged with the backend's name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing_test::traced_test;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{Backend, CallError, State};
use crate::call::{Call, Method};
use crate::config::{BackendConfig, ReconnectPolicy, TransportConfig};
use crate::jsonrpc;
use crate::platform::Platform;

const PATIENCE: Duration = Duration::from_secs(30);

fn config(name: &str, transport: TransportConfig) -> BackendConfig {
    BackendConfig {
        init_timeout: Duration::from_secs(20),
        reconnect: ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..BackendConfig::new(name, transport)
    }
}

fn scripted(name: &str) -> BackendConfig {
    scripted_with(name, &[])
}

fn scripted_with(name: &str, extra_args: &[&str]) -> BackendConfig {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scripted_server.py");
    let mut args = vec![script.display().to_string()];
    args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
    config(
        name,
        TransportConfig::Stdio {
            command: "python3".into(),
            args,
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        },
    )
}

fn http(name: &str, url: String) -> BackendConfig {
    config(
        name,
        TransportConfig::Http {
            url,
            headers: BTreeMap::new(),
        },
    )
}

/// Start a backend's supervisor; the token stops it.
fn supervise(config: BackendConfig) -> (Arc<Backend>, CancellationToken) {
    let backend = Arc::new(Backend::new(config, "test-proxy", 0, Platform::os()));
    let (events, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move { while received.recv().await.is_some() {} });
    let stop = CancellationToken::new();
    backend.spawn_supervisor(events, stop.clone());
    (backend, stop)
}

async fn wait_for(what: &str, backend: &Backend, condition: impl Fn(&super::Status) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition(&backend.status()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            backend.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call_tool(backend: &Backend, name: &str, arguments: Value) -> Result<Value, CallError> {
    let mut call = Call::new(
        Method::ToolsCall,
        0,
        Some(json!({ "name": name, "arguments": arguments })),
    );
    call.safety = backend.safety(Method::ToolsCall, name);
    backend.call(call).await
}

#[tokio::test]
#[traced_test]
async fn a_stdio_child_that_exits_is_respawned_and_the_respawn_is_logged() {
    let (backend, stop) = supervise(scripted("scripted-one"));
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    let first_pid = backend.status().pid.expect("a stdio child has a pid");
    let listing = backend.listing();
    let tools: Vec<&str> = listing
        .lists
        .tools
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"exit"),
        "the child's tools were listed: {tools:?}"
    );
    assert_eq!(listing.lists.resources.len(), 3, "and its resources");

    let error = call_tool(&backend, "exit", json!({ "code": 7 }))
        .await
        .expect_err("the child exits");
    assert_eq!(
        error.to_error_object().code,
        jsonrpc::BACKEND_TRANSPORT,
        "{error}"
    );
    assert!(error.to_string().contains("scripted-one"), "{error}");

    wait_for("respawned", &backend, |s| {
        s.state == State::Connected && s.restarts == 1
    })
    .await;
    let answer = call_tool(&backend, "echo", json!({ "message": "again" }))
        .await
        .expect("calls work again");
    assert_eq!(answer["content"][0]["text"], "again");
    assert_ne!(backend.status().pid, Some(first_pid), "a new process");
    assert!(
        backend
            .status()
            .last_error
            .is_some_and(|e| e.contains("status 7")),
        "{:?}",
        backend.status()
    );
    assert!(logs_contain("scripted-one"));
    assert!(logs_contain("restarting after a backoff"));
    assert!(logs_contain("backend respawned and re-initialized"));

    stop.cancel();
    wait_for("stopped", &backend, |s| s.state == State::Stopped).await;
}

#[tokio::test]
#[traced_test]
async fn a_child_that_crashes_right_after_starting_keeps_backing_off() {
    // Each start connects and lists, then the child exits at once: the
    // delays must keep doubling (20, 40, 80, 160 ms), not start over.
    let (backend, stop) = supervise(scripted_with("crashy", &["--exit-after-list"]));
    wait_for("four restarts", &backend, |s| s.restarts >= 4).await;
    stop.cancel();
    for delay in ["20ms", "40ms", "80ms", "160ms"] {
        assert!(
            logs_contain(&format!("retry_in={delay}")),
            "a retry after {delay}"
        );
    }
}

/// A loopback port held for a server started later: bound, so a parallel
/// test's `bind(0)` is never given it, but not listening, so a connection to
/// it is refused as by a server that is down. Dropped to free the port.
fn reserve_address() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a free port");
    let addr = socket.local_addr().expect("its address");
    (socket, addr)
}

/// A tower-mcp streamable-HTTP server on a given address.
async fn serve_mcp_on(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    use tower_mcp::{CallToolResult, HttpTransport, McpRouter, ToolBuilder};
    let echo = ToolBuilder::new("echo")
        .description("echo")
        .handler(|args: Value| async move { Ok(CallToolResult::text(args.to_string())) })
        .build();
    let router = McpRouter::new().server_info("late", "1").tool(echo);
    let app = HttpTransport::new(router).into_router();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the port is free again");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[tokio::test]
#[traced_test]
async fn an_http_backend_down_at_start_fails_fast_then_connects_when_it_comes() {
    let (reserved, addr) = reserve_address();
    // tower-mcp's router serves MCP at its root.
    let (backend, stop) = supervise(http("late-search", format!("http://{addr}/")));
    wait_for("unavailable", &backend, |s| s.state == State::Unavailable).await;

    let error = call_tool(&backend, "echo", json!({}))
        .await
        .expect_err("no connection yet");
    assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
    let object = error.to_error_object();
    assert_eq!(object.code, jsonrpc::BACKEND_UNAVAILABLE);
    assert!(object.message.contains("late-search"), "{}", object.message);
    assert_eq!(
        object.data.as_ref().map(|d| &d["backend"]),
        Some(&json!("late-search"))
    );
    assert!(logs_contain("late-search"));
    assert!(logs_contain("backend marked unavailable"));

    drop(reserved);
    let server = serve_mcp_on(addr).await;
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    assert!(call_tool(&backend, "echo", json!({ "x": 1 })).await.is_ok());
    assert!(logs_contain("backend connected"));
    stop.cancel();
    server.abort();
}

/// Answers JSON-RPC `initialize` with a session id, echoing the request id.
fn initialize_answer(session: &'static str) -> impl Fn(&Request) -> ResponseTemplate {
    move |request: &Request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let result = json!({
            "protocolVersion": "2025-06-18",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "mock", "version": "1" }
        });
        ResponseTemplate::new(200)
            .insert_header("mcp-session-id", session)
            .set_body_json(jsonrpc::response(body["id"].clone(), result))
    }
}

fn empty_tool_list(request: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    ResponseTemplate::new(200).set_body_json(jsonrpc::response(
        body["id"].clone(),
        json!({ "tools": [] }),
    ))
}

/// Mount a well-behaved MCP server that issues `session`, with an optional
/// extra mock placed before the catch-all ones.
async fn mount_mcp_server(server: &MockServer, session: &'static str, first: Option<Mock>) {
    Mock::given(method("POST"))
        .and(body_partial_json(json!({ "method": "initialize" })))
        .respond_with(initialize_answer(session))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({ "method": "tools/list" })))
        .respond_with(empty_tool_list)
        .mount(server)
        .await;
    if let Some(mock) = first {
        mock.mount(server).await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(405))
        .mount(server)
        .await;
}

#[tokio::test]
#[traced_test]
async fn a_forgotten_http_session_is_replaced_by_a_new_one_and_logged() {
    let server = MockServer::start().await;
    mount_mcp_server(&server, "session-1", None).await;
    let (backend, stop) = supervise(http("forgetful", format!("{}/mcp", server.uri())));
    wait_for("connected", &backend, |s| s.state == State::Connected).await;

    // The server restarts and forgets every session: 404 for the old id.
    server.reset().await;
    let forgotten = Mock::given(method("POST"))
        .and(wiremock::matchers::header("mcp-session-id", "session-1"))
        .respond_with(ResponseTemplate::new(404));
    mount_mcp_server(&server, "session-2", Some(forgotten)).await;

    let error = call_tool(&backend, "anything", json!({}))
        .await
        .expect_err("the old session is gone");
    assert_eq!(
        error.to_error_object().code,
        jsonrpc::BACKEND_TRANSPORT,
        "{error}"
    );
    wait_for("reconnected", &backend, |s| {
        s.state == State::Connected && s.restarts == 1
    })
    .await;
    assert!(logs_contain("forgetful"));
    assert!(logs_contain("backend reconnected with a new session"));
    stop.cancel();
}

#[tokio::test]
#[traced_test]
async fn hedging_over_tools_none_of_which_is_safe_to_repeat_is_warned_about() {
    // The scripted server's tools carry no hints.
    let warning = "hedging is configured but no tool is safe to repeat";
    let hedged = BackendConfig {
        hedging: Some(crate::config::HedgePolicy {
            delay: Duration::from_millis(50),
            max_hedges: 1,
        }),
        ..scripted("unhinted")
    };
    let (backend, stop) = supervise(hedged.clone());
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    stop.cancel();
    let warned = |backend: &'static str| {
        move |lines: &[&str]| {
            lines
                .iter()
                .any(|l| l.contains(&format!("backend{{name={backend}}}")) && l.contains(warning))
        }
    };
    logs_assert(|lines| match warned("unhinted")(lines) {
        true => Ok(()),
        false => Err("no warning for a backend without safe tools".into()),
    });

    // Naming a tool in safe_to_repeat makes hedging useful: no warning.
    let named = BackendConfig {
        name: "named".into(),
        safe_to_repeat: vec!["echo".into()],
        ..hedged
    };
    let (backend, stop) = supervise(named);
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    stop.cancel();
    logs_assert(|lines| match warned("named")(lines) {
        true => Err("warned although echo is safe to repeat".into()),
        false => Ok(()),
    });
}

/// A supervised child that answered a call, which proves its connection
/// healthy, and then exited: its respawn is under way.
async fn crashed_after_an_answer(config: BackendConfig) -> (Arc<Backend>, CancellationToken) {
    let (backend, stop) = supervise(config);
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    call_tool(&backend, "echo", json!({ "message": "first" }))
        .await
        .expect("the child answers");
    call_tool(&backend, "exit", json!({ "code": 7 }))
        .await
        .expect_err("the child exits");
    (backend, stop)
}

#[tokio::test]
#[traced_test]
async fn a_call_during_a_restart_waits_for_it() {
    let (backend, stop) = crashed_after_an_answer(scripted("restarting")).await;
    let answer = call_tool(&backend, "echo", json!({ "message": "after" }))
        .await
        .expect("the call waits for the respawn");
    assert_eq!(answer["content"][0]["text"], "after");
    assert_eq!(backend.status().restarts, 1);
    assert!(logs_contain("restarting at once"));
    stop.cancel();
}

#[tokio::test]
async fn with_no_wait_for_ready_a_call_during_a_restart_fails_at_once() {
    let impatient = BackendConfig {
        wait_for_ready: Duration::ZERO,
        ..scripted("impatient")
    };
    let (backend, stop) = crashed_after_an_answer(impatient).await;
    let error = call_tool(&backend, "echo", json!({ "message": "after" }))
        .await
        .expect_err("nothing to send to yet");
    assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
    stop.cancel();
}

#[tokio::test]
#[traced_test]
async fn once_a_reconnect_has_failed_calls_fail_fast() {
    let (reserved, addr) = reserve_address();
    let patient = BackendConfig {
        // Long enough that a call which waited would hit the bound below.
        wait_for_ready: Duration::from_secs(120),
        ..http("vanishing", format!("http://{addr}/"))
    };
    drop(reserved);
    let server = serve_mcp_on(addr).await;
    let (backend, stop) = supervise(patient);
    wait_for("connected", &backend, |s| s.state == State::Connected).await;
    call_tool(&backend, "echo", json!({}))
        .await
        .expect("the server answers");
    server.abort();
    let _ = server.await;
    // The first call finds the server gone (refused); the restart that
    // follows is refused too, and from then on the backend is known down.
    let first = call_tool(&backend, "echo", json!({})).await;
    assert!(first.is_err(), "{first:?}");
    wait_for("unavailable", &backend, |s| s.state == State::Unavailable).await;
    let error = tokio::time::timeout(PATIENCE, call_tool(&backend, "echo", json!({})))
        .await
        .expect("a known outage does not wait for wait_for_ready")
        .expect_err("nothing to send to");
    assert!(matches!(error, CallError::Unavailable { .. }), "{error:?}");
    assert!(logs_contain("restarting at once"));
    stop.cancel();
}
