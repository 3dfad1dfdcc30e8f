//! A target gateway the harness starts itself (`run --target-cmd`,
//! `bench --target-cmd`): started once the fakes or the echo backend listen
//! (a gateway may drop a backend that is down when it starts), and stopped
//! when done. One place, so a run and a bench start and stop it the same way.
//!
//! The command runs as `sh -c "exec COMMAND"` in a process group of its
//! own, its output in a log file: the process it execs is the one whose
//! CPU time the bench measures, so COMMAND is one program with its
//! arguments (no `VAR=value` prefix, `&&` or pipe: use `env VAR=value
//! program`). The group is what is stopped (`process_group`: SIGTERM, then
//! SIGKILL if it lingers, then SIGKILL to what is left of the group; SIGKILL
//! when dropped, or on a second Ctrl-C). A child the gateway starts in its
//! own group goes with it; one it puts in a group of its own does not (our
//! `mcp-proxy` puts each stdio backend in its own group and stops them
//! itself; a stdio fake left behind exits on end of input). It is ready
//! when its target's port accepts a connection, which nothing may do
//! before it starts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hyper::http::Uri;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::process_group::GroupChild;

/// How long the command may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of its log an error quotes.
const LOG_TAIL_LINES: usize = 10;

/// Why a target command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TargetCmdError {
    /// The target's URL names no host and port to wait for.
    #[error("--target {0} has no host to wait for")]
    NoAddress(String),
    /// Something already accepts connections where the target should.
    #[error("{0} already accepts connections before the command runs: stop what listens there")]
    PortInUse(String),
    /// The log file could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `sh` could not be spawned.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited before accepting connections.
    #[error("`{command}` exited ({status}) before {address} accepted connections; its log:\n{log}")]
    Exited {
        /// The command.
        command: String,
        /// How it exited.
        status: String,
        /// Where it should have listened.
        address: String,
        /// The end of its output.
        log: String,
    },
    /// The run was cancelled (Ctrl-C) while it started.
    #[error("interrupted while `{command}` started")]
    Interrupted {
        /// The command.
        command: String,
    },
    /// It did not accept connections in time.
    #[error(
        "`{command}`: nothing accepted connections at {address} within {READY_TIMEOUT:?}; its log:\n{log}"
    )]
    NotReady {
        /// The command.
        command: String,
        /// Where it should have listened.
        address: String,
        /// The end of its output.
        log: String,
    },
}

/// A running target command; [`TargetProcess::stop`] ends it, and so
/// does dropping it (SIGKILL to its whole process group).
pub struct TargetProcess {
    child: GroupChild,
    /// Where its output goes.
    log: PathBuf,
}

impl TargetProcess {
    /// Runs `command`, its output to `log`, and waits until the host and
    /// port of `url` accept a TCP connection; stops it if `cancel` fires
    /// meanwhile.
    pub async fn start(
        command: &str,
        url: &str,
        log: &Path,
        cancel: &CancellationToken,
    ) -> Result<Self, TargetCmdError> {
        let address = address_of(url).ok_or_else(|| TargetCmdError::NoAddress(url.into()))?;
        // Readiness is "the port accepts": something already there would
        // pass for the command, and be measured in its place.
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            return Err(TargetCmdError::PortInUse(address));
        }
        let log_file = std::fs::File::create(log).map_err(|source| TargetCmdError::Log {
            path: log.to_owned(),
            source,
        })?;
        let log_err = log_file.try_clone().map_err(|source| TargetCmdError::Log {
            path: log.to_owned(),
            source,
        })?;
        let child = GroupChild::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(format!("exec {command}"))
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err),
        )
        .map_err(|source| TargetCmdError::Spawn {
            command: command.into(),
            source,
        })?;
        let mut process = TargetProcess {
            child,
            log: log.to_owned(),
        };
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return Ok(process);
            }
            if let Some(status) = process.exited() {
                return Err(TargetCmdError::Exited {
                    command: command.into(),
                    status,
                    address,
                    log: tail(log),
                });
            }
            if cancel.is_cancelled() {
                process.stop().await;
                return Err(TargetCmdError::Interrupted {
                    command: command.into(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                process.stop().await;
                return Err(TargetCmdError::NotReady {
                    command: command.into(),
                    address,
                    log: tail(log),
                });
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process the command execs, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether it has exited (with its status), without waiting.
    pub fn exited(&mut self) -> Option<String> {
        self.child.exited().map(|status| status.to_string())
    }

    /// SIGTERM to its process group, SIGKILL if it lingers, then SIGKILL
    /// to what is left of the group.
    pub async fn stop(self) {
        self.child.stop(STOP_TIMEOUT).await;
    }
}

/// `host:port` of an `http://` URL (port 80 when none is given).
fn address_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?;
    let port = uri.port_u16().unwrap_or(80);
    Some(format!("{host}:{port}"))
}

/// The last lines of a log, for an error message (bytes that are not
/// UTF-8 shown as U+FFFD).
pub(crate) fn tail(log: &Path) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_to_wait_for_comes_from_the_url() {
        assert_eq!(
            address_of("http://127.0.0.1:18080/").as_deref(),
            Some("127.0.0.1:18080")
        );
        assert_eq!(
            address_of("http://localhost/mcp").as_deref(),
            Some("localhost:80")
        );
        assert_eq!(address_of("not a url"), None);
    }

    #[tokio::test]
    async fn a_command_that_exits_early_is_an_error_quoting_its_output() {
        let dir = std::env::temp_dir().join(format!("target-cmd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("target.log");
        let error = TargetProcess::start(
            "echo no config here; false",
            "http://127.0.0.1:1/",
            &log,
            &CancellationToken::new(),
        )
        .await
        .err()
        .expect("exits before listening");
        let text = error.to_string();
        assert!(text.contains("exited"), "{text}");
        assert!(text.contains("no config here"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_listening_command_is_ready_and_stopped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dir = std::env::temp_dir().join(format!("target-cmd-ok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("target.log");
        let command = format!(
            "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",{port})); s.listen(); time.sleep(60)'"
        );
        let url = format!("http://127.0.0.1:{port}/");
        let process = TargetProcess::start(&command, &url, &log, &CancellationToken::new())
            .await
            .expect("listens");
        let pid = process.pid().expect("running");
        process.stop().await;
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the target process was stopped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_cancel_while_it_starts_stops_it_at_once() {
        let dir = std::env::temp_dir().join(format!("target-cmd-cancel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("target.log");
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let starting = TargetProcess::start("sleep 60", "http://127.0.0.1:1/", &log, &cancel);
        let (result, ()) = tokio::join!(starting, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
        let error = result.err().expect("cancelled before it listened");
        assert!(
            matches!(error, TargetCmdError::Interrupted { .. }),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_that_is_not_utf8_still_has_a_tail() {
        let dir = std::env::temp_dir().join(format!("target-cmd-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("target.log");
        std::fs::write(&log, b"starting\nbad byte \xff here\nfailed\n").unwrap();
        assert_eq!(tail(&log), "starting\nbad byte \u{fffd} here\nfailed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
