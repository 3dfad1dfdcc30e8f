//! Interop with the official MCP Python SDK (PyPI `mcp`, pinned in
//! `tests/interop/requirements.txt`): its streamable-HTTP client, carrying
//! `Authorization: Bearer`, initializes through the proxy (bearer auth,
//! a role that allows two of a tower-mcp backend's five tools), lists
//! exactly the tools that role allows and calls one; a wrong token fails
//! its connect with the proxy's `-32015` surfaced by the SDK; and a request
//! without a token is 401 with a `resource_metadata` challenge that the
//! SDK's own OAuth discovery helpers follow to the RFC 9728 metadata, whose
//! `resource` the SDK accepts for the proxy's URL. And the SDK's client with
//! a sampling and an elicitation callback answers what server-everything's
//! tools ask it through the proxy.
//!
//! The scripts are `tests/interop/python_client.py` and
//! `python_sampling.py`; they run with the venv the
//! project's test command creates (README.md, `.ci/run`), and these tests
//! fail when that venv is missing. The child never outlives the test: it is
//! killed when dropped, and the whole run is bounded.

use std::path::PathBuf;
use std::time::Duration;

use mcp_proxy::platform::{Platform, TcpListener};
use mcp_proxy::server::RunningProxy;
use serde_json::{Value, json};

use crate::support::TestBackend;
use crate::support::bins::root;
use crate::support::output_within;
use crate::support::proxy::{load_yaml, wait_connected};

const TOKEN: &str = "python-reader-token-0123456789";

/// Install, import, discovery, three connections: generous for a slow CI
/// machine (the script bounds each step at 30 s itself).
const RUN_BOUND: Duration = Duration::from_secs(180);

const SETUP: &str = "python3 -m venv tests/interop/.venv && \
     tests/interop/.venv/bin/pip install -q -r tests/interop/requirements.txt";

/// The venv's interpreter.
///
/// # Panics
///
/// When the venv is missing: this test is part of the suite, not optional.
fn venv_python() -> PathBuf {
    let python = root().join("tests/interop/.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: the Python SDK interop test needs the venv the project's \
         test command creates; run `{SETUP}` (see README.md)",
        python.display()
    );
    python
}

/// The proxy on a port bound before its config is written, so that
/// `auth.resource` is the URL the client really reaches (the SDK checks the
/// metadata's `resource` against it), over `backend` as `alpha`: the
/// reader role may use alpha's `echo` and `add` only.
async fn guarded_proxy(backend: &TestBackend) -> RunningProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound listener's address");
    let text = format!(
        "\
proxy:
  listen: {addr}
auth:
  resource: http://{addr}/mcp
  authorization_servers: [https://issuer.example.com]
  bearer:
    tokens:
      - token: {TOKEN}
        subject: python
        scopes: [reader]
authorization:
  default: deny
  roles:
    reader:
      - allow: {{ backend: alpha, tools: [echo, add] }}
backends:
  - name: alpha
    transport: http
    url: {}
",
        backend.url()
    );
    let proxy =
        mcp_proxy::server::start_on(load_yaml(&text), TcpListener(listener), Platform::os())
            .expect("the proxy starts");
    wait_connected(&proxy).await;
    proxy
}

/// Run the script against `url`; its JSON summary.
async fn run_script(url: &str, tool: &str, arguments: &Value) -> Value {
    let arguments = [url.to_owned(), tool.to_owned(), arguments.to_string()];
    run_python("python_client.py", &arguments).await
}

/// Run `script` of `tests/interop` with `arguments` (and the token in its
/// environment); its JSON summary.
async fn run_python(script: &str, arguments: &[String]) -> Value {
    let script = root().join("tests/interop").join(script);
    let mut command = tokio::process::Command::new(venv_python());
    command
        .arg(&script)
        .args(arguments)
        .env("MCP_PROXY_TOKEN", TOKEN)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = output_within(command, RUN_BOUND, "the Python client").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stderr}\nstdout: {stdout}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("not one JSON object ({error}): {stdout}\n{stderr}"))
}

