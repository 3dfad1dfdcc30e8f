//! Stdio backends as operating-system processes: the platform's
//! [`ProcessSpawner`], the process group of each child, and how it is killed.
//!
//! A stdio backend is often a launcher (`npx` → `node`, `uvx` → `python`):
//! killing only the process we started would leave its children running.
//! Every child is therefore started as the leader of its own process group,
//! and signals go to the whole group. Once the leader has been reaped the
//! group is swept with SIGKILL a last time and then never signalled again,
//! so a later process that happens to reuse the number is never hit.
//!
//! A child gets a minimal environment unless its backend says
//! `inherit_env: true`: the variables of [`PASSED_ENV`] (what a launcher
//! needs to find programs, a home and a locale) plus the backend's `env`,
//! so the proxy's own secrets (tokens, cloud credentials) do not reach
//! every server it starts.

use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::platform::{ChildCommand, ChildSignals, SpawnedChild, Spawner};

/// Starts stdio backends as child processes, each the leader of its own
/// process group, killed (with its group) when dropped.
#[derive(Debug, Default)]
pub(crate) struct ProcessSpawner;

impl Spawner for ProcessSpawner {
    fn spawn(&self, command: &ChildCommand) -> std::io::Result<SpawnedChild> {
        let mut builder = Command::new(&command.program);
        if !command.inherit_env {
            builder
                .env_clear()
                .envs(std::env::vars_os().filter(|(name, _)| passed(name)));
        }
        builder
            .args(&command.args)
            .envs(&command.env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &command.cwd {
            builder.current_dir(cwd);
        }
        let mut child = builder.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("child process has no stdio pipes"));
        };
        let group = Arc::new(ProcessGroup::new(&command.name, child.id()));
        Ok(SpawnedChild {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            exit: Box::pin(async move { child.wait().await.map(describe_exit) }),
            signals: group,
        })
    }
}

/// The variables of the proxy's environment a child gets without
/// `inherit_env` (and every `LC_*`).
pub(crate) const PASSED_ENV: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "SHELL", "TERM",
];

/// Whether the variable `name` passes to a child without `inherit_env`.
fn passed(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|name| PASSED_ENV.contains(&name) || name.starts_with("LC_"))
}

/// The process group of one child (its id is the child's pid).
#[derive(Debug)]
pub(super) struct ProcessGroup {
    backend: String,
    pgid: Option<Pid>,
    /// Set once the group has been swept after the leader was reaped.
    swept: AtomicBool,
}

impl ProcessGroup {
    /// The group led by `pid` (`None` if the pid is unknown, which makes
    /// every signal a no-op).
    pub(super) fn new(backend: impl Into<String>, pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .filter(|&pid| pid > 0)
            .map(Pid::from_raw);
        Self {
            backend: backend.into(),
            pgid,
            swept: AtomicBool::new(false),
        }
    }

    /// The group id (the leader's pid).
    pub(super) fn id(&self) -> Option<u32> {
        self.pgid.and_then(|pgid| u32::try_from(pgid.as_raw()).ok())
    }

    /// Send `signal` to every process of the group, unless it has been swept.
    /// Returns whether some process received it.
    pub(super) fn signal(&self, signal: Signal) -> bool {
        if self.swept.load(Ordering::Acquire) {
            return false;
        }
        self.send(signal)
    }

    fn send(&self, signal: Signal) -> bool {
        let Some(pgid) = self.pgid else {
            return false;
        };
        match killpg(pgid, signal) {
            Ok(()) => {
                tracing::debug!(
                    backend = %self.backend,
                    pgid = pgid.as_raw(),
                    %signal,
                    "signalled process group"
                );
                true
            }
            Err(Errno::ESRCH) => false,
            Err(error) => {
                tracing::warn!(
                    backend = %self.backend,
                    pgid = pgid.as_raw(),
                    %signal,
                    %error,
                    "could not signal process group"
                );
                false
            }
        }
    }

    /// The leader has been reaped: SIGKILL whatever is left of the group
    /// (orphaned grandchildren), then never signal it again.
    pub(super) fn sweep(&self) {
        if !self.swept.swap(true, Ordering::AcqRel) && self.send(Signal::SIGKILL) {
            tracing::debug!(backend = %self.backend, "killed processes the backend left behind");
        }
    }
}

