//! `bench --soak`: does the proxy's memory stay flat under steady load
//! while its backends misbehave?
//!
//! Two backends behind the proxy binary, each exercising a different part
//! of it: `flaky` answers with jittery latency, a few errors, tool errors
//! and the odd call it never answers (per-try timeouts and retries), and
//! fails every call for a stretch of each fault cycle (the circuit breaker
//! opens and closes); `pool` is two replicas that go down in turn (the
//! pool, retries onto the other replica, outlier ejection, reconnects).
//! The fault cycle is a tenth of the run (at least [`MIN_CYCLE`], at most
//! [`MAX_CYCLE`]), so a short run sees the faults too.
//!
//! An open loop sends `rate` calls a second, half to each backend, for the
//! whole run; meanwhile the proxy's resident set is sampled every
//! [`Schedule::interval`]. The first tenth of the run (at most a minute) is
//! warm-up: pools, caches and the allocator's arenas fill. The verdict
//! compares the highest sample after it with the sample that closes it:
//! growth under [`GROWTH_GOAL_PERCENT`] passes. How the calls ended is
//! reported too, by kind, but not judged: the faults make failures.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::measure::Measurement;
use super::rss::{self, RssError, mib};
use super::setup::{self, Setup, StartError};
use super::{GRACE, Load, table};
use crate::clock::ScenarioClock;
use crate::journal::Journal;
use crate::load::{self, LoadError, LoadResult, LoadTarget, Progress};
use crate::scenario::{Scenario, fmt_duration};

/// Growth of the resident set after warm-up that still passes, in percent.
pub(super) const GROWTH_GOAL_PERCENT: f64 = 10.0;
/// The longest warm-up.
const MAX_WARMUP: Duration = Duration::from_secs(60);
/// The longest pause between samples.
const MAX_INTERVAL: Duration = Duration::from_secs(10);
/// Samples per run, at least (a short run samples more often).
const MIN_SAMPLES: u32 = 20;
/// The fault cycle's bounds.
const MIN_CYCLE: Duration = Duration::from_secs(8);
const MAX_CYCLE: Duration = Duration::from_secs(60);
/// Open loop: calls outstanding beyond this are not sent (missed slots).
const MAX_IN_FLIGHT: usize = 10_000;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub(super) struct SoakPlan {
    /// How long the load runs.
    pub(super) duration: Duration,
    /// Calls per second.
    pub(super) rate: f64,
    /// Sessions the calls are spread over.
    pub(super) sessions: usize,
}

/// When samples are taken and what is warm-up, for one run's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Schedule {
    /// Between samples: a twentieth of the run, at most 10 s.
    pub(super) interval: Duration,
    /// The first tenth of the run, at most a minute.
    pub(super) warmup: Duration,
    /// The backends' fault cycle.
    pub(super) cycle: Duration,
}

impl Schedule {
    pub(super) fn of(duration: Duration) -> Schedule {
        Schedule {
            interval: (duration / MIN_SAMPLES).min(MAX_INTERVAL),
            warmup: (duration / 10).min(MAX_WARMUP),
            cycle: (duration / 10).clamp(MIN_CYCLE, MAX_CYCLE),
        }
    }
}

/// One reading of the proxy's resident set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Sample {
    /// Since the load started, in seconds.
    #[serde(rename = "at_s", serialize_with = "seconds")]
    pub(super) at: Duration,
    /// The resident set.
    pub(super) rss_kib: u64,
}

/// The resident set's growth after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Growth {
    /// The last sample of the warm-up.
    pub(super) warmup_end: Sample,
    /// The highest sample after it (the first, if several).
    pub(super) max_after: Sample,
    /// `max_after` over `warmup_end`, in percent (negative if it shrank).
    pub(super) percent: f64,
}

impl Growth {
    /// The growth in `samples` (in time order) after `warmup`; `None`
    /// without a sample in the warm-up and one after it.
    pub(super) fn of(samples: &[Sample], warmup: Duration) -> Option<Growth> {
        let warmup_end = *samples.iter().rev().find(|s| s.at <= warmup)?;
        let max_after =
            samples
                .iter()
                .filter(|s| s.at > warmup)
                .fold(None::<Sample>, |max, s| match max {
                    Some(max) if max.rss_kib >= s.rss_kib => Some(max),
                    _ => Some(*s),
                })?;
        let percent = if warmup_end.rss_kib == 0 {
            f64::INFINITY
        } else {
            (max_after.rss_kib as f64 - warmup_end.rss_kib as f64) * 100.0
                / warmup_end.rss_kib as f64
        };
        Some(Growth {
            warmup_end,
            max_after,
            percent,
        })
    }

