//! What a fake does with each call, and when it is down.
//!
//! Both faces ask the same [`Script`], so an HTTP fake and a stdio fake with
//! the same declaration, faults and seed make the same choices for the same
//! sequence of calls. The rules: start from the tool's own behaviour; every
//! `Behave` fault of this fake that holds (by scenario time, or by the
//! tool's call count) and names this tool or none replaces the latency
//! and/or the outcome mix, in file order, so later faults win. Outages are
//! time-triggered and answered separately ([`Script::outage_at`]), because
//! the faces act on them before any request arrives. Network faults are not
//! the fake's to act on: the simulation applies them to the link
//! (`sim::network`).

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
    startup: Option<Latency>,
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
            startup: spec.startup,
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

    /// How long this process takes to start (the fake's `startup`): drawn
    /// from its generator, which a face asks before any call, so each
    /// generation of a stdio fake starts as slowly on every run with the
    /// same seed. Zero, and nothing drawn, for a fake without one.
    pub fn startup(&mut self) -> Duration {
        self.startup.map_or(Duration::ZERO, |startup| {
            sample_latency(&startup, &mut self.rng)
        })
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
            FaultAction::Behave { .. }
            | FaultAction::Network { .. }
            | FaultAction::RotateKey { .. }
            | FaultAction::Reload { .. } => None,
        })
    }
}

