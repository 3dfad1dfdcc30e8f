//! The supervisor: the task that reaps the child. When the child exits, or
//! its stdout closes (then the child gets a grace period before it is
//! killed), it works out why the connection ended (`process exited with
//! status 1`, a failed write to stdin first) and closes the request table;
//! shutdown waits for it through [`wait_for_exit`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::pending::Pending;
use crate::platform::{BoxFuture, ChildSignals};

/// After the child exits, how long its stdout may stay open (held by a
/// grandchild) while the reader drains what the child wrote last.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

/// After stdout closes, how long the child may take to exit before it is
/// killed: a backend without stdout is of no use.
const STDOUT_CLOSED_GRACE: Duration = Duration::from_secs(2);

/// Wait until the supervisor has reaped the child (and swept its group).
pub(super) async fn wait_for_exit(
    exited: &mut watch::Receiver<Option<String>>,
    limit: Duration,
) -> bool {
    // A closed channel means the supervisor is gone (runtime shutting down):
    // nothing left to wait for.
    tokio::time::timeout(limit, exited.wait_for(Option::is_some))
        .await
        .is_ok()
}

/// What the supervisor needs that the connection handles do not keep.
pub(super) struct Supervision {
    pub(super) reader: JoinHandle<()>,
    pub(super) exited: watch::Sender<Option<String>>,
    pub(super) write_error: Arc<Mutex<Option<String>>>,
}

/// Reap the child, decide why the connection ended, and close it.
pub(super) async fn supervise(
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
