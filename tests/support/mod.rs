//! Support shared by the integration tests: real MCP peers to put behind the
//! proxy, a raw client to talk to it, and a bounded wait.
//!
//! - [`everything`]: the third-party `server-everything`, run over stdio by `node`.
//! - [`backend`]: [`TestBackend`], a tower-mcp HTTP server on 127.0.0.1 that can
//!   be stopped and restarted on the same port.
//! - [`client`]: [`RawClient`], streamable HTTP by hand.
//! - [`bins`]: the workspace's binaries (`mcp-proxy`, `mcp-harness`), built fresh.
//!
//! Nothing here is a mock of MCP: every peer is a real process or a real
//! socket, and every child or server is gone when its owner is dropped.

pub mod backend;
pub mod bins;
pub mod client;
pub mod everything;
pub mod proxy;

use std::future::Future;
use std::time::Duration;

pub use backend::{ProgressDelivery, TestBackend, TestBackendBuilder};
pub use client::{ClientError, GetStream, RawClient, RawResponse, StreamEvent};
pub use everything::{StdioCommand, server_everything};

/// How long [`wait_until`] and [`wait_for`] wait by default: generous, since
/// CI machines are slow and the tests never assert on speed.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often they check.
pub const WAIT_POLL: Duration = Duration::from_millis(50);

/// Wait until `condition` holds, checking every [`WAIT_POLL`] for at most
/// [`WAIT_TIMEOUT`].
///
/// # Panics
///
/// When the condition still does not hold, naming `what` was awaited.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, || {
        let check = condition();
        async move { check.await.then_some(()) }
    })
    .await;
}

/// Wait until `probe` returns `Some`, and return its value; same bounds as
/// [`wait_until`].
///
/// # Panics
///
/// When `probe` still returns `None`, naming `what` was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(what, WAIT_TIMEOUT, probe).await
}

/// [`wait_for`] with its own time limit.
///
/// # Panics
///
/// When `probe` still returns `None` after `timeout`.
pub async fn wait_for_within<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    // Bounded by count as well as by time: one probe per poll period, plus
    // the first.
    let attempts = timeout.as_millis() / WAIT_POLL.as_millis().max(1) + 1;
    let deadline = tokio::time::Instant::now() + timeout;
    for _ in 0..attempts {
        // A probe that hangs (a request to a dead peer) must not outlive the
        // deadline either.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(remaining.max(WAIT_POLL), probe()).await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Run `command` to completion (async), with stdout and stderr piped; the
/// child is killed, and the test panics naming `what`, if it takes longer
/// than `bound`.
pub async fn output_within(
    mut command: tokio::process::Command,
    bound: Duration,
    what: &str,
) -> std::process::Output {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    // On timeout the future, and with it the child, is dropped: killed.
    tokio::time::timeout(bound, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {bound:?}"))
        .unwrap_or_else(|error| panic!("wait for {what}: {error}"))
}