/// The first start or end of `trigger` strictly after `now`.
pub(crate) fn next_edge(trigger: &crate::scenario::Trigger, now: Duration) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Behaviour, CallTrigger, FakeTransport, Trigger};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn spec(tools: &[(&str, Behaviour)]) -> FakeSpec {
        FakeSpec {
            name: "files".into(),
            transport: FakeTransport::Stdio,
            tools: tools
                .iter()
                .map(|(name, behaviour)| ToolSpec {
                    name: (*name).into(),
                    read_only: None,
                    idempotent: None,
                    behaviour: behaviour.clone(),
                })
                .collect(),
            startup: None,
        }
    }

    fn always(outcome: Outcome) -> Vec<WeightedOutcome> {
        vec![WeightedOutcome {
            outcome,
            probability: 1.0,
        }]
    }

    fn failing() -> Outcome {
        Outcome::ToolError {
            message: "scripted".into(),
        }
    }

    fn behave(tool: Option<&str>, trigger: Trigger, outcome: Outcome) -> Fault {
        Fault {
            name: None,
            fake: "files".into(),
            tool: tool.map(str::to_owned),
            trigger,
            action: FaultAction::Behave {
                latency: None,
                outcomes: Some(always(outcome)),
            },
        }
    }

    fn outage(at: u64, length: Option<u64>, every: Option<u64>, exit_code: i32) -> Fault {
        Fault {
            name: Some("down".into()),
            fake: "files".into(),
            tool: None,
            trigger: Trigger::Time {
                at: ms(at),
                length: length.map(ms),
                every: every.map(ms),
            },
            action: FaultAction::Outage { exit_code },
        }
    }

    fn outcomes_of(script: &mut Script, tool: &str, calls: usize) -> Vec<Outcome> {
        (0..calls)
            .map(|_| script.decide(tool, Duration::ZERO).unwrap().outcome)
            .collect()
    }

    fn samples(latency: Latency, seed: u64, n: usize) -> Vec<Duration> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| sample_latency(&latency, &mut rng)).collect()
    }

    fn mean_ms(samples: &[Duration]) -> f64 {
        samples.iter().map(|d| d.as_secs_f64() * 1e3).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn seeded_sampling_repeats_for_a_seed_and_differs_across_seeds() {
        let distributions = [
            Latency::Uniform {
                min: ms(5),
                max: ms(20),
            },
            Latency::Normal {
                mean: ms(20),
                stddev: ms(5),
            },
            Latency::LogNormal {
                median: ms(20),
                sigma: 0.5,
            },
            Latency::Pareto {
                scale: ms(5),
                shape: 1.5,
            },
        ];
        for latency in distributions {
            assert_eq!(
                samples(latency, 7, 200),
                samples(latency, 7, 200),
                "{latency:?}"
            );
            assert_ne!(
                samples(latency, 7, 200),
                samples(latency, 8, 200),
                "{latency:?}"
            );
        }
    }

    #[test]
    fn fixed_latency_is_exact_and_uniform_stays_within_bounds() {
        assert!(
            samples(Latency::Fixed(ms(7)), 1, 100)
                .iter()
                .all(|d| *d == ms(7))
        );
        let uniform = samples(
            Latency::Uniform {
                min: ms(5),
                max: ms(20),
            },
            1,
            10_000,
        );
        assert!(uniform.iter().all(|d| (ms(5)..=ms(20)).contains(d)));
        // Both halves of the range are drawn from.
        assert!(uniform.iter().any(|d| *d < ms(8)));
        assert!(uniform.iter().any(|d| *d > ms(17)));
        assert!((mean_ms(&uniform) - 12.5).abs() < 0.5);
    }

    #[test]
    fn normal_centres_on_its_mean_and_never_goes_negative() {
        let normal = samples(
            Latency::Normal {
                mean: ms(20),
                stddev: ms(5),
            },
            3,
            10_000,
        );
        // The standard error of the mean is 0.05 ms.
        assert!(
            (mean_ms(&normal) - 20.0).abs() < 0.5,
            "{}",
            mean_ms(&normal)
        );
        let wide = samples(
            Latency::Normal {
                mean: ms(1),
                stddev: ms(10),
            },
            3,
            1_000,
        );
        let zeros = wide.iter().filter(|d| d.is_zero()).count();
        // About 46% of draws are negative and clamp to zero.
        assert!((300..600).contains(&zeros), "{zeros}");
    }

    #[test]
    fn lognormal_centres_on_its_median_and_pareto_never_drops_below_scale() {
        let mut lognormal = samples(
            Latency::LogNormal {
                median: ms(20),
                sigma: 0.5,
            },
            4,
            10_001,
        );
        lognormal.sort();
        let median = lognormal[5_000].as_secs_f64() * 1e3;
        assert!((median - 20.0).abs() < 1.0, "{median}");

        let pareto = samples(
            Latency::Pareto {
                scale: ms(5),
                shape: 1.5,
            },
            4,
            10_000,
        );
        assert!(pareto.iter().all(|d| *d >= ms(5)));
        // P(X > 4·scale) = 4^-1.5 = 1/8: a heavy tail, not a constant.
        let tail = pareto.iter().filter(|d| **d > ms(20)).count();
        assert!((1_000..1_500).contains(&tail), "{tail}");
    }

    #[test]
    fn outcomes_follow_their_probabilities_and_the_rest_is_success() {
        let mix = vec![
            WeightedOutcome {
                outcome: failing(),
                probability: 0.3,
            },
            WeightedOutcome {
                outcome: Outcome::Hang,
                probability: 0.2,
            },
        ];
        let mut rng = StdRng::seed_from_u64(5);
        let picks: Vec<Outcome> = (0..10_000).map(|_| pick_outcome(&mix, &mut rng)).collect();
        let share = |o: &Outcome| picks.iter().filter(|p| *p == o).count() as f64 / 1e4;
        assert!((share(&failing()) - 0.3).abs() < 0.03);
        assert!((share(&Outcome::Hang) - 0.2).abs() < 0.03);
        assert!((share(&Outcome::Success) - 0.5).abs() < 0.03);
        assert_eq!(pick_outcome(&[], &mut rng), Outcome::Success);
    }

    #[test]
    fn scripts_repeat_for_a_seed_and_generation_and_differ_otherwise() {
        let behaviour = Behaviour {
            latency: Latency::Uniform {
                min: Duration::ZERO,
                max: ms(100),
            },
            outcomes: vec![WeightedOutcome {
                outcome: failing(),
                probability: 0.5,
            }],
        };
        let spec = spec(&[("read", behaviour)]);
        let run = |seed, generation| {
            let mut script = Script::new(&spec, &[], seed, generation);
            (0..50)
                .map(|_| script.decide("read", Duration::ZERO).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1, 0), run(1, 0));
        assert_ne!(run(1, 0), run(1, 1));
        assert_ne!(run(1, 0), run(2, 0));
    }

    #[test]
    fn each_generation_draws_its_startup_first_and_a_fake_without_one_draws_nothing() {
        let behaviour = Behaviour {
            latency: Latency::Uniform {
                min: Duration::ZERO,
                max: ms(100),
            },
            outcomes: Vec::new(),
        };
        let quick = spec(&[("read", behaviour)]);
        let slow = FakeSpec {
            startup: Some(Latency::Uniform {
                min: ms(20),
                max: ms(200),
            }),
            ..quick.clone()
        };
        let startups = |spec: &FakeSpec, seed| {
            (0..200)
                .map(|generation| Script::new(spec, &[], seed, generation).startup())
                .collect::<Vec<_>>()
        };
        let drawn = startups(&slow, 1);
        assert_eq!(drawn, startups(&slow, 1));
        assert_ne!(drawn, startups(&slow, 2));
        assert!(drawn.iter().all(|d| (ms(20)..=ms(200)).contains(d)));
        assert!(drawn.iter().any(|d| *d < ms(50)) && drawn.iter().any(|d| *d > ms(170)));
        assert!(startups(&quick, 1).iter().all(Duration::is_zero));
        // Without a startup the calls draw what they always drew.
        let first_call = |spec: &FakeSpec| {
            let mut script = Script::new(spec, &[], 1, 0);
            script.startup();
            script.decide("read", Duration::ZERO).unwrap()
        };
        let mut untouched = Script::new(&quick, &[], 1, 0);
        assert_eq!(
            first_call(&quick),
            untouched.decide("read", Duration::ZERO).unwrap()
        );
        assert_ne!(first_call(&slow), first_call(&quick));
    }

    #[test]
    fn first_n_calls_are_counted_per_tool() {
        let spec = spec(&[
            ("read", Behaviour::default()),
            ("write", Behaviour::default()),
        ]);
        let faults = [behave(
            None,
            Trigger::Calls(CallTrigger::First(2)),
            failing(),
        )];
        let mut script = Script::new(&spec, &faults, 0, 0);
        assert_eq!(
            outcomes_of(&mut script, "read", 3),
            [failing(), failing(), Outcome::Success]
        );
        // `write` has its own count: its first two calls fail too.
        assert_eq!(
            outcomes_of(&mut script, "write", 3),
            [failing(), failing(), Outcome::Success]
        );
    }

    #[test]
    fn every_nth_call_of_the_named_tool_only() {
        let spec = spec(&[
            ("read", Behaviour::default()),
            ("write", Behaviour::default()),
        ]);
        let faults = [behave(
            Some("read"),
            Trigger::Calls(CallTrigger::Every(3)),
            Outcome::Hang,
        )];
        let mut script = Script::new(&spec, &faults, 0, 0);
        let read = outcomes_of(&mut script, "read", 7);
        let hung: Vec<usize> = (0..7).filter(|i| read[*i] == Outcome::Hang).collect();
        assert_eq!(hung, [2, 5]);
        assert!(
            outcomes_of(&mut script, "write", 6)
                .iter()
                .all(|o| *o == Outcome::Success)
        );
    }

    #[test]
    fn a_repeating_time_trigger_holds_in_each_period() {
        let spec = spec(&[("read", Behaviour::default())]);
        let trigger = Trigger::Time {
            at: ms(10),
            length: Some(ms(2)),
            every: Some(ms(5)),
        };
        let mut script = Script::new(&spec, &[behave(None, trigger, failing())], 0, 0);
        let mut at = |t: u64| script.decide("read", ms(t)).unwrap().outcome;
        assert_eq!(at(9), Outcome::Success);
        assert_eq!(at(10), failing());
        assert_eq!(at(11), failing());
        assert_eq!(at(12), Outcome::Success);
        assert_eq!(at(15), failing());
        assert_eq!(at(18), Outcome::Success);
        assert_eq!(at(1_001), failing());
    }

    #[test]
    fn later_faults_win_and_replace_only_what_they_set() {
        let spec = spec(&[("read", Behaviour::default())]);
        let slow = Fault {
            action: FaultAction::Behave {
                latency: Some(Latency::Fixed(ms(40))),
                outcomes: Some(always(failing())),
            },
            ..behave(None, Trigger::Calls(CallTrigger::First(10)), failing())
        };
        let hang = behave(
            Some("read"),
            Trigger::Calls(CallTrigger::Every(2)),
            Outcome::Hang,
        );
        let mut script = Script::new(&spec, &[slow, hang], 0, 0);
        let first = script.decide("read", Duration::ZERO).unwrap();
        assert_eq!(
            first,
            Decision {
                latency: ms(40),
                outcome: failing()
            }
        );
        let second = script.decide("read", Duration::ZERO).unwrap();
        assert_eq!(
            second,
            Decision {
                latency: ms(40),
                outcome: Outcome::Hang
            }
        );
    }

    #[test]
    fn unknown_tools_and_other_fakes_faults_are_ignored() {
        let spec = spec(&[("read", Behaviour::default())]);
        let mut elsewhere = behave(None, Trigger::Calls(CallTrigger::First(5)), failing());
        elsewhere.fake = "other".into();
        let mut script = Script::new(&spec, &[elsewhere, outage(0, None, None, 1)], 0, 0);
        assert_eq!(script.decide("nope", Duration::ZERO), None);
        // The unknown call was not counted, and the other fake's fault does not apply.
        assert_eq!(outcomes_of(&mut script, "read", 1), [Outcome::Success]);
        // Outages do not change call outcomes: the faces act on them.
        assert_eq!(script.outage_at(Duration::ZERO), Some(1));
    }

    #[test]
    fn outages_and_their_edges() {
        let spec = spec(&[("read", Behaviour::default())]);
        let once = Script::new(&spec, &[outage(100, Some(50), None, 3)], 0, 0);
        assert_eq!(once.outage_at(ms(99)), None);
        assert_eq!(once.outage_at(ms(100)), Some(3));
        assert_eq!(once.outage_at(ms(150)), None);
        assert_eq!(once.next_outage_change(Duration::ZERO), Some(ms(100)));
        assert_eq!(once.next_outage_change(ms(100)), Some(ms(150)));
        assert_eq!(once.next_outage_change(ms(150)), None);

        let periodic = Script::new(&spec, &[outage(100, Some(20), Some(50), 1)], 0, 0);
        assert_eq!(periodic.next_outage_change(ms(110)), Some(ms(120)));
        assert_eq!(periodic.next_outage_change(ms(120)), Some(ms(150)));
        assert_eq!(periodic.outage_at(ms(155)), Some(1));
        assert_eq!(periodic.outage_at(ms(175)), None);

        let forever = Script::new(&spec, &[outage(100, None, None, 1)], 0, 0);
        assert_eq!(forever.next_outage_change(ms(100)), None);
        assert_eq!(forever.outage_at(ms(10_000)), Some(1));

        // Overlapping outages: the later one in file order names the code.
        let both = Script::new(
            &spec,
            &[
                outage(0, Some(100), None, 2),
                outage(50, Some(100), None, 9),
            ],
            0,
            0,
        );
        assert_eq!(both.outage_at(ms(10)), Some(2));
        assert_eq!(both.outage_at(ms(60)), Some(9));
        assert_eq!(both.outage_at(ms(120)), Some(9));
        assert_eq!(both.next_outage_change(ms(60)), Some(ms(100)));
    }
}
