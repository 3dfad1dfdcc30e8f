//! The stdio face: newline-delimited JSON-RPC over a reader and a writer.
//!
//! The fake-backend command runs [`serve`] on its stdin and stdout and
//! exits with the code [`serve`] returns; nothing here ends the process, so
//! tests drive the same code in-process over an in-memory pipe. Requests
//! are handled concurrently (a slow call does not hold up the next), and
//! one writer task keeps answers whole, one per line. A line longer than
//! [`MAX_LINE`] is skipped to its newline without being kept, answered with
//! a parse error, and the fake carries on.
//!
//! The endpoint in the journal is `stdio:<pid>`: a proxy that respawns the
//! fake shows up as a new endpoint. (In simulation, where a fake is a task,
//! [`serve_as`] names it by its simulated process id.)

use std::io;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;

use super::FakeConfig;
use super::protocol::{Face, Invalid, MALFORMED, Message, Reply, Server, UNPARSEABLE};

/// Longest input line (without its newline) read, as the proxy's stdio
/// transport allows; the rest of a longer one is skipped unread.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioEnd {
    /// The input reached its end (the proxy closed our stdin): exit 0.
    InputClosed,
    /// A scripted exit, reset (code 1) or outage: exit with this code.
    Exit(i32),
}

/// Serves MCP on `reader`/`writer` until the input ends or the script says
/// to exit. It first waits out the fake's `startup` delay, if it has one.
/// Started inside an outage, it returns at once without reading
/// (a respawned fake keeps failing while the outage lasts); otherwise it
/// returns when the next outage starts. Answers already written are flushed
/// and the writer shut down before it returns.
pub async fn serve<R, W>(cfg: FakeConfig, reader: R, writer: W) -> StdioEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_as(cfg, std::process::id(), reader, writer).await
}

/// [`serve`], journalling as the process `pid`.
pub async fn serve_as<R, W>(cfg: FakeConfig, pid: u32, reader: R, writer: W) -> StdioEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let server = Arc::new(Server::new(&cfg, Face::Stdio));
    // A slow start: nothing is read (nor an outage noticed) before it ends.
    tokio::time::sleep(server.startup()).await;
    if let Some(code) = server.outage_at(cfg.clock.elapsed()) {
        return StdioEnd::Exit(code);
    }
    let endpoint: Arc<str> = format!("stdio:{pid}").into();
    let (lines, to_write) = mpsc::unbounded_channel();
    let writing = tokio::spawn(write_lines(writer, to_write));
    let (exit, mut exits) = mpsc::unbounded_channel();
    let outage = next_outage(&server);
    tokio::pin!(outage);

    let mut handlers = JoinSet::new();
    let mut input = LineReader::new(BufReader::new(reader), MAX_LINE);
    let end = loop {
        let parsed = tokio::select! {
            biased;
            read = input.next_line() => match read {
                Ok(Some(Line::Complete(line))) => {
                    let text = line.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    Message::parse(text)
                }
                Ok(Some(Line::TooLong)) => Err(Invalid::line_too_long(MAX_LINE)),
                Ok(None) | Err(_) => break StdioEnd::InputClosed,
            },
            Some(code) = exits.recv() => break StdioEnd::Exit(code),
            code = &mut outage => break StdioEnd::Exit(code),
        };
        match parsed {
            Err(invalid) => {
                server.record(
                    &endpoint,
                    UNPARSEABLE,
                    invalid.id.as_ref(),
                    &Value::Null,
                    invalid.outcome,
                );
                send(&lines, invalid.answer.to_string().into_bytes());
            }
            Ok(message) => {
                let server = Arc::clone(&server);
                let endpoint = Arc::clone(&endpoint);
                let lines = lines.clone();
                let exit = exit.clone();
                handlers.spawn(async move {
                    match server.handle(&endpoint, message, None).await {
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

/// One line of input, as [`LineReader`] returns it.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    /// A line within the limit, without its newline.
    Complete(&'a [u8]),
    /// A line over the limit, skipped up to and including its newline.
    TooLong,
}

/// Splits input into lines of at most `limit` bytes, holding no more than
/// that: [`AsyncBufReadExt::read_until`] would keep any amount.
struct LineReader<R> {
    reader: R,
    limit: usize,
    line: Vec<u8>,
    /// The current line went over the limit; its rest is being skipped.
    too_long: bool,
    /// `line` was returned last time: clear it before reading on.
    returned: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            line: Vec::new(),
            too_long: false,
            returned: false,
        }
    }

    /// The next line; `None` at the end of the input. A last line without
    /// a newline counts as a line. Cancel-safe: what was read stays for the
    /// next call.
    async fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.returned {
            self.line.clear();
            self.returned = false;
        }
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                if std::mem::take(&mut self.too_long) {
                    return Ok(Some(Line::TooLong));
                }
                if self.line.is_empty() {
                    return Ok(None);
                }
                self.returned = true;
                return Ok(Some(Line::Complete(&self.line)));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let content = &available[..newline.unwrap_or(available.len())];
            if !self.too_long {
                let needed = self.line.len() + content.len();
                if needed > self.limit {
                    self.too_long = true;
                    self.line = Vec::new();
                } else {
                    if needed > self.line.capacity() {
                        // Grow by doubling, but never past the limit.
                        let grown = needed.max(2 * self.line.capacity()).min(self.limit);
                        self.line.reserve_exact(grown - self.line.len());
                    }
                    self.line.extend_from_slice(content);
                }
            }
            let used = newline.map_or(available.len(), |at| at + 1);
            self.reader.consume(used);
            if newline.is_some() {
                if std::mem::take(&mut self.too_long) {
                    return Ok(Some(Line::TooLong));
                }
                self.returned = true;
                return Ok(Some(Line::Complete(&self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = LineReader::new(BufReader::with_capacity(4, input), limit);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(match line {
                Line::Complete(bytes) => Some(bytes.to_vec()),
                Line::TooLong => None,
            });
            assert!(reader.line.capacity() <= limit, "kept more than the limit");
        }
        lines
    }

    #[tokio::test]
    async fn lines_over_the_limit_are_skipped_whole_and_the_rest_read() {
        let input = b"12345678\n123456789\n\nabc\n0123456789abcdef0123456789\nend";
        assert_eq!(
            lines(input, 8).await,
            [
                Some(b"12345678".to_vec()),
                None,
                Some(Vec::new()),
                Some(b"abc".to_vec()),
                None,
                Some(b"end".to_vec()),
            ]
        );
        // A last line over the limit without a newline is still reported.
        assert_eq!(
            lines(b"ok\n123456789", 8).await,
            [Some(b"ok".to_vec()), None]
        );
    }
}
