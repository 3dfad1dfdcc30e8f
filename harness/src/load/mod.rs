//! The load generator: real MCP sessions through the proxy driving
//! `tools/call` load, in closed loop (a fixed number of calls always in
//! flight) or open loop (calls at a fixed rate whatever the answers do), with
//! one [`CallRecord`] per call for the checks and reports.
//!
//! Rules every run keeps, so that the records can be trusted:
//!
//! - Every call that was sent is recorded exactly once, however it ended. A
//!   call unanswered after `call_timeout` is given up as
//!   [`CallOutcome::Hung`]; so is every call still outstanding at
//!   `duration + grace`, which is why [`run`] always returns by then (plus
//!   the moment it takes to close the sessions).
//! - No call starts after `duration`.
//! - Call N uses the same tool in every run with the same seed, and carries
//!   `"harness_call": N` in its arguments so that the fakes' journals can be
//!   matched to the records. A fake's success echoes the number back, and
//!   the record keeps it (`echoed_call`), so that an answer given to the
//!   wrong call shows. Its `traceparent` header names the call too
//!   ([`trace`]).
//! - Times are scenario time ([`ScenarioClock`]), read from tokio.
//!
//! The open loop's rules for late and refused slots are in `open.rs`.

pub mod client;
mod closed;
mod connector;
mod error;
mod mix;
mod open;
pub mod record;
mod sse;
pub mod trace;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use hyper::Uri;
use hyper::http::uri::Scheme;
use mcp_proxy::platform::{Dialer, TcpDialer};
use tokio::time::Instant;

use crate::clock::ScenarioClock;
use crate::identity::Callers;
use crate::scenario::{LoadMode, Workload};
use client::HttpClient;
pub use client::{Caller, McpSession, PROTOCOL_VERSION, ToolAnswer};
pub use error::LoadError;
use mix::{Mix, PlannedCall};
pub use record::{CallOutcome, CallRecord, LoadResult, StatusLog, StatusRecord};

/// Where the load goes: the proxy's MCP endpoint, and the HTTP client that
/// every session shares, with the dialer that opens its connections
/// (clones share one connection pool).
#[derive(Debug, Clone)]
pub struct LoadTarget {
    /// The MCP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    url: Uri,
    http: HttpClient,
}

impl LoadTarget {
    /// A target at `url` (plain `http://`), reached over TCP
    /// ([`TcpDialer`]).
    pub fn new(url: &str) -> Result<Self, LoadError> {
        Self::with_dialer(url, Arc::new(TcpDialer))
    }

    /// A target at `url` (plain `http://`) whose connections `dialer` opens:
    /// a simulated network's, say.
    pub fn with_dialer(url: &str, dialer: Arc<dyn Dialer>) -> Result<Self, LoadError> {
        let parsed: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| LoadError::NotAUrl {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
        if parsed.scheme() != Some(&Scheme::HTTP) || parsed.host().is_none() {
            return Err(LoadError::NotPlainHttp {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            url: parsed,
            http: client::http_client(dialer),
        })
    }
}

/// Live counters of a run, for a progress line; updated as calls are sent
/// and end.
#[derive(Debug, Default)]
pub struct Progress {
    sent: AtomicU64,
    answered: AtomicU64,
    errors: AtomicU64,
}

/// The counters of [`Progress`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Calls sent.
    pub sent: u64,
    /// Calls that ended, however (an answer, an error, or given up as hung).
    pub answered: u64,
    /// Calls among `answered` that did not succeed.
    pub errors: u64,
}

impl Progress {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        // Read the ends first: a call that ends between the reads is then
        // counted as in flight rather than as answered but never sent.
        let answered = self.answered.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        ProgressSnapshot {
            sent,
            answered,
            errors,
        }
    }

    fn call_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn call_ended(&self, outcome: &CallOutcome) {
        if !matches!(outcome, CallOutcome::Success) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

impl ProgressSnapshot {
    /// Calls sent and not yet ended.
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.answered)
    }
}

/// Runs the workload against `target` from now until `duration` after the
/// scenario start (then waits up to `grace` for outstanding calls), and
/// returns what the clients observed.
///
/// Opens `workload.clients` sessions first; those that fail are listed in
/// [`LoadResult::session_errors`] and the load goes over the others (none
/// open: no calls). A call mix without a positive weight (which scenario
/// validation rules out) is reported there too, and nothing is sent.
pub async fn run(
    target: &LoadTarget,
    workload: &Workload,
    seed: u64,
    clock: ScenarioClock,
    duration: Duration,
    grace: Duration,
    progress: Arc<Progress>,
) -> LoadResult {
    let timing = Timing {
        clock,
        duration,
        grace,
    };
    run_as(
        target,
        workload,
        seed,
        timing,
        progress,
        &Callers::anonymous(),
    )
    .await
}