    /// Whether the growth is under the goal.
    pub(super) fn passed(&self) -> bool {
        self.percent < GROWTH_GOAL_PERCENT
    }
}

/// Why the soak could not be judged.
#[derive(Debug, thiserror::Error)]
pub(super) enum SoakError {
    #[error(transparent)]
    Rss(#[from] RssError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the proxy stopped answering for its memory {at} into the soak ({status}): {source}")]
    ProxyGone {
        at: String,
        status: String,
        source: RssError,
    },
    #[error("no sample after the warm-up of {0}: the run is too short to judge")]
    TooShort(String),
    #[error("no call succeeded during the soak (see above)")]
    NothingAnswered,
}

/// What `--soak` measured.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SoakReport {
    /// The proxy's process id.
    pub(super) pid: u32,
    /// How long the load ran, in seconds.
    #[serde(serialize_with = "seconds")]
    pub(super) duration_s: Duration,
    /// Between samples, in seconds.
    #[serde(serialize_with = "seconds")]
    pub(super) interval_s: Duration,
    /// Warm-up, in seconds.
    #[serde(serialize_with = "seconds")]
    pub(super) warmup_s: Duration,
    /// The backends' fault cycle, in seconds.
    #[serde(serialize_with = "seconds")]
    pub(super) fault_cycle_s: Duration,
    /// Every sample, in time order.
    pub(super) samples: Vec<Sample>,
    /// The growth after warm-up.
    pub(super) growth: Growth,
    /// Whether it is under the goal.
    pub(super) passed: bool,
    /// The goal, in percent.
    pub(super) goal_percent: f64,
    /// The calls of the whole run: throughput, latency, failures by kind.
    pub(super) calls: Measurement,
}

impl SoakReport {
    /// The calls' table, then the growth and the verdict (the samples were
    /// printed as they were taken).
    pub(super) fn render(&self) -> String {
        let mut out = table::render(std::slice::from_ref(&self.calls));
        let g = &self.growth;
        let _ = writeln!(
            out,
            "RSS at the end of warm-up ({}): {:.1} MiB; highest after: {:.1} MiB (at {}); growth {:+.1} %",
            fmt_duration(g.warmup_end.at),
            mib(g.warmup_end.rss_kib),
            mib(g.max_after.rss_kib),
            fmt_duration(g.max_after.at),
            g.percent
        );
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{verdict}: growth after warm-up under {GROWTH_GOAL_PERCENT:.0} % ({} samples, one every {})",
            self.samples.len(),
            fmt_duration(self.interval_s)
        );
        out
    }
}

/// Starts the backends and the proxy binary `proxy_bin`, runs the load
/// while sampling, and stops both.
pub(super) async fn soak(plan: SoakPlan, proxy_bin: &Path) -> Result<SoakReport, SoakError> {
    let schedule = Schedule::of(plan.duration);
    let scenario = scenario(plan, schedule.cycle)?;
    setup::with_proxy_binary(
        &scenario,
        proxy_bin,
        Journal::discard(),
        async |setup, pid| run(plan, schedule, &scenario, setup, pid).await,
    )
    .await
}

