//! A backend that runs as a child process speaking MCP on stdin/stdout.
//!
//! One [`StdioConnection`] owns one child and four tasks around it:
//!
//! - the **writer** sends one JSON message per line to stdin, in the order
//!   they were queued: requests, notifications, replies to the child's own
//!   requests, and the cancellations of abandoned requests. Requests,
//!   notifications and replies take one of [`OUTGOING_QUEUE`] places, given
//!   back once written. A child that stops reading its stdin uses them up;
//!   a request then waits for a place, which its call's deadline bounds, and
//!   one given up while waiting was never registered, so it costs nothing. A
//!   reply that finds no place is dropped (waiting would stop the reader,
//!   and the child is not reading anyway). Cancellations need no place:
//!   there is at most one per request that got one;
//! - the **reader** splits stdout into lines of at most [`MAX_LINE_BYTES`]
//!   and routes each message (see `inbound.rs`); a line that is not
//!   valid UTF-8 or JSON is logged and skipped, never fatal;
//! - the **stderr logger** logs the child's free-form stderr at debug level;
//! - the **supervisor** reaps the child, works out why the connection ended
//!   (`process exited with status 1`) and closes the request table.
//!
//! The child comes from the platform's [`Spawner`](crate::platform::Spawner):
//! on the operating system it leads its own process group (`child.rs`), so
//! shutdown and the kill on drop reach the grandchildren a launcher like
//! `npx` starts; in simulation it is an in-process task on pipes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::child::KillOnDrop;
use super::pending::{CancelSink, Pending};
use super::{ConnectSettings, EventSink, ProgressSink, UpstreamError, handshake, inbound};
use crate::config::TransportConfig;
use crate::jsonrpc;
use crate::platform::{BoxFuture, ChildCommand, ChildSignals, SpawnedChild};

/// Messages waiting for the child to read its stdin, at most.
pub const OUTGOING_QUEUE: usize = 256;

/// The longest stdout line (one JSON-RPC message) accepted; a longer one is
/// logged and skipped up to its newline.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The longest stderr line kept for the log; the rest of it is skipped.
const MAX_STDERR_LINE_BYTES: usize = 8 * 1024;

/// How long shutdown waits for the child to exit after closing its stdin,
/// and again after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the kernel to report a SIGKILLed child as dead.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// After the child exits, how long its stdout may stay open (held by a
/// grandchild) while the reader drains what the child wrote last.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// After stdout closes, how long the child may take to exit before it is
/// killed: a backend without stdout is of no use.
const STDOUT_CLOSED_GRACE: Duration = Duration::from_secs(2);

/// A live MCP session with a child process. Cheap to clone; the child is
/// killed (with its process group) when the last clone is dropped.
#[derive(Clone)]
pub struct StdioConnection {
    inner: Arc<Inner>,
}

struct Inner {
    pending: Arc<Pending>,
    outgoing: mpsc::UnboundedSender<Queued>,
    /// Places in the queue for requests, notifications and replies.
    room: Arc<Semaphore>,
    /// Cancelled to close the child's stdin (first step of shutdown).
    close_stdin: CancellationToken,
    /// `Some(how it ended)` once the child has been reaped.
    exited: watch::Receiver<Option<String>>,
    group: Arc<dyn ChildSignals>,
    /// Stops the reader, writer and stderr tasks when the last handle goes.
    tasks: CancellationToken,
    /// Set by the first `shutdown`; held while it runs.
    shutdown: tokio::sync::Mutex<bool>,
    /// Declared last: kills the group after everything else let go.
    _kill_on_drop: KillOnDrop,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

impl StdioConnection {
    /// Start the child and run the `initialize` handshake within
    /// `settings.init_timeout`; returns the connection and the backend's
    /// `initialize` result. On any failure the child is killed.
    pub async fn connect(
        transport: &TransportConfig,
        settings: &ConnectSettings,
        events: EventSink,
    ) -> Result<(Self, Value), UpstreamError> {
        let TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
        } = transport
        else {
            return Err(UpstreamError::Connect(format!(
                "`{}` is not a stdio transport",
                transport.kind()
            )));
        };
        let command = ChildCommand {
            name: settings.backend.clone(),
            program: command.clone(),
            args: args.clone(),
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cwd: cwd.clone(),
        };
        let child = settings.platform.spawner.spawn(&command).map_err(|error| {
            UpstreamError::Connect(format!("failed to start `{}`: {error}", command.program))
        })?;
        let (connection, supervision, exit) = Self::start(&settings.backend, child, events);
        let pid = connection.pid();
        tracing::debug!(backend = %settings.backend, ?pid, command = %command.program, "started stdio backend");
        tokio::spawn(supervise(
            exit,
            supervision,
            Arc::clone(&connection.inner.pending),
            Arc::clone(&connection.inner.group),
        ));

