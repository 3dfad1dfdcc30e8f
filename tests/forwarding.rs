//! Faithful forwarding: what a client gets through the proxy is what it gets
//! talking to the backend directly — names aside, which gain the backend's
//! prefix. Real peers throughout: the third-party server-everything (stdio),
//! tower-mcp HTTP backends, and tower-mcp's client on the proxy's endpoint.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tower_mcp::NotificationHandler;
use tower_mcp::client::{HttpClientTransport, McpClient, StdioClientTransport};

use crate::support::proxy::{self, everything_backend, http_backend, scripted_backend};
use crate::support::{RawClient, TestBackend, server_everything, wait_for_within};

/// A tower-mcp client talking to server-everything directly over stdio,
/// declaring the client capabilities the proxy declares to its backends
/// (server-everything registers its sampling, elicitation and roots tools
/// only for a client that declares them).
async fn everything_direct() -> McpClient {
    let command = server_everything();
    let transport = StdioClientTransport::spawn_command(&mut command.tokio_command())
        .await
        .expect("spawn server-everything")
        .process_group_shutdown(true);
    let capabilities = serde_json::from_value(json!({
        "sampling": {"context": {}, "tools": {}},
        "elicitation": {"form": {}, "url": {}},
        "roots": {},
    }))
    .expect("client capabilities");
    let client = McpClient::builder()
        .with_capabilities(capabilities)
        .connect(transport, NotificationHandler::new())
        .await
        .expect("connect");
    client.initialize("direct", "1").await.expect("initialize");
    client
}

/// A tower-mcp client talking to the proxy over streamable HTTP.
async fn through(url: String, handler: NotificationHandler, progress: bool) -> McpClient {
    let builder = if progress {
        McpClient::builder().request_progress()
    } else {
        McpClient::builder()
    };
    let client = builder
        .connect(HttpClientTransport::new(url), handler)
        .await
        .expect("connect to the proxy");
    client
        .initialize("through-proxy", "1")
        .await
        .expect("initialize through the proxy");
    client
}

#[tokio::test]
async fn server_everything_through_the_proxy_matches_direct() {
    let direct = everything_direct().await;
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = through(proxy.url(), NotificationHandler::new(), false).await;

    // The same tools, each with the prefix and otherwise unchanged.
    let direct_tools = direct.list_all_tools().await.expect("direct tools/list");
    let proxied_tools = client.list_all_tools().await.expect("proxied tools/list");
    assert_eq!(direct_tools.len(), proxied_tools.len());
    for tool in &direct_tools {
        let proxied = proxied_tools
            .iter()
            .find(|t| t.name == format!("everything/{}", tool.name))
            .unwrap_or_else(|| panic!("everything/{} listed", tool.name));
        assert_eq!(proxied.input_schema, tool.input_schema, "{}", tool.name);
        assert_eq!(proxied.description, tool.description, "{}", tool.name);
    }

    // The same answer to the same call.
    let arguments = json!({ "message": "hello through" });
    let direct_echo = direct
        .call_tool("echo", arguments.clone())
        .await
        .expect("direct echo");
    let proxied_echo = client
        .call_tool("everything/echo", arguments)
        .await
        .expect("proxied echo");
    assert_eq!(
        serde_json::to_value(&proxied_echo).ok(),
        serde_json::to_value(&direct_echo).ok()
    );

    // Bad arguments: server-everything answers with an isError result that
    // carries the code; through the proxy it is the same result.
    let bad = json!({ "msg": "wrong field" });
    let direct_bad = direct
        .call_tool("echo", bad.clone())
        .await
        .expect("a result");
    let proxied_bad = client
        .call_tool("everything/echo", bad)
        .await
        .expect("a result");
    assert!(direct_bad.is_error && proxied_bad.is_error);
    assert!(
        direct_bad.all_text().contains("-32602"),
        "{}",
        direct_bad.all_text()
    );
    assert_eq!(proxied_bad.all_text(), direct_bad.all_text());

    // Resources, templates and prompts are aggregated too.
    let direct_prompts: BTreeSet<String> = direct
        .list_all_prompts()
        .await
        .expect("direct prompts")
        .into_iter()
        .map(|p| format!("everything/{}", p.name))
        .collect();
    let proxied_prompts: BTreeSet<String> = client
        .list_all_prompts()
        .await
        .expect("proxied prompts")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(proxied_prompts, direct_prompts);
    let resources = direct.list_all_resources().await.expect("direct resources");
    if let Some(first) = resources.first() {
        let direct_read = direct.read_resource(&first.uri).await.expect("direct read");
        let proxied_read = client
            .read_resource(&first.uri)
            .await
            .expect("read through the proxy, same URI");
        assert_eq!(
            serde_json::to_value(proxied_read).ok(),
            serde_json::to_value(direct_read).ok()
        );
    }

    direct.shutdown().await.expect("shutdown");
    proxy.shutdown().await;
}

