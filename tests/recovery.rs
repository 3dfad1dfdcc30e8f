//! Backends come and go; the proxy stays.
//!
//! Each test breaks a real backend behind a running proxy — SIGKILLs a stdio
//! child, lets a scripted child exit mid-call, stops an HTTP server and starts
//! it again on the same port, starts the proxy before a backend exists, feeds
//! it garbage — and checks what a client of the proxy sees: calls to the
//! broken backend fail fast with a JSON-RPC error naming it, the other
//! backends keep serving, `/readyz` says who is missing and why, and once the
//! backend is back the *same* client session works again without
//! re-initializing. It also checks that a backend's `list_changed` reaches
//! the client's GET stream and the aggregated `tools/list`.

use std::time::Duration;

use mcp_proxy::State;
use mcp_proxy::config::ReconnectPolicy;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::proxy::{
    self, admin_backend, ops_get_json, pid_gone, reserve_addr, scripted_backend,
};
use crate::support::{RawClient, StreamEvent, TestBackend, wait_for, wait_until};

/// Proxy error: the backend is not connected.
const BACKEND_UNAVAILABLE: i64 = -32010;
/// Proxy error: the connection died while the call was in flight.
const BACKEND_TRANSPORT: i64 = -32011;

/// The text of a `tools/call` response message's first content item.
fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
}

/// The `error` member of a response message.
fn error(response: &Value) -> &Value {
    let error = &response["error"];
    assert!(
        error.is_object(),
        "expected a JSON-RPC error, got {response}"
    );
    error
}

/// Assert `response` is one of the proxy's own errors, with one of `codes`,
/// naming `backend` in the message and in `data.backend`.
fn assert_proxy_error(response: &Value, codes: &[i64], backend: &str) {
    let error = error(response);
    let code = error["code"].as_i64().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "code {code} not in {codes:?}: {response}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("\"{backend}\"")),
        "the message names the backend {backend:?}: {response}"
    );
    assert_eq!(
        error["data"]["backend"], backend,
        "data.backend: {response}"
    );
}

/// The names in a `tools/list` response message.
fn tool_names(response: &Value) -> Vec<String> {
    response["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {response}"))
        .iter()
        .map(|tool| tool["name"].as_str().expect("a tool name").to_owned())
        .collect()
}

/// A client of `proxy`, initialized.
async fn client_of(proxy: &mcp_proxy::server::RunningProxy) -> RawClient {
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    client
}

/// Call `tool` until it answers with a result (not an error); return it.
async fn wait_for_result(client: &RawClient, tool: &str, arguments: Value) -> Value {
    wait_for(&format!("{tool} to answer with a result"), || {
        let arguments = arguments.clone();
        async move {
            let response = client
                .try_request(
                    "tools/call",
                    json!({ "name": tool, "arguments": arguments }),
                )
                .await
                .ok()?;
            response.get("result").is_some().then_some(response)
        }
    })
    .await
}

