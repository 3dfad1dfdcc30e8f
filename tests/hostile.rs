//! Hostile input at the front door, generated (proptest) and sent over real
//! HTTP on 127.0.0.1 to one proxy with bearer auth over a tower-mcp
//! backend: arbitrary bytes as the POST body (and bodies past
//! `proxy.max_body_size`), arbitrary JSON values, JSON-RPC messages with
//! arbitrary values in their members, and arbitrary values (non-UTF-8 bytes
//! included, up to 32 KiB) of `Authorization`, `Mcp-Session-Id`,
//! `Mcp-Protocol-Version`, `Content-Type`, `Accept` and `Origin` on POST,
//! GET, DELETE and other methods.
//!
//! What it proves: every answer is a whole HTTP response (no reset, no
//! hang) with a status from [`DOCUMENTED`]; a body is JSON-RPC (one response
//! object, or SSE events of messages ending in the response) and an HTTP
//! error's body a JSON-RPC error object (`jsonrpc` "2.0", integer `code`,
//! string `message`); no answer is the internal error a caught panic
//! becomes; where the headers decide the outcome, it is the one the
//! transport and auth rules give (403 foreign origin, 401 without the
//! token, with the `resource_metadata` challenge, 400 no session, 404
//! unknown session, 400 bad protocol version, 406 GET without SSE, 413 too
//! large); and after all of it the proxy still serves a normal session.
//!
//! With `auth: jwt:` (the auth core's fixed test keys), forged and broken
//! JWTs — truncated, one character changed, `alg: none`, algorithms not
//! allowed, another key, the public key as an HMAC secret, expired, not yet
//! valid, wrong claims, past the 16 KiB cap, arbitrary JSON — are all 401
//! with `error="invalid_token"`, and a valid one passes before and after.
//! And hyper's limits on a request head (100 fields, about 400 KiB) answer
//! 431 before the proxy sees the request. The classes tried and the
//! answers are listed in docs/security.md.
//!
//! Case counts are bounded (each property 64–256 cases) and every request
//! has a time limit, so the module takes well under a minute.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_proxy::server::RunningProxy;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::bins::root;
use crate::support::client::ACCEPT_BOTH;
use crate::support::proxy;
use crate::support::{RawClient, TestBackend};

const TOKEN: &str = "hostile-test-token-0123456789";
const RESOURCE: &str = "https://mcp.example.com/mcp";
/// `proxy.max_body_size` of the proxy under test: small, so bodies past it
/// are cheap to send.
const MAX_BODY: usize = 64 * 1024;
/// Every status the front door may answer a request to `/mcp` with.
const DOCUMENTED: &[u16] = &[200, 202, 204, 400, 401, 403, 404, 405, 406, 413, 431];
/// How long one exchange may take: generous (nothing here is slow).
const EXCHANGE_BOUND: Duration = Duration::from_secs(20);

/// The proxy under test and what a request needs to reach it.
struct Target {
    runtime: tokio::runtime::Runtime,
    proxy: Option<RunningProxy>,
    backend: Option<TestBackend>,
    url: String,
    http: reqwest::Client,
    /// An initialized session, shared by the properties that do not end it.
    session: RawClient,
}

/// The proxy under test (bearer auth, a small body limit) over a tower-mcp
/// backend `alpha`.
async fn start_proxy() -> (RunningProxy, TestBackend) {
    let backend = TestBackend::start_named("alpha").await;
    let text = format!(
        "\
proxy:
  listen: 127.0.0.1:0
  max_body_size: {MAX_BODY}
  default_call_timeout: 10s
auth:
  resource: {RESOURCE}
  authorization_servers: [https://issuer.example.com]
  bearer:
    tokens:
      - token: {TOKEN}
        subject: tester
backends:
  - name: alpha
    transport: http
    url: {}
",
        backend.url()
    );
    (proxy::start_yaml(&text).await, backend)
}

impl Target {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (proxy, backend) = runtime.block_on(start_proxy());
        let url = proxy.url();
        let session = runtime.block_on(async {
            let client = RawClient::with_timeout(&url, EXCHANGE_BOUND);
            client.set_bearer(Some(TOKEN));
            client.initialize().await;
            client
        });
        // A connection per request: a connection the proxy closes after an
        // answer (a 413 whose body it did not read) is never reused, so a
        // failed exchange is the proxy's, not a race of the client's pool.
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(EXCHANGE_BOUND)
            .build()
            .expect("reqwest client builds");
        Self {
            runtime,
            proxy: Some(proxy),
            backend: Some(backend),
            url,
            http,
            session,
        }
    }

    /// One exchange; the answer, or why there was none.
    fn send(&self, method: &Method, headers: &HeaderMap, body: Bytes) -> Result<Answer, String> {
        let exchange = exchange(&self.http, &self.url, method, headers, body);
        self.runtime.block_on(exchange)
    }

    /// The headers of a well-behaved POST on the shared session.
    fn good_headers(&self) -> HeaderMap {
        header_map(&self.session.standard_headers())
    }

    /// A fresh initialized session's id (for cases that may end it).
    fn fresh_session(&self) -> String {
        self.runtime.block_on(async {
            let client = RawClient::with_timeout(&self.url, EXCHANGE_BOUND);
            client.set_bearer(Some(TOKEN));
            client.initialize().await;
            client.session_id().expect("initialize issues a session id")
        })
    }

    /// A normal client still gets a session, a list and a call.
    fn still_serves(&self) {
        self.runtime.block_on(serves_a_session(&self.url, TOKEN));
    }
}

