//! `mcp-harness bench`: throughput and latency of `tools/call` against any
//! MCP server or gateway, measured with the same load engine as scenario
//! runs (real sessions, one record per call); and the proxy's memory.
//!
//! Each cell is one target under one load: a closed loop (`concurrency`
//! calls always in flight, one session each) or an open loop (`rate` calls
//! per second whatever the answers do; latency counted from when a call was
//! due, so a slow target cannot hide its queue: no coordinated omission). A
//! cell runs for `warmup + duration` (see `measure` for which calls
//! count toward what). Cells run one after another,
//! every target at one load before the next load, so that targets compared
//! side by side were measured under the same conditions.
//!
//! What the bench starts itself (fakes, the proxy in front of them) comes
//! from a built-in scenario through `setup`, for three modes:
//!
//! - `compare`: an echo backend, measured direct and through the proxy;
//! - `memory`: the proxy's resident set per idle session and per call in
//!   flight;
//! - `soak`: the proxy's resident set over a long run with backend faults.
//!
//! The last two read the proxy binary's resident set (`rss`, Linux).

mod command;
mod compare;
mod cpu;
mod measure;
mod memory;
mod rss;
mod setup;
mod soak;
mod table;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::ScenarioClock;
use crate::load::{self, LoadError, LoadTarget, Progress};
use crate::run::{Headline, ProgressLine};
use crate::scenario::{CallMix, LoadMode, Workload};
pub use command::{BenchArgs, bench_command};
pub use cpu::ProcessCpu;
pub use measure::{Latency, Measurement};

/// How long a call may go unanswered before it counts as hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the calls still in flight at the end may take to finish.
const GRACE: Duration = Duration::from_secs(2);
/// Open loop: calls outstanding beyond this are not sent (counted as
/// missed slots), so a target that stops answering cannot pile up calls
/// without bound.
const MAX_OPEN_IN_FLIGHT: usize = 10_000;

/// One endpoint to measure, and the call to make there.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The name in the tables (`direct`, `proxy`, or the URL).
    pub label: String,
    /// The MCP endpoint (plain `http://`).
    pub url: String,
    /// The tool, as that endpoint names it.
    pub tool: String,
    /// The call's arguments (the load engine adds `harness_call`).
    pub arguments: Map<String, Value>,
    /// The process serving it, when this one started it: its CPU time
    /// per call is measured too.
    #[serde(skip)]
    pub process: Option<ProcessCpu>,
    /// Whether to add `"bench_cell": N` (N counting the cells) to the
    /// arguments. The load engine numbers the calls from 1 in every cell,
    /// so a cache in front of the tool would answer a later cell's calls
    /// from an earlier one's; only for a tool known to take any argument.
    #[serde(skip)]
    pub distinct_cells: bool,
}

/// How calls are paced in one cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Load {
    /// `concurrency` calls always in flight, each from a session of its own.
    Closed {
        /// Calls in flight (and sessions).
        concurrency: usize,
    },
    /// `rate` calls per second, from `sessions` sessions.
    Open {
        /// Calls per second.
        rate: f64,
        /// Sessions the calls are spread over.
        sessions: usize,
    },
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Load::Closed { concurrency } => write!(f, "closed {concurrency}"),
            Load::Open { rate, .. } => write!(f, "open {rate}/s"),
        }
    }
}

/// What to measure and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The targets, measured in this order at each load.
    pub targets: Vec<Target>,
    /// The loads, in this order.
    pub loads: Vec<Load>,
    /// The measured window of each cell.
    pub duration: Duration,
    /// Load before the window, not counted (connections, caches, JIT).
    pub warmup: Duration,
    /// Whether to draw a progress line while a cell runs (only on a terminal).
    pub progress: bool,
}

/// Runs every cell of `plan`; `on_cell` hears each measurement as it ends
/// (for a live table). Fails only on a URL that is not plain `http://`; a
/// target that cannot be reached shows in its cells' session errors.
pub async fn run(
    plan: &Plan,
    mut on_cell: impl FnMut(&Measurement),
) -> Result<Vec<Measurement>, LoadError> {
    let mut endpoints = Vec::with_capacity(plan.targets.len());
    for target in &plan.targets {
        endpoints.push(LoadTarget::new(&target.url)?);
    }
    let mut measurements = Vec::new();
    let mut cells = 0;
    for &load in &plan.loads {
        for (target, endpoint) in plan.targets.iter().zip(&endpoints) {
            cells += 1;
            let measurement = cell(plan, target, endpoint, load, cells).await;
            on_cell(&measurement);
            measurements.push(measurement);
        }
    }
    Ok(measurements)
}

/// One target under one load.
async fn cell(
    plan: &Plan,
    target: &Target,
    endpoint: &LoadTarget,
    load: Load,
    number: u64,
) -> Measurement {
    let (clients, mode) = match load {
        Load::Closed { concurrency } => (concurrency, LoadMode::Closed { concurrency }),
        Load::Open { rate, sessions } => (
            sessions,
            LoadMode::Open {
                rate,
                max_in_flight: MAX_OPEN_IN_FLIGHT,
                max_missed_share: 1.0,
            },
        ),
    };
    let mut arguments = target.arguments.clone();
    if target.distinct_cells {
        arguments.insert("bench_cell".into(), number.into());
    }
    let workload = Workload {
        clients,
        mode,
        calls: vec![CallMix {
            tool: target.tool.clone(),
            arguments,
            weight: 1.0,
        }],
        call_timeout: CALL_TIMEOUT,
        identities: Vec::new(),
    };
    let clock = ScenarioClock::start_now();
    let progress = Arc::new(Progress::new());
    let warmup = plan.warmup;
    let headline = Headline {
        name: format!("{} {load}", target.label),
        total: plan.warmup + plan.duration,
        phase: Box::new(move |now| if now < warmup { "warm-up" } else { "measuring" }.to_owned()),
    };
    let line = ProgressLine::start(plan.progress, headline, clock, Arc::clone(&progress));
    let started = tokio::time::Instant::now();
    let cpu_in_window = async {
        let process = target.process?;
        tokio::time::sleep_until(started + plan.warmup).await;
        let before = process.used()?;
        tokio::time::sleep_until(started + plan.warmup + plan.duration).await;
        process.used()?.checked_sub(before)
    };
    let (result, cpu) = tokio::join!(
        load::run(
            endpoint,
            &workload,
            0,
            clock,
            plan.warmup + plan.duration,
            GRACE,
            progress,
        ),
        cpu_in_window
    );
    line.finish();
    Measurement::of(&target.label, load, &result, plan.warmup, plan.duration).with_cpu(cpu)
}