impl ChildSignals for ProcessGroup {
    fn id(&self) -> Option<u32> {
        ProcessGroup::id(self)
    }

    fn terminate(&self) -> bool {
        self.signal(Signal::SIGTERM)
    }

    fn kill(&self) -> bool {
        self.signal(Signal::SIGKILL)
    }

    fn sweep(&self) {
        ProcessGroup::sweep(self);
    }
}

/// Kills the child with SIGKILL when dropped, unless it was swept already:
/// held by the connection so that no child outlives its last handle.
#[derive(Debug)]
pub(super) struct KillOnDrop(pub Arc<dyn ChildSignals>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// Say how a process ended, for close reasons: `process exited with status
/// 1`, `process killed by signal 9 (SIGKILL)`.
pub(super) fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("process exited with status {code}");
    }
    match status.signal() {
        Some(number) => match Signal::try_from(number) {
            Ok(signal) => format!("process killed by signal {number} ({signal})"),
            Err(_) => format!("process killed by signal {number}"),
        },
        None => format!("process ended: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn describes_exits() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "process exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "process killed by signal 9 (SIGKILL)"
        );
    }

    /// The environment `sh -c env` sees when started by [`ProcessSpawner`].
    async fn child_env(inherit_env: bool) -> String {
        use tokio::io::AsyncReadExt;
        let command = ChildCommand {
            name: "env".into(),
            program: "sh".into(),
            args: vec!["-c".into(), "env".into()],
            env: [("FROM_CONFIG".to_owned(), "yes".to_owned())].into(),
            cwd: None,
            inherit_env,
        };
        let mut child = ProcessSpawner.spawn(&command).expect("sh starts");
        let mut out = String::new();
        child.stdout.read_to_string(&mut out).await.unwrap();
        child.exit.await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_child_gets_a_minimal_environment_unless_it_inherits() {
        // A variable of this process that is not passed: cargo sets several
        // (CARGO_*, RUST_*) for the tests it runs.
        let (name, value) = std::env::vars()
            .find(|(name, value)| {
                !passed(std::ffi::OsStr::new(name)) && !value.is_empty() && !value.contains('\n')
            })
            .expect("the test process has a variable outside the passed list");
        let line = format!("{name}={value}\n");
        let minimal = child_env(false).await;
        assert!(!minimal.contains(&line), "{name} leaked:\n{minimal}");
        assert!(minimal.contains("FROM_CONFIG=yes\n"), "{minimal}");
        if let Ok(path) = std::env::var("PATH") {
            assert!(minimal.contains(&format!("PATH={path}\n")), "{minimal}");
        }
        let inherited = child_env(true).await;
        assert!(inherited.contains(&line), "{name} missing:\n{inherited}");
        assert!(inherited.contains("FROM_CONFIG=yes\n"), "{inherited}");
    }

    #[test]
    fn passed_variables() {
        for name in ["PATH", "HOME", "LC_ALL", "LC_CTYPE", "TERM"] {
            assert!(passed(std::ffi::OsStr::new(name)), "{name}");
        }
        for name in ["AWS_SECRET_ACCESS_KEY", "PATHX", "LANGUAGE", "lc_all"] {
            assert!(!passed(std::ffi::OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn an_unknown_group_is_never_signalled() {
        let group = ProcessGroup::new("b", None);
        assert!(!group.signal(Signal::SIGKILL));
        assert_eq!(group.id(), None);
        // pid 0 would mean "my own group": never.
        assert_eq!(ProcessGroup::new("b", Some(0)).id(), None);
        assert_eq!(ProcessGroup::new("b", Some(u32::MAX)).id(), None);
    }

    #[tokio::test]
    async fn kills_the_whole_group_and_stops_after_the_sweep() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let group = std::sync::Arc::new(ProcessGroup::new("b", child.id()));
        assert!(group.signal(Signal::SIGTERM));
        let status = child.wait().await.unwrap();
        assert_eq!(
            describe_exit(status),
            "process killed by signal 15 (SIGTERM)"
        );
        group.sweep();
        assert!(!group.signal(Signal::SIGKILL));
        drop(KillOnDrop(group as std::sync::Arc<dyn ChildSignals>));
    }
}
