//! `--seeds A..B`: one scenario over many seeds, to find the seed that
//! breaks it.
//!
//! A statistical check at confidence c fails on about 1 − c of seeds by
//! design; anything beyond that is a bug (of the proxy, or of the check)
//! that one seed shows and the replay command reproduces exactly.
//! Seeds run on every core, each simulation on a thread of its own.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::RunReport;
use crate::report::controls::one_line;
use crate::report::format::count;
use crate::report::replay::{self, Flag};
use crate::report::terminal::Colour;
use crate::scenario::Scenario;

/// What a sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// The scenario file.
    pub file: String,
    /// The seeds run.
    pub seeds: Range<u64>,
    /// Per check (in report order; two checks of one name are two
    /// entries): how many seeds failed it and the first that did.
    pub checks: Vec<CheckTally>,
    /// Seeds whose run stopped with a harness error, with the error.
    pub errors: BTreeMap<u64, String>,
}

/// One check over a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTally {
    /// The check's name.
    pub name: String,
    /// Seeds that failed it.
    pub failed: u64,
    /// The smallest seed that failed it.
    pub first_failure: Option<u64>,
}

impl Sweep {
    /// The seeds whose checks were judged: every seed run but those a
    /// harness error stopped. A check failed on "k of" these.
    pub fn judged(&self) -> u64 {
        let runs = self.seeds.end.saturating_sub(self.seeds.start);
        runs.saturating_sub(self.errors.len() as u64)
    }

    /// The seeds run, and how many a harness error stopped: `9 runs, 1
    /// stopped by a harness error`.
    pub fn runs(&self) -> String {
        let runs = count(self.seeds.end.saturating_sub(self.seeds.start), "run");
        match self.errors.len() {
            0 => runs,
            n => format!("{runs}, {n} stopped by a harness error"),
        }
    }

    /// Whether every seed passed every check.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.checks.iter().all(|c| c.failed == 0)
    }

    /// The smallest seed that failed anything.
    pub fn first_failing_seed(&self) -> Option<u64> {
        let by_check = self.checks.iter().filter_map(|c| c.first_failure);
        by_check.chain(self.errors.keys().copied()).min()
    }

    /// The command that replays `seed`.
    pub fn replay_command(&self, seed: u64) -> String {
        replay::command(&[Flag::bare("--sim")], seed, &self.file)
    }

    /// The sweep as a table, one row per check, and the verdict with the
    /// replay command last.
    pub fn render(&self, colour: Colour) -> String {
        let judged = self.judged();
        let mut text = format!(
            "{}: seeds {}..{} ({})\n",
            self.file,
            self.seeds.start,
            self.seeds.end,
            self.runs()
        );
        for check in &self.checks {
            let first = check
                .first_failure
                .map(|seed| format!(" (first: seed {seed})"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  {:>4} of {judged} failed  {}{first}\n",
                check.failed,
                one_line(&check.name)
            ));
        }
        for (seed, error) in &self.errors {
            text.push_str(&format!(
                "  seed {seed}: run stopped: {}\n",
                one_line(error)
            ));
        }
        match self.first_failing_seed() {
            Some(seed) => text.push_str(&format!(
                "{}: {} — replay: {}",
                self.file,
                colour.verdict("FAIL"),
                self.replay_command(seed)
            )),
            None => text.push_str(&format!(
                "{}: {} on every seed",
                self.file,
                colour.verdict("PASS")
            )),
        }
        text
    }
}

/// Runs `scenario` once per seed of `seeds`, on `threads` threads.
pub fn sweep(scenario: &Scenario, seeds: Range<u64>, threads: usize) -> Sweep {
    let next = AtomicU64::new(seeds.start);
    let outcomes = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let mut report = super::run(scenario, seed).report;
                    // Only the verdicts are tallied: the run in time (a
                    // megabyte a seed for a busy scenario) is let go.
                    report.call_log = Vec::new();
                    report.timeline = Default::default();
                    report.backends = Vec::new();
                    outcomes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(seed, report);
                }
            });
        }
    });
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (checks, errors) = tally(outcomes);
    Sweep {
        file: scenario.file.display().to_string(),
        seeds,
        checks,
        errors,
    }
}