        let handshake = connection.initialize(settings);
        let outcome = match tokio::time::timeout(settings.init_timeout, handshake).await {
            Ok(Ok(result)) => return Ok((connection, result)),
            Ok(Err(error)) => handshake::as_connect_failure(error),
            Err(_) => UpstreamError::InitTimeout(settings.init_timeout),
        };
        connection.inner.group.kill();
        Err(outcome)
    }

    /// Wire the tasks around a freshly spawned child; the supervisor, which
    /// waits for its exit, is started by the caller.
    fn start(
        backend: &str,
        child: SpawnedChild,
        events: EventSink,
    ) -> (
        Self,
        Supervision,
        BoxFuture<'static, std::io::Result<String>>,
    ) {
        let SpawnedChild {
            stdin,
            stdout,
            stderr,
            exit,
            signals: group,
        } = child;
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(OUTGOING_QUEUE));
        let cancels = outgoing.clone();
        let pending = Pending::new(
            backend,
            CancelSink::new(move |message| cancels.send(Queued::placeless(message)).is_ok()),
        );
        let tasks = CancellationToken::new();
        let close_stdin = CancellationToken::new();
        let write_error = Arc::new(Mutex::new(None));
        let (exited_tx, exited) = watch::channel(None);

        let writer = Writer {
            backend: backend.to_owned(),
            stdin,
            outgoing: outgoing_rx,
            close_stdin: close_stdin.clone(),
            stop: tasks.clone(),
            group: Arc::clone(&group),
            write_error: Arc::clone(&write_error),
        };
        tokio::spawn(writer.run());
        let reader = tokio::spawn(read_stdout(
            stdout,
            Arc::clone(&pending),
            events,
            (outgoing.clone(), Arc::clone(&room)),
            tasks.clone(),
        ));
        tokio::spawn(log_stderr(stderr, backend.to_owned(), tasks.clone()));