/// A normal client with `token` still gets a session, a list and a call.
async fn serves_a_session(url: &str, token: &str) {
    let client = RawClient::with_timeout(url, EXCHANGE_BOUND);
    client.set_bearer(Some(token));
    client.initialize().await;
    let listed = client.request("tools/list", json!({})).await;
    assert!(
        listed["result"]["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == "alpha/echo")),
        "{listed}"
    );
    let echo = client
        .call_tool("alpha/echo", json!({ "message": "still here" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "still here", "{echo}");
}

impl Drop for Target {
    fn drop(&mut self) {
        let proxy = self.proxy.take();
        let backend = self.backend.take();
        self.runtime.block_on(async move {
            if let Some(proxy) = proxy {
                proxy.shutdown().await;
            }
            drop(backend);
        });
    }
}

/// One exchange with `url`; the answer, read whole but for an open GET
/// stream (whose body never ends), or why there was none.
async fn exchange(
    http: &reqwest::Client,
    url: &str,
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Answer, String> {
    let response = http
        .request(method.clone(), url)
        .headers(headers.clone())
        .body(body)
        .send()
        .await
        .map_err(|error| format!("no HTTP answer: {error:?}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = if method == Method::GET && status == StatusCode::OK {
        Bytes::new()
    } else {
        response
            .bytes()
            .await
            .map_err(|error| format!("HTTP {status}, body broken: {error:?}"))?
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// An HTTP answer, read whole (but for an open GET stream).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn header_map(headers: &[(String, String)]) -> HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value"),
            )
        })
        .collect()
}

/// The request `sent` had a valid JSON-RPC id: the answer must carry it
/// (or null, for an error the proxy could not tie to it).
fn answers_id(message: &Value, sent: Option<&Value>) -> Result<(), String> {
    let id = message.get("id").ok_or("no id member")?;
    let fits = match sent.filter(|id| id.is_string() || id.is_i64() || id.is_u64()) {
        Some(sent) => id == sent || (id.is_null() && message.get("error").is_some()),
        None => id.is_null() || id.is_string() || id.is_i64() || id.is_u64(),
    };
    if fits {
        Ok(())
    } else {
        Err(format!("id {id} does not answer {sent:?}"))
    }
}

/// One JSON-RPC response object, well formed; an error when `must_fail`.
fn check_response(message: &Value, sent_id: Option<&Value>, must_fail: bool) -> Result<(), String> {
    let object = message.as_object().ok_or("not a JSON object")?;
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err("jsonrpc is not \"2.0\"".into());
    }
    answers_id(message, sent_id)?;
    match (object.get("result"), object.get("error")) {
        (Some(_), None) if !must_fail => Ok(()),
        (Some(_), None) => Err("a result with an HTTP error status".into()),
        (None, Some(error)) => {
            let code = error.get("code").and_then(Value::as_i64);
            let text = error.get("message").and_then(Value::as_str);
            match (code, text) {
                (Some(-32603), Some("internal error")) => {
                    Err("the internal error of a caught panic".into())
                }
                (Some(_), Some(_)) => Ok(()),
                _ => Err("error without an integer code and a string message".into()),
            }
        }
        _ => Err("not exactly one of result and error".into()),
    }
}

/// The invariants every answer keeps, whatever was sent.
fn well_formed(answer: &Answer, sent: Option<&Value>) -> Result<(), TestCaseError> {
    let fail = |why: String| {
        TestCaseError::fail(format!(
            "{why}: HTTP {} {:?} {}",
            answer.status,
            answer.headers,
            answer.text()
        ))
    };
    let status = answer.status.as_u16();
    if !DOCUMENTED.contains(&status) {
        return Err(fail(format!("status {status} is not documented")));
    }
    if status == 401 {
        let challenge = answer
            .headers
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !(challenge.starts_with("Bearer ") && challenge.contains("resource_metadata=\"")) {
            return Err(fail(
                "a 401 without the Bearer resource_metadata challenge".into(),
            ));
        }
    }
    let sent_id = sent.and_then(|message| message.get("id"));
    let must_fail = status != 200;
    let content_type = answer.content_type();
    if answer.body.is_empty() {
        // 202/204 say nothing by design; hyper's and axum's own refusals
        // (405, 431) have no body.
        return if matches!(status, 202 | 204 | 405 | 431)
            || (status == 200 && content_type.starts_with("text/event-stream"))
        {
            Ok(())
        } else {
            Err(fail("an empty body".into()))
        };
    }
    if content_type.starts_with("application/json") {
        let message: Value = serde_json::from_slice(&answer.body)
            .map_err(|error| fail(format!("a JSON content type, not JSON: {error}")))?;
        return check_response(&message, sent_id, must_fail).map_err(fail);
    }
    if content_type.starts_with("text/event-stream") && status == 200 {
        let text = answer.text();
        let messages: Vec<Value> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| serde_json::from_str(data.trim_start()))
            .collect::<Result<_, _>>()
            .map_err(|error| fail(format!("an SSE event that is not JSON: {error}")))?;
        let (last, before) = messages
            .split_last()
            .ok_or_else(|| fail("an SSE answer without the response".into()))?;
        for message in before {
            if message.get("method").is_none() {
                return Err(fail(format!(
                    "an SSE message before the response: {message}"
                )));
            }
        }
        return check_response(last, sent_id, false).map_err(fail);
    }
    Err(fail(format!("a body of content type {content_type:?}")))
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Shrinking sends requests too: bounded.
        max_shrink_time: 20_000,
        max_shrink_iters: 512,
        ..Config::default()
    })
}

