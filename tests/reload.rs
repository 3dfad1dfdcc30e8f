//! Hot reload: a new config applied while the proxy serves, as a diff.
//!
//! Unchanged backends keep their connections (the same stdio child answers),
//! changed ones are rebuilt (a new child), added ones connect, removed ones
//! drain their calls in flight and then stop; sessions live through it and
//! hear `list_changed`; traffic weights switch for the next call; an invalid
//! file changes nothing and says where it is wrong; a change only a restart
//! can apply is reported. Through the binary: SIGHUP, `POST /admin/reload`
//! and `--watch`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_proxy::ReloadError;
use mcp_proxy::server::RunningProxy;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::bins::{TempDir, root};
use crate::support::proxy::{
    self, admin_backend, load_yaml, ops_get_json, ops_get_text, pid_gone, reserve_addr,
    spawn_serve, tool_names, wait_ready,
};
use crate::support::{GetStream, RawClient, StreamEvent, WAIT_TIMEOUT, wait_until};

/// The scripted stdio server, as a YAML list item named `name` with `extra`
/// keys (indented under the item).
fn scripted(name: &str, extra: &str) -> String {
    let script = root().join("tests/fixtures/scripted_server.py");
    let script = serde_json::to_string(&script.display().to_string()).expect("a string");
    format!(
        "  - name: {name}\n    transport: stdio\n    command: python3\n    args: [{script}]\n{extra}"
    )
}

/// A config on `listen` over these backend items.
fn config_text(listen: &str, backends: &[String]) -> String {
    format!(
        "proxy:\n  listen: {listen}\n  shutdown_timeout: 5s\nbackends:\n{}",
        backends.concat()
    )
}

