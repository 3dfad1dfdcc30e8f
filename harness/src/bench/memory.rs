//! `bench --memory`: how much memory the proxy holds per client session,
//! idle and with a call in flight.
//!
//! A fake backend with one tool that holds every call for `hold`, the
//! proxy binary in front of it with bounds that admit every session and
//! call of the plan, and three readings of the proxy's resident set
//! ([`rss`](super::rss)): at the start (ready, no client session left
//! open); with `idle` sessions open (initialized, nothing sent since); and
//! with `in_flight` more sessions, each holding one call that the backend
//! has received and not yet answered. The last reading is taken once the
//! fake's journal shows every call arrived, and within half of `hold`
//! after they were sent, so every call is still in flight when it is taken
//! (the first answer leaves `hold` after the first arrival); the calls
//! then end by themselves, and are accounted for: each must come back as
//! the answer to its own call.
//!
//! Sessions are opened a few at a time over pooled connections, so the
//! readings count sessions, not TCP connections; the calls in flight each
//! need a connection of their own (HTTP/1), two file descriptors per call
//! in the harness (client and fake side) and two in the proxy, which is
//! checked against `ulimit -n` before anything starts. Every wait is
//! bounded: each session's opening, the arrival of the calls, the calls.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::measure::kind;
use super::rss::{self, RssError, mib};
use super::setup::{self, Setup, StartError};
use crate::journal::Journal;
use crate::load::{CallOutcome, LoadError, LoadTarget, McpSession, ToolAnswer};
use crate::scenario::Scenario;

/// The tool every in-flight call goes to, as the proxy names it.
const TOOL: &str = "slow/hold";
/// Sessions opened at once.
const OPEN_CONCURRENCY: usize = 32;
/// How long one session may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past its hold a call may take to come back before it counts
/// as hung.
const CALL_SLACK: Duration = Duration::from_secs(10);
/// How often the fake's journal is looked at while the calls arrive.
const ARRIVAL_POLL: Duration = Duration::from_millis(10);
/// Sessions and calls the proxy admits beyond the plan's (the readiness
/// poll's sessions, which are closed, among them).
const BOUNDS_MARGIN: usize = 64;
/// File descriptors beyond those of the calls and the sessions being
/// opened: the runtime, listeners, the proxy's log, the fake's own.
const FD_MARGIN: u64 = 256;
/// The goals: RSS with 10,000 idle sessions, and with 1,000
/// sessions each holding a call in flight.
const IDLE_GOAL_KIB: u64 = 50 * 1024;
const IN_FLIGHT_GOAL_KIB: u64 = 100 * 1024;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub(super) struct MemoryPlan {
    /// Sessions opened and left idle.
    pub(super) idle: usize,
    /// Sessions opened beside them, each holding one call in flight.
    pub(super) in_flight: usize,
    /// How long the backend holds each call.
    pub(super) hold: Duration,
}

/// Why the memory could not be measured.
#[derive(Debug, thiserror::Error)]
pub(super) enum MemoryError {
    #[error(transparent)]
    Rss(#[from] RssError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot read the limit on open files: {0}")]
    FdLimit(nix::Error),
    #[error(
        "{in_flight} calls in flight need about {needed} open files in the harness and in the proxy, but `ulimit -n` allows {limit}: raise it (ulimit -n {needed}) or lower --in-flight"
    )]
    TooFewFds {
        in_flight: usize,
        needed: u64,
        limit: u64,
    },
    #[error("a session did not open: {0}")]
    Session(LoadError),
    #[error("a session did not open within {}s", OPEN_TIMEOUT.as_secs())]
    SessionTimeout,
    #[error(
        "only {arrived} of {expected} calls reached the backend within {:.1}s of being sent, so they were not all in flight at once: give them longer with --hold (now {:.1}s)",
        waited.as_secs_f64(),
        hold.as_secs_f64()
    )]
    NotInFlight {
        arrived: usize,
        expected: usize,
        waited: Duration,
        hold: Duration,
    },
}

/// One reading.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Reading {
    /// Client sessions opened for this reading (on top of the previous
    /// reading's).
    pub(super) sessions: usize,
    /// The proxy's resident set.
    pub(super) rss_kib: u64,
    /// What each of those sessions added to it (`None` for the baseline).
    pub(super) kib_per_session: Option<f64>,
    /// The goal for the resident set (`None` for the baseline).
    pub(super) goal_kib: Option<u64>,
}

