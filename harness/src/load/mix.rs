//! Which tool each call uses: the workload's weighted mix, drawn from a
//! generator seeded from the scenario seed.
//!
//! Call numbers and draws are handed out together, so call N uses the same
//! tool in every run with the same seed, whichever worker or slot happens to
//! send it.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use serde_json::Value;

use super::LoadError;
use crate::scenario::CallMix;

/// Keeps the load generator's draws apart from other users of the scenario
/// seed (the fakes draw their outcomes from it): with the same stream, the
/// tool of call N and the fate of request N would be correlated.
const STREAM: u64 = 0x6c6f_6164_6d69_7800; // "loadmix\0"

/// A call about to be made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedCall {
    /// The `harness_call` number.
    pub(crate) call: u64,
    /// The tool, as the proxy names it.
    pub(crate) tool: String,
    /// The arguments, `harness_call` included.
    pub(crate) arguments: Value,
}

/// Hands out call numbers (from 1) and the tool and arguments of each.
#[derive(Debug)]
pub(crate) struct Mix {
    calls: Vec<CallMix>,
    choose: WeightedIndex<f64>,
    rng: StdRng,
    last: u64,
}

impl Mix {
    /// A mix over `calls` for a run with `seed`; fails if no entry has a
    /// positive weight (the scenario validator prevents that).
    pub(crate) fn new(calls: &[CallMix], seed: u64) -> Result<Self, LoadError> {
        let choose =
            WeightedIndex::new(calls.iter().map(|c| c.weight)).map_err(LoadError::CallMix)?;
        Ok(Self {
            calls: calls.to_vec(),
            choose,
            rng: StdRng::seed_from_u64(seed ^ STREAM),
            last: 0,
        })
    }

    /// The next call.
    pub(crate) fn next_call(&mut self) -> PlannedCall {
        self.last += 1;
        let entry = &self.calls[self.choose.sample(&mut self.rng)];
        let mut arguments = entry.arguments.clone();
        arguments.insert("harness_call".into(), Value::from(self.last));
        PlannedCall {
            call: self.last,
            tool: entry.tool.clone(),
            arguments: Value::Object(arguments),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tool: &str, weight: f64) -> CallMix {
        CallMix {
            tool: tool.into(),
            arguments: serde_json::Map::from_iter([("path".to_string(), Value::from("/a"))]),
            weight,
        }
    }

    fn tools(seed: u64, n: usize) -> Vec<String> {
        let mut mix = Mix::new(&[entry("a", 3.0), entry("b", 1.0)], seed).unwrap();
        (0..n).map(|_| mix.next_call().tool).collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_tools() {
        assert_eq!(tools(7, 200), tools(7, 200));
        assert_ne!(tools(7, 200), tools(8, 200));
    }

    #[test]
    fn tools_are_drawn_in_proportion_to_their_weights() {
        let drawn = tools(42, 10_000);
        let a = drawn.iter().filter(|t| *t == "a").count();
        // Expected 7500; the standard deviation is about 43.
        assert!((7200..7800).contains(&a), "{a} of 10000 were a");
    }

    #[test]
    fn calls_are_numbered_from_one_and_carry_their_number() {
        let mut mix = Mix::new(&[entry("a", 1.0)], 1).unwrap();
        let first = mix.next_call();
        let second = mix.next_call();
        assert_eq!((first.call, second.call), (1, 2));
        assert_eq!(
            second.arguments,
            serde_json::json!({"path": "/a", "harness_call": 2})
        );
    }

    #[test]
    fn a_mix_without_positive_weight_is_refused() {
        assert!(Mix::new(&[], 1).is_err());
        assert!(Mix::new(&[entry("a", 0.0)], 1).is_err());
    }
}