/// When a load runs: from now (on `clock`) for `duration`, then `grace`
/// for calls still outstanding.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Scenario time.
    pub clock: ScenarioClock,
    /// How long calls start.
    pub duration: Duration,
    /// How long outstanding calls may still take.
    pub grace: Duration,
}

/// [`run`] with each client's credentials from `callers` (every HTTP
/// request of its session carries its bearer token) and the non-2xx
/// statuses the sessions got in [`LoadResult::statuses`].
pub async fn run_as(
    target: &LoadTarget,
    workload: &Workload,
    seed: u64,
    timing: Timing,
    progress: Arc<Progress>,
    callers: &Callers,
) -> LoadResult {
    let statuses = &StatusLog::new(timing.clock);
    // Every way out of the run keeps the statuses (a session refused with
    // 401 at `initialize` included).
    let mut result = async {
        let Timing {
            clock,
            duration,
            grace,
        } = timing;
        let mut result = LoadResult::default();
        let give_up_all = clock.at(duration.saturating_add(grace));
        let mix = match Mix::new(&workload.calls, seed) {
            Ok(mix) => mix,
            Err(error) => {
                result.session_errors.push(error.to_string());
                return result;
            }
        };

        let opened = join_all((0..workload.clients).map(|client| async move {
            let caller = Caller {
                client,
                credentials: callers.credentials(client),
                statuses: Some(statuses.clone()),
            };
            let opened = tokio::time::timeout_at(give_up_all, McpSession::open_as(target, caller))
                .await
                .unwrap_or(Err(LoadError::NoAnswerBeforeEnd));
            (client, opened)
        }))
        .await;
        let mut sessions = Vec::new();
        for (client, opened) in opened {
            match opened {
                Ok(session) => sessions.push((client, session)),
                Err(message) => result
                    .session_errors
                    .push(format!("client {client}: {message}")),
            }
        }
        if sessions.is_empty() {
            return result;
        }

        let driver = Arc::new(Driver {
            clock,
            sessions,
            mix: Mutex::new(mix),
            call_timeout: workload.call_timeout,
            give_up_all,
            records: Mutex::new(Vec::new()),
            progress,
        });
        match workload.mode {
            LoadMode::Closed { concurrency } => {
                closed::drive(&driver, concurrency, clock.at(duration)).await;
            }
            LoadMode::Open {
                rate,
                max_in_flight,
                ..
            } => {
                let start = clock.elapsed();
                (result.slots, result.missed_slots) =
                    open::drive(&driver, rate, max_in_flight, start, duration).await;
            }
        }

        let sessions = &driver.sessions;
        join_all(sessions.iter().map(|(_, s)| s.settle(give_up_all))).await;
        result.duplicate_answers = sessions.iter().map(|(_, s)| s.duplicate_answers()).sum();
        join_all(sessions.iter().map(|(_, s)| s.close())).await;
        result.calls = std::mem::take(&mut *lock(&driver.records));
        result
    }
    .await;
    result.statuses = statuses.snapshot();
    result
}

/// What the closed and open loops share: the sessions, the mix, the clock
/// and the records.
struct Driver {
    clock: ScenarioClock,
    /// The open sessions, each with its client number.
    sessions: Vec<(usize, McpSession)>,
    mix: Mutex<Mix>,
    call_timeout: Duration,
    /// When every call still outstanding is given up.
    give_up_all: Instant,
    /// Every ended call, in the order they ended.
    records: Mutex<Vec<CallRecord>>,
    progress: Arc<Progress>,
}

impl Driver {
    /// The next call number, with its tool and arguments.
    fn plan(&self) -> PlannedCall {
        lock(&self.mix).next_call()
    }

    /// Sends `planned` on session `turn` (modulo the number of sessions),
    /// waits for it to end and records it; returns when it was sent. `due`
    /// is when the call should have been sent (open loop); `None` means when
    /// it is sent.
    async fn perform(&self, planned: PlannedCall, turn: usize, due: Option<Duration>) -> Duration {
        let (client, session) = &self.sessions[turn % self.sessions.len()];
        let sent = self.clock.elapsed();
        self.progress.call_sent();
        let give_up = Instant::now()
            .checked_add(self.call_timeout)
            .map_or(self.give_up_all, |at| at.min(self.give_up_all));
        let answer = session
            .call_tool_until(&planned.tool, planned.arguments, give_up)
            .await;
        let ended = self.clock.elapsed();
        self.progress.call_ended(&answer.outcome);
        lock(&self.records).push(CallRecord {
            call: planned.call,
            client: *client,
            tool: planned.tool,
            intended: due.unwrap_or(sent),
            sent,
            ended,
            outcome: answer.outcome,
            echoed_call: answer.result.as_ref().and_then(crate::fake::echoed_call),
        });
        sent
    }
}

/// Locks a mutex that no holder can leave inconsistent (each critical
/// section is one push or one draw), so a poisoned one is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
