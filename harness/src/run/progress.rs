//! The live progress line: elapsed time, the phases in effect, calls per
//! second and errors, redrawn in place a few times a second. Only drawn when
//! stdout is a terminal, so logs and CI output stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::ScenarioClock;
use crate::load::Progress;
use crate::scenario::{Scenario, Trigger};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// A running progress line; [`ProgressLine::finish`] clears it.
pub(crate) struct ProgressLine {
    task: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts drawing if stdout is a terminal and `enabled`.
    pub(crate) fn start(
        enabled: bool,
        scenario: &Scenario,
        clock: ScenarioClock,
        progress: Arc<Progress>,
    ) -> ProgressLine {
        if !enabled || !std::io::stdout().is_terminal() {
            return ProgressLine { task: None };
        }
        let phases: Vec<(String, Trigger)> = scenario
            .faults
            .iter()
            .filter_map(|f| Some((f.name.clone()?, f.trigger.clone())))
            .collect();
        let name = scenario.name.clone();
        let total = scenario.duration;
        let task = tokio::spawn(async move {
            let mut last_answered = 0;
            let mut ticker = tokio::time::interval(REDRAW);
            loop {
                ticker.tick().await;
                let now = clock.elapsed();
                let snap = progress.snapshot();
                let rate = (snap.answered - last_answered.min(snap.answered)) as f64
                    / REDRAW.as_secs_f64();
                last_answered = snap.answered;
                let active: Vec<&str> = phases
                    .iter()
                    .filter(|(_, t)| t.holds_at(now))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let phase = if active.is_empty() {
                    "-".to_owned()
                } else {
                    active.join(",")
                };
                let mut out = std::io::stdout().lock();
                let _ = write!(
                    out,
                    "\r\x1b[2K{name}: {:>5.1}s/{:.0}s  phase {phase}  {rate:>7.0} calls/s  {} calls  {} errors",
                    now.as_secs_f64(),
                    total.as_secs_f64(),
                    snap.answered,
                    snap.errors,
                );
                let _ = out.flush();
            }
        });
        ProgressLine { task: Some(task) }
    }

    /// Stops drawing and clears the line.
    pub(crate) fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }
}
