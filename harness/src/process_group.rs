//! Stopping a child the harness started in a process group of its own (a
//! proxy binary, a `--target-cmd`): SIGTERM to the whole group so it can
//! stop gracefully, SIGKILL if it lingers. One place, so every child the
//! harness owns goes the same way.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;

/// SIGTERM to `child`'s process group, then SIGKILL if it has not exited
/// within `grace`; returns once it has been reaped. Nothing to do for a
/// child already reaped.
pub(crate) async fn stop(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// SIGKILL to `child`'s process group at once, for a drop (no waiting).
pub(crate) fn kill(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}