impl Reading {
    /// A reading with `sessions` more than `before`, and its goal.
    fn after(before: &Reading, sessions: usize, rss_kib: u64, goal_kib: u64) -> Reading {
        let added = rss_kib as f64 - before.rss_kib as f64;
        Reading {
            sessions,
            rss_kib,
            kib_per_session: (sessions > 0).then(|| added / sessions as f64),
            goal_kib: Some(goal_kib),
        }
    }

    /// Whether the resident set is within its goal (the baseline has none).
    pub(super) fn within_goal(&self) -> bool {
        self.goal_kib.is_none_or(|goal| self.rss_kib <= goal)
    }
}

/// How the in-flight calls ended.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct CallTally {
    /// Calls sent.
    pub(super) sent: usize,
    /// By kind (`success`, `rpc -32013`, `hung`, ...): they add up to `sent`.
    pub(super) outcomes: BTreeMap<String, u64>,
    /// Successes whose answer echoes another call's number (a proxy bug).
    pub(super) wrong_answers: u64,
}

impl CallTally {
    fn of(answers: &[(u64, ToolAnswer)]) -> CallTally {
        let mut tally = CallTally {
            sent: answers.len(),
            ..CallTally::default()
        };
        for (number, answer) in answers {
            *tally.outcomes.entry(kind(&answer.outcome)).or_insert(0) += 1;
            let echoed = answer.result.as_ref().and_then(crate::fake::echoed_call);
            if answer.outcome == CallOutcome::Success && echoed != Some(*number) {
                tally.wrong_answers += 1;
            }
        }
        tally
    }

    /// Whether every call came back as the answer to its own call.
    pub(super) fn all_answered(&self) -> bool {
        self.wrong_answers == 0
            && self.outcomes.get("success").copied().unwrap_or(0) == self.sent as u64
    }
}

/// What `--memory` measured.
#[derive(Debug, Clone, Serialize)]
pub(super) struct MemoryReport {
    /// The proxy's process id.
    pub(super) pid: u32,
    /// How long the backend held each call, in seconds.
    pub(super) hold_s: f64,
    /// Ready, no client session open.
    pub(super) baseline: Reading,
    /// With the idle sessions open.
    pub(super) idle: Reading,
    /// With the in-flight sessions open too, each holding a call.
    pub(super) in_flight: Reading,
    /// How the in-flight calls ended.
    pub(super) calls: CallTally,
}

impl MemoryReport {
    /// Within both goals, and every call answered as its own.
    pub(super) fn passed(&self) -> bool {
        self.idle.within_goal() && self.in_flight.within_goal() && self.calls.all_answered()
    }

    /// The table: one row per reading with the goals beside, then how the
    /// calls ended and the verdict.
    pub(super) fn render(&self) -> String {
        let mut out = format!(
            "proxy RSS (VmRSS of pid {}), calls held {:.1}s by the backend\n",
            self.pid, self.hold_s
        );
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>11} {:>13}  goal",
            "reading", "sessions", "RSS", "per session"
        );
        let rows = [
            ("baseline", &self.baseline),
            ("idle sessions", &self.idle),
            ("+ a call in flight", &self.in_flight),
        ];
        for (label, reading) in rows {
            let per_session = reading
                .kib_per_session
                .map_or(String::new(), |kib| format!("{kib:.2} KiB"));
            let goal = reading.goal_kib.map_or(String::new(), |goal| {
                let met = if reading.within_goal() {
                    "met"
                } else {
                    "MISSED"
                };
                format!("≤ {:.0} MiB: {met}", mib(goal))
            });
            let _ = writeln!(
                out,
                "{label:<20} {:>9} {:>7.1} MiB {per_session:>13}  {goal}",
                reading.sessions,
                mib(reading.rss_kib),
            );
        }
        let _ = writeln!(
            out,
            "(the in-flight sessions are opened beside the idle ones: its RSS is with {} sessions)",
            self.idle.sessions + self.in_flight.sessions
        );
        let outcomes: Vec<String> = self
            .calls
            .outcomes
            .iter()
            .map(|(kind, n)| format!("{n} × {kind}"))
            .collect();
        let _ = writeln!(
            out,
            "in-flight calls: {} sent, {}{}",
            self.calls.sent,
            outcomes.join(", "),
            match self.calls.wrong_answers {
                0 => String::new(),
                n => format!("; {n} answered with another call's answer"),
            }
        );
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{verdict}: goals ≤ {:.0} MiB idle, ≤ {:.0} MiB with calls in flight (issue 11: at 10,000 idle and 1,000 in flight), every call answered",
            mib(IDLE_GOAL_KIB),
            mib(IN_FLIGHT_GOAL_KIB)
        );
        out
    }
}

