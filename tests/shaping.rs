//! Request shaping, configured the way an operator writes it (YAML through
//! the proxy's loader), over real tower-mcp backends: hidden names are
//! neither listed nor callable (not through an alias, not through a
//! canary); an alias renames; default and injected arguments reach the
//! backend; oversized arguments are refused naming the limit; a repeated
//! read is answered from the cache (and a cache hit is not mirrored);
//! identical concurrent reads share one backend call.
//!
//! The order of the stack these tests pin down is documented in
//! ARCHITECTURE.md ("Shaping and traffic").

use mcp_proxy::server::RunningProxy;
use serde_json::{Value, json};

use crate::support::proxy::{self, admin_backend, client};
use crate::support::{RawClient, TestBackend, wait_until};

/// A proxy whose backend `search` is `backend` with `shaping` (YAML lines of
/// its entry), plus `extra` whole backend entries.
async fn proxy_with(backend: &TestBackend, shaping: &str, extra: &str) -> RunningProxy {
    let text = format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: search\n    transport: http\n    url: {}\n{shaping}{extra}",
        backend.url()
    );
    proxy::start_yaml(&text).await
}

async fn tool_names(client: &RawClient) -> Vec<String> {
    let listed = client.request("tools/list", json!({})).await;
    listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
}

#[tokio::test]
async fn hidden_tools_are_neither_listed_nor_callable_even_through_an_alias() {
    let backend = TestBackend::start_named("b").await;
    let shaping = "    hide: { tools: [add] }\n    aliases: [{ from: say, to: echo }, { from: plus, to: add }]\n";
    let proxy = proxy_with(&backend, shaping, "").await;
    let client = client(&proxy).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"search/say".to_owned()), "{names:?}");
    for gone in ["search/echo", "search/add", "search/plus"] {
        assert!(
            !names.contains(&gone.to_owned()),
            "{gone} listed: {names:?}"
        );
    }
    let said = client
        .call_tool("search/say", json!({ "message": "hi" }))
        .await;
    assert_eq!(text(&said), "hi");
    for name in ["search/echo", "search/add", "search/plus"] {
        let answer = client.call_tool(name, json!({ "a": 1, "b": 2 })).await;
        assert_eq!(answer["error"]["code"], -32602, "{name}: {answer}");
    }
    assert_eq!(backend.calls("add"), 0, "the hidden tool never ran");
    assert_eq!(backend.calls("echo"), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_hidden_tool_cannot_be_reached_through_the_canary_which_gets_the_primarys_arguments() {
    let primary = TestBackend::start_named("primary").await;
    let canary = TestBackend::start_named("canary").await;
    let extra = format!(
        "  - name: next\n    transport: http\n    url: {}\n    canary_of: search\n    weight: 100\n",
        canary.url()
    );
    let proxy = proxy_with(&primary, "    hide: { tools: [add] }\n", &extra).await;
    let client = client(&proxy).await;
    let answer = client
        .call_tool("search/add", json!({ "a": 1, "b": 2 }))
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let echoed = client
        .call_tool("search/echo", json!({ "message": "x" }))
        .await;
    assert_eq!(text(&echoed), "x");
    assert_eq!((canary.calls("add"), canary.calls("echo")), (0, 1));
    proxy.shutdown().await;
}

#[tokio::test]
async fn default_arguments_fill_in_and_injected_ones_overwrite_only_when_told() {
    let backend = TestBackend::start_named("b").await;
    let shaping = "    default_arguments: { message: from-defaults }\n    inject_arguments:\n      - { tool: add, arguments: { b: 100 }, overwrite: true }\n";
    let proxy = proxy_with(&backend, shaping, "").await;
    let client = client(&proxy).await;
    let defaulted = client.call_tool("search/echo", json!({})).await;
    assert_eq!(text(&defaulted), "from-defaults");
    let own = client
        .call_tool("search/echo", json!({ "message": "mine" }))
        .await;
    assert_eq!(text(&own), "mine", "a default never overwrites");
    // `add` gets the default `message` too, which its typed input ignores.
    let forced = client
        .call_tool("search/add", json!({ "a": 1, "b": 2 }))
        .await;
    assert_eq!(text(&forced), "101", "{forced}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn oversized_arguments_are_refused_naming_the_limit_and_never_sent() {
    let backend = TestBackend::start_named("b").await;
    let proxy = proxy_with(&backend, "    max_argument_size: 100\n", "").await;
    let client = client(&proxy).await;
    let small = client
        .call_tool("search/echo", json!({ "message": "ok" }))
        .await;
    assert_eq!(text(&small), "ok");
    let big = client
        .call_tool("search/echo", json!({ "message": "x".repeat(200) }))
        .await;
    assert_eq!(big["error"]["code"], -32602, "{big}");
    let message = big["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_argument_size of 100 bytes"),
        "{message}"
    );
    assert_eq!(big["error"]["data"]["size"], 214, "{big}");
    assert_eq!(backend.calls("echo"), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_repeated_read_is_answered_from_the_cache_and_a_hit_is_not_mirrored() {
    let backend = TestBackend::start_named("b").await;
    let mirror = TestBackend::start_named("m").await;
    let extra = format!(
        "  - name: shadow\n    transport: http\n    url: {}\n    mirror_of: search\n    mirror_percent: 100\n",
        mirror.url()
    );
    let proxy = proxy_with(&backend, "    cache: { tools: 1h }\n", &extra).await;
    let client = client(&proxy).await;
    for _ in 0..3 {
        let answer = client
            .call_tool("search/echo", json!({ "message": "same" }))
            .await;
        assert_eq!(text(&answer), "same");
    }
    let other = client
        .call_tool("search/echo", json!({ "message": "other" }))
        .await;
    assert_eq!(text(&other), "other");
    assert_eq!(backend.calls("echo"), 2, "one call per distinct arguments");
    // A tool error is an answer, never kept.
    for _ in 0..2 {
        client
            .call_tool("search/fail", json!({ "message": "no" }))
            .await;
    }
    assert_eq!(backend.calls("fail"), 2);
    wait_until("the mirror got its copies", || async {
        mirror.calls("echo") == 2
    })
    .await;
    let status = admin_backend(proxy.local_addr(), "search").await;
    assert_eq!(status["cache_hits"], 2, "{status}");
    assert_eq!(status["cache_misses"], 4, "{status}");
    assert_eq!(mirror.calls("echo"), 2, "cache hits were not mirrored");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_a_backend_may_ask_things_of_shares_no_cached_answer() {
    let backend = TestBackend::start_named("b").await;
    let proxy = proxy_with(&backend, "    cache: { tools: 1h }\n", "").await;
    // Two clients that declared sampling: a backend's answer to one may
    // rest on what that client's model said, so each gets its own call.
    for _ in 0..2 {
        let asked = RawClient::new(proxy.url());
        asked.initialize_declaring(json!({ "sampling": {} })).await;
        for _ in 0..2 {
            let answer = asked
                .call_tool("search/echo", json!({ "message": "same" }))
                .await;
            assert_eq!(text(&answer), "same");
        }
    }
    assert_eq!(backend.calls("echo"), 2, "one call per asking client");
    // Clients that cannot be asked anything share the cache as before.
    for _ in 0..2 {
        let plain = client(&proxy).await;
        let answer = plain
            .call_tool("search/echo", json!({ "message": "same" }))
            .await;
        assert_eq!(text(&answer), "same");
    }
    assert_eq!(
        backend.calls("echo"),
        3,
        "one more call for both plain clients"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn identical_concurrent_reads_share_one_backend_call() {
    let backend = TestBackend::start_named("b").await;
    let proxy = proxy_with(&backend, "    coalesce: true\n", "").await;
    let clients = [
        client(&proxy).await,
        client(&proxy).await,
        client(&proxy).await,
    ];
    let calls = clients
        .iter()
        .map(|c| c.call_tool("search/slow", json!({ "ms": 300, "steps": 1 })));
    let answers = futures_util::future::join_all(calls).await;
    for answer in &answers {
        assert_eq!(text(answer), "done");
    }
    assert_eq!(backend.calls("slow"), 1);
    let status = admin_backend(proxy.local_addr(), "search").await;
    assert_eq!(status["coalesced"], 2, "{status}");
    // Once it finished, the next identical call runs again.
    client(&proxy)
        .await
        .call_tool("search/slow", json!({ "ms": 1, "steps": 1 }))
        .await;
    assert_eq!(backend.calls("slow"), 2);
    proxy.shutdown().await;
}
