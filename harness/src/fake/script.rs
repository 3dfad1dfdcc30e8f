//! What a fake does with each call, and when it is down.
//!
//! Both faces ask the same [`Script`], so an HTTP fake and a stdio fake with
//! the same declaration, faults and seed make the same choices for the same
//! sequence of calls. The rules: start from the tool's own behaviour; every
//! `Behave` fault of this fake that holds (by scenario time, or by the
//! tool's call count) and names this tool or none replaces the latency
//! and/or the outcome mix, in file order, so later faults win. Outages are
//! time-triggered and answered separately ([`Script::outage_at`]), because
//! the faces act on them before any request arrives.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal, Pareto};

use crate::scenario::{FakeSpec, Fault, FaultAction, Latency, Outcome, ToolSpec, WeightedOutcome};

/// The longest latency a sample turns into: a heavy tail may draw values
/// that overflow a [`Duration`], and anything this long is a hang anyway.
const LATENCY_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// What one call gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// How long to wait before the outcome.
    pub latency: Duration,
    /// What happens then.
    pub outcome: Outcome,
}

/// The seeded decision maker of one fake process.
pub struct Script {
    tools: Vec<ToolSpec>,
    faults: Vec<Fault>,
    rng: StdRng,
    calls: HashMap<String, u64>,
}

impl Script {
    /// A script for `spec`, keeping only the faults that name it. The
    /// generator is seeded from the scenario seed, the fake's name and the
    /// generation, so every fake (and every respawn of one) draws its own
    /// sequence, the same on every run with the same seed.
    pub fn new(spec: &FakeSpec, faults: &[Fault], seed: u64, generation: u64) -> Self {
        Self {
            tools: spec.tools.clone(),
            faults: faults
                .iter()
                .filter(|fault| fault.fake == spec.name)
                .cloned()
                .collect(),
            rng: StdRng::seed_from_u64(derive_seed(seed, &spec.name, generation)),
            calls: HashMap::new(),
        }
    }

    /// Decides the next call of `tool` at scenario time `now`, counting it.
    /// `None` for a tool the fake does not have (not counted).
    pub fn decide(&mut self, tool: &str, now: Duration) -> Option<Decision> {
        let spec = self.tools.iter().find(|t| t.name == tool)?;
        let count = self.calls.entry(tool.to_owned()).or_insert(0);
        *count += 1;
        let n = *count;
        let mut latency = &spec.behaviour.latency;
        let mut outcomes = &spec.behaviour.outcomes;
        for fault in &self.faults {
            let FaultAction::Behave {
                latency: fault_latency,
                outcomes: fault_outcomes,
            } = &fault.action
            else {
                continue;
            };
            let applies = fault.tool.as_deref().is_none_or(|t| t == tool)
                && (fault.trigger.holds_at(now) || fault.trigger.holds_for_call(n));
            if !applies {
                continue;
            }
            if let Some(l) = fault_latency {
                latency = l;
            }
            if let Some(o) = fault_outcomes {
                outcomes = o;
            }
        }
        Some(Decision {
            latency: sample_latency(latency, &mut self.rng),
            outcome: pick_outcome(outcomes, &mut self.rng),
        })
    }

    /// The exit code of the outage in force at `now`, if the fake is down
    /// (the last outage in file order that holds wins).
    pub fn outage_at(&self, now: Duration) -> Option<i32> {
        self.outages()
            .filter(|(fault, _)| fault.trigger.holds_at(now))
            .last()
            .map(|(_, code)| code)
    }

    /// The first instant after `now` at which some outage starts or ends:
    /// when a face must look at [`Script::outage_at`] again. `None` once
    /// nothing changes any more.
    pub fn next_outage_change(&self, now: Duration) -> Option<Duration> {
        self.outages()
            .filter_map(|(fault, _)| next_edge(&fault.trigger, now))
            .min()
    }

    fn outages(&self) -> impl Iterator<Item = (&Fault, i32)> {
        self.faults.iter().filter_map(|fault| match fault.action {
            FaultAction::Outage { exit_code } => Some((fault, exit_code)),
            FaultAction::Behave { .. } => None,
        })
    }
}

/// The first start or end of `trigger` strictly after `now`.
fn next_edge(trigger: &crate::scenario::Trigger, now: Duration) -> Option<Duration> {
    let crate::scenario::Trigger::Time { at, length, every } = *trigger else {
        return None;
    };
    if length.is_some_and(|len| len.is_zero()) {
        // Never holds, so never changes anything.
        return None;
    }
    if now < at {
        return Some(at);
    }
    let since = (now - at).as_nanos();
    match every.map(|p| p.as_nanos()).filter(|p| *p > 0) {
        None => {
            let end = at.checked_add(length?)?;
            (end > now).then_some(end)
        }
        Some(period) => {
            // A phase as long as its period never ends.
            let len = length?.as_nanos();
            if len >= period {
                return None;
            }
            let cycle_start = since - since % period;
            let phase = since % period;
            let next = if phase < len {
                cycle_start + len
            } else {
                cycle_start + period
            };
            at.checked_add(nanos(next))
        }
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Draws one latency from `latency`. Negative draws (normal) become zero;
/// draws beyond a day are capped at a day.
pub fn sample_latency<R: Rng + ?Sized>(latency: &Latency, rng: &mut R) -> Duration {
    let seconds = match *latency {
        Latency::Fixed(d) => return d,
        Latency::Uniform { min, max } => {
            if max <= min {
                return min;
            }
            let lo = u64::try_from(min.as_nanos()).unwrap_or(u64::MAX);
            let hi = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
            return Duration::from_nanos(rng.random_range(lo..=hi));
        }
        Latency::Normal { mean, stddev } => {
            match Normal::new(mean.as_secs_f64(), stddev.as_secs_f64()) {
                Ok(d) => d.sample(rng),
                Err(_) => mean.as_secs_f64(),
            }
        }
        Latency::LogNormal { median, sigma } => {
            if median.is_zero() {
                return Duration::ZERO;
            }
            match LogNormal::new(median.as_secs_f64().ln(), sigma) {
                Ok(d) => d.sample(rng),
                Err(_) => median.as_secs_f64(),
            }
        }
        Latency::Pareto { scale, shape } => {
            if scale.is_zero() {
                return Duration::ZERO;
            }
            match Pareto::new(scale.as_secs_f64(), shape) {
                Ok(d) => d.sample(rng),
                Err(_) => scale.as_secs_f64(),
            }
        }
    };
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds).map_or(LATENCY_CAP, |d| d.min(LATENCY_CAP))
}

/// Picks an outcome by cumulative probability; what is left is success.
pub fn pick_outcome<R: Rng + ?Sized>(outcomes: &[WeightedOutcome], rng: &mut R) -> Outcome {
    let draw: f64 = rng.random();
    let mut cumulative = 0.0;
    for weighted in outcomes {
        cumulative += weighted.probability;
        if draw < cumulative {
            return weighted.outcome.clone();
        }
    }
    Outcome::Success
}

/// Mixes the scenario seed, the fake's name and the generation into one
/// seed (FNV-1a over the name, then SplitMix64 finalisers), so that fakes
/// differing in any of them get unrelated sequences.
fn derive_seed(seed: u64, name: &str, generation: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(seed ^ mix(hash ^ mix(generation)))
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