        let inner = Arc::new(Inner {
            pending,
            outgoing,
            room,
            close_stdin,
            exited,
            group: Arc::clone(&group),
            tasks,
            shutdown: tokio::sync::Mutex::new(false),
            _kill_on_drop: KillOnDrop(group),
        });
        (
            Self { inner },
            Supervision {
                reader,
                exited: exited_tx,
                write_error,
            },
            exit,
        )
    }

    async fn initialize(&self, settings: &ConnectSettings) -> Result<Value, UpstreamError> {
        let params = handshake::initialize_params(settings);
        let (message, in_flight) = self.inner.pending.start("initialize", Some(params), None)?;
        let in_flight = in_flight.without_cancel();
        let place = self.place().await?;
        self.send(message, place)?;
        let result = in_flight.wait().await?;
        handshake::negotiated_version(&result)?;
        self.notify("notifications/initialized", None).await?;
        Ok(result)
    }

    /// Wait for a place in the queue.
    async fn place(&self) -> Result<OwnedSemaphorePermit, UpstreamError> {
        // The semaphore is never closed; if it were, nothing could be sent.
        Arc::clone(&self.inner.room)
            .acquire_owned()
            .await
            .map_err(|_| self.inner.pending.not_sent())
    }

    /// Queue a message in `place`.
    fn send(&self, message: Value, place: OwnedSemaphorePermit) -> Result<(), UpstreamError> {
        let queued = Queued {
            message,
            _place: Some(place),
        };
        self.inner
            .outgoing
            .send(queued)
            .map_err(|_| self.inner.pending.not_sent())
    }

    /// Send a request and wait for its answer. See [`super::Connection::request`].
    /// The request is registered only once it has a place in the queue, so
    /// a caller that gives up while waiting for one leaves nothing to cancel.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
    ) -> Result<Value, UpstreamError> {
        let place = self.place().await?;
        let (message, in_flight) = self.inner.pending.start(method, params, progress)?;
        if let Err(error) = self.send(message, place) {
            in_flight.abandon();
            return Err(error);
        }
        in_flight.wait().await
    }

    /// Queue a notification for the child.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), UpstreamError> {
        if self.inner.pending.is_closed() {
            return Err(self.inner.pending.not_sent());
        }
        let place = self.place().await?;
        self.send(jsonrpc::notification(method, params), place)
    }

    /// Resolves once the child has exited (or its stdout closed, or writing
    /// to it failed), or the connection was shut down.
    pub async fn closed(&self) {
        self.inner.pending.closed().await;
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.pending.is_closed()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.inner.pending.close_reason()
    }

    /// The child's pid (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.inner.group.id()
    }

    /// Close stdin, wait up to 2 s for the child to exit, SIGTERM its process
    /// group, wait up to 2 s more, then SIGKILL the group. Requests in flight
    /// fail with [`UpstreamError::Lost`]. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shutdown.lock().await;
        if *done {
            return;
        }
        *done = true;
        let backend = self.inner.pending.backend();
        self.inner.pending.close("connection shut down");
        self.inner.close_stdin.cancel();
        let mut exited = self.inner.exited.clone();
        if wait_for_exit(&mut exited, SHUTDOWN_GRACE).await {
            return;
        }
        tracing::debug!(
            backend,
            "child still running after stdin closed; sending SIGTERM"
        );
        self.inner.group.terminate();
        if wait_for_exit(&mut exited, SHUTDOWN_GRACE).await {
            return;
        }
        tracing::warn!(backend, "child ignored SIGTERM; sending SIGKILL");
        self.inner.group.kill();
        if !wait_for_exit(&mut exited, KILL_WAIT).await {
            tracing::warn!(backend, "child still not reaped after SIGKILL");
        }
    }
}

/// Wait until the supervisor has reaped the child (and swept its group).
async fn wait_for_exit(exited: &mut watch::Receiver<Option<String>>, limit: Duration) -> bool {
    // A closed channel means the supervisor is gone (runtime shutting down):
    // nothing left to wait for.
    tokio::time::timeout(limit, exited.wait_for(Option::is_some))
        .await
        .is_ok()
}

/// What the supervisor needs that the connection handles do not keep.
struct Supervision {
    reader: JoinHandle<()>,
    exited: watch::Sender<Option<String>>,
    write_error: Arc<Mutex<Option<String>>>,
}

/// Reap the child, decide why the connection ended, and close it.
async fn supervise(
    mut exit: BoxFuture<'static, std::io::Result<String>>,
    supervision: Supervision,
    pending: Arc<Pending>,
    group: Arc<dyn ChildSignals>,
) {
    let Supervision {
        mut reader,
        exited,
        write_error,
    } = supervision;
    let mut stdout_closed_first = false;
    let status = tokio::select! {
        biased;
        status = &mut exit => {
            // Let the reader take in what the child wrote before it died.
            let _ = tokio::time::timeout(EXIT_DRAIN, &mut reader).await;
            status
        }
        _ = &mut reader => {
            match tokio::time::timeout(STDOUT_CLOSED_GRACE, &mut exit).await {
                Ok(status) => status,
                Err(_) => {
                    stdout_closed_first = true;
                    group.kill();
                    exit.await
                }
            }
        }
    };
    let exit = match status {
        Ok(how) => how,
        Err(error) => format!("could not wait for the process: {error}"),
    };
    group.sweep();
    let write_error = write_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let reason = match (write_error, stdout_closed_first) {
        (Some(write_error), _) => format!("{write_error}; {exit}"),
        (None, true) => format!("process closed its stdout and was killed; {exit}"),
        (None, false) => exit.clone(),
    };
    pending.close(reason);
    let _ = exited.send(Some(exit));
}

/// A message waiting for the writer, holding its place in the queue (a
/// cancellation holds none) until it is written.
struct Queued {
    message: Value,
    _place: Option<OwnedSemaphorePermit>,
}

impl Queued {
    fn placeless(message: Value) -> Self {
        Self {
            message,
            _place: None,
        }
    }
}