/// Run one property; a failure panics with the smallest input found.
/// `test` returns the answer's status; every status in `must_see` must have
/// come up at least once (each is common enough under the strategy's
/// weights that missing it means the generator no longer reaches it).
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: &S,
    must_see: &[u16],
    test: impl Fn(S::Value) -> Result<u16, TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let seen = Mutex::new(BTreeMap::<u16, usize>::new());
    let result = runner(cases).run(strategy, |input| {
        let status = test(input)?;
        *seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_default() += 1;
        Ok(())
    });
    if let Err(error) = result {
        panic!("{name}: {error}");
    }
    let seen = seen.into_inner().unwrap_or_else(PoisonError::into_inner);
    eprintln!("{name}: statuses seen {seen:?}");
    for status in must_see {
        assert!(
            seen.contains_key(status),
            "{name}: no case was answered {status} ({seen:?})"
        );
    }
}

// ---- Strategies ----

/// Member names a JSON-RPC or MCP message has, and some it should not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "jsonrpc", "id", "method", "params", "result", "error", "code", "message",
            "name", "arguments", "_meta", "progressToken", "cursor", "uri", "requestId",
            "protocolVersion", "capabilities", "clientInfo", "level", "__proto__",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Any JSON value: scalars of every kind (strings of any Unicode, huge and
/// negative numbers, fractions), nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "2.0",
            "1.0",
            "",
            "initialize",
            "tools/call",
            "tools/list",
            "ping",
            "alpha/echo",
            "notifications/cancelled",
            "2025-11-25",
        ])
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Well-formed messages of the methods a client sends. (No call of
/// `alpha/slow`: its `ms` is the backend's to wait, not the proxy's.)
fn templates() -> Vec<Value> {
    vec![
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "hostile", "version": "0" } } }),
        json!({ "jsonrpc": "2.0", "id": 2, "method": "ping" }),
        json!({ "jsonrpc": "2.0", "id": "three", "method": "tools/list", "params": { "cursor": "x" } }),
        json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "alpha/echo", "arguments": { "message": "hi" },
            "_meta": { "progressToken": 7 } } }),
        json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "alpha/add", "arguments": { "a": 1, "b": 2 } } }),
        json!({ "jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": { "uri": "test://items/1" } }),
        json!({ "jsonrpc": "2.0", "id": 7, "method": "prompts/get", "params": {
            "name": "alpha/greet", "arguments": { "who": "x" } } }),
        json!({ "jsonrpc": "2.0", "id": 8, "method": "logging/setLevel", "params": { "level": "debug" } }),
        json!({ "jsonrpc": "2.0", "id": 9, "method": "resources/subscribe", "params": { "uri": "test://info" } }),
        json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 4 } }),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "jsonrpc": "2.0", "id": 10, "result": {} }),
    ]
}

