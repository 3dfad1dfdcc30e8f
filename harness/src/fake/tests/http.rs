//! The HTTP face on 127.0.0.1, seen by a plain HTTP client (and a raw socket
//! where the transport itself is the point). Real sockets need real time:
//! waits are bounded generously.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::*;
use crate::fake::HttpFake;
use crate::fake::net::{FakeNetwork, HeldPort, LoopbackNetwork};
use crate::journal::JournalEntry;

/// A Streamable HTTP client for one fake, without connection reuse so each
/// request shows what a new connection gets.
struct Client {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Client {
    fn new(fake: &HttpFake) -> Client {
        Client {
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            url: fake.url(),
            session: None,
        }
    }

    async fn post(&self, message: &Value) -> reqwest::Result<reqwest::Response> {
        self.post_with(message, &[]).await
    }

    /// [`Self::post`] with `extra` headers.
    async fn post_with(
        &self,
        message: &Value,
        extra: &[(&str, &str)],
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(serde_json::to_vec(message).unwrap());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        timeout(PROMPTLY, request.send()).await.expect("an answer")
    }

    /// Initializes and keeps the session.
    async fn initialize(&mut self) -> String {
        self.session = None;
        let response = self.post(&initialize(1)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer = body(response).await;
        assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
        self.session = Some(session.clone());
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let notified = self.post(&initialized).await.unwrap();
        assert_eq!(notified.status(), StatusCode::ACCEPTED);
        session
    }

    async fn call(&self, id: u64, tool: &str) -> reqwest::Response {
        self.post(&call(id, tool, id)).await.unwrap()
    }
}

async fn body(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{response:?}"
    );
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn start(tools: Vec<ToolSpec>, faults: Vec<Fault>) -> (HttpFake, FakeConfig) {
    let cfg = config(FakeTransport::Http { port: 0 }, tools, faults);
    let fake = HttpFake::start(cfg.clone()).await.unwrap();
    (fake, cfg)
}

/// Sends one raw HTTP POST on a new connection and returns the socket.
async fn raw_post(fake: &HttpFake, session: &str, message: &Value) -> TcpStream {
    let body = message.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-session-id: {session}\r\n\
         content-length: {}\r\n\r\n{body}",
        fake.addr(),
        body.len()
    );
    let mut stream = TcpStream::connect(fake.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn sessions_are_opened_required_and_ended() {
    let (fake, cfg) = start(vec![tool("read", Outcome::Success)], vec![]).await;
    assert!(fake.url().starts_with("http://127.0.0.1:"));
    let mut client = Client::new(&fake);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});

