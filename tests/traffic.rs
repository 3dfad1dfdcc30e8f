//! Traffic across backends, configured the way an operator writes it (YAML
//! through the proxy's loader), over real tower-mcp backends: a canary takes
//! its weight of the primary's calls and its own names are neither listed
//! nor callable; a mirror gets copies whose fate never reaches the client,
//! bounded in flight; a failover serves only when the primary fails for its
//! health, never for a bad request or a tool error.

use mcp_proxy::server::RunningProxy;
use serde_json::{Value, json};

use crate::support::proxy::{self, admin_backend, client};
use crate::support::{RawClient, TestBackend, wait_until};

/// `backends:` entries: `(name, backend, extra YAML lines)`.
async fn proxy_over(entries: &[(&str, &TestBackend, &str)]) -> RunningProxy {
    let mut text = String::from("proxy:\n  listen: 127.0.0.1:0\n  seed: 3\nbackends:\n");
    for (name, backend, extra) in entries {
        text.push_str(&format!(
            "  - name: {name}\n    transport: http\n    url: {}\n    reconnect: {{ initial: 50ms, max: 200ms }}\n{extra}",
            backend.url()
        ));
    }
    proxy::start_yaml(&text).await
}

/// Who answered `search/whoami`.
async fn whoami(client: &RawClient) -> Value {
    let answer = client.call_tool("search/whoami", json!({})).await;
    answer["result"]["content"][0]["text"].clone()
}

#[tokio::test]
async fn a_canary_takes_its_weight_and_its_own_names_are_hidden() {
    let primary = TestBackend::start_named("primary").await;
    let canary = TestBackend::start_named("canary").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        ("next", &canary, "    canary_of: search\n    weight: 30\n"),
    ])
    .await;
    let client = client(&proxy).await;
    let mut on_canary = 0;
    for _ in 0..400 {
        match whoami(&client).await.as_str() {
            Some("canary") => on_canary += 1,
            Some("primary") => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // 30 % of 400 is 120; a 99.99 % binomial interval is about ± 36.
    assert!(
        (84..=156).contains(&on_canary),
        "{on_canary} of 400 on the canary"
    );

    let listed = client.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"search/whoami"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("next/")), "{names:?}");
    let direct = client.call_tool("next/whoami", json!({})).await;
    assert_eq!(direct["error"]["code"], -32602, "{direct}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_mirror_gets_copies_whose_failures_never_reach_the_client() {
    let primary = TestBackend::start_named("primary").await;
    let mut mirror = TestBackend::start_named("mirror").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        (
            "shadow",
            &mirror,
            "    mirror_of: search\n    mirror_percent: 100\n",
        ),
    ])
    .await;
    let client = client(&proxy).await;
    for _ in 0..5 {
        assert_eq!(whoami(&client).await, "primary");
    }
    wait_until("the mirror got every copy", || async {
        mirror.calls("whoami") == 5
    })
    .await;
    // A mirror that is down changes nothing for the client.
    mirror.stop().await;
    for _ in 0..5 {
        assert_eq!(whoami(&client).await, "primary");
    }
    let status = admin_backend(proxy.local_addr(), "shadow").await;
    assert_eq!(status["mirrored"], 10, "{status}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn mirror_copies_in_flight_are_bounded_and_the_excess_is_dropped() {
    let primary = TestBackend::start_named("primary").await;
    let mirror = TestBackend::start_named("mirror").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        (
            "shadow",
            &mirror,
            "    mirror_of: search\n    mirror_percent: 100\n    mirror_max_in_flight: 1\n",
        ),
    ])
    .await;
    let client = client(&proxy).await;
    let slow = || client.call_tool("search/slow", json!({ "ms": 500, "steps": 1 }));
    let answers = futures_util::future::join_all([slow(), slow(), slow()]).await;
    assert!(
        answers.iter().all(|a| a["result"].is_object()),
        "{answers:?}"
    );
    let status = admin_backend(proxy.local_addr(), "shadow").await;
    assert_eq!(
        (
            status["mirrored"].as_u64(),
            status["mirror_dropped"].as_u64()
        ),
        (Some(1), Some(2)),
        "{status}"
    );
    assert_eq!(mirror.calls("slow"), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn failover_serves_when_the_primary_is_down_but_not_for_bad_requests_or_tool_errors() {
    let mut primary = TestBackend::start_named("primary").await;
    let standby = TestBackend::start_named("standby").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        ("spare", &standby, "    failover_for: search\n"),
    ])
    .await;
    let client = client(&proxy).await;
    assert_eq!(whoami(&client).await, "primary");

    // A tool error and invalid params are answers: the standby is not asked.
    let failed = client
        .call_tool("search/fail", json!({ "message": "no" }))
        .await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let invalid = client.call_tool("search/add", json!({ "a": "x" })).await;
    assert_eq!(invalid["error"]["code"], -32602, "{invalid}");
    assert_eq!((standby.calls("fail"), standby.calls("add")), (0, 0));

    primary.stop().await;
    wait_until("the primary is down", || async {
        !proxy.backend_status()[0].endpoints[0]
            .state
            .eq(&mcp_proxy::State::Connected)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(whoami(&client).await, "standby");
    }
    proxy.shutdown().await;
}