/// The members a mutation may replace or remove.
const MEMBERS: &[&str] = &[
    "/jsonrpc",
    "/id",
    "/method",
    "/params",
    "/params/name",
    "/params/arguments",
    "/params/arguments/message",
    "/params/_meta",
    "/params/_meta/progressToken",
    "/params/cursor",
    "/params/uri",
    "/params/protocolVersion",
    "/params/capabilities",
    "/params/clientInfo",
    "/params/requestId",
    "/params/level",
    "/result",
];

/// Replace (`Some`) or remove (`None`) the member at `pointer`, if its
/// parent is an object.
fn mutate(message: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, member) = pointer.rsplit_once('/').expect("a pointer");
    let parent = if parent.is_empty() {
        Some(message)
    } else {
        message.pointer_mut(parent)
    };
    if let Some(Value::Object(object)) = parent {
        match value {
            Some(value) => {
                object.insert(member.to_owned(), value);
            }
            None => {
                object.remove(member);
            }
        }
    }
}

/// A template with one to three members replaced by arbitrary values or removed.
fn mutated_message() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(templates()),
        prop::collection::vec(
            (
                prop::sample::select(MEMBERS),
                prop::option::weighted(0.85, json_value()),
            ),
            1..4,
        ),
    )
        .prop_map(|(mut message, mutations)| {
            for (pointer, value) in mutations {
                mutate(&mut message, pointer, value);
            }
            message
        })
}

/// A byte HTTP allows in a header value: visible ASCII, space, tab, and
/// obs-text (0x80–0xFF, not UTF-8 on its own).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
    ]
}

/// A garbage header value: short random bytes, or a huge run.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(header_byte(), 0..256),
        1 => (header_byte(), 4096..32 * 1024usize).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

/// An `Authorization` value that is not the token: schemes in any case,
/// odd separators, the token altered, JWT-like blobs, huge ones.
fn bad_authorization() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(vec![
        "Bearer", "bearer", "BEARER", "Basic", "Digest", "Token", "", "Bearer,", "Bearer=",
    ]);
    let separator = prop::sample::select(vec![" ", "", "  ", "\t", " , "]);
    let token = prop_oneof![
        garbage(),
        Just(format!("{TOKEN}x").into_bytes()),
        Just(TOKEN.as_bytes()[1..].to_vec()),
        Just(TOKEN.to_uppercase().into_bytes()),
        Just(format!("{TOKEN} {TOKEN}").into_bytes()),
        "[A-Za-z0-9_-]{1,64}\\.[A-Za-z0-9_-]{0,64}\\.[A-Za-z0-9_-]{0,64}"
            .prop_map(String::into_bytes),
    ];
    (scheme, separator, token).prop_map(|(scheme, separator, token)| {
        [scheme.as_bytes(), separator.as_bytes(), &token].concat()
    })
}

/// One header as a case sends it.
#[derive(Debug, Clone)]
enum Header {
    /// Not sent.
    Absent,
    /// What a well-behaved client sends.
    Valid,
    /// These bytes.
    Garbage(Vec<u8>),
}

fn header(bad: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Header> {
    prop_oneof![
        2 => Just(Header::Absent),
        5 => Just(Header::Valid),
        2 => bad.prop_map(Header::Garbage),
    ]
}

/// A request with generated headers.
#[derive(Debug, Clone)]
struct HeaderCase {
    method: Method,
    body: Value,
    authorization: Header,
    /// A second `Authorization` header after the first.
    second_authorization: Option<Vec<u8>>,
    session: Header,
    version: Header,
    content_type: Header,
    accept: Header,
    origin: Header,
}

/// The methods a case uses: mostly POST; PUT and PATCH are not routed.
fn case_method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::POST,
        Method::POST,
        Method::POST,
        Method::GET,
        Method::DELETE,
        Method::PUT,
        Method::PATCH,
    ])
}

/// The bodies a case sends: initialize, ping, tools/list, a call, a notification.
fn case_body() -> impl Strategy<Value = Value> {
    let templates = templates();
    prop::sample::select([0, 1, 2, 4, 10].map(|i| templates[i].clone()).to_vec())
}

prop_compose! {
    fn header_case()(
        method in case_method(),
        body in case_body(),
        authorization in header(bad_authorization()),
        second_authorization in prop::option::weighted(0.1, bad_authorization()),
        session in header(garbage()),
        version in header(garbage()),
        content_type in header(garbage()),
        accept in header(garbage()),
        origin in header(garbage()),
    ) -> HeaderCase {
        HeaderCase { method, body, authorization, second_authorization, session, version, content_type, accept, origin }
    }
}

/// Whether an `Authorization` value might be the token (a scheme in
/// another case, other whitespace): such a value is not asserted to be refused.
fn might_be_the_token(value: &[u8]) -> bool {
    let text = String::from_utf8_lossy(value);
    text.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer"))
        && text[6..].trim() == TOKEN
}

