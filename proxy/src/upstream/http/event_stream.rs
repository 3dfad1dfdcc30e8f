//! The GET event stream: after `initialize`, a background task keeps it
//! open for the notifications that belong to no request (`list_changed`),
//! reopens it with capped backoff when it breaks (resuming after the last
//! event id), and closes the connection when reopening shows the server
//! gone or our session forgotten.

use std::time::Duration;

use http::StatusCode;
use http::header::HeaderValue;
use tokio_util::sync::CancellationToken;

use super::super::sse::SseParser;
use super::answers::{media_type, next_chunk};
use super::{Link, Response};
use crate::backoff::{Backoff, HEALTHY_AFTER};

/// Consecutive refused reconnects of a GET stream that mean the server is gone.
const REFUSALS_BEFORE_GONE: u32 = 2;

/// Backoff between attempts to reopen the GET event stream.
pub(super) const STREAM_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Keep the GET event stream open while the connection lives. A server that
/// offers none (405, or any status but 200 at the first try) is left alone;
/// a stream that breaks is reopened with capped backoff.
///
/// The stream is also how a restarted or vanished server is noticed without
/// waiting for a client's call to fail: when reopening it is refused at the
/// TCP level, or answered 404/400 for the session it carried, the connection
/// is closed so the supervisor reconnects with a new session.
pub(super) async fn listen(link: Link, stop: CancellationToken) {
    let backend = link.backend().to_owned();
    let mut backoff = Backoff::new(STREAM_BACKOFF_INITIAL, STREAM_BACKOFF_MAX);
    let mut last_event_id: Option<HeaderValue> = None;
    let mut was_open = false;
    let mut refused = 0;
    loop {
        let poster = &link.poster;
        let opened = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = link.pending.closed() => return,
            opened = poster.get(last_event_id.as_ref()) => opened,
        };
        match opened {
            Err(error) if was_open && error.never_sent => {
                refused += 1;
                let reason = format!("server gone: {}", error.description);
                // Twice in a row, so one transient failure while a server
                // recycles its streams does not end a healthy session.
                if refused >= REFUSALS_BEFORE_GONE {
                    tracing::warn!(backend, %reason, "reopening the event stream was refused");
                    link.pending.close(reason);
                    return;
                }
                tracing::debug!(backend, %reason, "reopening the event stream was refused; retrying");
            }
            Err(error) => {
                tracing::debug!(backend, error = %error.description, "opening the event stream failed")
            }
            Ok(response)
                if was_open
                    && poster.has_session
                    && matches!(
                        response.status(),
                        StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
                    ) =>
            {
                let reason = format!("session no longer valid (HTTP {})", response.status());
                tracing::warn!(backend, %reason, "server no longer knows our session");
                link.pending.close(reason);
                return;
            }
            Ok(response) if response.status() != StatusCode::OK && was_open => {
                // The server had a stream for us: a 409, 429 or 5xx now is
                // passing trouble, not a refusal; try again after the backoff.
                let status = response.status();
                tracing::debug!(backend, %status, "reopening the event stream failed; retrying");
            }
            Ok(response) if response.status() != StatusCode::OK => {
                let status = response.status();
                tracing::debug!(backend, %status, "server offers no event stream");
                return;
            }
            Ok(response) if media_type(&response) != "text/event-stream" => {
                tracing::debug!(
                    backend,
                    content_type = media_type(&response),
                    "GET did not answer an event stream"
                );
                return;
            }
            Ok(response) => {
                was_open = true;
                refused = 0;
                tracing::debug!(backend, "event stream open");
                let since = tokio::time::Instant::now();
                let mut parser = SseParser::new();
                let ended = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return,
                    _ = link.pending.closed() => return,
                    ended = read_stream(&link, response, &mut parser) => ended,
                };
                if let Some(id) = parser
                    .last_event_id()
                    .and_then(|id| HeaderValue::from_str(id).ok())
                {
                    last_event_id = Some(id);
                }
                if since.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                tracing::debug!(backend, how = %ended, "event stream ended; reopening");
            }
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = link.pending.closed() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Route every event of the GET stream until it ends; says how it ended.
async fn read_stream(link: &Link, response: Response, parser: &mut SseParser) -> String {
    let mut body = response.into_body();
    loop {
        match next_chunk(&mut body).await {
            Ok(Some(chunk)) => {
                for event in parser.feed(&chunk) {
                    link.route_event(event, None);
                }
            }
            Ok(None) => return "closed by the server".into(),
            Err(error) => return error.description,
        }
    }
}