    // No session yet: 400; a session the fake never issued: 404.
    assert_eq!(
        client.post(&list).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    client.session = Some("made-up".into());
    assert_eq!(
        client.post(&list).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let session = client.initialize().await;
    let listed = body(client.post(&list).await.unwrap()).await;
    assert_eq!(listed["result"]["tools"][0]["name"], "read");

    // GET opens an event stream that stays open.
    let stream = timeout(
        PROMPTLY,
        client
            .http
            .get(&client.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut events = stream.bytes_stream();
    assert!(
        timeout(Duration::from_millis(300), events.next())
            .await
            .is_err(),
        "the stream sent or ended"
    );

    // DELETE ends the session, and its stream.
    let deleted = client
        .http
        .delete(&client.url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let ended = timeout(PROMPTLY, events.next()).await.unwrap();
    assert!(ended.is_none_or(|chunk| chunk.is_err()));
    assert_eq!(
        client.post(&list).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // Every request is journalled, the refused ones with why.
    let entries = cfg.journal.snapshot();
    assert!(entries.iter().all(|e| e.endpoint == fake.url()));
    assert_eq!(
        methods_and_outcomes(&entries),
        [
            ("tools/list", "missing_session"),
            ("tools/list", "unknown_session"),
            ("initialize", "ok"),
            ("notifications/initialized", "ok"),
            ("tools/list", "ok"),
            ("GET", "ok"),
            ("DELETE", "ok"),
            ("tools/list", "unknown_session"),
        ]
    );
    fake.shutdown().await;
}

fn methods_and_outcomes(entries: &[JournalEntry]) -> Vec<(&str, &str)> {
    entries
        .iter()
        .map(|e| (e.method.as_str(), e.outcome.as_str()))
        .collect()
}

#[tokio::test]
async fn requests_refused_before_the_server_are_journalled_with_why() {
    let (fake, cfg) = start(vec![tool("read", Outcome::Success)], vec![]).await;
    let mut client = Client::new(&fake);
    let session = client.initialize().await;
    let request = |method: reqwest::Method, session: Option<&str>, body: &str| {
        let mut request = client
            .http
            .request(method, &client.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        async move { timeout(PROMPTLY, request.send()).await.unwrap().unwrap() }
    };
    let status = |response: reqwest::Response| response.status().as_u16();
    let not_a_message = json!({"id": 9, "result": 1, "method": 3}).to_string();
    let a_call = call(4, "read", 17).to_string();
    let seen = [
        status(request(reqwest::Method::POST, Some(&session), "{not json").await),
        status(request(reqwest::Method::POST, Some(&session), &not_a_message).await),
        status(request(reqwest::Method::POST, Some("made-up"), &a_call).await),
        status(request(reqwest::Method::POST, None, &a_call).await),
        status(request(reqwest::Method::GET, None, "").await),
        status(request(reqwest::Method::GET, Some("made-up"), "").await),
        status(request(reqwest::Method::DELETE, None, "").await),
        status(request(reqwest::Method::DELETE, Some("made-up"), "").await),
        status(request(reqwest::Method::PUT, Some(&session), "").await),
        status(
            timeout(
                PROMPTLY,
                client.http.get(client.url.replace("/mcp", "/other")).send(),
            )
            .await
            .unwrap()
            .unwrap(),
        ),
    ];
    assert_eq!(seen, [400, 400, 404, 400, 400, 404, 400, 404, 405, 404]);

    let entries = cfg.journal.snapshot();
    assert_eq!(
        methods_and_outcomes(&entries[2..]),
        [
            ("(unparseable)", "parse_error"),
            ("(unparseable)", "invalid_request"),
            ("tools/call", "unknown_session"),
            ("tools/call", "missing_session"),
            ("GET", "missing_session"),
            ("GET", "unknown_session"),
            ("DELETE", "missing_session"),
            ("DELETE", "unknown_session"),
            ("PUT", "method_not_allowed"),
            ("GET", "not_found"),
        ]
    );
    assert_eq!(entries[3].id, Some(json!(9)));
    // A refused call is journalled with what it carried.
    let refused = &entries[4];
    assert_eq!(
        (refused.tool.as_deref(), refused.call, refused.id.clone()),
        (Some("read"), Some(17), Some(json!(4)))
    );
    assert!(entries.iter().all(|e| e.endpoint == fake.url()));
    fake.shutdown().await;
}

#[tokio::test]
async fn results_tool_errors_and_json_rpc_errors_are_as_scripted() {
    let (fake, cfg) = start(
        vec![
            tool("read", Outcome::Success),
            tool(
                "fails",
                Outcome::ToolError {
                    message: "disk full".into(),
                },
            ),
            tool(
                "rpc",
                Outcome::JsonRpcError {
                    code: -32050,
                    message: "busy".into(),
                },
            ),
        ],
        vec![],
    )
    .await;
    let mut client = Client::new(&fake);
    client.initialize().await;

    let ok = body(client.call(1, "read").await).await;
    let echoed: Value =
        serde_json::from_str(ok["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, json!({"path": "/a", "harness_call": 1}));
    assert_eq!(crate::fake::echoed_call(&ok["result"]), Some(1));
    let failed = body(client.call(2, "fails").await).await;
    assert_eq!(failed["result"]["isError"], true);
    assert_eq!(failed["result"]["content"][0]["text"], "disk full");
    assert_eq!(crate::fake::echoed_call(&failed["result"]), None);
    let rpc = body(client.call(3, "rpc").await).await;
    assert_eq!(error_code(&rpc), Some(-32050));
    assert_eq!(rpc["id"], 3);
    let unknown = body(client.call(4, "delete").await).await;
    assert_eq!(error_code(&unknown), Some(-32602));

    let calls: Vec<(Option<u64>, String)> = cfg
        .journal
        .snapshot()
        .into_iter()
        .filter(|e| e.method == "tools/call")
        .map(|e| (e.call, e.outcome))
        .collect();
    assert_eq!(
        calls,
        [
            (Some(1), "success".into()),
            (Some(2), "tool_error".into()),
            (Some(3), "jsonrpc_error".into()),
            (Some(4), "jsonrpc_error".into()),
        ]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn http_statuses_come_with_retry_after_when_scripted() {
    let status = |status, retry_after| Outcome::HttpStatus {
        status,
        retry_after,
    };
    let (fake, _) = start(
        vec![
            tool("boom", status(500, None)),
            tool("busy", status(503, Some(Duration::from_millis(1500)))),
            tool("slow_down", status(429, Some(Duration::from_secs(3)))),
        ],
        vec![],
    )
    .await;
    let mut client = Client::new(&fake);
    client.initialize().await;
    let mut seen = Vec::new();
    for (id, tool) in [(1, "boom"), (2, "busy"), (3, "slow_down")] {
        let response = client.call(id, tool).await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let empty = response.bytes().await.unwrap().is_empty();
        seen.push((status, retry_after, empty));
    }
    // 1.5 s is rounded up to whole seconds.
    assert_eq!(
        seen,
        [
            (500, None, true),
            (503, Some("2".to_owned()), true),
            (429, Some("3".to_owned()), true),
        ]
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn a_malformed_outcome_is_a_body_that_is_not_json() {
    let (fake, _) = start(vec![tool("read", Outcome::Malformed)], vec![]).await;
    let mut client = Client::new(&fake);
    client.initialize().await;
    let response = client.call(1, "read").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.bytes().await.unwrap();
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    fake.shutdown().await;
}

#[tokio::test]
async fn a_reset_outcome_aborts_the_connection_with_an_rst() {
    let (fake, cfg) = start(vec![tool("read", Outcome::Reset)], vec![]).await;
    let mut client = Client::new(&fake);
    let session = client.initialize().await;
    let mut socket = raw_post(&fake, &session, &call(1, "read", 1)).await;
    let mut buf = [0u8; 1024];
    let read = timeout(PROMPTLY, socket.read(&mut buf))
        .await
        .expect("the connection went");
    // A reset, not an answer and not an orderly close (which reads 0).
    let error = read.expect_err("a reset connection");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    // The fake itself carries on.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(body(client.post(&ping).await.unwrap()).await["id"], 2);
    let last_call = cfg
        .journal
        .snapshot()
        .into_iter()
        .find(|e| e.method == "tools/call");
    assert_eq!(last_call.map(|e| e.outcome), Some("reset".to_owned()));
    fake.shutdown().await;
}

#[tokio::test]
async fn a_hung_call_gets_no_answer_until_shutdown_ends_it() {
    let (fake, _) = start(
        vec![tool("stuck", Outcome::Hang), tool("read", Outcome::Success)],
        vec![],
    )
    .await;
    let mut client = Client::new(&fake);
    client.initialize().await;
    let hung = {
        let request = client
            .http
            .post(&client.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", client.session.clone().unwrap())
            .body(call(1, "stuck", 1).to_string());
        tokio::spawn(request.send())
    };
    // Other calls are answered meanwhile.
    assert_eq!(body(client.call(2, "read").await).await["id"], 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!hung.is_finished(), "the hung call was answered");
    // Shutdown ends everything, the hung connection included.
    timeout(PROMPTLY, fake.shutdown())
        .await
        .expect("shutdown finished");
    let ended = timeout(PROMPTLY, hung).await.unwrap().unwrap();
    assert!(ended.is_err(), "{ended:?}");
}

#[tokio::test]
async fn every_second_call_gets_the_faults_status() {
    let (fake, _) = start(
        vec![tool("read", Outcome::Success)],
        vec![every_second_call(
            "read",
            Outcome::HttpStatus {
                status: 503,
                retry_after: None,
            },
        )],
    )
    .await;
    let mut client = Client::new(&fake);
    client.initialize().await;
    let mut statuses = Vec::new();
    for id in 1..=4 {
        statuses.push(client.call(id, "read").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503]);
    fake.shutdown().await;
}

/// Posts until the fake accepts connections again (bounded).
async fn post_when_up(client: &Client, message: &Value) -> reqwest::Response {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        match client.post(message).await {
            Ok(response) => return response,
            Err(e) if e.is_connect() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the fake did not come back: {e}"),
        }
    }
}

#[tokio::test]
async fn an_outage_refuses_connections_cuts_streams_and_forgets_sessions() {
    let down_at = Duration::from_millis(1000);
    let down_for = Duration::from_millis(1500);
    let (fake, cfg) = start(
        vec![tool("read", Outcome::Success)],
        vec![outage(down_at, down_for, 1)],
    )
    .await;
    let url = fake.url();
    let mut client = Client::new(&fake);
    let session = client.initialize().await;
    let stream = client
        .http
        .get(&client.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = stream.bytes_stream();

    // The open stream is cut when the outage starts.
    let cut = timeout(down_at + PROMPTLY, events.next())
        .await
        .expect("the stream was cut");
    assert!(cut.is_none_or(|chunk| chunk.is_err()));
    assert!(cfg.clock.elapsed() >= down_at);

    // While down, connecting is refused.
    tokio::time::sleep_until(cfg.clock.at(down_at + Duration::from_millis(300))).await;
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    let refused = client.post(&list).await.expect_err("refused while down");
    assert!(refused.is_connect(), "{refused:?}");
    assert_port_held(&fake);

    // Back on the same port, as a restarted server: the old session is gone.
    tokio::time::sleep_until(cfg.clock.at(down_at + down_for)).await;
    assert_eq!(fake.url(), url);
    let stale = post_when_up(&client, &call(5, "read", 5)).await;
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
    let fresh = client.initialize().await;
    assert_ne!(fresh, session);
    assert_eq!(body(client.call(6, "read").await).await["id"], 6);

    let up_again = down_at + down_for;
    let entries = cfg.journal.snapshot();
    assert!(
        entries.iter().all(|e| e.at < down_at || e.at >= up_again),
        "requests journalled during the outage"
    );
    // The call with the stale session reached the fake: journalled as a
    // call, refused.
    let calls: Vec<(Option<u64>, &str)> = entries
        .iter()
        .filter(|e| e.method == "tools/call")
        .map(|e| (e.call, e.outcome.as_str()))
        .collect();
    assert_eq!(calls, [(Some(5), "unknown_session"), (Some(6), "success")]);
    fake.shutdown().await;
}

/// While down, the fake's port stays bound: no other socket can take it.
fn assert_port_held(fake: &HttpFake) {
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    let bound = other.bind(fake.addr());
    assert_eq!(
        bound.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::AddrInUse),
        "the port was free while the fake was down"
    );
}

#[tokio::test]
async fn a_fake_started_inside_an_outage_comes_up_when_it_ends() {
    let (fake, _) = start(
        vec![tool("read", Outcome::Success)],
        vec![outage(Duration::ZERO, Duration::from_millis(500), 1)],
    )
    .await;
    let mut client = Client::new(&fake);
    let refused = client
        .post(&initialize(1))
        .await
        .expect_err("down at start");
    assert!(refused.is_connect(), "{refused:?}");
    assert_port_held(&fake);
    let up = post_when_up(&client, &initialize(1)).await;
    assert_eq!(up.status(), StatusCode::OK);
    client.initialize().await;
    fake.shutdown().await;
}

/// The loopback, advertised under another name.
struct Renamed(LoopbackNetwork);

impl FakeNetwork for Renamed {
    fn host(&self) -> String {
        "fake.test".into()
    }

    fn bind(
        &self,
        port: u16,
    ) -> mcp_proxy::platform::BoxFuture<'_, std::io::Result<Box<dyn HeldPort>>> {
        self.0.bind(port)
    }
}

#[tokio::test]
async fn the_url_names_the_host_its_network_advertises() {
    let cfg = config(
        FakeTransport::Http { port: 0 },
        vec![tool("read", Outcome::Success)],
        vec![],
    );
    let fake = HttpFake::start_on(cfg, &Renamed(LoopbackNetwork))
        .await
        .unwrap();
    assert_eq!(
        fake.url(),
        format!("http://fake.test:{}/mcp", fake.addr().port())
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn the_traceparent_of_a_call_is_journalled_from_its_header_else_its_meta() {
    let (fake, cfg) = start(vec![tool("read", Outcome::Success)], vec![]).await;
    let mut client = Client::new(&fake);
    client.initialize().await;
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let in_meta = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut with_meta = call(2, "read", 2);
    with_meta["params"]["_meta"] = json!({ "traceparent": in_meta });
    let response = client
        .post_with(&with_meta, &[("traceparent", header)])
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        client.post(&with_meta).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(client.call(3, "read").await.status(), StatusCode::OK);
    let traceparents: Vec<Option<String>> = cfg
        .journal
        .snapshot()
        .into_iter()
        .filter(|e| e.method == "tools/call")
        .map(|e| e.traceparent)
        .collect();
    // The header wins, as the proxy sends it to HTTP backends.
    assert_eq!(
        traceparents,
        [Some(header.to_owned()), Some(in_meta.to_owned()), None]
    );
    fake.shutdown().await;
}