#[tokio::test]
async fn progress_from_a_stdio_backend_reaches_the_client_with_its_own_token() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = Arc::clone(&seen);
        NotificationHandler::new().on_progress(move |p| seen.lock().expect("lock").push(p.progress))
    };
    let client = through(proxy.url(), handler, true).await;
    let result = client
        .call_tool(
            "everything/trigger-long-running-operation",
            json!({ "duration": 1, "steps": 2 }),
        )
        .await
        .expect("long-running operation");
    assert!(!result.is_error, "{}", result.all_text());
    assert_eq!(*seen.lock().expect("lock"), vec![1.0, 2.0]);
    proxy.shutdown().await;
}

/// The `error` member of a response message.
fn error_of(response: &Value) -> &Value {
    response
        .get("error")
        .unwrap_or_else(|| panic!("expected an error in {response}"))
}

#[tokio::test]
async fn backend_errors_and_tool_errors_pass_unchanged() {
    let backend = TestBackend::start_named("alpha").await;
    let direct = RawClient::new(backend.url());
    direct.initialize().await;
    let proxy = proxy::start(vec![http_backend("alpha", &backend.url())]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;

    // JSON-RPC errors: code, message and data unchanged.
    for (tool, arguments) in [("add", json!({ "a": "two" })), ("no-such-tool", json!({}))] {
        let direct_error = direct.call_tool(tool, arguments.clone()).await;
        let proxied_error = client.call_tool(&format!("alpha/{tool}"), arguments).await;
        assert_eq!(error_of(&proxied_error), error_of(&direct_error), "{tool}");
    }
    // A tool error result is a result.
    let direct_fail = direct
        .call_tool("fail", json!({ "message": "broken" }))
        .await;
    let proxied_fail = client
        .call_tool("alpha/fail", json!({ "message": "broken" }))
        .await;
    assert_eq!(proxied_fail["result"]["isError"], json!(true));
    assert_eq!(proxied_fail["result"], direct_fail["result"]);

    // A name outside every namespace is the proxy's own invalid-params error.
    let unknown = client.call_tool("nobody/echo", json!({})).await;
    assert_eq!(error_of(&unknown)["code"], json!(-32602));

    // Errors with data survive too (the scripted server adds data).
    let scripted = proxy::start(vec![scripted_backend("scripted", &[])]).await;
    let scripted_client = RawClient::new(scripted.url());
    scripted_client.initialize().await;
    let with_data = scripted_client.call_tool("scripted/nope", json!({})).await;
    assert_eq!(
        error_of(&with_data),
        &json!({ "code": -32602, "message": "Unknown tool: nope", "data": { "tool": "nope" } })
    );
    scripted.shutdown().await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unlisted_uri_reaches_the_only_resource_backend_and_its_error_comes_back() {
    // server-everything answers an unknown resource with its own error; the
    // proxy, with it as the only backend serving resources, must not answer
    // -32002 in its place, whatever the URI's scheme.
    let uri = json!({ "uri": "nowhere://no-such-resource" });
    let direct = everything_direct().await;
    let direct_error = match direct.request::<_, Value>("resources/read", &uri).await {
        Err(tower_mcp::Error::JsonRpc(error)) => error,
        other => panic!("server-everything answered {other:?}"),
    };
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let proxied = client.request("resources/read", uri.clone()).await;
    assert_eq!(
        error_of(&proxied)["code"],
        json!(direct_error.code),
        "{proxied}"
    );
    assert_eq!(
        error_of(&proxied)["message"],
        json!(direct_error.message),
        "{proxied}"
    );
    // Subscribing reaches it too: it accepts URIs it does not list.
    let subscribed = client.request("resources/subscribe", uri.clone()).await;
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    let unsubscribed = client.request("resources/unsubscribe", uri).await;
    assert_eq!(unsubscribed["result"], json!({}), "{unsubscribed}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn all_four_kinds_are_aggregated_and_routed_from_two_backends() {
    let alpha = TestBackend::start_named("alpha").await;
    let beta = TestBackend::start_named("beta").await;
    let proxy = proxy::start(vec![
        http_backend("alpha", &alpha.url()),
        http_backend("beta", &beta.url()),
    ])
    .await;
    let client = RawClient::new(proxy.url());
    let init = client.initialize().await;
    for capability in ["tools", "resources", "prompts"] {
        assert!(
            init["capabilities"].get(capability).is_some(),
            "{capability} advertised: {init}"
        );
    }

    let names = |response: Value, key: &str| -> BTreeSet<String> {
        response["result"][key]
            .as_array()
            .expect("a list")
            .iter()
            .map(|i| i["name"].as_str().expect("a name").to_owned())
            .collect()
    };
    let tools = names(client.request("tools/list", Value::Null).await, "tools");
    for backend in ["alpha", "beta"] {
        for tool in ["echo", "add", "fail", "slow", "whoami"] {
            assert!(
                tools.contains(&format!("{backend}/{tool}")),
                "{backend}/{tool} in {tools:?}"
            );
        }
    }
    let prompts = names(client.request("prompts/list", Value::Null).await, "prompts");
    assert_eq!(
        prompts,
        BTreeSet::from(["alpha/greet".to_owned(), "beta/greet".to_owned()])
    );
    let templates = client
        .request("resources/templates/list", Value::Null)
        .await;
    assert_eq!(
        templates["result"]["resourceTemplates"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let resources = client.request("resources/list", Value::Null).await;
    assert_eq!(
        resources["result"]["resources"].as_array().map(Vec::len),
        Some(1),
        "both list test://info; the first backend keeps it: {resources}"
    );

    // Calls reach the backend their name names.
    let whoami = client.call_tool("beta/whoami", json!({})).await;
    assert_eq!(whoami["result"]["content"][0]["text"], "beta");
    let greet = client
        .request(
            "prompts/get",
            json!({ "name": "beta/greet", "arguments": { "who": "you" } }),
        )
        .await;
    assert!(
        greet["result"]["messages"].to_string().contains("beta"),
        "{greet}"
    );
    let read = client
        .request("resources/read", json!({ "uri": "test://items/7" }))
        .await;
    assert!(
        read["result"]["contents"].to_string().contains("alpha"),
        "routed by template to the first: {read}"
    );
    // Both serve resources, neither lists this scheme: the proxy cannot
    // tell whose it is, and says so.
    let missing = client
        .request("resources/read", json!({ "uri": "other://x" }))
        .await;
    assert_eq!(error_of(&missing)["code"], json!(-32002));
    let message = error_of(&missing)["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot be routed"), "{missing}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn progress_over_http_keeps_the_clients_token_and_meta() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![http_backend("alpha", &backend.url())]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    let response = client
        .call_tool_with_progress("alpha/slow", json!({ "ms": 300, "steps": 3 }), "my-token")
        .await;
    assert_eq!(
        response["result"]["content"][0]["text"], "done",
        "{response}"
    );
    let progress: Vec<Value> = client
        .take_notifications()
        .into_iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(
        progress
            .iter()
            .all(|n| n["params"]["progressToken"] == "my-token"),
        "{progress:?}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn concurrent_clients_with_the_same_request_ids_get_their_own_answers() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![http_backend("alpha", &backend.url())]).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = RawClient::new(proxy.url());
        client.initialize().await;
        clients.push(client);
    }
    // Every client numbers its requests from the same start, so ids collide
    // at the proxy; answers must still go to their own caller.
    let runs = clients
        .iter()
        .enumerate()
        .map(|(index, client)| async move {
            for round in 0..20 {
                let message = format!("client {index} round {round}");
                let response = client
                    .call_tool("alpha/echo", json!({ "message": message }))
                    .await;
                assert_eq!(response["result"]["content"][0]["text"], message.as_str());
            }
        });
    futures_util::future::join_all(runs).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn calls_to_one_backend_run_concurrently() {
    let backend = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![http_backend("alpha", &backend.url())]).await;
    let client = RawClient::new(proxy.url());
    client.initialize().await;
    // Five calls that each take a minute: if the proxy forwarded them one at
    // a time, the backend would see only the first for a minute.
    let mut calls = Vec::new();
    for _ in 0..5 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .call_tool("alpha/slow", json!({ "ms": 60_000, "steps": 1 }))
                .await
        }));
    }
    wait_for_within(
        "five slow calls at the backend at once",
        Duration::from_secs(20),
        || async { (backend.calls("slow") == 5).then_some(()) },
    )
    .await;
    for call in calls {
        call.abort();
    }
}
