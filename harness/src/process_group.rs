//! Children the harness starts in a process group of their own (a proxy
//! binary, a `--target-cmd` gateway), and how they end. One place, so every
//! child the harness owns goes the same way:
//!
//! - [`GroupChild::stop`]: SIGTERM to the whole group so it can stop
//!   gracefully, SIGKILL to it if the leader lingers, and once the leader
//!   is reaped, SIGKILL to the group again: whatever else of the group is
//!   left (a child the leader started in its group) goes too.
//! - dropping a [`GroupChild`] (an error path, a dropped future): SIGKILL to
//!   the group at once.
//! - [`kill_all`]: SIGKILL to every group still listed, for when the
//!   harness must exit at once (a second Ctrl-C) and no destructor runs.
//!
//! Every group is listed from its spawn until its `GroupChild` is dropped.
//! A list in the harness rather than a parent-death signal
//! (`PR_SET_PDEATHSIG`): that signal needs a `pre_exec` hook, which is
//! `unsafe` (forbidden in this workspace), and it reaches only the direct
//! child, not the rest of its group. Neither covers a SIGKILL of the
//! harness itself: then the groups outlive it.

use std::io;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The process groups of children spawned and not yet dropped.
static LIVE_GROUPS: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

fn live_groups() -> MutexGuard<'static, Vec<Pid>> {
    LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child leading a process group of its own; its group is SIGKILLed when
/// it is dropped.
#[derive(Debug)]
pub(crate) struct GroupChild {
    child: Child,
    group: Pid,
}

impl GroupChild {
    /// Spawns `command` as the leader of a new process group, and lists
    /// the group for [`kill_all`].
    pub(crate) fn spawn(command: &mut Command) -> io::Result<GroupChild> {
        command.process_group(0).kill_on_drop(true);
        // Listed under the same lock as the spawn: a `kill_all` meanwhile
        // waits for the group to be listed, and kills it too.
        let mut live = live_groups();
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the spawned child has no process id"))?;
        let group = Pid::from_raw(pid as i32);
        live.push(group);
        Ok(GroupChild { child, group })
    }

    /// The leader's process id, while it has not been reaped.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// How the leader exited, if it has, without waiting.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to the group, then SIGKILL if the leader has not exited
    /// within `grace`; once the leader is reaped, SIGKILL to the group for
    /// whatever of it is left. Nothing to signal for a leader already
    /// reaped but the rest of its group.
    pub(crate) async fn stop(mut self, grace: Duration) {
        if self.child.id().is_some() {
            let _ = killpg(self.group, Signal::SIGTERM);
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                let _ = killpg(self.group, Signal::SIGKILL);
                let _ = self.child.wait().await;
            }
        }
        kill_group(self.group);
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        kill_group(self.group);
        live_groups().retain(|group| *group != self.group);
    }
}

/// SIGKILL to `group`; a group with no process left (ESRCH) is fine.
fn kill_group(group: Pid) {
    let _ = killpg(group, Signal::SIGKILL);
}

/// SIGKILL to every group of a child the harness spawned and still holds,
/// for an exit that runs no destructors.
pub fn kill_all() {
    for group in live_groups().iter() {
        kill_group(*group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: i32) -> bool {
        // A zombie has exited: only a process still running counts.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim()
                .starts_with('Z')
        })
    }

    /// A `sleep` leading a group, and another `sleep` of the group that
    /// ignores SIGTERM (its pid is the first line of the leader's stdout).
    async fn leader_with_a_stubborn_member() -> (GroupChild, i32) {
        use tokio::io::AsyncBufReadExt;
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                "(trap '' TERM; exec sleep 60) & echo $!; exec sleep 60",
            ])
            .stdout(std::process::Stdio::piped());
        let mut child = GroupChild::spawn(&mut command).unwrap();
        let stdout = child.child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        (child, line.trim().parse().unwrap())
    }

    async fn gone(pid: i32) -> bool {
        for _ in 0..50 {
            if !running(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn stop_kills_the_rest_of_the_group_once_its_leader_exited() {
        let (child, member) = leader_with_a_stubborn_member().await;
        // The leader exits on SIGTERM at once; the member would stay.
        child.stop(Duration::from_secs(10)).await;
        assert!(gone(member).await, "the group's other process was killed");
    }

    #[tokio::test]
    async fn a_group_is_listed_from_its_spawn_until_it_is_dropped() {
        // (`kill_all` itself is not called here: it would kill the groups
        // of tests running alongside.)
        let (child, member) = leader_with_a_stubborn_member().await;
        let group = child.group;
        assert!(live_groups().contains(&group));
        drop(child);
        assert!(!live_groups().contains(&group));
        assert!(gone(member).await, "a drop kills the whole group");
    }
}