/// Starts the fake and the proxy binary `proxy_bin`, takes the three
/// readings, and stops both.
pub(super) async fn measure(
    plan: MemoryPlan,
    proxy_bin: &Path,
) -> Result<MemoryReport, MemoryError> {
    enough_fds(plan.in_flight)?;
    let scenario = scenario(plan)?;
    // The journal is how the bench sees the calls arrive.
    let journal = Journal::in_memory();
    setup::with_proxy_binary(&scenario, proxy_bin, journal.clone(), async |setup, pid| {
        readings(plan, setup, &journal, pid).await
    })
    .await
}

/// The readings of process `pid`, with the setup running.
async fn readings(
    plan: MemoryPlan,
    setup: &Setup,
    journal: &Journal,
    pid: u32,
) -> Result<MemoryReport, MemoryError> {
    let target = LoadTarget::new(&setup.proxy_url())?;
    let baseline = Reading {
        sessions: 0,
        rss_kib: rss::read_kib(pid)?,
        kib_per_session: None,
        goal_kib: None,
    };
    eprintln!("opening {} idle sessions", plan.idle);
    let idle_sessions = open_sessions(&target, plan.idle).await?;
    let idle = Reading::after(&baseline, plan.idle, rss::read_kib(pid)?, IDLE_GOAL_KIB);
    eprintln!(
        "opening {} more sessions, each to hold a call",
        plan.in_flight
    );
    let busy = open_sessions(&target, plan.in_flight).await?;
    let (rss_kib, calls) = hold_calls(&busy, journal, plan.hold, pid).await;
    drop(idle_sessions);
    Ok(MemoryReport {
        pid,
        hold_s: plan.hold.as_secs_f64(),
        in_flight: Reading::after(&idle, plan.in_flight, rss_kib?, IN_FLIGHT_GOAL_KIB),
        baseline,
        idle,
        calls,
    })
}

