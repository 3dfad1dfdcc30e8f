//! Reading what comes back on a POST: an HTTP error status (a
//! [`UpstreamError::Protocol`] error, an expired session, or a JSON-RPC
//! error the server paired with it), a JSON body, or an event stream that
//! carries progress and server requests before the answer. Every message on
//! it is routed like a line of a stdio child's stdout; replies to server
//! requests are POSTed in the background. The body readers here serve the
//! GET event stream too.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::super::sse::{SseEvent, SseParser};
use super::super::{UpstreamError, inbound};
use super::posting::TransportError;
use super::{Link, MAX_BODY_BYTES, Response};
use crate::jsonrpc::ErrorObject;

/// How much of an error response's body is read to quote from it.
const ERROR_BODY_BYTES: usize = 16 * 1024;
/// How many characters of a bad body go into an error message.
const QUOTE_CHARS: usize = 200;

impl Link {
    /// Turn HTTP-level failures into errors; pass a 2xx response on. When
    /// the failure answers request `answering` with a JSON-RPC error body
    /// (some servers pair 4xx/5xx with one), that error is the answer and is
    /// relayed unchanged.
    pub(super) async fn check_status(
        &self,
        response: Response,
        answering: Option<u64>,
    ) -> Result<Response, UpstreamError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::NOT_FOUND && self.poster.has_session {
            let reason = "session expired";
            tracing::warn!(
                backend = self.backend(),
                "server no longer knows our session"
            );
            self.pending.close(reason);
            return Err(UpstreamError::Lost(reason.into()));
        }
        let body = read_capped(response, ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        if let Some(id) = answering
            && let Ok(message) = serde_json::from_slice::<Value>(&body)
            && message.get("id").and_then(Value::as_u64) == Some(id)
            && let Some(error) = message.get("error")
        {
            return Err(UpstreamError::JsonRpc(ErrorObject::from_value(error)));
        }
        let body = quote(&String::from_utf8_lossy(&body));
        Err(UpstreamError::Protocol(format!("HTTP {status}: {body}")))
    }

    /// Read the answer to request `id` from its POST response, routing
    /// everything else on it. On `Ok` the request has been resolved (or the
    /// connection closed, which also resolves it).
    pub(super) async fn read_answer(
        &self,
        response: Response,
        id: u64,
    ) -> Result<(), UpstreamError> {
        let response = self.check_status(response, Some(id)).await?;
        if response.status() == StatusCode::ACCEPTED {
            return Err(UpstreamError::Protocol(
                "HTTP 202 Accepted in answer to a request".into(),
            ));
        }
        match media_type(&response).as_str() {
            "application/json" => {
                let body = match read_capped(response, MAX_BODY_BYTES).await {
                    Ok(body) => body,
                    Err(ReadError::Transport(error)) => {
                        return Err(self.transport_failure("reading the response failed", error));
                    }
                    Err(ReadError::TooLarge) => {
                        return Err(UpstreamError::Protocol(format!(
                            "response body larger than {MAX_BODY_BYTES} bytes"
                        )));
                    }
                };
                let message: Value = serde_json::from_slice(&body).map_err(|error| {
                    let body = quote(&String::from_utf8_lossy(&body));
                    UpstreamError::Protocol(format!("response body is not JSON ({error}): {body}"))
                })?;
                self.route(message, Some(id));
                if self.pending.contains(id) {
                    // Quoted from the bytes, and only now: serializing every
                    // answer again for a message rarely needed was a third
                    // of the cost of passing a 10 KiB result through.
                    let quoted = quote(&String::from_utf8_lossy(&body));
                    return Err(UpstreamError::Protocol(format!(
                        "response body does not answer request {id}: {quoted}"
                    )));
                }
                Ok(())
            }
            "text/event-stream" => {
                let mut body = response.into_body();
                let mut parser = SseParser::new();
                loop {
                    let chunk = match next_chunk(&mut body).await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(error) => {
                            return Err(
                                self.transport_failure("reading the event stream failed", error)
                            );
                        }
                    };
                    for event in parser.feed(&chunk) {
                        self.route_event(event, Some(id));
                    }
                    if !self.pending.contains(id) {
                        return Ok(());
                    }
                }
                Err(UpstreamError::Lost(
                    "event stream ended before the response".into(),
                ))
            }
            "" => Err(UpstreamError::Protocol(
                "response has no content type".into(),
            )),
            other => Err(UpstreamError::Protocol(format!(
                "unexpected content type `{other}`"
            ))),
        }
    }

    /// Route one event; `related`: the request whose answer stream carried
    /// it (`None` on the GET stream).
    pub(super) fn route_event(&self, event: SseEvent, related: Option<u64>) {
        if !event.is_message() {
            tracing::debug!(
                backend = self.backend(),
                event = ?event.event,
                "ignored an event that is not a message"
            );
            return;
        }
        if event.data.trim().is_empty() {
            return;
        }
        match serde_json::from_str(&event.data) {
            Ok(message) => self.route(message, related),
            Err(error) => tracing::warn!(
                backend = self.backend(),
                %error,
                data = %inbound::preview(&event.data),
                "event stream carried something that is not JSON; skipped"
            ),
        }
    }

    /// Route a message; replies to server requests are POSTed in the
    /// background, once ready.
    fn route(&self, message: Value, related: Option<u64>) {
        for reply in inbound::route(message, &self.pending, &self.events, related) {
            let poster = Arc::clone(&self.poster);
            tokio::spawn(async move {
                if let Some(reply) = reply.ready().await {
                    poster.post_quietly(reply).await;
                }
            });
        }
    }
}

/// The next piece of a body as it arrives (trailers are skipped); `None`
/// at its end.
pub(super) async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, TransportError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| TransportError::reading(&error))?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Why a body could not be read.
enum ReadError {
    Transport(TransportError),
    TooLarge,
}

/// Read a body of at most `limit` bytes.
async fn read_capped(response: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = response.into_body();
    let mut read = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await.map_err(ReadError::Transport)? {
        if read.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read)
}

/// The media type of a response, lowercase, without parameters.
pub(super) fn media_type<B>(response: &http::Response<B>) -> String {
    let value = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The first [`QUOTE_CHARS`] characters of a body, for error messages.
fn quote(text: &str) -> String {
    text.chars().take(QUOTE_CHARS).collect()
}