/// The pid the backend `name`'s child answers with (through `name/pid`).
async fn pid_of(client: &RawClient, name: &str) -> u32 {
    let answer = client.call_tool(&format!("{name}/pid"), json!({})).await;
    answer["result"]["content"][0]["text"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no pid from {name}: {answer}"))
}

/// The next message on `stream` is `notifications/tools/list_changed`.
async fn hears_tools_changed(stream: &mut GetStream) {
    match stream.next(WAIT_TIMEOUT).await {
        StreamEvent::Message(message) => {
            assert_eq!(
                message["method"], "notifications/tools/list_changed",
                "{message}"
            );
        }
        other => panic!("no list_changed on the GET stream: {other:?}"),
    }
}

async fn reload(proxy: &RunningProxy, text: &str) -> mcp_proxy::ReloadReport {
    proxy
        .reload(Ok(load_yaml(text)))
        .await
        .unwrap_or_else(|error| panic!("reload refused: {error}"))
}

#[tokio::test]
async fn a_reload_keeps_what_is_unchanged_and_sessions_live_through_it() {
    let listen = "127.0.0.1:0";
    let before = config_text(
        listen,
        &[
            scripted("alpha", ""),
            scripted("beta", ""),
            scripted("delta", ""),
        ],
    );
    let proxy = proxy::start_yaml(&before).await;
    let client = proxy::client(&proxy).await;
    let mut stream = client.open_get_stream().await;
    let alpha = pid_of(&client, "alpha").await;
    let beta = pid_of(&client, "beta").await;
    let delta = pid_of(&client, "delta").await;

    // beta's resilience changes (rebuilt), gamma is new, delta is gone.
    let after = config_text(
        listen,
        &[
            scripted("alpha", ""),
            scripted("beta", "    retry: { max_retries: 1 }\n"),
            scripted("gamma", ""),
        ],
    );
    let report = reload(&proxy, &after).await;
    assert_eq!(report.kept, ["alpha"], "{report:?}");
    assert_eq!(report.rebuilt, ["beta"], "{report:?}");
    assert_eq!(report.added, ["gamma"], "{report:?}");
    assert_eq!(report.removed, ["delta"], "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");

    // The same session, not initialized again: alpha is the same child,
    // beta a new one, gamma answers, delta is no longer a backend.
    assert_eq!(pid_of(&client, "alpha").await, alpha, "alpha was restarted");
    let rebuilt = pid_of(&client, "beta").await;
    assert_ne!(rebuilt, beta, "beta still runs its old child");
    let gamma = client
        .call_tool("gamma/echo", json!({ "message": "hello" }))
        .await;
    assert_eq!(gamma["result"]["content"][0]["text"], "hello", "{gamma}");
    let gone = client
        .call_tool("delta/echo", json!({ "message": "x" }))
        .await;
    assert!(gone.get("error").is_some(), "delta still answers: {gone}");

    // The session heard that its tools changed, and lists the new ones.
    hears_tools_changed(&mut stream).await;
    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n == "gamma/echo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("delta/")), "{names:?}");

    // The replaced and removed children are stopped once nothing uses them.
    wait_until("beta's old child and delta's child to stop", || async {
        pid_gone(beta) && pid_gone(delta)
    })
    .await;
    assert!(!pid_gone(alpha), "alpha's child was stopped");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_call_in_flight_on_a_removed_backend_finishes() {
    let listen = "127.0.0.1:0";
    let proxy = proxy::start_yaml(&config_text(
        listen,
        &[scripted("alpha", ""), scripted("beta", "")],
    ))
    .await;
    let client = proxy::client(&proxy).await;
    let beta = pid_of(&client, "beta").await;
    let caller = client.clone();
    let slow =
        tokio::spawn(async move { caller.call_tool("beta/slow", json!({ "ms": 1500 })).await });
    let addr = proxy.local_addr();
    wait_until("the slow call to be in flight", || async {
        admin_backend(addr, "beta").await["in_flight"] == 1
    })
    .await;

    let report = reload(&proxy, &config_text(listen, &[scripted("alpha", "")])).await;
    assert_eq!(report.removed, ["beta"], "{report:?}");
    let answer = slow.await.expect("the call's task");
    assert!(
        answer.get("result").is_some(),
        "the call in flight was lost: {answer}"
    );
    assert!(
        answer["result"].get("isError") != Some(&Value::Bool(true)),
        "{answer}"
    );
    // New calls no longer reach it, and once drained its child stops.
    let refused = client
        .call_tool("beta/echo", json!({ "message": "x" }))
        .await;
    assert!(refused.get("error").is_some(), "{refused}");
    wait_until("beta's child to stop", || async { pid_gone(beta) }).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn traffic_weights_switch_without_rebuilding_the_canary() {
    let listen = "127.0.0.1:0";
    let with_weight = |weight: u32| {
        config_text(
            listen,
            &[
                scripted("alpha", ""),
                scripted(
                    "alpha-next",
                    &format!("    canary_of: alpha\n    weight: {weight}\n"),
                ),
            ],
        )
    };
    let proxy = proxy::start_yaml(&with_weight(0)).await;
    let client = proxy::client(&proxy).await;
    let addr = proxy.local_addr();
    let pid_field = |status: Value| status["pid"].as_u64().expect("a stdio pid");
    let primary = pid_field(admin_backend(addr, "alpha").await);
    let canary = pid_field(admin_backend(addr, "alpha-next").await);
    for _ in 0..5 {
        assert_eq!(u64::from(pid_of(&client, "alpha").await), primary);
    }

    let report = reload(&proxy, &with_weight(100)).await;
    assert_eq!(report.kept, ["alpha", "alpha-next"], "{report:?}");
    for _ in 0..5 {
        assert_eq!(u64::from(pid_of(&client, "alpha").await), canary);
    }
    assert_eq!(pid_field(admin_backend(addr, "alpha-next").await), canary);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_invalid_config_changes_nothing_and_says_where_it_is_wrong() {
    let listen = "127.0.0.1:0";
    let text = config_text(listen, &[scripted("alpha", "")]);
    let proxy = proxy::start_yaml(&text).await;
    let client = proxy::client(&proxy).await;
    let alpha = pid_of(&client, "alpha").await;

    // Line 9: a key no backend has.
    let broken = format!("{text}    retries: 3\n");
    let loaded = mcp_proxy::config::load_str(
        &broken,
        mcp_proxy::config::Format::Yaml,
        "proxy.yaml",
        Path::new("."),
        &|_| None,
    );
    let error = proxy
        .reload(loaded)
        .await
        .expect_err("an invalid config applied");
    let ReloadError::Invalid(error) = error else {
        panic!("not an invalid config: {error}")
    };
    let shown = error.to_string();
    assert_eq!(shown, "proxy.yaml:9: backends[0]: unknown key \"retries\"");

    assert_eq!(pid_of(&client, "alpha").await, alpha);
    let addr = proxy.local_addr();
    let (status, body) = ops_get_json(addr, "/admin/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reload"]["last"]["result"], "rejected", "{body}");
    assert_eq!(body["reload"]["last"]["error"], shown.as_str(), "{body}");
    assert_eq!(body["reload"]["rejected"], 1, "{body}");
    assert_eq!(body["reload"]["applied"], 0, "{body}");
    let (_, metrics) = ops_get_text(addr, "/admin/metrics").await;
    assert!(
        metrics.contains("mcp_proxy_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_new_listen_address_is_reported_as_needing_a_restart() {
    let text = config_text("127.0.0.1:0", &[scripted("alpha", "")]);
    let proxy = proxy::start_yaml(&text).await;
    let client = proxy::client(&proxy).await;
    let moved = reserve_addr();
    let report = reload(
        &proxy,
        &config_text(&moved.addr().to_string(), &[scripted("alpha", "")]),
    )
    .await;
    assert_eq!(report.restart_needed, ["proxy.listen"], "{report:?}");
    assert_eq!(report.kept, ["alpha"], "{report:?}");
    // Still served where it was.
    let echo = client
        .call_tool("alpha/echo", json!({ "message": "here" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "here", "{echo}");
    let (_, body) = ops_get_json(proxy.local_addr(), "/admin/status").await;
    assert_eq!(
        body["reload"]["restart_needed"],
        json!(["proxy.listen"]),
        "{body}"
    );
    // Reported again by the next reload, until a restart.
    let again = reload(
        &proxy,
        &config_text(&moved.addr().to_string(), &[scripted("alpha", "")]),
    )
    .await;
    assert_eq!(again.restart_needed, ["proxy.listen"], "{again:?}");
    proxy.shutdown().await;
}

/// A binary serving `text` from a file in `dir`: its config path, address
/// and an initialized client.
async fn serve_binary(
    dir: &TempDir,
    backends: &[String],
    extra: &[&str],
) -> (PathBuf, String, tokio::process::Child, RawClient) {
    let reserved = reserve_addr();
    let listen = reserved.addr().to_string();
    let path = dir.write("proxy.yaml", &config_text(&listen, backends));
    let addr = reserved.release();
    let (child, _log) = spawn_serve(&path, extra);
    wait_ready(addr).await;
    let client = RawClient::new(format!("http://{addr}/mcp"));
    client.initialize().await;
    (path, listen, child, client)
}

async fn post_reload(addr: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("http://{addr}/admin/reload"))
        .send()
        .await
        .expect("POST /admin/reload");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn stop(mut child: tokio::process::Child) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid fits");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the proxy exits")
        .expect("wait");
    assert_eq!(exit.code(), Some(0), "{exit}");
}

#[tokio::test]
async fn the_binary_reloads_on_sighup_and_on_post_admin_reload() {
    let dir = TempDir::new();
    let (path, listen, child, client) = serve_binary(&dir, &[scripted("alpha", "")], &[]).await;
    let alpha = pid_of(&client, "alpha").await;

    // SIGHUP: beta added.
    std::fs::write(
        &path,
        config_text(&listen, &[scripted("alpha", ""), scripted("beta", "")]),
    )
    .expect("rewrite the config");
    let pid = i32::try_from(child.id().expect("running")).expect("pid fits");
    kill(Pid::from_raw(pid), Signal::SIGHUP).expect("SIGHUP");
    wait_until("beta to be listed after SIGHUP", || async {
        tool_names(&client).await.iter().any(|n| n == "beta/echo")
    })
    .await;

    // POST /admin/reload: gamma added, beta removed.
    std::fs::write(
        &path,
        config_text(&listen, &[scripted("alpha", ""), scripted("gamma", "")]),
    )
    .expect("rewrite the config");
    let (status, body) = post_reload(&listen).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "applied", "{body}");
    assert_eq!(body["changes"]["added"], json!(["gamma"]), "{body}");
    assert_eq!(body["changes"]["removed"], json!(["beta"]), "{body}");
    assert_eq!(body["changes"]["kept"], json!(["alpha"]), "{body}");

    // An invalid file: 422 naming file, line and key; nothing changes.
    let broken = format!(
        "{}    nonsense: true\n",
        config_text(&listen, &[scripted("alpha", "")])
    );
    std::fs::write(&path, &broken).expect("rewrite the config");
    let (status, body) = post_reload(&listen).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    let expected = format!(
        "{}:9: backends[0]: unknown key \"nonsense\"",
        path.display()
    );
    assert_eq!(error, expected);
    let addr = listen.parse().expect("an address");
    let (_, status_body) = ops_get_json(addr, "/admin/status").await;
    assert_eq!(
        status_body["reload"]["last"]["error"],
        error.as_str(),
        "{status_body}"
    );
    assert_eq!(status_body["reload"]["applied"], 2, "{status_body}");
    assert_eq!(status_body["reload"]["rejected"], 1, "{status_body}");

    // The session from the start still works, on the same alpha child,
    // and lists gamma once it has connected (the invalid file did not
    // take it away).
    assert_eq!(pid_of(&client, "alpha").await, alpha);
    wait_until("gamma to be listed", || async {
        tool_names(&client).await.iter().any(|n| n == "gamma/echo")
    })
    .await;
    stop(child).await;
}

#[tokio::test]
async fn the_binary_with_watch_reloads_when_the_file_changes() {
    let dir = TempDir::new();
    let (path, listen, child, client) =
        serve_binary(&dir, &[scripted("alpha", "")], &["--watch"]).await;
    std::fs::write(
        &path,
        config_text(&listen, &[scripted("alpha", ""), scripted("beta", "")]),
    )
    .expect("rewrite the config");
    wait_until("beta to be listed after the file changed", || async {
        tool_names(&client).await.iter().any(|n| n == "beta/echo")
    })
    .await;
    stop(child).await;
}

#[tokio::test]
async fn turning_the_admin_tools_on_is_announced_and_listed() {
    let text = config_text("127.0.0.1:0", &[scripted("alpha", "")]);
    let proxy = proxy::start_yaml(&text).await;
    let client = proxy::client(&proxy).await;
    let mut stream = client.open_get_stream().await;
    assert!(
        !tool_names(&client)
            .await
            .iter()
            .any(|n| n.starts_with("proxy/"))
    );

    let with_tools = text.replace(
        "  shutdown_timeout: 5s\n",
        "  shutdown_timeout: 5s\n  admin_tools: true\n",
    );
    let report = reload(&proxy, &with_tools).await;
    assert!(report.restart_needed.is_empty(), "{report:?}");
    hears_tools_changed(&mut stream).await;
    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n == "proxy/backends"), "{names:?}");
    proxy.shutdown().await;
}
