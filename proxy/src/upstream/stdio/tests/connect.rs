//! Starting the child and the `initialize` handshake: its parameters, the
//! environment and working directory, and every way it fails.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::upstream::{Connection, Outbound, PROTOCOL_VERSION};

#[tokio::test]
async fn runs_the_initialize_handshake() {
    let (connection, init, _events) = start("normal").await;
    assert_eq!(init["protocolVersion"], json!(PROTOCOL_VERSION));
    assert_eq!(init["serverInfo"]["name"], json!("fake"));
    assert_eq!(
        init["sawParams"],
        json!({"protocolVersion": PROTOCOL_VERSION,
               "capabilities": {"sampling": {"context": {}, "tools": {}},
                                "elicitation": {"form": {}, "url": {}}, "roots": {}},
               "clientInfo": {"name": "mcp-proxy-test", "version": "9.9.9"}})
    );
    let echo = within(connection.request("echo", Some(json!({"a": [1, "two"]})), None))
        .await
        .unwrap();
    assert_eq!(
        echo,
        json!({"params": {"a": [1, "two"]}, "initialized": true})
    );
    assert_eq!(connection.close_reason(), None);
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn works_through_the_connection_enum() {
    let (events, _received) = mpsc::unbounded_channel();
    let (connection, _) = within(Connection::connect(
        &fake("normal", &[]),
        &settings(),
        events,
    ))
    .await
    .unwrap();
    let Connection::Stdio(stdio) = &connection else {
        panic!("a stdio transport makes a stdio connection");
    };
    within(stdio.notify("notifications/roots/list_changed", None))
        .await
        .unwrap();
    let echo = within(connection.request("echo", None, None, Outbound::default()))
        .await
        .unwrap();
    assert_eq!(echo["initialized"], json!(true));
    within(connection.shutdown()).await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("connection shut down")
    );
    within(connection.closed()).await;
}

#[tokio::test]
async fn passes_env_and_cwd() {
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let mut transport = fake("normal", &[("MCP_TEST_X", "forty-two")]);
    if let TransportConfig::Stdio { cwd, .. } = &mut transport {
        *cwd = Some(dir.clone());
    }
    let (events, _received) = mpsc::unbounded_channel();
    let (connection, _) = within(StdioConnection::connect(&transport, &settings(), events))
        .await
        .unwrap();
    let env = within(connection.request("env", None, None)).await.unwrap();
    assert_eq!(env["x"], json!("forty-two"));
    assert_eq!(env["cwd"], json!(dir.to_str().unwrap()));
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn a_missing_command_is_a_connect_error() {
    let transport = TransportConfig::Stdio {
        command: "mcp-proxy-no-such-command".into(),
        args: vec![],
        env: BTreeMap::new(),
        cwd: None,
        inherit_env: false,
    };
    let (events, _received) = mpsc::unbounded_channel();
    let error = within(StdioConnection::connect(&transport, &settings(), events))
        .await
        .err()
        .unwrap();
    let UpstreamError::Connect(message) = error else {
        panic!("expected Connect, got {error:?}")
    };
    assert!(
        message.starts_with("failed to start `mcp-proxy-no-such-command`: "),
        "{message}"
    );
}

#[tokio::test]
async fn a_silent_child_times_out_and_is_killed() {
    let pidfile = temp_path("pid");
    let transport = fake("silent", &[("PIDFILE", pidfile.to_str().unwrap())]);
    let settings = ConnectSettings {
        platform: crate::platform::Platform::os(),
        init_timeout: Duration::from_millis(1500),
        ..settings()
    };
    let (events, _received) = mpsc::unbounded_channel();
    let error = within(StdioConnection::connect(&transport, &settings, events))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        UpstreamError::InitTimeout(Duration::from_millis(1500))
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_file(&pidfile);
    wait_gone(pid).await;
}

#[tokio::test]
async fn handshake_failures_are_reported_by_kind() {
    let (events, _received) = mpsc::unbounded_channel();
    let connect = |mode: &'static str| {
        let events = events.clone();
        async move {
            within(StdioConnection::connect(
                &fake(mode, &[]),
                &settings(),
                events,
            ))
            .await
            .err()
            .unwrap()
        }
    };
    let UpstreamError::JsonRpc(error) = connect("init-error").await else {
        panic!("expected JsonRpc")
    };
    assert_eq!(
        (error.code, error.message.as_str(), error.data),
        (-32099, "not today", Some(json!([1])))
    );
    assert!(
        matches!(connect("old-version").await, UpstreamError::Protocol(message) if message.contains("1999-01-01"))
    );
    let UpstreamError::Connect(message) = connect("exit-in-init").await else {
        panic!("expected Connect")
    };
    assert!(
        message.contains("process exited with status 5"),
        "{message}"
    );
    let UpstreamError::Connect(message) = connect("exit-at-start").await else {
        panic!("expected Connect")
    };
    assert!(
        message.contains("process exited with status 4"),
        "{message}"
    );
}
