//! The writer: the task that sends the queued messages to the child's
//! stdin, one JSON message per line, in the order they were queued; each
//! gives its place in the queue back once written. A failed write kills
//! the child (it stopped reading) and is kept for the supervisor to name.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use crate::platform::ChildSignals;

/// A message waiting for the writer, holding its place in the queue (a
/// cancellation holds none) until it is written.
pub(super) struct Queued {
    pub(super) message: Value,
    pub(super) _place: Option<OwnedSemaphorePermit>,
}

impl Queued {
    pub(super) fn placeless(message: Value) -> Self {
        Self {
            message,
            _place: None,
        }
    }
}

/// Sends queued messages to the child's stdin, one per line.
pub(super) struct Writer {
    pub(super) backend: String,
    pub(super) stdin: Box<dyn AsyncWrite + Send + Unpin>,
    pub(super) outgoing: mpsc::UnboundedReceiver<Queued>,
    pub(super) close_stdin: CancellationToken,
    pub(super) stop: CancellationToken,
    pub(super) group: Arc<dyn ChildSignals>,
    pub(super) write_error: Arc<Mutex<Option<String>>>,
}

impl Writer {
    pub(super) async fn run(mut self) {
        loop {
            let queued = tokio::select! {
                biased;
                _ = self.close_stdin.cancelled() => break,
                _ = self.stop.cancelled() => break,
                queued = self.outgoing.recv() => match queued {
                    Some(queued) => queued,
                    None => break,
                },
            };
            // A `Value` always serializes, and compact JSON escapes every
            // newline inside strings, so one message is one line. Its place
            // is given back once it is written.
            let mut line = serde_json::to_vec(&queued.message).unwrap_or_default();
            line.push(b'\n');
            let written = tokio::select! {
                biased;
                _ = self.close_stdin.cancelled() => break,
                _ = self.stop.cancelled() => break,
                written = write_line(&mut self.stdin, &line) => written,
            };
            if let Err(error) = written {
                // The child stopped reading: it is useless now. Killing it
                // lets the supervisor reap it and close the connection.
                tracing::warn!(backend = %self.backend, %error, "writing to stdin failed");
                *self
                    .write_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("writing to the process failed: {error}"));
                self.group.kill();
                break;
            }
        }
        // Dropping stdin here is the child's end of input.
    }
}

async fn write_line(
    stdin: &mut (dyn AsyncWrite + Send + Unpin),
    line: &[u8],
) -> std::io::Result<()> {
    stdin.write_all(line).await?;
    stdin.flush().await
}
