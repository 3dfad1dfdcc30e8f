//! Requests from a backend to the client (sampling, elicitation, roots)
//! through the proxy, with the real server-everything over stdio: its
//! `trigger-sampling-request`, `trigger-elicitation-request` and
//! `get-roots-list` tools ask their client while they run, and the proxy
//! passes each question to the client whose call it serves, and the answer
//! back, on the call's own event stream or, when the client takes only JSON
//! for its POST, on the session's GET stream. A client that did not declare
//! the capability gets the backend's tool error at once, never a hang; a
//! call the client cancels withdraws what it asked.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::proxy::{self, everything_backend};
use crate::support::{GetStream, RawClient, StreamEvent, wait_for_within};

/// What server-everything's tools need the client to declare.
fn all_capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {}})
}

/// A client of `proxy` declaring `capabilities`, once the backend's tools
/// that need them are listed (the proxy declares the capabilities to the
/// backend, so server-everything registers them).
async fn client_declaring(
    proxy: &mcp_proxy::server::RunningProxy,
    capabilities: Value,
) -> RawClient {
    let client = RawClient::new(proxy.url());
    client.initialize_declaring(capabilities).await;
    wait_for_within(
        "the conditional tools listed",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let tools = client.request("tools/list", json!({})).await;
                let names: Vec<String> = tools["result"]["tools"]
                    .as_array()?
                    .iter()
                    .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
                    .collect();
                ["sampling", "elicitation"]
                    .iter()
                    .all(|kind| names.contains(&format!("everything/trigger-{kind}-request")))
                    .then_some(())
            }
        },
    )
    .await;
    client
}

