//! Authentication and authorization at the front door, configured as an
//! operator writes it (YAML through the proxy's loader), over real tower-mcp
//! backends: no token or a wrong one is 401 with the challenge MCP clients
//! follow to the RFC 9728 metadata; each role sees and calls only what its
//! rules allow (403 `insufficient_scope` naming the scope that would, and
//! nothing reaches the backend); a session belongs to its subject; answers
//! are cached per caller; a caller beyond its rate limit is refused alone;
//! `/admin/*` needs its own token; a client's token reaches a backend only
//! with `forward_auth`.

use axum::http::StatusCode;
use mcp_proxy::server::RunningProxy;
use serde_json::{Value, json};

use crate::support::proxy;
use crate::support::{RawClient, TestBackend};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789ab";
/// The reader's subject with both roles: a broader token of the same caller.
const BROAD: &str = "broad-token-0123456789ab";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A proxy with bearer auth over two backends, `alpha` and `beta`: the
/// reader may use alpha's `echo` only, the writer everything but tools
/// named `*fail*`. `extra` is appended to the `auth:` section (two-space
/// keys), `alpha_keys` to alpha's entry (four-space keys).
async fn guarded_proxy(extra: &str, alpha_keys: &str) -> (RunningProxy, TestBackend, TestBackend) {
    let alpha = TestBackend::start_named("alpha").await;
    let beta = TestBackend::start_named("beta").await;
    let text = format!(
        "\
proxy:
  listen: 127.0.0.1:0
auth:
  resource: {RESOURCE}
  authorization_servers: [https://issuer.example.com]
  bearer:
    tokens:
      - token: {READER}
        subject: rita
        scopes: [reader]
      - token: {WRITER}
        subject: walt
        scopes: [writer]
      - token: {BROAD}
        subject: rita
        scopes: [writer, reader]
{extra}authorization:
  default: deny
  roles:
    reader:
      - allow: {{ backend: alpha, tools: [echo] }}
    writer:
      - allow: {{ backend: \"*\" }}
      - deny: {{ tools: [\"*fail*\"] }}
admin:
  token: {ADMIN}
backends:
  - name: alpha
    transport: http
    url: {}
    cache: {{ tools: 1h }}
{alpha_keys}  - name: beta
    transport: http
    url: {}
",
        alpha.url(),
        beta.url()
    );
    (proxy::start_yaml(&text).await, alpha, beta)
}

/// A client of `proxy` that sends `token`, initialized.
async fn client_with(proxy: &RunningProxy, token: &str) -> RawClient {
    let client = RawClient::new(proxy.url());
    client.set_bearer(Some(token));
    client.initialize().await;
    client
}

async fn tool_names(client: &RawClient) -> Vec<String> {
    let listed = client.request("tools/list", json!({})).await;
    let mut names: Vec<String> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn initialize_body() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "auth-test", "version": "0" },
        },
    })
    .to_string()
}

#[tokio::test]
async fn without_a_valid_token_every_request_is_401_with_the_metadata_to_follow() {
    let (proxy, alpha, beta) = guarded_proxy("", "").await;
    let anonymous = RawClient::new(proxy.url());
    let expected_metadata = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    let missing = anonymous
        .post_raw(initialize_body(), &anonymous.standard_headers())
        .await;
    assert_eq!(
        missing.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        missing.text()
    );
    let challenge = missing.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{expected_metadata}\"")),
        "{challenge}"
    );
    assert_eq!(
        missing.json()["error"]["code"],
        mcp_proxy::error_codes::UNAUTHENTICATED
    );

    let mut headers = anonymous.standard_headers();
    headers.push((
        "authorization".into(),
        "Bearer not-a-real-token-at-all".into(),
    ));
    let wrong = anonymous.post_raw(initialize_body(), &headers).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    let challenge = wrong.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!wrong.text().contains(READER), "no token is echoed");

    // A session the reader opened is not reachable without its token.
    let reader = client_with(&proxy, READER).await;
    reader.set_bearer(None);
    let without = reader
        .post_raw(
            json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }).to_string(),
            &reader.standard_headers(),
        )
        .await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);

    // The metadata the challenge points at is served, open.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", proxy.local_addr());
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let metadata: Value = response.json().await.unwrap();
        assert_eq!(metadata["resource"], RESOURCE, "{metadata}");
        assert_eq!(
            metadata["authorization_servers"],
            json!(["https://issuer.example.com"]),
            "{metadata}"
        );
    }
    assert_eq!(alpha.calls("echo") + beta.calls("echo"), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn each_role_sees_and_calls_only_what_its_rules_allow() {
    let (proxy, alpha, beta) = guarded_proxy("", "").await;
    let reader = client_with(&proxy, READER).await;
    let writer = client_with(&proxy, WRITER).await;

    assert_eq!(tool_names(&reader).await, ["alpha/echo"]);
    let writer_tools = tool_names(&writer).await;
    assert!(
        writer_tools.contains(&"beta/whoami".to_owned()),
        "{writer_tools:?}"
    );
    assert!(
        !writer_tools.iter().any(|name| name.contains("fail")),
        "a deny wins over an allow: {writer_tools:?}"
    );

    let echo = reader
        .call_tool("alpha/echo", json!({ "message": "hi" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "hi", "{echo}");

    // beta/whoami: refused with 403, naming the scope that would allow it.
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "beta/whoami", "arguments": {} },
    });
    let refused = reader
        .post_raw(body.to_string(), &reader.standard_headers())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let challenge = refused.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"writer\""), "{challenge}");
    let error = &refused.json()["error"];
    assert_eq!(error["code"], mcp_proxy::error_codes::FORBIDDEN, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("beta/whoami"),
        "{error}"
    );
    assert_eq!(beta.calls("whoami"), 0, "nothing refused reached beta");

    // Asking for progress over an event stream changes nothing: the refusal
    // comes before the stream, as a 403.
    let body = json!({
        "jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": { "name": "beta/whoami", "arguments": {}, "_meta": { "progressToken": "p" } },
    });
    let refused = reader
        .post_raw(body.to_string(), &reader.standard_headers())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(beta.calls("whoami"), 0, "nothing refused reached beta");

    let whoami = writer.call_tool("beta/whoami", json!({})).await;
    assert_eq!(whoami["result"]["content"][0]["text"], "beta", "{whoami}");
    let denied = writer
        .call_tool("alpha/fail", json!({ "message": "x" }))
        .await;
    assert_eq!(
        denied["error"]["code"],
        mcp_proxy::error_codes::FORBIDDEN,
        "{denied}"
    );
    assert_eq!(alpha.calls("fail"), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_session_belongs_to_its_subject_and_answers_are_cached_per_caller() {
    let (proxy, alpha, _beta) = guarded_proxy("", "").await;
    let reader = client_with(&proxy, READER).await;
    let writer = client_with(&proxy, WRITER).await;

    // The writer's token on the reader's session: as if it did not exist.
    let hijack = RawClient::new(proxy.url());
    hijack.set_session_id(reader.session_id());
    hijack.set_bearer(Some(WRITER));
    let answer = hijack
        .post_raw(
            json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" }).to_string(),
            &hijack.standard_headers(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());

    // The reader's own subject with other roles (a broader token): its
    // requests are never judged on the reader's session.
    hijack.set_bearer(Some(BROAD));
    let answer = hijack
        .post_raw(
            json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/list" }).to_string(),
            &hijack.standard_headers(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());

    // alpha caches echo for an hour, but one caller's answer is never
    // served to another: one backend call per caller, none on a repeat.
    for client in [&reader, &writer, &reader, &writer] {
        let echo = client
            .call_tool("alpha/echo", json!({ "message": "same" }))
            .await;
        assert_eq!(echo["result"]["content"][0]["text"], "same", "{echo}");
    }
    assert_eq!(alpha.calls("echo"), 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_caller_beyond_its_rate_limit_is_refused_and_others_are_not() {
    let (proxy, alpha, _beta) = guarded_proxy("  rate_limit: { requests: 3, per: 1h }\n", "").await;
    // initialize does not count; tools/list and two calls use the three.
    let reader = client_with(&proxy, READER).await;
    assert_eq!(tool_names(&reader).await, ["alpha/echo"]);
    for message in ["one", "two"] {
        let echo = reader
            .call_tool("alpha/echo", json!({ "message": message }))
            .await;
        assert_eq!(echo["result"]["content"][0]["text"], message, "{echo}");
    }
    let over = reader
        .call_tool("alpha/echo", json!({ "message": "three" }))
        .await;
    assert_eq!(
        over["error"]["code"],
        mcp_proxy::error_codes::BACKEND_LIMITED,
        "{over}"
    );
    assert_eq!(over["error"]["data"]["reason"], "auth.rate_limit", "{over}");
    assert_eq!(alpha.calls("echo"), 2, "the refused call was not sent");

    let writer = client_with(&proxy, WRITER).await;
    let whoami = writer.call_tool("beta/whoami", json!({})).await;
    assert_eq!(whoami["result"]["content"][0]["text"], "beta", "{whoami}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_needs_its_own_token_and_no_foreign_origin() {
    let (proxy, _alpha, _beta) = guarded_proxy("", "").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/admin/backends", proxy.local_addr());
    let get = |token: Option<&str>, origin: Option<&str>| {
        let mut request = http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        get(None, None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some(WRITER), None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "an MCP caller's token does not open the admin API"
    );
    assert_eq!(
        get(Some(ADMIN), Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let admitted = get(Some(ADMIN), None).await.unwrap();
    assert_eq!(admitted.status(), StatusCode::OK);
    let body: Value = admitted.json().await.unwrap();
    assert_eq!(body["backends"].as_array().map(Vec::len), Some(2), "{body}");
    // Probes stay open.
    let ready = http
        .get(format!("http://{}/readyz", proxy.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_clients_token_reaches_only_a_backend_with_forward_auth() {
    let (proxy, alpha, beta) = guarded_proxy("", "    forward_auth: true\n").await;
    let reader = client_with(&proxy, READER).await;
    let writer = client_with(&proxy, WRITER).await;
    let echo = reader
        .call_tool("alpha/echo", json!({ "message": "mine" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "mine", "{echo}");
    let echo = writer
        .call_tool("alpha/echo", json!({ "message": "yours" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "yours", "{echo}");
    let whoami = writer.call_tool("beta/whoami", json!({})).await;
    assert_eq!(whoami["result"]["content"][0]["text"], "beta", "{whoami}");

    assert_eq!(
        alpha.authorizations(),
        [format!("Bearer {READER}"), format!("Bearer {WRITER}")],
        "each call carried its own caller's token, and only the calls did"
    );
    assert_eq!(beta.authorizations(), Vec::<String>::new());
    proxy.shutdown().await;
}