/// Sends queued messages to the child's stdin, one per line.
struct Writer {
    backend: String,
    stdin: Box<dyn AsyncWrite + Send + Unpin>,
    outgoing: mpsc::UnboundedReceiver<Queued>,
    close_stdin: CancellationToken,
    stop: CancellationToken,
    group: Arc<dyn ChildSignals>,
    write_error: Arc<Mutex<Option<String>>>,
}

impl Writer {
    async fn run(mut self) {
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

/// How [`read_capped_line`] ended.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
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
async fn read_capped_line<R: AsyncBufRead + Unpin>(
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
async fn read_stdout<R: AsyncRead + Unpin>(
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
                    .map(|message| inbound::route(message, &pending, &events))
                    .unwrap_or_default()
                {
                    let (queue, room) = &outgoing;
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

/// Decode one stdout line; anything that is not a UTF-8 JSON value is
/// logged and skipped. Blank lines are skipped quietly.
fn parse_line(line: &[u8], backend: &str) -> Option<Value> {
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
async fn log_stderr<R: AsyncRead + Unpin>(stderr: R, backend: String, stop: CancellationToken) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    use serde_json::json;
    use tokio::sync::mpsc::UnboundedReceiver;

    use super::*;
    use crate::upstream::{Connection, PROTOCOL_VERSION};

    /// A small MCP server in Python, its behaviour picked by argv[1] and by
    /// the method called. Real process, real pipes.
    const FAKE_SERVER: &str = r#"
import json, os, signal, subprocess, sys, time
mode = sys.argv[1]
out = sys.stdout.buffer
def send(message):
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()
def raw(data):
    out.write(data)
    out.flush()
def result(mid, value):
    send({"jsonrpc": "2.0", "id": mid, "result": value})
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
grandchild = None
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "300"])
if mode == "exit-at-start":
    sys.exit(4)
sys.stderr.write("fake server starting in mode " + mode + "\n")
sys.stderr.flush()
initialized = False
gathered = []
cancelled = []
answers = {}
asking = None
for line in sys.stdin.buffer:
    message = json.loads(line)
    method = message.get("method")
    mid = message.get("id")
    params = message.get("params") or {}
    if method is None:
        answers[mid] = message
        if asking is not None and len(answers) == 2:
            result(asking, answers)
        continue
    if mid is None:
        if method == "notifications/initialized":
            initialized = True
        elif method == "notifications/cancelled":
            cancelled.append(params)
        continue
    if method == "initialize":
        if mode == "silent":
            continue
        if mode == "init-error":
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32099, "message": "not today", "data": [1]}})
            continue
        if mode == "exit-in-init":
            sys.exit(5)
        version = "1999-01-01" if mode == "old-version" else params["protocolVersion"]
        result(mid, {"protocolVersion": version, "capabilities": {"tools": {}},
                     "serverInfo": {"name": "fake", "version": "1.0"}, "sawParams": params})
    elif method == "echo":
        result(mid, {"params": params, "initialized": initialized})
    elif method == "gather":
        gathered.append(message)
        if len(gathered) == params["n"]:
            for held in reversed(gathered):
                result(held["id"], {"tag": held["params"]["tag"]})
            gathered = []
    elif method == "fail":
        send({"jsonrpc": "2.0", "id": mid,
              "error": {"code": -32042, "message": "nope", "data": {"why": ["because"], "n": 1.5}}})
    elif method == "progress":
        token = params["_meta"]["progressToken"]
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": token, "progress": 1, "total": 2, "message": "half"}})
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": "never-issued", "progress": 1}})
        result(mid, {"sawToken": token})
    elif method == "garbage":
        raw(b"this is not json\n")
        raw(b"\xff\xfe{\"jsonrpc\": \"2.0\"}\n")
        raw(b"x" * (17 * 1024 * 1024) + b"\n")
        raw(b"\n")
        raw(b"[1, 2]\n")
        raw(b"\"just a string\"\n")
        send({"jsonrpc": "2.0", "id": 999999, "result": {}})
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
        send([{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "batched"}},
              {"jsonrpc": "2.0", "id": mid, "result": {"survived": True}}])
    elif method == "ask":
        asking = mid
        answers = {}
        send({"jsonrpc": "2.0", "id": "s1", "method": "ping"})
        send({"jsonrpc": "2.0", "id": "s2", "method": "roots/list"})
    elif method == "notify":
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        result(mid, {})
    elif method == "env":
        result(mid, {"x": os.environ.get("MCP_TEST_X"), "cwd": os.getcwd()})
    elif method == "pids":
        result(mid, {"pids": [os.getpid()] + ([grandchild.pid] if grandchild else [])})
    elif method == "cancelled":
        result(mid, {"cancelled": cancelled})
    elif method == "exit":
        sys.exit(3)
    elif method == "hang":
        pass
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown method"}})
if mode == "stubborn":
    while True:
        time.sleep(1)
