//! The MCP admin tools (`proxy.admin_tools`): `proxy/backends` and
//! `proxy/errors` listed and answered like a backend's tools, under the
//! same `authorization:` rules (the backend name `proxy`), and off unless
//! configured.

use serde_json::{Value, json};

use crate::support::proxy::{self, tool_names};
use crate::support::{RawClient, TestBackend, wait_until};

const OPERATOR: &str = "operator-token-0123456789";
const READER: &str = "reader-token-0123456789ab";

fn guarded(alpha: &TestBackend, beta: &TestBackend) -> String {
    format!(
        "\
proxy:
  listen: 127.0.0.1:0
  admin_tools: true
auth:
  resource: https://mcp.example.com/mcp
  bearer:
    tokens:
      - {{ token: {OPERATOR}, subject: olga, scopes: [operator] }}
      - {{ token: {READER}, subject: rita, scopes: [reader] }}
authorization:
  roles:
    operator:
      - allow: {{ backend: proxy }}
      - allow: {{ backend: alpha }}
    reader:
      - allow: {{ backend: alpha }}
      - allow: {{ backend: beta }}
backends:
  - name: alpha
    transport: http
    url: {}
  - name: beta
    transport: http
    url: {}
",
        alpha.url(),
        beta.url()
    )
}

async fn client_with(url: String, token: &str) -> RawClient {
    let client = RawClient::new(url);
    client.set_bearer(Some(token));
    client.initialize().await;
    client
}

#[tokio::test]
async fn admin_tools_show_backends_and_failures_to_whom_the_rules_allow() {
    let mut alpha = TestBackend::start_named("alpha").await;
    let beta = TestBackend::start_named("beta").await;
    let proxy = proxy::start_yaml(&guarded(&alpha, &beta)).await;
    let operator = client_with(proxy.url(), OPERATOR).await;
    let reader = client_with(proxy.url(), READER).await;

    let operator_tools = tool_names(&operator).await;
    let admin: Vec<&String> = operator_tools
        .iter()
        .filter(|name| name.starts_with("proxy/"))
        .collect();
    assert_eq!(
        admin,
        ["proxy/backends", "proxy/errors"],
        "{operator_tools:?}"
    );
    let reader_tools = tool_names(&reader).await;
    assert!(
        !reader_tools.iter().any(|name| name.starts_with("proxy/")),
        "{reader_tools:?}"
    );
    let refused = reader.call_tool("proxy/backends", json!({})).await;
    assert_eq!(
        refused["error"]["code"],
        mcp_proxy::error_codes::FORBIDDEN,
        "{refused}"
    );

    let backends = operator.call_tool("proxy/backends", json!({})).await;
    let shown = &backends["result"]["structuredContent"]["backends"];
    // Only the backends whose items the operator may use: not beta.
    assert_eq!(shown.as_array().map(Vec::len), Some(1), "{backends}");
    assert_eq!(shown[0]["name"], "alpha", "{backends}");
    assert_eq!(shown[0]["state"], "connected", "{backends}");
    let text = backends["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    let parsed: Value = serde_json::from_str(text).expect("the text is the JSON");
    assert_eq!(parsed["backends"][0]["name"], "alpha");

    // A failure of alpha shows in proxy/errors, newest first.
    let errors = operator.call_tool("proxy/errors", json!({})).await;
    assert_eq!(
        errors["result"]["structuredContent"]["errors"],
        json!([]),
        "{errors}"
    );
    alpha.stop().await;
    wait_until("alpha to be seen down", || async {
        proxy::status(&proxy, "alpha").state != mcp_proxy::State::Connected
    })
    .await;
    let failed = reader
        .call_tool("alpha/echo", json!({ "message": "x" }))
        .await;
    assert!(failed.get("error").is_some(), "{failed}");
    let errors = operator
        .call_tool("proxy/errors", json!({ "backend": "alpha" }))
        .await;
    let listed = &errors["result"]["structuredContent"]["errors"];
    assert_eq!(listed[0]["backend"], "alpha", "{errors}");
    assert_eq!(listed[0]["method"], "tools/call", "{errors}");
    assert!(
        listed[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("alpha"),
        "{errors}"
    );
    let not_a_name = operator
        .call_tool("proxy/errors", json!({ "backend": 7 }))
        .await;
    assert_eq!(not_a_name["error"]["code"], -32602, "{not_a_name}");
    let unknown = operator.call_tool("proxy/nothing", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn admin_tools_are_off_unless_configured_and_own_their_name() {
    let alpha = TestBackend::start_named("alpha").await;
    let proxy = proxy::start(vec![proxy::http_backend("alpha", &alpha.url())]).await;
    let client = proxy::client(&proxy).await;
    let names = tool_names(&client).await;
    assert!(
        !names.iter().any(|name| name.starts_with("proxy/")),
        "{names:?}"
    );
    let call = client.call_tool("proxy/backends", json!({})).await;
    assert!(call.get("error").is_some(), "{call}");
    proxy.shutdown().await;

    let taken = mcp_proxy::config::load_str(
        "proxy:\n  admin_tools: true\nbackends:\n  - name: proxy\n    transport: http\n    url: http://127.0.0.1:9/mcp\n",
        mcp_proxy::config::Format::Yaml,
        "taken.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .expect_err("a backend named proxy beside the admin tools");
    assert_eq!(
        taken.to_string(),
        "taken.yaml:4: backends[0].name: \"proxy\" names the admin tools (proxy.admin_tools): choose another name"
    );
}
