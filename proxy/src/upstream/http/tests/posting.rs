//! Putting messages on the wire: connections from the platform's dialer,
//! pooled and reused; credentials in the URL; redirects followed (or not).

use serde_json::json;
use wiremock::matchers::{any, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::platform::{BoxFuture, BoxStream, Dialer, Platform, TcpDialer};

/// Dials TCP and counts the connections it opened.
#[derive(Default)]
struct CountingDialer(std::sync::atomic::AtomicUsize);

impl CountingDialer {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Dialer for CountingDialer {
    fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<BoxStream>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        TcpDialer.dial(host, port)
    }
}

#[tokio::test]
async fn connections_come_from_the_platform_dialer_and_are_reused() {
    let server = mock_backend().await;
    on_tool(&server, "ok", answer(json!({"fine": true}))).await;
    let dialer = Arc::new(CountingDialer::default());
    let settings = ConnectSettings {
        platform: Platform {
            dialer: dialer.clone(),
            ..Platform::os()
        },
        ..settings()
    };
    let (events, _received) = mpsc::unbounded_channel();
    let (connection, _) = within(HttpConnection::connect(
        &transport(&server.uri()),
        &settings,
        events,
    ))
    .await
    .unwrap();
    within(async {
        while gets(&server).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let dialed = dialer.count();
    // initialize, initialized and the GET may overlap: at most one
    // connection each.
    assert!((1..=3).contains(&dialed), "{dialed} connections");
    for _ in 0..5 {
        // Time for a finished exchange to hand its connection back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            call(&connection, "ok").await.unwrap(),
            json!({"fine": true})
        );
    }
    assert_eq!(dialer.count(), dialed, "calls reuse pooled connections");
    assert_eq!(server.received_requests().await.unwrap().len(), 8);
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth_unless_configured() {
    let server = mock_backend().await;
    let address = *server.address();
    let url = format!("http://us%65r:p%40ss@{address}/mcp#fragment");
    let (connection, _, _events) = connect(&url).await;
    within(connection.shutdown()).await;
    let requests = server.received_requests().await.unwrap();
    assert!(requests.len() >= 3);
    for request in &requests {
        assert_eq!(request.headers["authorization"], "Basic dXNlcjpwQHNz");
        assert_eq!(request.headers["host"], address.to_string().as_str());
        assert_eq!(request.url.path(), "/mcp");
    }

    let server = mock_backend().await;
    let mut transport = transport(&format!("http://user:pw@{}/", server.address()));
    if let TransportConfig::Http { headers, .. } = &mut transport {
        headers.insert("authorization".into(), "Bearer configured".into());
    }
    let (events, _received) = mpsc::unbounded_channel();
    within(HttpConnection::connect(&transport, &settings(), events))
        .await
        .unwrap();
    for request in server.received_requests().await.unwrap() {
        assert_eq!(request.headers["authorization"], "Bearer configured");
    }
}

#[tokio::test]
async fn a_temporary_redirect_repeats_the_message_at_the_new_place() {
    let server = mock_backend().await;
    Mock::given(path("/old"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/mcp"))
        .with_priority(1)
        .mount(&server)
        .await;
    on_tool(&server, "ok", answer(json!({"fine": true}))).await;
    let old = format!("{}/old", server.uri());
    let (connection, init, _events) = connect(&old).await;
    assert_eq!(init["serverInfo"]["name"], json!("mock"));
    // The GET stream's redirect too, before shutdown stops it.
    within(async {
        while !gets(&server)
            .await
            .iter()
            .any(|request| request.url.path() == "/mcp")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        call(&connection, "ok").await.unwrap(),
        json!({"fine": true})
    );
    within(connection.shutdown()).await;
    let requests = server.received_requests().await.unwrap();
    let at = |wanted: &str| {
        let mut found: Vec<(String, Vec<u8>)> = requests
            .iter()
            .filter(|request| request.url.path() == wanted)
            .map(|request| (request.method.to_string(), request.body.clone()))
            .collect();
        found.sort();
        found
    };
    // POSTs (with their bodies), the GET and the DELETE: each went to
    // /old first, then the same again to /mcp.
    assert_eq!(at("/old"), at("/mcp"));
    assert!(at("/mcp").iter().any(|(method, _)| method == "DELETE"));
    for request in requests.iter().filter(|r| r.url.path() == "/mcp") {
        assert_eq!(request.headers["x-api-key"], "secret");
        assert_eq!(request.headers["referer"], old.as_str());
    }
}

#[tokio::test]
async fn see_other_turns_a_post_into_a_bodiless_get() {
    let server = mock_backend().await;
    on_tool(
        &server,
        "moved",
        ResponseTemplate::new(303).insert_header("location", "/elsewhere"),
    )
    .await;
    let (connection, _, _events) = connect(&server.uri()).await;
    let error = call(&connection, "moved").await.unwrap_err();
    // The GET is answered by the mock's 405 for GETs.
    assert_eq!(
        error,
        UpstreamError::Protocol("HTTP 405 Method Not Allowed: ".into())
    );
    let requests = server.received_requests().await.unwrap();
    let followed = requests
        .iter()
        .find(|request| request.url.path() == "/elsewhere")
        .expect("redirect followed");
    assert_eq!(followed.method.as_str(), "GET");
    assert!(followed.body.is_empty());
    assert!(followed.headers.get("content-type").is_none());
    assert_eq!(followed.headers["mcp-session-id"], "sess-1");
    assert_eq!(connection.close_reason(), None);
}

#[tokio::test]
async fn a_redirect_to_another_origin_drops_the_credentials() {
    let target = mock_backend().await;
    let front = MockServer::start().await;
    let location = format!("{}/mcp", target.uri());
    Mock::given(any())
        .respond_with(ResponseTemplate::new(307).insert_header("location", location.as_str()))
        .mount(&front)
        .await;
    let url = format!("http://user:pw@{}/mcp", front.address());
    let (connection, _, _events) = connect(&url).await;
    within(connection.shutdown()).await;
    for request in front.received_requests().await.unwrap() {
        assert_eq!(request.headers["authorization"], "Basic dXNlcjpwdw==");
    }
    let requests = target.received_requests().await.unwrap();
    assert!(!requests.is_empty());
    for request in requests {
        assert!(request.headers.get("authorization").is_none());
        assert_eq!(request.headers["x-api-key"], "secret");
        let referer = format!("http://{}/mcp", front.address());
        assert_eq!(request.headers["referer"], referer.as_str());
    }
}

#[tokio::test]
async fn endless_redirects_are_a_transport_failure() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(308).insert_header("location", "/again"))
        .mount(&server)
        .await;
    let (events, _received) = mpsc::unbounded_channel();
    let error = within(HttpConnection::connect(
        &transport(&server.uri()),
        &settings(),
        events,
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(
        error,
        UpstreamError::Connect(
            "connection lost during initialize: sending to the backend failed: \
             following a redirect failed: more than 10 redirects"
                .into()
        )
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), MAX_REDIRECTS + 1);
}