fn contains(value: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(value).contains(needle)
}

impl HeaderCase {
    fn headers(&self, target: &Target) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, header: &Header, valid: &dyn Fn() -> String| {
            let bytes = match header {
                Header::Absent => return,
                Header::Valid => valid().into_bytes(),
                Header::Garbage(bytes) => bytes.clone(),
            };
            let value = HeaderValue::from_bytes(&bytes).expect("generated bytes HTTP allows");
            headers.append(name, value);
        };
        put("authorization", &self.authorization, &|| {
            format!("Bearer {TOKEN}")
        });
        put("mcp-session-id", &self.session, &|| target.fresh_session());
        put("mcp-protocol-version", &self.version, &|| {
            "2025-11-25".into()
        });
        put("content-type", &self.content_type, &|| {
            "application/json".into()
        });
        put("accept", &self.accept, &|| ACCEPT_BOTH.into());
        put("origin", &self.origin, &|| "http://localhost:3000".into());
        if let Some(second) = &self.second_authorization {
            headers.append(
                "authorization",
                HeaderValue::from_bytes(second).expect("generated bytes HTTP allows"),
            );
        }
        headers
    }

    /// The status the transport and auth rules give, where the headers
    /// decide it alone.
    fn expected_status(&self) -> Option<&'static [u16]> {
        if self.method != Method::POST
            && self.method != Method::GET
            && self.method != Method::DELETE
        {
            return Some(&[405]);
        }
        if let Header::Garbage(origin) = &self.origin {
            // No generated value is a localhost origin but by a chance too
            // small to matter; still, only a value that cannot be one counts.
            if !contains(origin, "localhost")
                && !contains(origin, "127.0.0.1")
                && !contains(origin, "::1")
            {
                return Some(&[403]);
            }
            return None;
        }
        match &self.authorization {
            Header::Absent => return Some(&[401]),
            Header::Garbage(value) if !might_be_the_token(value) => return Some(&[401]),
            Header::Garbage(_) => return None,
            Header::Valid => {}
        }
        let initialize = self.body["method"] == "initialize";
        if self.method == Method::POST && initialize {
            return Some(&[200]);
        }
        match &self.session {
            Header::Absent => return Some(&[400]),
            // Not visible ASCII: the proxy cannot read it as an id and
            // answers as if there were none (400); else unknown (404).
            Header::Garbage(value) if value.iter().any(|b| *b >= 0x80) => return Some(&[400]),
            Header::Garbage(_) => return Some(&[404]),
            Header::Valid => {}
        }
        if matches!(self.version, Header::Garbage(_)) {
            return Some(&[400]);
        }
        if self.method == Method::DELETE {
            return Some(&[204]);
        }
        if self.method == Method::GET {
            return match &self.accept {
                Header::Valid => Some(&[200]),
                Header::Absent => Some(&[406]),
                Header::Garbage(value) if !contains(value, "text/event-stream") => Some(&[406]),
                Header::Garbage(_) => None,
            };
        }
        if self.body.get("id").is_some() {
            Some(&[200])
        } else {
            Some(&[202])
        }
    }
}

// ---- The properties ----

fn arbitrary_bodies(target: &Target) {
    let good = target.good_headers();
    let bodies = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..2048),
        // JSON-looking prefixes with garbage after them.
        2 => (
            prop::sample::select(vec![
                "{", "[", "{\"jsonrpc\":\"2.0\",", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":",
                "\u{feff}{", "\"", "1e999999", "-",
            ]),
            prop::collection::vec(any::<u8>(), 0..256),
        )
            .prop_map(|(prefix, rest)| [prefix.as_bytes(), &rest].concat()),
        // Deep nesting.
        1 => (1..20_000usize).prop_map(|depth| {
            let mut body = "[".repeat(depth).into_bytes();
            body.extend("]".repeat(depth).into_bytes());
            body
        }),
        // Past the body limit.
        // (Only a little past it: the proxy answers 413 without reading
        // the rest, and a long unread rest would only test the kernel.)
        1 => (any::<u8>(), MAX_BODY + 1..MAX_BODY + 4096).prop_map(|(byte, len)| vec![byte; len]),
    ];
    check(
        "arbitrary bytes as the POST body",
        256,
        &bodies,
        &[400, 413],
        |body| {
            let len = body.len();
            let answer = target
                .send(&Method::POST, &good, Bytes::from(body.clone()))
                .map_err(TestCaseError::fail)?;
            let sent = serde_json::from_slice::<Value>(&body).ok();
            well_formed(&answer, sent.as_ref())?;
            if len > MAX_BODY {
                prop_assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
            } else if sent.is_none() {
                prop_assert_eq!(answer.status, StatusCode::BAD_REQUEST);
                prop_assert_eq!(
                    &serde_json::from_slice::<Value>(&answer.body).unwrap()["error"]["code"],
                    -32700
                );
            }
            Ok(answer.status.as_u16())
        },
    );
}