#[tokio::test]
async fn the_python_sdk_client_discovers_authenticates_lists_and_calls() {
    let alpha = TestBackend::start_named("alpha").await;
    let proxy = guarded_proxy(&alpha).await;
    let url = proxy.url();
    let origin = format!("http://{}", proxy.local_addr());

    let summary = run_script(&url, "alpha/echo", &json!({ "message": "hi from python" })).await;

    // 1. Discovery, as the SDK's OAuth flow does it.
    let discovery = &summary["discovery"];
    assert_eq!(discovery["status"], 401, "{discovery}");
    let metadata_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");
    let challenge = discovery["www_authenticate"].as_str().unwrap_or_default();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    assert_eq!(
        discovery["body"]["error"]["code"],
        mcp_proxy::error_codes::UNAUTHENTICATED,
        "{discovery}"
    );
    assert_eq!(discovery["resource_metadata_url"], metadata_url.as_str());
    assert_eq!(
        discovery["metadata_fetched_from"],
        metadata_url.as_str(),
        "the SDK takes the challenge's URL first, and the proxy serves it"
    );
    let metadata = &discovery["metadata"];
    assert_eq!(metadata["resource"], url.as_str(), "{metadata}");
    assert_eq!(
        metadata["authorization_servers"],
        json!(["https://issuer.example.com"]),
        "{metadata}"
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(metadata["scopes_supported"], json!(["reader"]));
    assert_eq!(discovery["resource_covers_url"], true, "{discovery}");

    // 2. A wrong token: the SDK surfaces the proxy's JSON-RPC error.
    let wrong = &summary["wrong_token"];
    assert_eq!(wrong["connected"], false, "{wrong}");
    assert_eq!(
        wrong["code"],
        mcp_proxy::error_codes::UNAUTHENTICATED,
        "{wrong}"
    );
    assert!(
        !wrong["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not-a-token"),
        "no token is echoed: {wrong}"
    );

    // 3. The session: only what the role allows, and the call's answer.
    let session = &summary["session"];
    assert_eq!(
        session["tools"],
        json!(["alpha/add", "alpha/echo"]),
        "{session}"
    );
    assert_eq!(session["server_name"], "mcp-proxy", "{session}");
    // The SDK's default mode probes `server/discover` (2026-07-28) first; the
    // proxy refuses it (no session), and the SDK falls back to the
    // handshake at its newest handshake revision, which the proxy speaks.
    assert_eq!(session["protocol_version"], "2025-11-25", "{session}");
    let call = &session["call"];
    assert_eq!(call["isError"], false, "{call}");
    assert_eq!(call["content"][0]["text"], "hi from python", "{call}");
    assert_eq!(alpha.calls("echo"), 1);
    proxy.shutdown().await;
}

/// The SDK's client declares sampling and elicitation (it has a callback
/// for each) and answers them: server-everything's tools that ask their
/// client get its answers through the proxy.
#[tokio::test]
async fn the_python_sdk_client_answers_sampling_and_elicitation_through_the_proxy() {
    let proxy = crate::support::proxy::start(vec![crate::support::proxy::everything_backend(
        "everything",
    )])
    .await;
    let summary = run_python("python_sampling.py", &[proxy.url()]).await;

    let sampled = &summary["asked"]["sampling"];
    assert_eq!(sampled.as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(sampled[0]["maxTokens"], 21, "{summary}");
    assert!(
        sampled[0]["messages"]
            .to_string()
            .contains("a haiku about proxies"),
        "{summary}"
    );
    let text = summary["sampling"]["content"].to_string();
    assert!(text.contains("sampled by the Python SDK"), "{summary}");
    assert!(text.contains("python-test-model"), "{summary}");

    assert_eq!(
        summary["asked"]["elicitation"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    let text = summary["elicitation"]["content"].to_string();
    assert!(text.contains("Name: Grace Hopper"), "{summary}");
}