"#;

    /// Generous bound on anything a test waits for: tests assert outcomes,
    /// not speed.
    const PATIENCE: Duration = Duration::from_secs(30);

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, future)
            .await
            .expect("test timed out")
    }

    fn fake(mode: &str, env: &[(&str, &str)]) -> TransportConfig {
        TransportConfig::Stdio {
            command: "python3".into(),
            args: vec!["-c".into(), FAKE_SERVER.into(), mode.into()],
            env: env
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            cwd: None,
        }
    }

    fn settings() -> ConnectSettings {
        ConnectSettings {
            platform: crate::platform::Platform::os(),
            backend: "fake".into(),
            client_name: "mcp-proxy-test".into(),
            client_version: "9.9.9".into(),
            init_timeout: Duration::from_secs(20),
        }
    }

    async fn start(mode: &str) -> (StdioConnection, Value, UnboundedReceiver<Value>) {
        let (events, received) = mpsc::unbounded_channel();
        let (connection, init) = within(StdioConnection::connect(
            &fake(mode, &[]),
            &settings(),
            events,
        ))
        .await
        .unwrap();
        (connection, init, received)
    }

    fn temp_path(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("mcp-proxy-stdio-{}-{n}-{name}", std::process::id()))
    }

    /// Gone means: no such process, or a zombie nobody has reaped yet (in a
    /// container the init process may not reap orphans).
    fn is_gone(pid: u32) -> bool {
        match kill(Pid::from_raw(i32::try_from(pid).unwrap()), None) {
            Err(Errno::ESRCH) => true,
            _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true),
        }
    }

    async fn wait_gone(pid: u32) {
        within(async {
            while !is_gone(pid) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    async fn pids(connection: &StdioConnection) -> Vec<u32> {
        let result = within(connection.request("pids", None, None))
            .await
            .unwrap();
        result["pids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pid| u32::try_from(pid.as_u64().unwrap()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn runs_the_initialize_handshake() {
        let (connection, init, _events) = start("normal").await;
        assert_eq!(init["protocolVersion"], json!(PROTOCOL_VERSION));
        assert_eq!(init["serverInfo"]["name"], json!("fake"));
        assert_eq!(
            init["sawParams"],
            json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "mcp-proxy-test", "version": "9.9.9"}})
        );
        let echo = within(connection.request("echo", Some(json!({"a": [1, "two"]})), None))
            .await
            .unwrap();
        assert_eq!(
            echo,
            json!({"params": {"a": [1, "two"]}, "initialized": true})
        );
        assert_eq!(connection.close_reason(), None);
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn works_through_the_connection_enum() {
        let (events, _received) = mpsc::unbounded_channel();
        let (connection, _) = within(Connection::connect(
            &fake("normal", &[]),
            &settings(),
            events,
        ))
        .await
        .unwrap();
        within(connection.notify("notifications/roots/list_changed", None))
            .await
            .unwrap();
        let echo = within(connection.request("echo", None, None))
            .await
            .unwrap();
        assert_eq!(echo["initialized"], json!(true));
        within(connection.shutdown()).await;
        assert_eq!(
            connection.close_reason().as_deref(),
            Some("connection shut down")
        );
        within(connection.closed()).await;
    }

    #[tokio::test]
    async fn passes_env_and_cwd() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let mut transport = fake("normal", &[("MCP_TEST_X", "forty-two")]);
        if let TransportConfig::Stdio { cwd, .. } = &mut transport {
            *cwd = Some(dir.clone());
        }
        let (events, _received) = mpsc::unbounded_channel();
        let (connection, _) = within(StdioConnection::connect(&transport, &settings(), events))
            .await
            .unwrap();
        let env = within(connection.request("env", None, None)).await.unwrap();
        assert_eq!(env["x"], json!("forty-two"));
        assert_eq!(env["cwd"], json!(dir.to_str().unwrap()));
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn concurrent_requests_answered_out_of_order_reach_their_callers() {
        let (connection, _, _events) = start("normal").await;
        let call = |tag: &'static str| {
            let connection = connection.clone();
            async move {
                connection
                    .request("gather", Some(json!({"n": 3, "tag": tag})), None)
                    .await
            }
        };
        let (a, b, c) = within(async { tokio::join!(call("a"), call("b"), call("c")) }).await;
        assert_eq!(a.unwrap(), json!({"tag": "a"}));
        assert_eq!(b.unwrap(), json!({"tag": "b"}));
        assert_eq!(c.unwrap(), json!({"tag": "c"}));
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn json_rpc_errors_are_relayed_unchanged() {
        let (connection, _, _events) = start("normal").await;
        let error = within(connection.request("fail", None, None))
            .await
            .unwrap_err();
        let UpstreamError::JsonRpc(error) = error else {
            panic!("expected a JSON-RPC error, got {error:?}")
        };
        assert_eq!(error.code, -32042);
        assert_eq!(error.message, "nope");
        assert_eq!(error.data, Some(json!({"why": ["because"], "n": 1.5})));
        // The connection is fine afterwards.
        within(connection.request("echo", None, None))
            .await
            .unwrap();
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn progress_reaches_the_caller_with_its_own_token() {
        let (connection, _, _events) = start("normal").await;
        let (sink, mut progress) = ProgressSink::bounded(16, Default::default());
        let params = json!({"name": "slow", "_meta": {"progressToken": "client-token"}});
        let result = within(connection.request("progress", Some(params), Some(sink)))
            .await
            .unwrap();
        // Upstream saw the connection's own token, not the caller's.
        assert_ne!(result["sawToken"], json!("client-token"));
        let notification = progress.try_recv().unwrap();
        assert_eq!(
            notification,
            json!({"jsonrpc": "2.0", "method": "notifications/progress",
                   "params": {"progressToken": "client-token", "progress": 1, "total": 2, "message": "half"}})
        );
        // The progress for a token never issued went nowhere.
        assert!(progress.try_recv().is_err());
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    #[tracing_test::traced_test]
    async fn survives_garbage_on_stdout() {
        let (connection, _, mut events) = start("normal").await;
        let answer = within(connection.request("garbage", None, None))
            .await
            .unwrap();
        assert_eq!(answer, json!({"survived": true}));
        let event = events.try_recv().unwrap();
        assert_eq!(event["params"]["data"], json!("batched"));
        // notifications/cancelled from the server is not an event.
        assert!(events.try_recv().is_err());
        let echo = within(connection.request("echo", Some(json!({"after": "garbage"})), None))
            .await
            .unwrap();
        assert_eq!(echo["params"], json!({"after": "garbage"}));
        assert_eq!(connection.close_reason(), None);
        assert!(logs_contain("not JSON"));
        assert!(logs_contain("not UTF-8"));
        assert!(logs_contain("over-long line"));
        assert!(logs_contain("never issued"));
        assert!(logs_contain("backend=fake"));
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn answers_server_requests() {
        let (connection, _, _events) = start("normal").await;
        let answers = within(connection.request("ask", None, None)).await.unwrap();
        assert_eq!(
            answers["s1"],
            json!({"jsonrpc": "2.0", "id": "s1", "result": {}})
        );
        assert_eq!(
            answers["s2"],
            json!({"jsonrpc": "2.0", "id": "s2",
                   "error": {"code": -32601, "message": "method not supported by mcp-proxy"}})
        );
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn notifications_go_to_the_event_sink() {
        let (connection, _, mut events) = start("normal").await;
        within(connection.request("notify", None, None))
            .await
            .unwrap();
        let event = within(events.recv()).await.unwrap();
        assert_eq!(
            event,
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        );
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn child_exit_fails_requests_in_flight_and_closes() {
        let (connection, _, _events) = start("normal").await;
        let pid = connection.pid().unwrap();
        let error = within(connection.request("exit", None, None))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            UpstreamError::Lost("process exited with status 3".into())
        );
        within(connection.closed()).await;
        assert_eq!(
            connection.close_reason().as_deref(),
            Some("process exited with status 3")
        );
        // Later requests fail at once.
        let later = within(connection.request("echo", None, None))
            .await
            .unwrap_err();
        assert_eq!(
            later,
            UpstreamError::Connect("process exited with status 3".into())
        );
        assert!(matches!(
            within(connection.notify("x", None)).await,
            Err(UpstreamError::Connect(_))
        ));
        wait_gone(pid).await;
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn a_dropped_request_is_cancelled_upstream() {
        let (connection, _, _events) = start("normal").await;
        // initialize was request 1, so this one is 2 upstream.
        let hang = tokio::time::timeout(
            Duration::from_millis(300),
            connection.request("hang", None, None),
        )
        .await;
        assert!(hang.is_err());
        let seen = within(connection.request("cancelled", None, None))
            .await
            .unwrap();
        let cancelled = seen["cancelled"].as_array().unwrap();
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0]["requestId"], json!(2));
        assert!(cancelled[0]["reason"].is_string());
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn shutdown_of_a_stubborn_child_kills_its_whole_group() {
        let (connection, _, _events) = start("stubborn").await;
        let pids = pids(&connection).await;
        assert_eq!(pids.len(), 2, "leader and grandchild");
        assert!(pids.iter().all(|&pid| !is_gone(pid)));
        let in_flight = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.request("hang", None, None).await })
        };
        // Ignores stdin EOF and SIGTERM: only SIGKILL ends it.
        within(connection.shutdown()).await;
        for pid in pids {
            wait_gone(pid).await;
        }
        // Lost if it was sent before the shutdown, never sent otherwise.
        let reason = "connection shut down".to_owned();
        let result = within(in_flight).await.unwrap();
        assert!(
            result == Err(UpstreamError::Lost(reason.clone()))
                || result == Err(UpstreamError::Connect(reason)),
            "{result:?}"
        );
        within(connection.closed()).await;
        // Idempotent.
        within(connection.shutdown()).await;
    }

    #[tokio::test]
    async fn shutdown_of_a_polite_child_closes_stdin() {
        let (connection, _, _events) = start("normal").await;
        let pid = connection.pid().unwrap();
        within(connection.shutdown()).await;
        wait_gone(pid).await;
        assert_eq!(
            connection.close_reason().as_deref(),
            Some("connection shut down")
        );
    }

    #[tokio::test]
    async fn dropping_the_last_handle_kills_the_group() {
        let (connection, _, _events) = start("stubborn").await;
        let pids = pids(&connection).await;
        let clone = connection.clone();
        drop(connection);
        assert!(
            pids.iter().all(|&pid| !is_gone(pid)),
            "a clone still holds it"
        );
        drop(clone);
        for pid in pids {
            wait_gone(pid).await;
        }
    }

    #[tokio::test]
    async fn a_missing_command_is_a_connect_error() {
        let transport = TransportConfig::Stdio {
            command: "mcp-proxy-no-such-command".into(),
            args: vec![],
            env: BTreeMap::new(),
            cwd: None,
        };
        let (events, _received) = mpsc::unbounded_channel();
        let error = within(StdioConnection::connect(&transport, &settings(), events))
            .await
            .err()
            .unwrap();
        let UpstreamError::Connect(message) = error else {
            panic!("expected Connect, got {error:?}")
        };
        assert!(
            message.starts_with("failed to start `mcp-proxy-no-such-command`: "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_silent_child_times_out_and_is_killed() {
        let pidfile = temp_path("pid");
        let transport = fake("silent", &[("PIDFILE", pidfile.to_str().unwrap())]);
        let settings = ConnectSettings {
            platform: crate::platform::Platform::os(),
            init_timeout: Duration::from_millis(1500),
            ..settings()
        };
        let (events, _received) = mpsc::unbounded_channel();
        let error = within(StdioConnection::connect(&transport, &settings, events))
            .await
            .err()
            .unwrap();
        assert_eq!(
            error,
            UpstreamError::InitTimeout(Duration::from_millis(1500))
        );
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&pidfile);
        wait_gone(pid).await;
    }

    #[tokio::test]
    async fn handshake_failures_are_reported_by_kind() {
        let (events, _received) = mpsc::unbounded_channel();
        let connect = |mode: &'static str| {
            let events = events.clone();
            async move {
                within(StdioConnection::connect(
                    &fake(mode, &[]),
                    &settings(),
                    events,
                ))
                .await
                .err()
                .unwrap()
            }
        };
        let UpstreamError::JsonRpc(error) = connect("init-error").await else {
            panic!("expected JsonRpc")
        };
        assert_eq!(
            (error.code, error.message.as_str(), error.data),
            (-32099, "not today", Some(json!([1])))
        );
        assert!(
            matches!(connect("old-version").await, UpstreamError::Protocol(message) if message.contains("1999-01-01"))
        );
        let UpstreamError::Connect(message) = connect("exit-in-init").await else {
            panic!("expected Connect")
        };
        assert!(
            message.contains("process exited with status 5"),
            "{message}"
        );
        let UpstreamError::Connect(message) = connect("exit-at-start").await else {
            panic!("expected Connect")
        };
        assert!(
            message.contains("process exited with status 4"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn capped_lines_are_read_in_bounded_memory() {
        let input: Vec<u8> = [&b"short\n"[..], &[b'y'; 100], b"\nlast without newline"].concat();
        // A tiny buffer so lines span many reads.
        let mut reader = BufReader::with_capacity(7, &input[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut line, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"short");
        assert_eq!(
            read_capped_line(&mut reader, &mut line, 10).await.unwrap(),
            LineRead::Truncated(100)
        );
        assert_eq!(line, vec![b'y'; 10]);
        assert_eq!(
            read_capped_line(&mut reader, &mut line, 100).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"last without newline");
        assert_eq!(
            read_capped_line(&mut reader, &mut line, 100).await.unwrap(),
            LineRead::Eof
        );
    }

    #[test]
    fn parses_only_utf8_json_lines() {
        assert_eq!(parse_line(b"{\"a\":1}\r", "b"), Some(json!({"a": 1})));
        assert_eq!(parse_line(b"  ", "b"), None);
        assert_eq!(parse_line(b"{", "b"), None);
        assert_eq!(parse_line(b"\xff", "b"), None);
    }

    /// A child in this process that is never signalled.
    #[derive(Debug)]
    struct Unsignalled;

    impl ChildSignals for Unsignalled {
        fn id(&self) -> Option<u32> {
            None
        }
        fn terminate(&self) -> bool {
            false
        }
        fn kill(&self) -> bool {
            false
        }
        fn sweep(&self) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_stops_reading_stdin_holds_at_most_the_queue() {
        // Its stdin is a one-byte pipe nobody reads; its stdout stays silent.
        let (stdin, _unread) = tokio::io::duplex(1);
        let (_silent, stdout) = tokio::io::duplex(1);
        let (_quiet, stderr) = tokio::io::duplex(1);
        let child = SpawnedChild {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            exit: Box::pin(std::future::pending()),
            signals: Arc::new(Unsignalled),
        };
        let (events, _received) = mpsc::unbounded_channel();
        let (connection, _supervision, _exit) = StdioConnection::start("deaf", child, events);
        // A message holds its place until written: the one stuck in the
        // pipe too.
        let calls: Vec<_> = (0..OUTGOING_QUEUE)
            .map(|_| {
                let connection = connection.clone();
                tokio::spawn(async move { connection.request("hang", None, None).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            connection.inner.room.available_permits(),
            0,
            "the queue is full"
        );
        assert_eq!(connection.inner.pending.len(), OUTGOING_QUEUE);
        let late = tokio::time::timeout(
            Duration::from_secs(1),
            connection.request("hang", None, None),
        )
        .await;
        assert!(
            late.is_err(),
            "a request that finds it full waits, up to its deadline"
        );
        assert_eq!(
            connection.inner.pending.len(),
            OUTGOING_QUEUE,
            "the request given up while waiting was never registered"
        );
        assert!(calls.iter().all(|call| !call.is_finished()));
    }
}
