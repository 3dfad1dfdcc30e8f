//! The readers: stdout split into lines of at most [`MAX_LINE_BYTES`], each
//! message routed (answers, progress, notifications, the child's own
//! requests, whose replies are queued for the writer when a place is free);
//! stderr logged at debug level. A line that is not UTF-8 JSON is logged
//! and skipped, never fatal; an over-long answer fails its request.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::super::inbound::{self, Reply};
use super::super::pending::Pending;
use super::super::{EventSink, UpstreamError};
use super::MAX_LINE_BYTES;
use super::writer::Queued;

/// The longest stderr line kept for the log; the rest of it is skipped.
const MAX_STDERR_LINE_BYTES: usize = 8 * 1024;

/// How [`read_capped_line`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LineRead {
    /// A whole line (without its newline) is in the buffer.
    Line,
    /// The line was longer than the cap: the buffer holds its first bytes,
    /// the rest was skipped. Carries the line's full length.
    Truncated(usize),
    /// End of input.
    Eof,
}

/// Read one `\n`-terminated line into `line`, keeping at most `max` bytes of
/// it and skipping the rest, so an endless line costs bounded memory.
pub(super) async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    line.clear();
    let mut length = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match length {
                0 => LineRead::Eof,
                length if length > max => LineRead::Truncated(length),
                _ => LineRead::Line,
            });
        }
        let newline = available.iter().position(|&byte| byte == b'\n');
        let take = newline.unwrap_or(available.len());
        let room = max.saturating_sub(line.len()).min(take);
        line.extend_from_slice(&available[..room]);
        length = length.saturating_add(take);
        reader.consume(take + usize::from(newline.is_some()));
        if newline.is_some() {
            return Ok(if length > max {
                LineRead::Truncated(length)
            } else {
                LineRead::Line
            });
        }
    }
}

/// Route every message the child writes to stdout; replies to its requests
/// go back through `outgoing`, or are dropped when the queue has no place:
/// waiting for one would stop reading stdout, and a child blocked writing
/// its stdout may be the one not reading its stdin.
pub(super) async fn read_stdout<R: AsyncRead + Unpin>(
    stdout: R,
    pending: Arc<Pending>,
    events: EventSink,
    outgoing: (mpsc::UnboundedSender<Queued>, Arc<Semaphore>),
    stop: CancellationToken,
) {
    let backend = pending.backend().to_owned();
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            read = read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES) => read,
        };
        match read {
            Ok(LineRead::Line) => {
                for reply in parse_line(&line, &backend)
                    .map(|message| inbound::route(message, &pending, &events, None))
                    .unwrap_or_default()
                {
                    match reply {
                        Reply::Now(reply) => queue_reply(&outgoing, reply, &backend),
                        Reply::Later(reply) => {
                            let outgoing = outgoing.clone();
                            let backend = backend.clone();
                            tokio::spawn(async move {
                                if let Some(reply) = reply.await {
                                    queue_reply(&outgoing, reply, &backend);
                                }
                            });
                        }
                    }
                }
            }
            Ok(LineRead::Truncated(length)) => {
                tracing::warn!(
                    backend,
                    length,
                    limit = MAX_LINE_BYTES,
                    start = %inbound::preview(&String::from_utf8_lossy(&line)),
                    "backend wrote an over-long line to stdout; skipped"
                );
                // If it was the answer to a request, that request must not
                // wait forever: fail it, naming the limit.
                if let Some(id) = inbound::top_level_id(&line) {
                    let error = UpstreamError::Protocol(format!(
                        "the answer is {length} bytes, over the {MAX_LINE_BYTES}-byte line limit"
                    ));
                    pending.fail(id, error);
                }
            }
            Ok(LineRead::Eof) => return,
            Err(error) => {
                tracing::warn!(backend, %error, "reading the backend's stdout failed");
                return;
            }
        }
        if line.capacity() > 1024 * 1024 {
            // Do not keep a huge buffer around for one big message.
            line = Vec::new();
        }
    }
}

/// Queue a reply to the child's request, or drop it when the queue has
/// no place (see [`read_stdout`]).
fn queue_reply(
    (queue, room): &(mpsc::UnboundedSender<Queued>, Arc<Semaphore>),
    reply: Value,
    backend: &str,
) {
    match Arc::clone(room).try_acquire_owned() {
        Ok(place) => {
            let _ = queue.send(Queued {
                message: reply,
                _place: Some(place),
            });
        }
        Err(_) => tracing::warn!(
            backend,
            "stdin queue full; reply to the backend's request dropped"
        ),
    }
}

/// Decode one stdout line; anything that is not a UTF-8 JSON value is
/// logged and skipped. Blank lines are skipped quietly.
pub(super) fn parse_line(line: &[u8], backend: &str) -> Option<Value> {
    let Ok(text) = std::str::from_utf8(line) else {
        tracing::warn!(
            backend,
            line = %inbound::preview(&String::from_utf8_lossy(line)),
            "backend wrote a line that is not UTF-8 to stdout; skipped"
        );
        return None;
    };
    if text.trim().is_empty() {
        return None;
    }
    match serde_json::from_str(text) {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::warn!(
                backend,
                %error,
                line = %inbound::preview(text),
                "backend wrote a line that is not JSON to stdout; skipped"
            );
            None
        }
    }
}

/// Log the child's stderr, line by line, at debug level.
pub(super) async fn log_stderr<R: AsyncRead + Unpin>(
    stderr: R,
    backend: String,
    stop: CancellationToken,
) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            read = read_capped_line(&mut reader, &mut line, MAX_STDERR_LINE_BYTES) => read,
        };
        match read {
            Ok(LineRead::Line) => {
                let text = String::from_utf8_lossy(&line);
                tracing::debug!(backend, line = %text.trim_end(), "backend stderr");
            }
            Ok(LineRead::Truncated(length)) => {
                let text = String::from_utf8_lossy(&line);
                tracing::debug!(backend, length, line = %text, "backend stderr (line cut)");
            }
            Ok(LineRead::Eof) | Err(_) => return,
        }
    }
}