/// The load and the sampling of process `pid`, with the setup running.
async fn run(
    plan: SoakPlan,
    schedule: Schedule,
    scenario: &Scenario,
    setup: &mut Setup,
    pid: u32,
) -> Result<SoakReport, SoakError> {
    let target = LoadTarget::new(&setup.proxy_url())?;
    println!(
        "soak: {} at {} calls/s over {} sessions, faults every {}; RSS every {}, warm-up {}",
        fmt_duration(plan.duration),
        plan.rate,
        plan.sessions,
        fmt_duration(schedule.cycle),
        fmt_duration(schedule.interval),
        fmt_duration(schedule.warmup),
    );
    let clock = ScenarioClock::start_now();
    let load = load::run(
        &target,
        &scenario.workload,
        scenario.seed,
        clock,
        plan.duration,
        GRACE,
        Arc::new(Progress::new()),
    );
    let sampling = sample(pid, plan.duration, schedule);
    tokio::pin!(load, sampling);
    // A proxy that is gone ends the soak there, not when the load would
    // have ended; the load is dropped (its calls abandoned) with it.
    let (result, sampled) = tokio::select! {
        sampled = &mut sampling => match sampled {
            Ok(samples) => (load.await, Ok(samples)),
            Err(failure) => (LoadResult::default(), Err(failure)),
        },
        result = &mut load => (result, sampling.await),
    };
    let samples = match sampled {
        Ok(samples) => samples,
        Err((at, source)) => {
            return Err(SoakError::ProxyGone {
                at: fmt_duration(at),
                status: setup
                    .proxy_exited()
                    .map_or("still running".into(), |status| {
                        format!("it exited: {status}")
                    }),
                source,
            });
        }
    };
    let load = Load::Open {
        rate: plan.rate,
        sessions: plan.sessions,
    };
    let calls = Measurement::of("proxy", load, &result, Duration::ZERO, plan.duration);
    if calls.successes == 0 {
        print!("{}", table::render(std::slice::from_ref(&calls)));
        return Err(SoakError::NothingAnswered);
    }
    let growth = Growth::of(&samples, schedule.warmup)
        .ok_or_else(|| SoakError::TooShort(fmt_duration(schedule.warmup)))?;
    Ok(SoakReport {
        pid,
        duration_s: plan.duration,
        interval_s: schedule.interval,
        warmup_s: schedule.warmup,
        fault_cycle_s: schedule.cycle,
        samples,
        passed: growth.passed(),
        growth,
        goal_percent: GROWTH_GOAL_PERCENT,
        calls,
    })
}

/// Reads the proxy's resident set at 0, `interval`, 2 × `interval`, ... up
/// to `duration`, printing each sample; the first failed reading ends it,
/// with when it failed.
async fn sample(
    pid: u32,
    duration: Duration,
    schedule: Schedule,
) -> Result<Vec<Sample>, (Duration, RssError)> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut at = Duration::ZERO;
    while at <= duration {
        tokio::time::sleep_until(start + at).await;
        let rss_kib = rss::read_kib(pid).map_err(|error| (at, error))?;
        let warming = if at <= schedule.warmup {
            " (warm-up)"
        } else {
            ""
        };
        println!(
            "  {:>7.1}s  {:>7.1} MiB{warming}",
            at.as_secs_f64(),
            mib(rss_kib)
        );
        samples.push(Sample { at, rss_kib });
        at += schedule.interval;
    }
    Ok(samples)
}