/// Each check's failures over the seeds' reports, a check being its place
/// in the report and its name (names need not be unique); and the seeds a
/// harness error stopped, whose checks are not counted.
fn tally(reports: BTreeMap<u64, RunReport>) -> (Vec<CheckTally>, BTreeMap<u64, String>) {
    let mut checks: Vec<((usize, String), CheckTally)> = Vec::new();
    let mut errors = BTreeMap::new();
    for (seed, report) in reports {
        if let Some(error) = report.error {
            errors.insert(seed, error);
            continue;
        }
        for (place, check) in report.checks.into_iter().enumerate() {
            let key = (place, check.name);
            let index = match checks.iter().position(|(k, _)| *k == key) {
                Some(index) => index,
                None => {
                    let tally = CheckTally {
                        name: key.1.clone(),
                        failed: 0,
                        first_failure: None,
                    };
                    checks.push((key, tally));
                    checks.len() - 1
                }
            };
            if !check.passed {
                let tally = &mut checks[index].1;
                tally.failed += 1;
                tally.first_failure = Some(tally.first_failure.map_or(seed, |s| s.min(seed)));
            }
        }
    }
    checks.sort_by_key(|((place, _), _)| *place);
    (checks.into_iter().map(|(_, tally)| tally).collect(), errors)
}

/// Why `--seeds` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedsError {
    /// Not `A..B` or `A..=B` with whole numbers that fit.
    #[error("expected seeds as A..B or A..=B, got {0:?}")]
    Malformed(String),
    /// A range with no seed in it.
    #[error("the seed range {0:?} is empty")]
    Empty(String),
}

/// Reads `A..B` (B excluded) or `A..=B`.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, SeedsError> {
    let bad = || SeedsError::Malformed(text.to_owned());
    let (start, end, inclusive) = match text.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = text.split_once("..").ok_or_else(bad)?;
            (a, b, false)
        }
    };
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        end.checked_add(1).ok_or_else(bad)?
    } else {
        end
    };
    if end <= start {
        return Err(SeedsError::Empty(text.to_owned()));
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_both_ways_and_reject_nonsense() {
        assert_eq!(parse_seeds("1..200"), Ok(1..200));
        assert_eq!(parse_seeds("1..=200"), Ok(1..201));
        assert!(parse_seeds("5..5").is_err());
        assert!(parse_seeds("a..b").is_err());
        assert!(parse_seeds("7").is_err());
    }

    #[test]
    fn checks_of_one_name_are_tallied_apart_over_the_judged_seeds() {
        let mut report = crate::report::tests::sample();
        // Two checks of one name: the first passes, the second fails.
        report.checks[1].name = report.checks[0].name.clone();
        let mut stopped = report.clone();
        stopped.error = Some("fake did not start\u{1b}[2J".into());
        let reports = BTreeMap::from([(3, report.clone()), (4, stopped), (5, report)]);
        let (checks, errors) = tally(reports);
        let counts: Vec<(&str, u64, Option<u64>)> = checks
            .iter()
            .map(|c| (c.name.as_str(), c.failed, c.first_failure))
            .collect();
        assert_eq!(
            counts,
            [("steady before", 0, None), ("steady before", 2, Some(3))]
        );
        let sweep = Sweep {
            file: "s.yaml".into(),
            seeds: 3..6,
            checks,
            errors,
        };
        assert_eq!(sweep.judged(), 2);
        let text = sweep.render(Colour::Off);
        assert!(
            text.contains("   2 of 2 failed  steady before (first: seed 3)"),
            "{text}"
        );
        assert!(
            text.contains("seed 4: run stopped: fake did not start\u{FFFD}[2J"),
            "{text}"
        );
    }

    #[test]
    fn the_replay_command_names_the_first_failing_seed() {
        let sweep = Sweep {
            file: "scenarios/canary.yaml".into(),
            seeds: 1..10,
            checks: vec![
                CheckTally {
                    name: "a".into(),
                    failed: 0,
                    first_failure: None,
                },
                CheckTally {
                    name: "b".into(),
                    failed: 2,
                    first_failure: Some(4),
                },
            ],
            errors: BTreeMap::from([(6, "stuck".into())]),
        };
        assert!(!sweep.passed());
        assert_eq!(sweep.first_failing_seed(), Some(4));
        let text = sweep.render(Colour::Off);
        assert!(
            text.starts_with(
                "scenarios/canary.yaml: seeds 1..10 (9 runs, 1 stopped by a harness error)\n"
            ),
            "{text}"
        );
        assert!(text.contains("2 of 8 failed  b (first: seed 4)"), "{text}");
        assert!(
            text.ends_with("replay: mcp-harness run --sim --seed 4 scenarios/canary.yaml"),
            "{text}"
        );
    }
}
