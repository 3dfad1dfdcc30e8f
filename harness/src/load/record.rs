//! What the load generator remembers of each client call: when it was due,
//! when it was sent, when and how it ended. Checks and reports are computed
//! from these records.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::clock::ScenarioClock;

/// One client call through the proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// The `harness_call` number (unique per run, from 1).
    pub call: u64,
    /// Which client session sent it (0-based).
    pub client: usize,
    /// The tool as named through the proxy.
    pub tool: String,
    /// When it was due (open loop: its slot; closed loop: when it was sent).
    #[serde(with = "crate::clock::micros")]
    pub intended: Duration,
    /// When it was sent.
    #[serde(with = "crate::clock::micros")]
    pub sent: Duration,
    /// When its answer arrived (or it was given up).
    #[serde(with = "crate::clock::micros")]
    pub ended: Duration,
    /// How it ended.
    pub outcome: CallOutcome,
    /// For a success: the `harness_call` number its answer echoes (a fake
    /// answers a call with the call's own arguments), if it echoes one.
    /// Only the number is kept of the answer.
    pub echoed_call: Option<u64>,
}

impl CallRecord {
    /// Latency as the user saw it: from when the call was due to its end,
    /// which corrects for coordinated omission in open loop.
    pub fn latency(&self) -> Duration {
        self.ended.saturating_sub(self.intended)
    }

    /// Whether the call succeeded (a result without `isError`).
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, CallOutcome::Success)
    }
}

/// How a client call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallOutcome {
    /// A result without `isError`.
    Success,
    /// A result with `isError: true`.
    ToolError {
        /// The text of the result.
        message: String,
    },
    /// A JSON-RPC error response.
    RpcError {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The proxy answered the POST with a non-2xx status and no JSON-RPC error.
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// The connection failed, or the answer was not valid MCP.
    Transport {
        /// What went wrong.
        message: String,
    },
    /// No answer within `call_timeout`, or still none at the end of the grace period.
    Hung,
}

impl CallOutcome {
    /// A one-line description, for reports.
    pub fn describe(&self) -> String {
        match self {
            CallOutcome::Success => "success".into(),
            CallOutcome::ToolError { message } => format!("tool error: {message}"),
            CallOutcome::RpcError { code, message } => format!("JSON-RPC error {code}: {message}"),
            CallOutcome::HttpStatus { status } => format!("HTTP {status}"),
            CallOutcome::Transport { message } => format!("transport: {message}"),
            CallOutcome::Hung => "no answer (hung)".into(),
        }
    }

    /// The message of an error outcome.
    pub fn message(&self) -> Option<&str> {
        match self {
            CallOutcome::ToolError { message }
            | CallOutcome::RpcError { message, .. }
            | CallOutcome::Transport { message } => Some(message),
            _ => None,
        }
    }
}

/// Everything the load generator observed in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadResult {
    /// Every call, in the order they ended.
    pub calls: Vec<CallRecord>,
    /// Open loop: the slots due during the load period, sent or missed (0 in
    /// closed loop).
    pub slots: u64,
    /// Open loop: slots that could not be sent on time (too many in flight, or late).
    pub missed_slots: u64,
    /// Answers that arrived for a request already answered (must be 0).
    pub duplicate_answers: u64,
    /// Sessions that could not be opened, with the reason.
    pub session_errors: Vec<String>,
    /// Every HTTP request of the clients answered with a status other than
    /// 2xx (401, 403, 404, ...), in the order they were answered.
    pub statuses: Vec<StatusRecord>,
    /// The scenario's `reload` faults as the proxy took them, in order.
    pub reloads: Vec<ReloadRecord>,
}

/// One `reload` fault done to the proxy, and what the proxy made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadRecord {
    /// The fault's phase name, or `reload at <time>`.
    pub name: String,
    /// When it was due, in scenario time.
    #[serde(with = "crate::clock::micros")]
    pub at: Duration,
    /// `applied` or `rejected`: what the scenario requires.
    pub expected: &'static str,
    /// `applied`, `partly applied` (some changed keys wait for a restart)
    /// or `rejected` (also when the harness could not reach the proxy).
    pub result: &'static str,
    /// Why it was rejected, in the proxy's words.
    pub detail: Option<String>,
}

/// One HTTP request of a client answered with a non-2xx status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRecord {
    /// When the answer came, in scenario time.
    #[serde(with = "crate::clock::micros")]
    pub at: Duration,
    /// Which client session sent it (0-based).
    pub client: usize,
    /// What it was: the JSON-RPC method of a POST (`initialize`,
    /// `tools/call`, `notifications/initialized`, ...), or `DELETE`.
    pub request: String,
    /// The HTTP status.
    pub status: u16,
}

/// Where the sessions of a run write their non-2xx statuses; clones share it.
#[derive(Debug, Clone)]
pub struct StatusLog {
    clock: ScenarioClock,
    records: Arc<Mutex<Vec<StatusRecord>>>,
}

impl StatusLog {
    /// An empty log stamping records on `clock`.
    pub fn new(clock: ScenarioClock) -> Self {
        Self {
            clock,
            records: Arc::default(),
        }
    }

    /// Records that `client`'s `request` was answered with `status`, now.
    pub fn record(&self, client: usize, request: &str, status: u16) {
        let record = StatusRecord {
            at: self.clock.elapsed(),
            client,
            request: request.to_owned(),
            status,
        };
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }

    /// Everything recorded so far, in order.
    pub fn snapshot(&self) -> Vec<StatusRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