/// Durations in JSON as seconds.
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The backends, their faults and the proxy's policies for them, and the
/// load: `rate` calls a second over `sessions`, half to each backend.
fn scenario(plan: SoakPlan, cycle: Duration) -> Result<Scenario, StartError> {
    let ms = |share: f64| format!("{}ms", (cycle.as_secs_f64() * share * 1000.0).round());
    // The scenario's duration only bounds its fault timeline (the load
    // runs for the plan's): at least a cycle, so a short run validates.
    let (cycle_ms, duration_ms) = (ms(1.0), plan.duration.max(cycle).as_millis());
    let (flaky_at, flaky_for) = (ms(0.3), ms(0.15));
    let (a_at, a_for) = (ms(0.5), ms(0.15));
    let (b_at, b_for) = (ms(0.8), ms(0.1));
    let (rate, sessions) = (plan.rate, plan.sessions);
    let text = format!(
        "\
name: soak
description: Two backends with mixed faults behind the proxy, for mcp-harness bench --soak.
duration: {duration_ms}ms
proxy:
  backends:
    - name: flaky
      fake: flaky
      timeout: {{ per_try: 250ms, overall: 2s }}
      retry:
        max_retries: 2
        backoff: {{ initial: 5ms, max: 50ms }}
        budget: {{ percent: 20, min_per_second: 5 }}
        on: [transport, timeout, unavailable, -32603]
      circuit_breaker:
        window: 1s
        min_calls: 20
        failure_rate: 0.5
        open_for: 1s
        half_open_probes: 3
    - name: pool
      fake: [pool-a, pool-b]
      reconnect: {{ initial: 100ms, max: 1s }}
      timeout: {{ per_try: 1s, overall: 3s }}
      retry:
        max_retries: 2
        backoff: {{ initial: 1ms, max: 10ms }}
        on: [transport, unavailable]
      outlier_detection:
        consecutive_failures: 5
        base_ejection: 1s
        max_ejection: 10s
        max_ejection_percent: 50
fakes:
  - name: flaky
    transport: http
    tools:
      - name: query
        read_only: true
        latency: {{ lognormal: {{ median: 2ms, sigma: 0.8 }} }}
        outcomes:
          - {{ probability: 0.03, jsonrpc_error: {{ code: -32603, message: transient failure }} }}
          - {{ probability: 0.01, tool_error: {{ message: no such record }} }}
          - {{ probability: 0.002, hang: true }}
  - name: pool-a
    transport: http
    tools:
      - {{ name: search, read_only: true, latency: {{ uniform: {{ min: 1ms, max: 10ms }} }} }}
  - name: pool-b
    transport: http
    tools:
      - {{ name: search, read_only: true, latency: {{ uniform: {{ min: 1ms, max: 10ms }} }} }}
faults:
  - name: flaky-down
    fake: flaky
    at: {flaky_at}
    for: {flaky_for}
    every: {cycle_ms}
    outcomes:
      - {{ probability: 1, jsonrpc_error: {{ code: -32603, message: database unreachable }} }}
  - {{ name: pool-a-down, fake: pool-a, at: {a_at}, for: {a_for}, every: {cycle_ms}, outage: true }}
  - {{ name: pool-b-down, fake: pool-b, at: {b_at}, for: {b_for}, every: {cycle_ms}, outage: true }}
workload:
  clients: {sessions}
  open: {{ rate: {rate}, max_in_flight: {MAX_IN_FLIGHT}, max_missed_share: 1 }}
  call_timeout: 10s
  calls:
    - tool: flaky/query
    - tool: pool/search
expect: []
"
    );
    setup::builtin(&text, "soak")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn samples(kib: &[u64], every: Duration) -> Vec<Sample> {
        kib.iter()
            .zip(0..)
            .map(|(&rss_kib, k)| Sample {
                at: every * k,
                rss_kib,
            })
            .collect()
    }

    #[test]
    fn a_ten_minute_run_warms_up_for_a_minute_and_samples_every_ten_seconds() {
        let long = Schedule::of(secs(600));
        assert_eq!((long.interval, long.warmup), (secs(10), secs(60)));
        assert_eq!(long.cycle, secs(60));
        // Shorter runs scale down: a tenth to warm up, twenty samples.
        let short = Schedule::of(secs(120));
        assert_eq!((short.interval, short.warmup), (secs(6), secs(12)));
        assert_eq!(short.cycle, secs(12));
        let test = Schedule::of(secs(6));
        assert_eq!(test.interval, Duration::from_millis(300));
        assert_eq!(test.warmup, Duration::from_millis(600));
        assert_eq!(test.cycle, MIN_CYCLE);
        // A run of an hour still warms up for a minute only.
        assert_eq!(Schedule::of(secs(3600)).warmup, secs(60));
    }

    #[test]
    fn growth_compares_the_highest_sample_after_warm_up_with_its_last_sample() {
        // Warm-up to 20 s: its last sample is the one at 20 s (100), not the
        // higher one before it; after it the highest is 108 at 40 s.
        let s = samples(&[50, 120, 100, 104, 108, 105], secs(10));
        let growth = Growth::of(&s, secs(20)).unwrap();
        assert_eq!(growth.warmup_end, s[2]);
        assert_eq!(growth.max_after, s[4]);
        assert!((growth.percent - 8.0).abs() < 1e-9);
        assert!(growth.passed());
        // 10 % is not under 10 %.
        let s = samples(&[100, 100, 110], secs(10));
        let growth = Growth::of(&s, secs(10)).unwrap();
        assert!((growth.percent - 10.0).abs() < 1e-9);
        assert!(!growth.passed());
        // Shrinking passes.
        let s = samples(&[100, 90], secs(10));
        assert!(Growth::of(&s, secs(0)).unwrap().percent < 0.0);
    }

    #[test]
    fn growth_needs_a_sample_on_each_side_of_the_warm_up() {
        let s = samples(&[100, 110], secs(10));
        assert_eq!(Growth::of(&s, secs(10)), None);
        assert_eq!(Growth::of(&s[1..], secs(5)), None);
        assert_eq!(Growth::of(&[], secs(5)), None);
    }

    #[test]
    fn the_setup_is_valid_for_short_and_long_runs() {
        for duration in [secs(2), secs(6), secs(120), secs(600), secs(6 * 3600)] {
            let plan = SoakPlan {
                duration,
                rate: 200.0,
                sessions: 8,
            };
            let scenario = scenario(plan, Schedule::of(duration).cycle).unwrap();
            assert_eq!(scenario.fakes.len(), 3);
            assert_eq!(scenario.faults.len(), 3);
            assert_eq!(scenario.workload.clients, 8);
        }
    }
}
