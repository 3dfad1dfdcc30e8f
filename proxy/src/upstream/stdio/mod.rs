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
//!   and routes each message (see `../inbound.rs`); a line that is not
//!   valid UTF-8 or JSON is logged and skipped, never fatal;
//! - the **stderr logger** logs the child's free-form stderr at debug level;
//! - the **supervisor** reaps the child, works out why the connection ended
//!   (`process exited with status 1`) and closes the request table.
//!
//! The child comes from the platform's [`Spawner`](crate::platform::Spawner):
//! on the operating system it leads its own process group (`../child.rs`),
//! so shutdown and the kill on drop reach the grandchildren a launcher like
//! `npx` starts; in simulation it is an in-process task on pipes.
//!
//! Each task has its file: `writer.rs`, `reader.rs` (stdout and stderr)
//! and `supervisor.rs` (reaping the child, and the wait for it that
//! shutdown uses). This file is the public face: the [`StdioConnection`],
//! starting the child and wiring the tasks, the `initialize` handshake,
//! the queue's places, and shutdown.

mod reader;
mod supervisor;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::reader::{log_stderr, read_stdout};
use self::supervisor::{Supervision, supervise, wait_for_exit};
use self::writer::{Queued, Writer};
use super::child::KillOnDrop;
use super::pending::{CancelSink, Pending};
use super::{ConnectSettings, EventSink, ProgressSink, UpstreamError, handshake};
use crate::config::TransportConfig;
use crate::jsonrpc;
use crate::platform::{BoxFuture, ChildCommand, ChildSignals, SpawnedChild};

/// Messages waiting for the child to read its stdin, at most.
pub(crate) const OUTGOING_QUEUE: usize = 256;

/// The longest stdout line (one JSON-RPC message) accepted; a longer one is
/// logged and skipped up to its newline.
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How long shutdown waits for the child to exit after closing its stdin,
/// and again after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the kernel to report a SIGKILLed child as dead.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// A live MCP session with a child process. Cheap to clone; the child is
/// killed (with its process group) when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct StdioConnection {
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
    pub(crate) async fn connect(
        transport: &TransportConfig,
        settings: &ConnectSettings,
        events: EventSink,
    ) -> Result<(Self, Value), UpstreamError> {
        let TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
            inherit_env,
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
            inherit_env: *inherit_env,
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
    pub(crate) async fn request(
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
    pub(crate) async fn notify(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<(), UpstreamError> {
        if self.inner.pending.is_closed() {
            return Err(self.inner.pending.not_sent());
        }
        let place = self.place().await?;
        self.send(jsonrpc::notification(method, params), place)
    }

    /// Resolves once the child has exited (or its stdout closed, or writing
    /// to it failed), or the connection was shut down.
    pub(crate) async fn closed(&self) {
        self.inner.pending.closed().await;
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.pending.is_closed()
    }

    /// Why the connection ended, once it has.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.inner.pending.close_reason()
    }

    /// The child's pid (also its process group id).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.inner.group.id()
    }

    /// Close stdin, wait up to 2 s for the child to exit, SIGTERM its process
    /// group, wait up to 2 s more, then SIGKILL the group. Requests in flight
    /// fail with [`UpstreamError::Lost`]. Calling it again does nothing.
    pub(crate) async fn shutdown(&self) {
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
