//! The live progress line of a run or a bench cell: elapsed time, the
//! phase (faults in effect, or warm-up), calls per second and errors,
//! redrawn in place a few times a second. Only drawn when stdout is a
//! terminal, so logs and CI output stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::ScenarioClock;
use crate::load::Progress;
use crate::scenario::{Scenario, Trigger};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// What the line says besides the counters: what runs, for how long, and
/// the phase at a time (the faults in effect, or a bench's warm-up).
pub(crate) struct Headline {
    /// The scenario's name, or the bench cell's target and load.
    pub(crate) name: String,
    /// How long the run lasts.
    pub(crate) total: Duration,
    /// The phase at a time of the run.
    pub(crate) phase: Box<dyn Fn(Duration) -> String + Send>,
}

impl Headline {
    /// A scenario's: its name, duration, and the named faults in effect.
    pub(crate) fn of_scenario(scenario: &Scenario) -> Headline {
        let phases: Vec<(String, Trigger)> = scenario
            .faults
            .iter()
            .filter_map(|f| Some((f.name.clone()?, f.trigger.clone())))
            .collect();
        Headline {
            name: scenario.name.clone(),
            total: scenario.duration,
            phase: Box::new(move |now| {
                let active: Vec<&str> = phases
                    .iter()
                    .filter(|(_, t)| t.holds_at(now))
                    .map(|(n, _)| n.as_str())
                    .collect();
                if active.is_empty() {
                    "-".to_owned()
                } else {
                    active.join(",")
                }
            }),
        }
    }
}

/// A running progress line; [`ProgressLine::finish`] clears it.
pub(crate) struct ProgressLine {
    task: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts drawing if stdout is a terminal and `enabled`.
    pub(crate) fn start(
        enabled: bool,
        headline: Headline,
        clock: ScenarioClock,
        progress: Arc<Progress>,
    ) -> ProgressLine {
        if !enabled || !std::io::stdout().is_terminal() {
            return ProgressLine { task: None };
        }
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
                let phase = (headline.phase)(now);
                let mut out = std::io::stdout().lock();
                let _ = write!(
                    out,
                    "\r\x1b[2K{}: {:>5.1}s/{:.0}s  phase {phase}  {rate:>7.0} calls/s  {} calls  {} errors",
                    headline.name,
                    now.as_secs_f64(),
                    headline.total.as_secs_f64(),
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
