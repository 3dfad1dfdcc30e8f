//! The stdio face: newline-delimited JSON-RPC over a reader and a writer.
//!
//! The fake-backend command runs [`serve`] on its stdin and stdout and
//! exits with the code [`serve`] returns; nothing here ends the process, so
//! tests drive the same code in-process over an in-memory pipe. Requests
//! are handled concurrently (a slow call does not hold up the next), and
//! one writer task keeps answers whole, one per line.
//!
//! The endpoint in the journal is `stdio:<pid>`: a proxy that respawns the
//! fake shows up as a new endpoint.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;

use super::FakeConfig;
use super::protocol::{Face, MALFORMED, Message, Reply, Server};

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioEnd {
    /// The input reached its end (the proxy closed our stdin): exit 0.
    InputClosed,
    /// A scripted exit, reset (code 1) or outage: exit with this code.
    Exit(i32),
}

/// Serves MCP on `reader`/`writer` until the input ends or the script says
/// to exit. Started inside an outage, it returns at once without reading
/// (a respawned fake keeps failing while the outage lasts); otherwise it
/// returns when the next outage starts. Answers already written are flushed
/// and the writer shut down before it returns.
pub async fn serve<R, W>(cfg: FakeConfig, reader: R, writer: W) -> StdioEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let server = Arc::new(Server::new(&cfg, Face::Stdio));
    if let Some(code) = server.outage_at(cfg.clock.elapsed()) {
        return StdioEnd::Exit(code);
    }
    let endpoint: Arc<str> = format!("stdio:{}", std::process::id()).into();
    let (lines, to_write) = mpsc::unbounded_channel();
    let writing = tokio::spawn(write_lines(writer, to_write));
    let (exit, mut exits) = mpsc::unbounded_channel();
    let outage = next_outage(&server);
    tokio::pin!(outage);

    let mut handlers = JoinSet::new();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let end = loop {
        line.clear();
        tokio::select! {
            read = reader.read_until(b'\n', &mut line) => match read {
                Ok(0) | Err(_) => break StdioEnd::InputClosed,
                Ok(_) => {}
            },
            Some(code) = exits.recv() => break StdioEnd::Exit(code),
            code = &mut outage => break StdioEnd::Exit(code),
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Message::parse(text) {
            Err(error) => send(&lines, error.to_string().into_bytes()),
            Ok(message) => {
                let server = Arc::clone(&server);
                let endpoint = Arc::clone(&endpoint);
                let lines = lines.clone();
                let exit = exit.clone();
                handlers.spawn(async move {
                    match server.handle(&endpoint, message).await {
                        Reply::Json(answer) => send(&lines, answer.to_string().into_bytes()),
                        Reply::Malformed => send(&lines, MALFORMED.to_vec()),
                        Reply::Exit(code) => {
                            let _ = exit.send(code);
                        }
                        Reply::Reset => {
                            let _ = exit.send(1);
                        }
                        // Hang: never answered. A status is never scripted
                        // for stdio (the server answers it with an error).
                        Reply::Nothing | Reply::Hang | Reply::HttpStatus { .. } => {}
                    }
                });
            }
        }
        // Reap finished handlers so a long run does not accumulate them.
        while handlers.try_join_next().is_some() {}
    };
    handlers.shutdown().await;
    drop(lines);
    let _ = writing.await;
    end
}

fn send(lines: &UnboundedSender<Vec<u8>>, line: Vec<u8>) {
    // Fails only once the writer is gone, when nothing can be answered.
    let _ = lines.send(line);
}

/// Writes each line and flushes it; shuts the writer down when every
/// sender is gone.
async fn write_lines<W: AsyncWrite + Unpin>(mut writer: W, mut lines: UnboundedReceiver<Vec<u8>>) {
    while let Some(mut line) = lines.recv().await {
        line.push(b'\n');
        if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Resolves with the exit code when the next outage starts; pends forever
/// if none is coming.
async fn next_outage(server: &Server) -> i32 {
    let clock = server.clock();
    let mut now = clock.elapsed();
    while let Some(change) = server.next_outage_change(now) {
        tokio::time::sleep_until(clock.at(change)).await;
        now = clock.elapsed().max(change);
        if let Some(code) = server.outage_at(now) {
            return code;
        }
    }
    std::future::pending().await
}