/// POST `message` with a well-behaved client's headers; its answer's
/// status, once [`well_formed`].
fn post_checked(target: &Target, good: &HeaderMap, message: &Value) -> Result<u16, TestCaseError> {
    let answer = target
        .send(&Method::POST, good, Bytes::from(message.to_string()))
        .map_err(TestCaseError::fail)?;
    well_formed(&answer, Some(message))?;
    Ok(answer.status.as_u16())
}

fn arbitrary_json(target: &Target) {
    let good = target.good_headers();
    check(
        "arbitrary JSON values",
        256,
        &json_value(),
        &[400],
        |value| post_checked(target, &good, &value),
    );
}

fn mutated_messages(target: &Target) {
    let good = target.good_headers();
    let name = "JSON-RPC messages with arbitrary members";
    check(name, 256, &mutated_message(), &[200, 202, 400], |message| {
        post_checked(target, &good, &message)
    });
}

fn arbitrary_headers(target: &Target) {
    let must_see: &[u16] = &[200, 400, 401, 403, 405];
    check(
        "arbitrary header values",
        256,
        &header_case(),
        must_see,
        |case| {
            let headers = case.headers(target);
            let answer = target
                .send(&case.method, &headers, Bytes::from(case.body.to_string()))
                .map_err(TestCaseError::fail)?;
            well_formed(&answer, Some(&case.body))?;
            if case.second_authorization.is_none()
                && let Some(expected) = case.expected_status()
            {
                prop_assert!(
                    expected.contains(&answer.status.as_u16()),
                    "HTTP {}, expected one of {:?}: {}",
                    answer.status,
                    expected,
                    answer.text()
                );
            }
            Ok(answer.status.as_u16())
        },
    );
}

#[test]
fn hostile_input_gets_well_formed_answers_and_the_proxy_keeps_serving() {
    let target = Target::start();
    arbitrary_bodies(&target);
    arbitrary_json(&target);
    mutated_messages(&target);
    arbitrary_headers(&target);
    target.still_serves();
}

/// Send `request` on a TCP connection of its own (written from a task of
/// its own, so that a server that stops reading cannot block the read) and
/// return the status line of the answer, or why there was none.
async fn raw_status_line(addr: std::net::SocketAddr, request: Vec<u8>) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may close before reading it all; that is its right.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(EXCHANGE_BOUND, async {
        let mut chunk = [0u8; 4096];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match reader.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(error) => return Err(format!("read: {error}")),
            }
        }
        Ok(())
    })
    .await;
    writing.abort();
    read.map_err(|_| "no answer in time".to_owned())??;
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the connection closed without an answer".to_owned())
}

fn raw_request(extra_headers: &str) -> Vec<u8> {
    let body = templates()[1].to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// hyper's HTTP/1 limits, which bound what one request's head may hold
/// (documented in docs/security.md): more than 100 header fields, or a
/// head past its read buffer (8 KiB + 400 KiB), is answered 431 before the
/// proxy sees it; just under both, the proxy answers as usual (401: no
/// token). The proxy serves a normal session afterwards.
#[tokio::test]
async fn request_heads_past_hypers_limits_get_431_and_the_proxy_keeps_serving() {
    let (proxy, _backend) = start_proxy().await;
    let addr = proxy.local_addr();

    let many: String = (0..101).map(|i| format!("x-filler-{i}: {i}\r\n")).collect();
    let line = raw_status_line(addr, raw_request(&many)).await;
    assert_eq!(
        line.as_deref(),
        Ok("HTTP/1.1 431 Request Header Fields Too Large")
    );

    let huge = format!("x-filler: {}\r\n", "a".repeat(1024 * 1024));
    let line = raw_status_line(addr, raw_request(&huge)).await;
    assert_eq!(
        line.as_deref(),
        Ok("HTTP/1.1 431 Request Header Fields Too Large")
    );

    // Under both limits (the request's own 3 headers + 96 = 99 fields,
    // about 390 KiB in all): an ordinary answer from the proxy.
    let under: String = (0..96)
        .map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(4 * 1024)))
        .collect();
    let line = raw_status_line(addr, raw_request(&under)).await;
    assert_eq!(line.as_deref(), Ok("HTTP/1.1 401 Unauthorized"));

    serves_a_session(&proxy.url(), TOKEN).await;
    proxy.shutdown().await;
}

// ---- JWTs ----