/// A config whose primary `search` is the scripted stdio server (its tools
/// carry no hints) with `policy`, and a standby tower-mcp backend.
fn unhinted_primary_with_standby(policy: &str, standby: &TestBackend) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripted_server.py");
    format!(
        "proxy:\n  listen: 127.0.0.1:0\nbackends:\n  - name: search\n    transport: stdio\n    command: python3\n    args: [{:?}]\n{policy}  - name: spare\n    transport: http\n    url: {}\n    failover_for: search\n",
        script.display().to_string(),
        standby.url()
    )
}

#[tokio::test]
async fn a_call_that_may_have_run_fails_over_only_when_safe_to_repeat() {
    let standby = TestBackend::start_named("standby").await;
    let slow = json!({ "ms": 300, "steps": 1 });
    // The primary's `slow` has no hints: a timed-out call may have run, so
    // it is not run again elsewhere.
    let text = unhinted_primary_with_standby("    timeout: { per_try: 100ms }\n", &standby);
    let proxy = proxy::start_yaml(&text).await;
    let answer = client(&proxy)
        .await
        .call_tool("search/slow", slow.clone())
        .await;
    assert_eq!(answer["error"]["code"], -32013, "{answer}");
    assert_eq!(standby.calls("slow"), 0);
    proxy.shutdown().await;

    // Named safe to repeat, the same timeout fails over.
    let policy = "    timeout: { per_try: 100ms }\n    safe_to_repeat: { tools: [slow] }\n";
    let proxy = proxy::start_yaml(&unhinted_primary_with_standby(policy, &standby)).await;
    let answer = client(&proxy).await.call_tool("search/slow", slow).await;
    assert_eq!(text_of(&answer), "done", "{answer}");
    assert_eq!(standby.calls("slow"), 1);
    proxy.shutdown().await;
}

fn text_of(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_canary_that_is_down_falls_back_to_its_primary() {
    let primary = TestBackend::start_named("primary").await;
    let mut canary = TestBackend::start_named("canary").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        ("next", &canary, "    canary_of: search\n    weight: 100\n"),
    ])
    .await;
    let client = client(&proxy).await;
    assert_eq!(whoami(&client).await, "canary");
    canary.stop().await;
    wait_until("the canary is down", || async {
        proxy.backend_status()[1].state != mcp_proxy::State::Connected
    })
    .await;
    for _ in 0..3 {
        assert_eq!(whoami(&client).await, "primary");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_what_can_serve_a_primarys_calls() {
    let mut primary = TestBackend::start_named("primary").await;
    let mut standby = TestBackend::start_named("standby").await;
    let mut mirror = TestBackend::start_named("mirror").await;
    let proxy = proxy_over(&[
        ("search", &primary, ""),
        ("spare", &standby, "    failover_for: search\n"),
        (
            "shadow",
            &mirror,
            "    mirror_of: search\n    mirror_percent: 10\n",
        ),
    ])
    .await;
    let ready = || async {
        proxy::ops_get_json(proxy.local_addr(), "/readyz").await.0 == reqwest::StatusCode::OK
    };
    let down = |index: usize| {
        let proxy = &proxy;
        move || async move { proxy.backend_status()[index].state != mcp_proxy::State::Connected }
    };
    assert!(ready().await);
    mirror.stop().await;
    wait_until("the mirror is down", down(2)).await;
    assert!(
        ready().await,
        "a mirror down does not make the proxy unready"
    );
    primary.stop().await;
    wait_until("the primary is down", down(0)).await;
    assert!(ready().await, "its standby can serve");
    standby.stop().await;
    wait_until("the standby is down", down(1)).await;
    let (status, body) = proxy::ops_get_json(proxy.local_addr(), "/readyz").await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["backends"]["search"].is_object(), "{body}");
    assert!(body["backends"].get("shadow").is_none(), "{body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_standby_that_may_have_run_an_unsafe_call_ends_the_failover() {
    let first = TestBackend::start_named("first").await;
    let second = TestBackend::start_named("second").await;
    // The primary (unhinted tools) opens its breaker on the first timeout,
    // so the second call is refused there without being sent.
    let primary = "    timeout: { per_try: 100ms }\n    circuit_breaker: { min_calls: 1, failure_rate: 0.5, open_for: 1h }\n";
    let mut text = unhinted_primary_with_standby(primary, &first);
    text.push_str("    timeout: { per_try: 100ms }\n    priority: 1\n");
    text.push_str(&format!(
        "  - name: last\n    transport: http\n    url: {}\n    failover_for: search\n    priority: 2\n",
        second.url()
    ));
    let proxy = proxy::start_yaml(&text).await;
    let client = client(&proxy).await;
    let slow = json!({ "ms": 300, "steps": 1 });
    let timed_out = client.call_tool("search/slow", slow.clone()).await;
    assert_eq!(timed_out["error"]["code"], -32013, "{timed_out}");
    // Refused by the breaker: never sent, so the first standby may take it;
    // it times out, may have run it, so the last standby is not asked.
    let answer = client.call_tool("search/slow", slow).await;
    assert_eq!(answer["error"]["code"], -32013, "{answer}");
    assert_eq!(answer["error"]["data"]["backend"], "search", "{answer}");
    assert_eq!((first.calls("slow"), second.calls("slow")), (1, 0));
    proxy.shutdown().await;
}
