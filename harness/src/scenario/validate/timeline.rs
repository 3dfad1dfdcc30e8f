//! The fault timeline: the phases that named time-triggered faults make,
//! each occurrence of a time trigger, the windows checks select calls by,
//! and durations written the way a scenario writes them.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::{KeyPath, Validator};

impl Validator<'_> {
    pub(super) fn window(
        &self,
        raw: Option<RawWindow>,
        path: &KeyPath,
        phases: &Phases,
    ) -> Result<Window, ConfigError> {
        let whole = Duration::ZERO..phases.duration;
        let Some(raw) = raw else {
            return Ok(Window {
                label: "whole run".into(),
                ranges: vec![whole],
            });
        };
        let named = [
            ("during", &raw.during),
            ("before", &raw.before),
            ("after", &raw.after),
        ];
        let given: Vec<_> = named.iter().filter(|(_, v)| v.is_some()).collect();
        let absolute = raw.from.is_some() || raw.to.is_some();
        if given.len() + usize::from(absolute) > 1 {
            return Err(self.error(path, "use one of during, before, after, or from/to"));
        }
        let (mut label, mut ranges) = match given.first() {
            Some((how, Some(phase))) => {
                let occurrences = phases
                    .get(phase)
                    .ok_or_else(|| self.error(&path.key(how), phases.unknown(phase)))?;
                let ranges = match *how {
                    "during" => occurrences.to_vec(),
                    "before" => vec![Duration::ZERO..occurrences[0].start],
                    _ => vec![occurrences[occurrences.len() - 1].end..phases.duration],
                };
                (format!("{how} {phase}"), ranges)
            }
            _ => {
                let from = raw.from.map_or(Duration::ZERO, |d| d.0);
                let to = raw.to.map_or(phases.duration, |d| d.0);
                if to <= from {
                    return Err(self.error(&path.key("to"), "must be after `from`"));
                }
                (
                    format!("{}–{}", fmt_duration(from), fmt_duration(to)),
                    vec![from..to],
                )
            }
        };
        if let Some(skip) = raw.skip {
            let skip = skip.0;
            for r in &mut ranges {
                r.start = (r.start + skip).min(r.end);
            }
            label.push_str(&format!(" (skipping {})", fmt_duration(skip)));
        }
        ranges.retain(|r| r.start < r.end);
        if ranges.is_empty() {
            return Err(self.error(path, "the window is empty"));
        }
        Ok(Window { label, ranges })
    }
}

/// The first instant before `end` at which two time triggers both hold.
pub(super) fn first_overlap(a: &Trigger, b: &Trigger, end: Duration) -> Option<Duration> {
    let ranges = |t: &Trigger| {
        match *t {
            Trigger::Time { at, length, every } => Some(each_occurrence(at, length, every, end)),
            Trigger::Calls(_) => None,
        }
        .into_iter()
        .flatten()
        .peekable()
    };
    let (mut a, mut b) = (ranges(a), ranges(b));
    // Each is sorted and disjoint (a period is longer than its length).
    loop {
        let (x, y) = (a.peek()?, b.peek()?);
        if x.start < y.end && y.start < x.end {
            return Some(x.start.max(y.start));
        }
        if x.end <= y.end {
            a.next();
        } else {
            b.next();
        }
    }
}

/// `1.5s`, `250ms`: durations as the scenario would write them.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if d.subsec_nanos().is_multiple_of(1_000_000) || ms >= 10 {
        format!("{ms}ms")
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    }
}

/// The named phases of the timeline: every occurrence of each named,
/// time-triggered fault within the scenario.
pub(super) struct Phases {
    duration: Duration,
    by_name: HashMap<String, Vec<Range<Duration>>>,
}

impl Phases {
    pub(super) fn of(faults: &[Fault], duration: Duration) -> Phases {
        let mut by_name = HashMap::new();
        for fault in faults {
            if let (Some(name), Trigger::Time { at, length, every }) = (&fault.name, &fault.trigger)
            {
                by_name.insert(name.clone(), occurrences(*at, *length, *every, duration));
            }
        }
        Phases { duration, by_name }
    }

    pub(super) fn get(&self, name: &str) -> Option<&[Range<Duration>]> {
        self.by_name.get(name).map(Vec::as_slice)
    }

    pub(super) fn unknown(&self, name: &str) -> String {
        let mut known: Vec<_> = self.by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        if known.is_empty() {
            format!("no phase named {name:?} (name a fault to make a phase)")
        } else {
            format!("no phase named {name:?}; phases: {}", known.join(", "))
        }
    }
}

/// The occurrences of a time trigger that start before `duration`, each cut at `duration`.
pub fn occurrences(
    at: Duration,
    length: Option<Duration>,
    every: Option<Duration>,
    duration: Duration,
) -> Vec<Range<Duration>> {
    each_occurrence(at, length, every, duration).collect()
}

/// [`occurrences`], one at a time.
fn each_occurrence(
    at: Duration,
    length: Option<Duration>,
    every: Option<Duration>,
    duration: Duration,
) -> impl Iterator<Item = Range<Duration>> {
    let period = every.filter(|p| !p.is_zero());
    std::iter::successors(Some(at), move |start| {
        period.and_then(|p| start.checked_add(p))
    })
    .take_while(move |start| *start < duration)
    .map(move |start| start..length.map_or(duration, |l| start.saturating_add(l).min(duration)))
}