/// The auth core's fixed test keys (proxy/src/auth/testdata/README.md).
fn test_key(name: &str) -> String {
    let path = root().join("proxy/src/auth/testdata").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const ISSUER: &str = "https://issuer.example.com";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims the proxy accepts, on the real clock.
fn good_claims() -> Value {
    let now = unix_now();
    json!({ "iss": ISSUER, "aud": RESOURCE, "sub": "jwt-tester", "exp": now + 600, "iat": now })
}

/// `claims` signed with `alg` and `key` (a PEM private key, or for `HS*`
/// the text as the secret).
fn sign(alg: Algorithm, key: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(key.as_bytes())
        }
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(key.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key.as_bytes()),
        _ => EncodingKey::from_rsa_pem(key.as_bytes()),
    }
    .expect("a test key");
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("signing")
}

/// A compact JWS from raw parts, signed or not.
fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// A token the proxy must refuse, and what makes it so.
#[derive(Debug, Clone)]
enum Forgery {
    /// A strict prefix of a valid token.
    Truncated(usize),
    /// A valid token with one character replaced.
    Changed(usize, u8),
    /// `alg: none` (any spelling), with or without a signature.
    AlgNone(&'static str, String),
    /// Signed with an algorithm not allowed, or with a key of another family.
    WrongAlg(Algorithm),
    /// RS256, but with another RSA key (under the configured `kid`, or none).
    WrongKey(Option<&'static str>),
    /// The public key used as an HMAC secret (the key-confusion attack).
    PublicKeyAsSecret,
    /// Expired this long before the leeway ran out.
    Expired(u64),
    /// Not valid before this long after the leeway.
    NotYet(u64),
    /// Another issuer or audience, or no subject.
    WrongClaim(&'static str, Value),
    /// A valid token padded with a claim this long (past the 16 KiB cap).
    Huge(usize),
    /// Arbitrary JSON as header and claims, a random signature.
    Garbage(Value, Value, String),
}

fn forgery() -> impl Strategy<Value = Forgery> {
    let replacement = prop::sample::select(b"AZaz09-_.=+/~".to_vec());
    prop_oneof![
        (0..2048usize).prop_map(Forgery::Truncated),
        (0..2048usize, replacement).prop_map(|(at, byte)| Forgery::Changed(at, byte)),
        (
            prop::sample::select(vec!["none", "None", "NONE", "nOnE"]),
            "[A-Za-z0-9_-]{0,64}"
        )
            .prop_map(|(alg, signature)| Forgery::AlgNone(alg, signature)),
        prop::sample::select(vec![
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ])
        .prop_map(Forgery::WrongAlg),
        prop::sample::select(vec![Some("rsa"), None, Some("ec")]).prop_map(Forgery::WrongKey),
        Just(Forgery::PublicKeyAsSecret),
        (1..10_000_000u64).prop_map(Forgery::Expired),
        (1..10_000_000u64).prop_map(Forgery::NotYet),
        prop_oneof![
            Just(("iss", json!("https://evil.example.com"))),
            Just(("iss", json!(null))),
            Just(("aud", json!("https://other.example.com/mcp"))),
            Just(("aud", json!([]))),
            Just(("sub", json!(42))),
            Just(("exp", json!("tomorrow"))),
        ]
        .prop_map(|(claim, value)| Forgery::WrongClaim(claim, value)),
        (16 * 1024..200 * 1024usize).prop_map(Forgery::Huge),
        (json_value(), json_value(), "[A-Za-z0-9_-]{0,400}")
            .prop_map(|(header, claims, signature)| Forgery::Garbage(header, claims, signature)),
    ]
}

/// The leeway the proxy is configured with, in seconds.
const LEEWAY_S: u64 = 60;

impl Forgery {
    fn token(&self, keys: &JwtKeys) -> String {
        let valid = || sign(Algorithm::RS256, &keys.rsa, Some("rsa"), &good_claims());
        let with = |claim: &str, value: Value| {
            let mut claims = good_claims();
            if value.is_null() {
                claims.as_object_mut().expect("an object").remove(claim);
            } else {
                claims[claim] = value;
            }
            sign(Algorithm::RS256, &keys.rsa, Some("rsa"), &claims)
        };
        match self {
            Self::Truncated(cut) => {
                let token = valid();
                token[..cut % token.len()].to_owned()
            }
            Self::Changed(at, byte) => {
                let mut token = valid().into_bytes();
                let at = at % token.len();
                // The same byte would leave it valid: use another.
                token[at] = if token[at] == *byte { b'~' } else { *byte };
                String::from_utf8(token).expect("ASCII")
            }
            Self::AlgNone(alg, signature) => unsigned(
                &json!({ "alg": alg, "typ": "JWT" }),
                &good_claims(),
                signature,
            ),
            Self::WrongAlg(alg) => match alg {
                Algorithm::ES384 => sign(*alg, &keys.ec384, Some("ec"), &good_claims()),
                Algorithm::EdDSA => sign(*alg, &keys.ed, Some("rsa"), &good_claims()),
                Algorithm::HS256 => sign(*alg, "some-secret", Some("rsa"), &good_claims()),
                _ => sign(*alg, &keys.rsa, Some("rsa"), &good_claims()),
            },
            Self::WrongKey(kid) => sign(Algorithm::RS256, &keys.rsa2, *kid, &good_claims()),
            Self::PublicKeyAsSecret => {
                sign(Algorithm::HS256, &keys.rsa_pub, Some("rsa"), &good_claims())
            }
            Self::Expired(by) => with("exp", json!(unix_now() - LEEWAY_S - by)),
            Self::NotYet(by) => with("nbf", json!(unix_now() + LEEWAY_S + by)),
            Self::WrongClaim(claim, value) => with(claim, value.clone()),
            Self::Huge(len) => with("padding", json!("p".repeat(*len))),
            Self::Garbage(header, claims, signature) => unsigned(header, claims, signature),
        }
    }
}

/// The PEM texts the forgeries are made with.
struct JwtKeys {
    rsa: String,
    rsa_pub: String,
    rsa2: String,
    ec384: String,
    ed: String,
}

/// A forged or broken JWT is always 401 (`error="invalid_token"`, JSON-RPC
/// `-32015`), whatever is wrong with it: truncated, one character changed,
/// `alg: none`, an algorithm not allowed or of another key's family,
/// another key, the public key as an HMAC secret, expired, not yet valid,
/// another issuer or audience, past the 16 KiB cap, or arbitrary JSON; a
/// valid one passes before and after them all.
#[test]
fn forged_and_broken_jwts_are_401_and_the_proxy_keeps_serving() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let keys = JwtKeys {
        rsa: test_key("rsa.pem"),
        rsa_pub: test_key("rsa.pub.pem"),
        rsa2: test_key("rsa2.pem"),
        ec384: test_key("ec384.pem"),
        ed: test_key("ed25519.pem"),
    };
    let testdata = root().join("proxy/src/auth/testdata");
    let (proxy, _backend) = runtime.block_on(async {
        let backend = TestBackend::start_named("alpha").await;
        let text = format!(
            "\
proxy:
  listen: 127.0.0.1:0
auth:
  resource: {RESOURCE}
  authorization_servers: [{ISSUER}]
  jwt:
    issuer: {ISSUER}
    algorithms: [RS256, ES256]
    leeway: {LEEWAY_S}s
    keys:
      - pem_file: {}
        kid: rsa
      - pem_file: {}
        kid: ec
backends:
  - name: alpha
    transport: http
    url: {}
",
            testdata.join("rsa.pub.pem").display(),
            testdata.join("ec256.pub.pem").display(),
            backend.url()
        );
        (proxy::start_yaml(&text).await, backend)
    });
    let url = proxy.url();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(EXCHANGE_BOUND)
        .build()
        .expect("reqwest client builds");
    let initialize = templates()[0].clone();
    let post = |token: &str| {
        let mut headers = header_map(&[
            ("content-type".into(), "application/json".into()),
            ("accept".into(), ACCEPT_BOTH.into()),
        ]);
        let authorization = format!("Bearer {token}");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&authorization).map_err(|error| error.to_string())?,
        );
        let body = Bytes::from(initialize.to_string());
        runtime.block_on(exchange(&http, &url, &Method::POST, &headers, body))
    };
    let valid = || sign(Algorithm::RS256, &keys.rsa, Some("rsa"), &good_claims());
    let control = post(&valid()).expect("an answer");
    assert_eq!(control.status, StatusCode::OK, "{}", control.text());

    check(
        "forged and broken JWTs",
        256,
        &forgery(),
        &[401],
        |forgery| {
            let token = forgery.token(&keys);
            let answer = post(&token).map_err(TestCaseError::fail)?;
            well_formed(&answer, Some(&initialize))?;
            prop_assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
            let challenge = answer
                .headers
                .get("www-authenticate")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            prop_assert!(
                challenge.contains("error=\"invalid_token\""),
                "{}",
                challenge
            );
            prop_assert_eq!(
                &serde_json::from_slice::<Value>(&answer.body).unwrap_or_default()["error"]["code"],
                mcp_proxy::error_codes::UNAUTHENTICATED
            );
            Ok(answer.status.as_u16())
        },
    );

    let control = post(&valid()).expect("an answer");
    assert_eq!(control.status, StatusCode::OK, "{}", control.text());
    runtime.block_on(async {
        serves_a_session(&url, &valid()).await;
        proxy.shutdown().await;
    });
}
