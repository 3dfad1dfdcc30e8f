//! Stdio fakes in simulation: the proxy's child processes become tasks.
//!
//! A simulation has no processes. When the proxy asks its [`Spawner`] for
//! a stdio fake, this one runs the fake's server ([`fake::stdio::serve_as`])
//! as a task of the proxy's host, on in-memory pipes: the proxy writes the
//! fake's stdin and reads its stdout, exactly as with a child. "The process
//! exits" is the task ending, which closes its pipes; SIGTERM and SIGKILL
//! abort the task and cut its stdout at once (a killed process writes
//! nothing more, though the fake's own writer task may outlive the aborted
//! server by a moment); dropping the exit future before the fake ends kills
//! it too, as dropping a child does. Each spawn of a fake is a new generation (its own random
//! stream, as a respawned process has) with its own simulated pid, so the
//! journal tells respawns apart as it does in real mode.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use mcp_proxy::platform::{ChildCommand, ChildSignals, SpawnedChild, Spawner};
use tokio::io::AsyncWrite;
use tokio::task::AbortHandle;

use crate::fake::{self, FakeConfig, StdioEnd};

/// The program name a simulated stdio fake is started by; its one argument
/// is the fake's name.
pub const SIM_FAKE_PROGRAM: &str = "sim-fake";

/// Bytes the pipes between the proxy and a fake buffer each way.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The first simulated pid (small numbers look like system processes).
const FIRST_PID: u32 = 1000;

/// Starts stdio fakes as tasks of the current simulated host.
pub struct InProcessSpawner {
    /// Each stdio fake's config (generation 0), by name.
    fakes: BTreeMap<String, FakeConfig>,
    /// Spawns so far, per fake: the next generation.
    spawned: Mutex<BTreeMap<String, u64>>,
    next_pid: AtomicU32,
}

impl InProcessSpawner {
    /// A spawner for these fakes.
    pub fn new(fakes: impl IntoIterator<Item = FakeConfig>) -> Self {
        Self {
            fakes: fakes
                .into_iter()
                .map(|fake| (fake.spec.name.clone(), fake))
                .collect(),
            spawned: Mutex::default(),
            next_pid: AtomicU32::new(FIRST_PID),
        }
    }
}

impl Spawner for InProcessSpawner {
    fn spawn(&self, command: &ChildCommand) -> io::Result<SpawnedChild> {
        let name = match (command.program.as_str(), command.args.as_slice()) {
            (SIM_FAKE_PROGRAM, [name]) => name,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "only stdio fakes can run in simulation, not `{}`",
                        command.program
                    ),
                ));
            }
        };
        let Some(base) = self.fakes.get(name) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no stdio fake named {name:?}"),
            ));
        };
        let generation = {
            let mut spawned = self.spawned.lock().unwrap_or_else(PoisonError::into_inner);
            let count = spawned.entry(name.clone()).or_default();
            let generation = *count;
            *count += 1;
            generation
        };
        let config = FakeConfig {
            generation,
            ..base.clone()
        };
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let (stdin, fake_input) = tokio::io::duplex(PIPE_CAPACITY);
        let (fake_output, stdout) = tokio::io::duplex(PIPE_CAPACITY);
        let killed = Arc::new(AtomicBool::new(false));
        let fake_output = CutOnKill {
            inner: fake_output,
            killed: Arc::clone(&killed),
        };
        let task = tokio::spawn(fake::stdio::serve_as(config, pid, fake_input, fake_output));
        let signals = Arc::new(TaskSignals {
            pid,
            task: task.abort_handle(),
            killed,
            terminated: AtomicBool::new(false),
            swept: AtomicBool::new(false),
        });
        let watched = Arc::clone(&signals);
        let kill_on_drop = KillOnDrop(Arc::clone(&signals));
        Ok(SpawnedChild {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(tokio::io::empty()),
            exit: Box::pin(async move {
                let _kill_on_drop = kill_on_drop;
                Ok(match task.await {
                    Ok(StdioEnd::InputClosed) => "process exited with status 0".to_owned(),
                    Ok(StdioEnd::Exit(code)) => format!("process exited with status {code}"),
                    Err(_) if watched.terminated.load(Ordering::Acquire) => {
                        "process killed by signal 15 (SIGTERM)".to_owned()
                    }
                    Err(_) => "process killed by signal 9 (SIGKILL)".to_owned(),
                })
            }),
            signals,
        })
    }
}

/// Stops a fake's task the way signals stop a process.
#[derive(Debug)]
struct TaskSignals {
    pid: u32,
    task: AbortHandle,
    /// Set when it is stopped: its stdout takes no more writes.
    killed: Arc<AtomicBool>,
    /// Whether the task was stopped by `terminate`, to say so at its end.
    terminated: AtomicBool,
    swept: AtomicBool,
}

impl TaskSignals {
    fn stop(&self, terminate: bool) -> bool {
        if self.swept.load(Ordering::Acquire) || self.task.is_finished() {
            return false;
        }
        if terminate {
            self.terminated.store(true, Ordering::Release);
        }
        self.killed.store(true, Ordering::Release);
        self.task.abort();
        true
    }
}

/// Kills the fake when the exit future is dropped before the fake ended.
struct KillOnDrop(Arc<TaskSignals>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.stop(false);
    }
}

/// A fake's stdout that fails every write once the fake is killed.
struct CutOnKill<W> {
    inner: W,
    killed: Arc<AtomicBool>,
}

impl<W> CutOnKill<W> {
    fn cut(&self) -> Option<io::Error> {
        self.killed
            .load(Ordering::Acquire)
            .then(|| io::Error::new(io::ErrorKind::BrokenPipe, "the process was killed"))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CutOnKill<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl ChildSignals for TaskSignals {
    fn id(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn terminate(&self) -> bool {
        self.stop(true)
    }

    fn kill(&self) -> bool {
        self.stop(false)
    }

    fn sweep(&self) {
        self.swept.store(true, Ordering::Release);
    }
}