/// Opens `count` sessions, [`OPEN_CONCURRENCY`] at a time; the first that
/// fails ends it.
async fn open_sessions(target: &LoadTarget, count: usize) -> Result<Vec<McpSession>, MemoryError> {
    stream::iter(0..count)
        .map(|_| async {
            match tokio::time::timeout(OPEN_TIMEOUT, McpSession::open(target)).await {
                Ok(Ok(session)) => Ok(session),
                Ok(Err(error)) => Err(MemoryError::Session(error)),
                Err(_) => Err(MemoryError::SessionTimeout),
            }
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .try_collect()
        .await
}

/// Sends one call on each session at once and reads the proxy's resident
/// set once the backend has them all; then waits for every call to end.
async fn hold_calls(
    sessions: &[McpSession],
    journal: &Journal,
    hold: Duration,
    pid: u32,
) -> (Result<u64, MemoryError>, CallTally) {
    let sent_at = Instant::now();
    let give_up = sent_at + hold + CALL_SLACK;
    let calls = join_all(
        sessions
            .iter()
            .zip(1..)
            .map(|(session, number)| async move {
                let arguments = json!({ "harness_call": number });
                (
                    number,
                    session.call_tool_until(TOOL, arguments, give_up).await,
                )
            }),
    );
    // The first answer leaves the backend `hold` after the first call
    // arrived, itself after `sent_at`: a reading before `sent_at + hold`
    // sees every call in flight. Half of it leaves room for the reading.
    let reading = async {
        let waited = hold / 2;
        loop {
            let arrived = arrived_calls(journal);
            if arrived >= sessions.len() {
                return Ok(rss::read_kib(pid)?);
            }
            if sent_at.elapsed() >= waited {
                return Err(MemoryError::NotInFlight {
                    arrived,
                    expected: sessions.len(),
                    waited,
                    hold,
                });
            }
            tokio::time::sleep(ARRIVAL_POLL).await;
        }
    };
    let (answers, rss) = tokio::join!(calls, reading);
    (rss, CallTally::of(&answers))
}

/// The `tools/call` requests the fake has received.
fn arrived_calls(journal: &Journal) -> usize {
    journal
        .snapshot()
        .iter()
        .filter(|entry| entry.method == "tools/call")
        .count()
}

/// Fails unless `ulimit -n` leaves room for `in_flight` calls (each a
/// client connection and a backend connection, in the harness and in the
/// proxy, which inherits the limit).
fn enough_fds(in_flight: usize) -> Result<(), MemoryError> {
    use nix::sys::resource::{Resource, getrlimit};
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(MemoryError::FdLimit)?;
    let needed = fds_needed(in_flight);
    if soft < needed {
        return Err(MemoryError::TooFewFds {
            in_flight,
            needed,
            limit: soft,
        });
    }
    Ok(())
}

fn fds_needed(in_flight: usize) -> u64 {
    2 * (in_flight as u64 + OPEN_CONCURRENCY as u64) + FD_MARGIN
}

/// The fake and the proxy config: bounds that admit every session and
/// call of the plan (and no idle expiry while it runs), a call timeout
/// well past the hold.
fn scenario(plan: MemoryPlan) -> Result<Scenario, StartError> {
    let max_sessions = plan.idle + plan.in_flight + BOUNDS_MARGIN;
    let max_in_flight = plan.in_flight + BOUNDS_MARGIN;
    let hold_ms = plan.hold.as_millis();
    let overall_ms = (plan.hold + CALL_SLACK).as_millis();
    let text = format!(
        "\
name: memory
description: A backend that holds every call, behind the proxy, for mcp-harness bench --memory.
duration: 1s
proxy:
  proxy:
    max_sessions: {max_sessions}
    max_in_flight: {max_in_flight}
    session_idle_timeout: 24h
  backends:
    - name: slow
      fake: slow
      timeout: {{ overall: {overall_ms}ms }}
fakes:
  - name: slow
    transport: http
    tools:
      - name: hold
        latency: {{ fixed: {hold_ms}ms }}
workload:
  closed: {{ concurrency: 1 }}
  calls:
    - tool: {TOOL}
expect: []
"
    );
    setup::builtin(&text, "memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> MemoryPlan {
        MemoryPlan {
            idle: 10_000,
            in_flight: 1_000,
            hold: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_setup_admits_every_session_and_call_of_the_plan() {
        let scenario = scenario(plan()).unwrap();
        let tree = crate::scenario::to_json(&scenario.proxy.unwrap().tree);
        assert_eq!(tree["proxy"]["max_sessions"], 11_064);
        assert_eq!(tree["proxy"]["max_in_flight"], 1_064);
        assert_eq!(scenario.workload.calls[0].tool, TOOL);
    }

    #[test]
    fn each_reading_counts_what_its_own_sessions_added() {
        let baseline = Reading {
            sessions: 0,
            rss_kib: 3_000,
            kib_per_session: None,
            goal_kib: None,
        };
        let idle = Reading::after(&baseline, 10_000, 13_000, IDLE_GOAL_KIB);
        assert_eq!(idle.kib_per_session, Some(1.0));
        assert!(idle.within_goal());
        let busy = Reading::after(&idle, 1_000, 120 * 1024, IN_FLIGHT_GOAL_KIB);
        assert!(!busy.within_goal());
        assert!((busy.kib_per_session.unwrap() - (122_880.0 - 13_000.0) / 1_000.0).abs() < 1e-9);
    }

    fn answer(outcome: CallOutcome, echoes: Option<u64>) -> ToolAnswer {
        let result = echoes.map(|n| {
            json!({"content": [{"type": "text", "text": json!({"harness_call": n}).to_string()}]})
        });
        ToolAnswer { outcome, result }
    }

    #[test]
    fn every_call_must_come_back_as_its_own_answer() {
        let good = [
            (1, answer(CallOutcome::Success, Some(1))),
            (2, answer(CallOutcome::Success, Some(2))),
        ];
        assert!(CallTally::of(&good).all_answered());
        let swapped = [
            (1, answer(CallOutcome::Success, Some(2))),
            (2, answer(CallOutcome::Success, Some(2))),
        ];
        let tally = CallTally::of(&swapped);
        assert_eq!(tally.wrong_answers, 1);
        assert!(!tally.all_answered());
        let hung = [
            (1, answer(CallOutcome::Success, Some(1))),
            (2, answer(CallOutcome::Hung, None)),
        ];
        let tally = CallTally::of(&hung);
        assert_eq!(tally.outcomes["hung"], 1);
        assert!(!tally.all_answered());
    }
}