#[tokio::test]
async fn sigkilled_stdio_child_is_respawned_and_the_session_carries_on() {
    let proxy = proxy::start(vec![proxy::everything_backend("everything")]).await;
    let client = client_of(&proxy).await;
    let session = client.session_id();

    let before = client
        .call_tool("everything/echo", json!({ "message": "before" }))
        .await;
    assert_eq!(text(&before), "Echo: before", "{before}");

    let status = proxy::status(&proxy, "everything");
    assert_eq!(status.restarts, 0);
    let old_pid = status.pid.expect("a stdio backend reports its child's pid");
    let raw_pid = i32::try_from(old_pid).expect("a pid fits in i32");
    kill(Pid::from_raw(raw_pid), Signal::SIGKILL).expect("SIGKILL the stdio child");

    let new_pid = wait_for("the child to be respawned", || async {
        let status = proxy::status(&proxy, "everything");
        (status.restarts == 1 && status.state == State::Connected)
            .then_some(status.pid)
            .flatten()
            .filter(|&pid| pid != old_pid)
    })
    .await;
    assert_ne!(new_pid, old_pid);
    wait_until("the killed child to be gone", || async {
        pid_gone(old_pid)
    })
    .await;

    let after = client
        .call_tool("everything/echo", json!({ "message": "after" }))
        .await;
    assert_eq!(text(&after), "Echo: after", "{after}");
    assert_eq!(
        client.session_id(),
        session,
        "the client kept its session; it never re-initialized"
    );
    assert_eq!(proxy::status(&proxy, "everything").restarts, 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn during_an_outage_calls_fail_fast_with_an_error_naming_the_backend() {
    // A long backoff, so the outage lasts well beyond the calls made in it.
    let mut backend = scripted_backend("scripted", &[]);
    backend.reconnect = ReconnectPolicy {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
    };
    let proxy = proxy::start(vec![backend]).await;
    let client = client_of(&proxy).await;

    // The child exits without answering: the call in flight is lost.
    let lost = client
        .call_tool("scripted/exit", json!({ "code": 3 }))
        .await;
    assert_proxy_error(&lost, &[BACKEND_TRANSPORT], "scripted");

    // Once the proxy has noticed (the connection is dropped before the state
    // is set), a call is not sent anywhere: it fails at once with -32010.
    wait_until("the backend to be marked unavailable", || async {
        proxy::status(&proxy, "scripted").state == State::Unavailable
    })
    .await;
    let unavailable = client
        .call_tool("scripted/echo", json!({ "message": "anyone?" }))
        .await;
    assert_proxy_error(&unavailable, &[BACKEND_UNAVAILABLE], "scripted");
    assert_eq!(
        proxy::status(&proxy, "scripted").restarts,
        0,
        "the call was answered without waiting for the respawn"
    );
    let last_error = proxy::status(&proxy, "scripted")
        .last_error
        .expect("the outage has a reason");
    assert!(last_error.contains("process ended"), "{last_error}");

    // After the backoff the child is respawned and calls work again.
    let back = wait_for_result(&client, "scripted/echo", json!({ "message": "back" })).await;
    assert_eq!(text(&back), "back", "{back}");
    let status = proxy::status(&proxy, "scripted");
    assert_eq!((status.state, status.restarts), (State::Connected, 1));
    proxy.shutdown().await;
}

#[tokio::test]
async fn http_backend_stopped_and_restarted_on_the_same_port_is_reconnected() {
    let mut backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![proxy::http_backend("alpha", &backend.url())]).await;
    let addr = proxy.local_addr();
    let client = client_of(&proxy).await;
    let session = client.session_id();

    let first = client
        .call_tool("alpha/echo", json!({ "message": "one" }))
        .await;
    assert_eq!(text(&first), "one", "{first}");

    backend.stop().await;
    let down = client
        .call_tool("alpha/echo", json!({ "message": "two" }))
        .await;
    assert_proxy_error(&down, &[BACKEND_UNAVAILABLE, BACKEND_TRANSPORT], "alpha");

    let not_ready = wait_for("/readyz to answer 503", || async {
        let (status, body) = ops_get_json(addr, "/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    let reason = &not_ready["backends"]["alpha"]["reason"];
    assert!(
        reason.as_str().is_some_and(|r| !r.is_empty()),
        "/readyz names alpha with a reason: {not_ready}"
    );

    backend.restart().await;
    let again = wait_for_result(&client, "alpha/echo", json!({ "message": "three" })).await;
    assert_eq!(text(&again), "three", "{again}");
    assert_eq!(
        client.session_id(),
        session,
        "same client session throughout"
    );

    let (status, body) = ops_get_json(addr, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "/readyz: {body}");
    let alpha = admin_backend(addr, "alpha").await;
    assert!(
        alpha["restarts"].as_u64().is_some_and(|n| n >= 1),
        "/admin/backends counts the reconnect: {alpha}"
    );
    assert_eq!(alpha["state"], "connected", "{alpha}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_http_backend_going_away_is_noticed_without_a_call_and_rejoined_after_restart() {
    // The proxy holds the backend's GET event stream open: when the backend
    // stops, the proxy must see it (readiness drops) although no client has
    // called anything, and after a restart the very first call must work.
    let mut backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![proxy::http_backend("alpha", &backend.url())]).await;
    let addr = proxy.local_addr();

    backend.stop().await;
    wait_until("alpha marked unavailable without any call", || async {
        proxy::status(&proxy, "alpha").state == State::Unavailable
    })
    .await;
    let (status, _) = ops_get_json(addr, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    backend.restart().await;
    wait_until("alpha reconnected", || async {
        let status = proxy::status(&proxy, "alpha");
        status.state == State::Connected && status.restarts >= 1
    })
    .await;
    let client = client_of(&proxy).await;
    let first = client
        .call_tool("alpha/echo", json!({ "message": "first try" }))
        .await;
    assert_eq!(text(&first), "first try", "{first}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn backend_down_at_start_up_is_picked_up_when_it_appears() {
    let reserved = reserve_addr();
    let late_addr = reserved.addr();
    let beta = TestBackend::start_named("beta").await;
    let config = proxy::config(vec![
        proxy::http_backend("late", &format!("http://{late_addr}/mcp")),
        proxy::http_backend("beta", &beta.url()),
    ]);
    // Not `proxy::start`: it would wait for every backend to connect.
    let proxy = mcp_proxy::server::start(config)
        .await
        .expect("the proxy starts although a backend is down");
    let addr = proxy.local_addr();
    wait_until("beta to connect", || async {
        proxy::status(&proxy, "beta").state == State::Connected
    })
    .await;
    let client = client_of(&proxy).await;

    let whoami = client.call_tool("beta/whoami", json!({})).await;
    assert_eq!(text(&whoami), "beta", "{whoami}");
    let down = client
        .call_tool("late/echo", json!({ "message": "hello?" }))
        .await;
    assert_proxy_error(&down, &[BACKEND_UNAVAILABLE], "late");

    let (status, body) = ops_get_json(addr, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "/readyz: {body}");
    let late = &body["backends"]["late"];
    assert!(
        late["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "/readyz gives late's reason: {body}"
    );
    assert!(
        body["backends"].get("beta").is_none(),
        "beta is ready: {body}"
    );
    let listed = client.request("tools/list", Value::Null).await;
    assert!(
        !tool_names(&listed)
            .iter()
            .any(|name| name.starts_with("late/")),
        "nothing of late is listed yet: {listed}"
    );

    let _late = TestBackend::builder()
        .name("late")
        .start_on(reserved.release())
        .await;
    wait_until("late's tools to be listed", || async {
        let listed = client.request("tools/list", Value::Null).await;
        tool_names(&listed).iter().any(|name| name == "late/echo")
    })
    .await;
    let whoami = client.call_tool("late/whoami", json!({})).await;
    assert_eq!(text(&whoami), "late", "{whoami}");
    let (status, body) = ops_get_json(addr, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "/readyz: {body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn garbage_from_a_backend_is_skipped_and_the_call_still_answers() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = client_of(&proxy).await;
    let pid = proxy::status(&proxy, "scripted").pid;

    // Non-JSON, invalid UTF-8, a 17 MiB line, an answer to an unknown id,
    // then the real answer.
    let answer = client.call_tool("scripted/garbage", json!({})).await;
    assert_eq!(text(&answer), "survived?", "{answer}");

    let echo = client
        .call_tool("scripted/echo", json!({ "message": "still here" }))
        .await;
    assert_eq!(text(&echo), "still here", "{echo}");
    let status = proxy::status(&proxy, "scripted");
    assert_eq!(status.state, State::Connected);
    assert_eq!(status.restarts, 0, "garbage does not cost a respawn");
    assert_eq!(status.pid, pid, "the same child serves on");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_answer_over_the_line_limit_fails_its_call_instead_of_hanging_it() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let client = client_of(&proxy).await;
    let huge = client.call_tool("scripted/huge", json!({})).await;
    assert_proxy_error(&huge, &[BACKEND_TRANSPORT], "scripted");
    assert!(
        error(&huge)["message"]
            .as_str()
            .is_some_and(|m| m.contains("line limit")),
        "{huge}"
    );
    assert_eq!(proxy::status(&proxy, "scripted").in_flight, 0);
    let echo = client
        .call_tool("scripted/echo", json!({ "message": "fine" }))
        .await;
    assert_eq!(text(&echo), "fine");
    proxy.shutdown().await;
}

#[tokio::test]
async fn subscriptions_are_shared_between_sessions_and_renewed_after_a_respawn() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let a = client_of(&proxy).await;
    let b = client_of(&proxy).await;
    let held = |client: RawClient| async move {
        let answer = client.call_tool("scripted/subscriptions", json!({})).await;
        text(&answer).to_owned()
    };
    let uri = json!({ "uri": "mem://x" });
    for client in [&a, &b] {
        let subscribed = client.request("resources/subscribe", uri.clone()).await;
        assert!(subscribed.get("result").is_some(), "{subscribed}");
    }
    assert_eq!(held(a.clone()).await, r#"["mem://x"]"#);

    // One session leaving must not cancel the other's subscription.
    let left = a.request("resources/unsubscribe", uri.clone()).await;
    assert!(left.get("result").is_some(), "{left}");
    assert_eq!(
        held(a.clone()).await,
        r#"["mem://x"]"#,
        "b still subscribes"
    );

    // A respawned child starts with no subscriptions: the proxy renews b's.
    let pid = proxy::status(&proxy, "scripted").pid.expect("a child pid");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill the child");
    wait_until("the child respawned", || async {
        let status = proxy::status(&proxy, "scripted");
        status.state == State::Connected && status.restarts == 1
    })
    .await;
    assert_eq!(
        held(b.clone()).await,
        r#"["mem://x"]"#,
        "renewed after the respawn"
    );

    // The last session leaving ends it at the backend.
    b.request("resources/unsubscribe", uri).await;
    assert_eq!(held(b.clone()).await, "[]");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_first_subscribe_leaves_no_phantom_subscriber() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let first = client_of(&proxy).await;
    let second = client_of(&proxy).await;
    // The first subscribe hangs at the backend; its client gives up on it.
    let body = json!({
        "jsonrpc": "2.0", "id": 900, "method": "resources/subscribe",
        "params": { "uri": "mem://slow" }
    });
    let pending = {
        let first = first.clone();
        tokio::spawn(async move {
            first
                .post_raw(body.to_string(), &first.standard_headers())
                .await
        })
    };
    wait_until("the subscribe in flight", || async {
        proxy::status(&proxy, "scripted").in_flight == 1
    })
    .await;
    first
        .notify("notifications/cancelled", json!({ "requestId": 900 }))
        .await;
    let cancelled = pending.await.expect("the task");
    assert_eq!(cancelled.json()["error"]["code"], json!(-32800));

    // Another session's subscribe must really reach the backend.
    let subscribed = second
        .request("resources/subscribe", json!({ "uri": "mem://slow" }))
        .await;
    assert!(subscribed.get("result").is_some(), "{subscribed}");
    let held = second.call_tool("scripted/subscriptions", json!({})).await;
    assert_eq!(text(&held), r#"["mem://slow"]"#);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_hung_subscribe_holds_up_only_its_own_uri() {
    let proxy = proxy::start(vec![proxy::scripted_backend("scripted", &[])]).await;
    let first = client_of(&proxy).await;
    let second = client_of(&proxy).await;
    // The first subscribe to mem://slow hangs at the backend for 30 s.
    let hung = {
        let first = first.clone();
        tokio::spawn(async move {
            first
                .request("resources/subscribe", json!({ "uri": "mem://slow" }))
                .await
        })
    };
    wait_until("the subscribe in flight", || async {
        proxy::status(&proxy, "scripted").in_flight == 1
    })
    .await;
    // Another URI's subscribe and unsubscribe go through meanwhile.
    let other = tokio::time::timeout(Duration::from_secs(10), async {
        let subscribed = second
            .request("resources/subscribe", json!({ "uri": "mem://x" }))
            .await;
        let unsubscribed = second
            .request("resources/unsubscribe", json!({ "uri": "mem://x" }))
            .await;
        (subscribed, unsubscribed)
    })
    .await;
    let (subscribed, unsubscribed) =
        other.expect("a subscription waited for another URI's hung subscribe");
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    assert_eq!(unsubscribed["result"], json!({}), "{unsubscribed}");
    assert!(!hung.is_finished(), "mem://slow is still pending");
    hung.abort();
    proxy.shutdown().await;
}

#[tokio::test]
async fn capabilities_at_initialize_count_backends_that_are_down() {
    // A backend that never came up: its config says what it offers.
    let never = reserve_addr();
    let text = format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: later\n    transport: http\n    url: http://{}/mcp\n    capabilities: [tools, prompts, resources.subscribe]\n",
        never.addr()
    );
    let proxy = mcp_proxy::server::start(proxy::load_yaml(&text))
        .await
        .expect("the proxy starts");
    let early = RawClient::new(proxy.url()).initialize().await["capabilities"].clone();
    assert_eq!(
        (
            &early["resources"]["subscribe"],
            early.get("prompts").is_some()
        ),
        (&json!(true), true),
        "the config of a backend never connected counts: {early}"
    );
    proxy.shutdown().await;

    // One that connected, then went down: what it offered still counts.
    let mut known = TestBackend::start_named("known").await;
    let proxy = proxy::start(vec![proxy::http_backend("known", &known.url())]).await;
    known.stop().await;
    wait_until("known down", || async {
        proxy::status(&proxy, "known").state != State::Connected
    })
    .await;
    let late = RawClient::new(proxy.url()).initialize().await["capabilities"].clone();
    assert!(
        late.get("prompts").is_some() && late.get("resources").is_some(),
        "a backend that is down keeps what it offered: {late}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn garbage_before_the_initialize_answer_does_not_stop_the_connect() {
    let proxy = proxy::start(vec![scripted_backend("g", &["--garbage-at-start"])]).await;
    let client = client_of(&proxy).await;
    let echo = client
        .call_tool("g/echo", json!({ "message": "connected anyway" }))
        .await;
    assert_eq!(text(&echo), "connected anyway", "{echo}");
    assert_eq!(proxy::status(&proxy, "g").restarts, 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn backend_list_changed_reaches_the_get_stream_and_tools_list() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let client = client_of(&proxy).await;
    // The catalog is built from the first listing before anything else is
    // looked at, so no earlier list_changed can be mistaken for ours.
    let before = wait_for("the first listing in the catalog", || async {
        let listed = client.request("tools/list", Value::Null).await;
        let names = tool_names(&listed);
        names.contains(&"scripted/echo".to_owned()).then_some(names)
    })
    .await;
    assert!(!before.contains(&"scripted/fresh".to_owned()), "{before:?}");

    let mut stream = client.open_get_stream().await;
    let added = client
        .call_tool("scripted/add_tool", json!({ "name": "fresh" }))
        .await;
    assert_eq!(text(&added), "added", "{added}");

    // Bounded: at most a few unrelated messages before the one we expect.
    let mut seen = Vec::new();
    let mut notified = false;
    for _ in 0..16 {
        match stream.next(crate::support::WAIT_TIMEOUT).await {
            StreamEvent::Message(message)
                if message["method"] == "notifications/tools/list_changed" =>
            {
                notified = true;
                break;
            }
            StreamEvent::Message(message) => seen.push(message),
            other => panic!("no list_changed on the GET stream ({other:?}); saw {seen:?}"),
        }
    }
    assert!(notified, "no list_changed among {seen:?}");

    let after = client.request("tools/list", Value::Null).await;
    assert!(
        tool_names(&after).contains(&"scripted/fresh".to_owned()),
        "{after}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn backend_log_messages_reach_only_sessions_that_asked_at_their_level() {
    let proxy = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let listener = client_of(&proxy).await;
    let bystander = client_of(&proxy).await;
    let set = listener
        .request("logging/setLevel", json!({ "level": "warning" }))
        .await;
    assert!(set.get("result").is_some(), "{set}");
    let bad = listener
        .request("logging/setLevel", json!({ "level": "loud" }))
        .await;
    assert_eq!(error(&bad)["code"], json!(-32602), "{bad}");
    let mut heard = listener.open_get_stream().await;
    let mut overheard = bystander.open_get_stream().await;

    for level in ["info", "error"] {
        let logged = listener
            .call_tool("scripted/log", json!({ "level": level, "text": level }))
            .await;
        assert_eq!(text(&logged), "logged");
    }
    // A list change goes to every session: it marks the end of the logs.
    listener
        .call_tool("scripted/add_tool", json!({ "name": "marker" }))
        .await;

    let next = |event: StreamEvent| match event {
        StreamEvent::Message(message) => message,
        other => panic!("expected a message, got {other:?}"),
    };
    let first = next(heard.next(crate::support::WAIT_TIMEOUT).await);
    assert_eq!(first["method"], "notifications/message", "{first}");
    assert_eq!(
        first["params"]["level"], "error",
        "info is below warning: {first}"
    );
    assert_eq!(first["params"]["logger"], "scripted/app", "{first}");
    let then = next(heard.next(crate::support::WAIT_TIMEOUT).await);
    assert_eq!(then["method"], "notifications/tools/list_changed", "{then}");
    let only = next(overheard.next(crate::support::WAIT_TIMEOUT).await);
    assert_eq!(
        only["method"], "notifications/tools/list_changed",
        "a session that never set a level hears no logs: {only}"
    );
    proxy.shutdown().await;
}
