//! Transport faults from a hand-written HTTP/1.1 server: a reset or a body
//! cut off fails that call only; a server that loses every request, or
//! refuses the connection, is gone.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::super::posting::is_refused_or_unreachable;
use super::*;

/// Serves the handshake properly; answers the tool `whole`, resets the
/// connection on the tool `reset` and cuts every other `tools/call`
/// answer off in the middle of the body. Every response closes its
/// connection.
async fn cutting_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some((request_line, body)) = read_request(&mut socket).await else {
                    return;
                };
                let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                let response = if request_line.starts_with("GET") {
                    "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else if message["method"] == json!("initialize") {
                    let body = json!({"jsonrpc": "2.0", "id": message["id"],
                                      "result": {"protocolVersion": "2025-03-26", "capabilities": {},
                                                 "serverInfo": {"name": "raw", "version": "1"}}})
                    .to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: raw-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if message.get("id").is_none() {
                    "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                } else if message["params"]["name"] == json!("whole") {
                    let body = json!({"jsonrpc": "2.0", "id": message["id"],
                                      "result": {"content": []}})
                    .to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else if message["params"]["name"] == json!("reset") {
                    // Zero linger turns the close into an RST.
                    let _ = socket.set_zero_linger();
                    return;
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{\"jsonrpc\":".to_owned()
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{address}/"), server)
}

/// Read one request: its request line and its body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    Some((
        request_line,
        buffer[header_end..header_end + length].to_vec(),
    ))
}

#[tokio::test]
async fn a_reset_or_a_body_cut_off_fails_that_call_only() {
    let (url, _server) = cutting_server().await;
    let (connection, init, _events) = connect(&url).await;
    assert_eq!(init["serverInfo"]["name"], json!("raw"));
    for (tool, failure) in [
        ("reset", "sending to the backend failed"),
        ("cut", "reading the response failed"),
    ] {
        let error = within(call(&connection, tool)).await.unwrap_err();
        assert!(
            matches!(&error, UpstreamError::Lost(message) if message.starts_with(failure)),
            "{tool}: {error:?}"
        );
        assert_eq!(connection.close_reason(), None, "{tool}");
        assert_eq!(
            within(call(&connection, "whole")).await,
            Ok(json!({"content": []})),
            "after {tool}"
        );
    }
}

#[tokio::test]
async fn a_server_that_loses_every_request_is_gone() {
    let (url, _server) = cutting_server().await;
    let (connection, _, _events) = connect(&url).await;
    // An answer between the losses starts the count over.
    for _ in 0..LOST_IN_A_ROW_BEFORE_GONE - 1 {
        let _ = within(call(&connection, "reset")).await;
    }
    assert!(within(call(&connection, "whole")).await.is_ok());
    for _ in 0..LOST_IN_A_ROW_BEFORE_GONE - 1 {
        let _ = within(call(&connection, "reset")).await;
    }
    assert_eq!(connection.close_reason(), None);
    let _ = within(call(&connection, "reset")).await;
    within(connection.closed()).await;
    let reason = connection.close_reason().unwrap();
    assert!(reason.contains("5 requests in a row lost"), "{reason}");
}

/// An error caused by an I/O error, as the pooled client reports one.
#[derive(Debug)]
struct CausedBy(std::io::Error);

impl std::fmt::Display for CausedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client error (Connect)")
    }
}

impl std::error::Error for CausedBy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn only_a_refused_or_unreachable_server_is_gone() {
    use std::io::ErrorKind;
    for (kind, gone) in [
        (ErrorKind::ConnectionRefused, true),
        (ErrorKind::HostUnreachable, true),
        (ErrorKind::NetworkUnreachable, true),
        (ErrorKind::TimedOut, false),
        (ErrorKind::ConnectionReset, false),
    ] {
        let error = CausedBy(std::io::Error::from(kind));
        assert_eq!(is_refused_or_unreachable(&error), gone, "{kind:?}");
    }
}

#[tokio::test]
async fn a_refused_request_closes_the_connection_as_connect() {
    let (url, server) = cutting_server().await;
    let (connection, _, _events) = connect(&url).await;
    server.abort();
    let _ = server.await;
    let error = call(&connection, "anything").await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::Connect(message) if message.contains("refused")),
        "{error:?}"
    );
    within(connection.closed()).await;
    let reason = connection.close_reason().unwrap();
    assert!(reason.contains("refused"), "{reason}");
}