/// The text of a tool result's content, joined.
fn text_of(response: &Value) -> String {
    response["result"]["content"]
        .as_array()
        .map(|content| {
            content
                .iter()
                .filter_map(|item| item["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The next message with `method` on the GET stream (others, such as
/// list changes, are skipped).
async fn next_of(stream: &mut GetStream, method: &str) -> Value {
    loop {
        match stream.next(Duration::from_secs(20)).await {
            StreamEvent::Message(message) if message["method"] == method => return message,
            StreamEvent::Message(_) => {}
            other => panic!("no {method} on the GET stream: {other:?}"),
        }
    }
}

/// The JSON-RPC response to `request` carrying `result`.
fn result_for(request: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
}

#[tokio::test]
async fn sampling_passes_through_to_the_client_and_its_answer_reaches_the_tool() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = client_declaring(&proxy, all_capabilities()).await;
    let asked = Mutex::new(Vec::new());
    let answer = |request: &Value| {
        asked.lock().unwrap().push(request.clone());
        result_for(
            request,
            json!({"role": "assistant", "model": "model-of-the-test",
                   "content": {"type": "text", "text": "sampled by the test client"},
                   "stopReason": "endTurn"}),
        )
    };
    let response = client
        .request_answering(
            "tools/call",
            json!({"name": "everything/trigger-sampling-request",
                   "arguments": {"prompt": "tell a story", "maxTokens": 17}}),
            &answer,
        )
        .await;
    let asked = asked.into_inner().unwrap();
    assert_eq!(asked.len(), 1, "one request reached the client: {asked:?}");
    assert_eq!(asked[0]["method"], "sampling/createMessage");
    assert_eq!(asked[0]["params"]["maxTokens"], 17, "params unchanged");
    assert!(
        asked[0]["params"]["messages"]
            .to_string()
            .contains("tell a story"),
        "{}",
        asked[0]
    );
    let text = text_of(&response);
    assert_eq!(response["result"]["isError"], Value::Null, "{response}");
    assert!(text.contains("sampled by the test client"), "{text}");
    assert!(text.contains("model-of-the-test"), "{text}");
}

#[tokio::test]
async fn elicitation_passes_through_and_a_client_error_comes_back_unchanged() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = client_declaring(&proxy, all_capabilities()).await;
    let call = json!({"name": "everything/trigger-elicitation-request", "arguments": {}});

    let accept = |request: &Value| {
        assert_eq!(request["method"], "elicitation/create");
        assert!(request["params"]["requestedSchema"]["properties"]["name"].is_object());
        result_for(
            request,
            json!({"action": "accept", "content": {"name": "Ada Lovelace", "check": true}}),
        )
    };
    let response = client
        .request_answering("tools/call", call.clone(), &accept)
        .await;
    let text = text_of(&response);
    assert!(text.contains("Name: Ada Lovelace"), "{text}");
    assert!(text.contains("Agreed to terms: true"), "{text}");

    let refuse = |request: &Value| {
        json!({"jsonrpc": "2.0", "id": request["id"],
               "error": {"code": -32001, "message": "the user closed the dialog"}})
    };
    let response = client.request_answering("tools/call", call, &refuse).await;
    let text = text_of(&response);
    assert!(
        text.contains("-32001") && text.contains("the user closed the dialog"),
        "the client's own error reached the backend: {response}"
    );
}

#[tokio::test]
async fn a_client_without_the_capability_gets_the_tools_error_at_once() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    // One client declares sampling, so the tool is listed and callable ...
    client_declaring(&proxy, all_capabilities()).await;
    // ... and this one does not.
    let client = RawClient::new(proxy.url());
    client.initialize_declaring(json!({})).await;
    let never = |request: &Value| panic!("the client was asked {request}");
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        client.request_answering(
            "tools/call",
            json!({"name": "everything/trigger-sampling-request",
                   "arguments": {"prompt": "x"}}),
            &never,
        ),
    )
    .await
    .expect("answered, not hung");
    assert_eq!(response["result"]["isError"], true, "{response}");
    let text = text_of(&response);
    assert!(text.contains("-32601"), "{text}");
    assert!(
        text.contains("did not declare the `sampling` capability"),
        "{text}"
    );
}

#[tokio::test]
async fn roots_are_asked_of_the_calling_client_and_not_answered_for_it_at_start() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = client_declaring(&proxy, all_capabilities()).await;
    // server-everything asks for roots 350 ms after initialize, with no
    // call in flight: the proxy refuses (no empty list for it to cache),
    // so it asks again while serving the tool, and reaches this client.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answer = |request: &Value| {
        assert_eq!(request["method"], "roots/list");
        result_for(
            request,
            json!({"roots": [{"uri": "file:///work/project", "name": "the project"}]}),
        )
    };
    let response = client
        .request_answering(
            "tools/call",
            json!({"name": "everything/get-roots-list", "arguments": {}}),
            &answer,
        )
        .await;
    let text = text_of(&response);
    assert!(text.contains("file:///work/project"), "{text}");
    assert!(text.contains("1 total"), "{text}");
}

#[tokio::test]
async fn without_a_call_stream_the_request_comes_on_the_get_stream_and_a_cancel_withdraws_it() {
    let proxy = proxy::start(vec![everything_backend("everything")]).await;
    let client = client_declaring(&proxy, all_capabilities()).await;
    let mut stream = client.open_get_stream().await;
    // A client that takes only JSON for its POST: the request cannot come on
    // the call's own stream.
    let headers: Vec<(String, String)> = client
        .standard_headers()
        .into_iter()
        .map(|(name, value)| {
            let value = if name == "accept" {
                "application/json".to_owned()
            } else {
                value
            };
            (name, value)
        })
        .collect();
    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
                      "params": {"name": "everything/trigger-elicitation-request", "arguments": {}}});
    let posting = {
        let client = client.clone();
        tokio::spawn(async move { client.post_raw(call.to_string(), &headers).await })
    };
    let request = next_of(&mut stream, "elicitation/create").await;

    let status = client
        .notify("notifications/cancelled", json!({"requestId": "call-1"}))
        .await;
    assert_eq!(status, 202);
    let withdrawn = next_of(&mut stream, "notifications/cancelled").await;
    assert_eq!(withdrawn["params"]["requestId"], request["id"]);
    let answered = posting.await.expect("the POST task").json();
    assert_eq!(answered["error"]["code"], -32800, "{answered}");
    // An answer that comes too late is accepted and goes nowhere.
    let late = result_for(&request, json!({"action": "decline"}));
    assert_eq!(client.respond(&late).await, 202);
}
