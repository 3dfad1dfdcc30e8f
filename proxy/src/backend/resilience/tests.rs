//! The stack on tokio's paused clock, with scripted attempts: which failures
//! are repeated and which are not, how long it pauses, and where timeouts
//! and the budget stop it.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use std::future::Future;

use super::*;
use crate::config::{RetryBackoff, RetryBudget, RetryOn};
use crate::jsonrpc::ErrorObject;
use crate::upstream::UpstreamError;

fn policy(max_retries: u32, full_jitter: bool) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        backoff: RetryBackoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(25),
            full_jitter,
        },
        budget: RetryBudget {
            percent: 100.0,
            min_per_second: 100.0,
        },
        on: RetryOn {
            transport: true,
            timeout: true,
            unavailable: true,
            codes: vec![-32603],
        },
    }
}

fn stack(retry: Option<RetryPolicy>, timeout: TimeoutPolicy) -> Resilience {
    Resilience::new(
        "b",
        Policies {
            timeout,
            retry,
            ..Policies::default()
        },
        1,
    )
}

fn rpc_error(code: i64) -> CallError {
    CallError::Upstream {
        backend: "b".into(),
        error: UpstreamError::JsonRpc(ErrorObject::new(code, "scripted")),
    }
}

fn lost() -> CallError {
    CallError::Upstream {
        backend: "b".into(),
        error: UpstreamError::Lost("reset".into()),
    }
}

fn refused() -> CallError {
    CallError::Upstream {
        backend: "b".into(),
        error: UpstreamError::Connect("refused".into()),
    }
}

/// Attempts that no outlier detector hears of.
fn unreported<Fut>(mut attempt: impl FnMut() -> Fut) -> impl FnMut(AttemptKind) -> (Fut, ()) {
    move |_| (attempt(), ())
}

/// Runs `stack` over attempts that fail with `failures` in turn, then
/// succeed; returns the result, the attempt start times and the time taken.
async fn run(
    stack: &Resilience,
    safe: bool,
    failures: Vec<CallError>,
) -> (Result<Value, CallError>, Vec<Duration>) {
    let start = Instant::now();
    let starts = Mutex::new(Vec::new());
    let script = Mutex::new(failures.into_iter());
    let result = stack
        .call(
            at_once,
            safe,
            unreported(|| {
                starts.lock().unwrap().push(start.elapsed());
                let next = script.lock().unwrap().next();
                async move {
                    match next {
                        Some(error) => Err(error),
                        None => Ok(json!({"ok": true})),
                    }
                }
            }),
        )
        .await;
    (result, starts.into_inner().unwrap())
}

/// A backend that is always ready: nothing to wait for before a try.
async fn at_once(_deadline: Option<Instant>) {}

#[tokio::test(start_paused = true)]
async fn a_safe_call_is_retried_with_doubling_capped_pauses() {
    let s = stack(Some(policy(3, false)), TimeoutPolicy::default());
    let (result, starts) = run(&s, true, vec![rpc_error(-32603), lost(), rpc_error(-32603)]).await;
    assert_eq!(result.unwrap(), json!({"ok": true}));
    let ms = |n| Duration::from_millis(n);
    assert_eq!(starts, vec![ms(0), ms(10), ms(30), ms(55)]);
    assert_eq!(s.counts().retries, 3);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_retries_with_the_last_error() {
    let s = stack(Some(policy(2, false)), TimeoutPolicy::default());
    let failures = vec![lost(), lost(), rpc_error(-32603), lost()];
    let (result, starts) = run(&s, true, failures).await;
    assert_eq!(result.unwrap_err(), rpc_error(-32603));
    assert_eq!(starts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unsafe_call_is_repeated_only_when_it_never_reached_the_backend() {
    let s = stack(Some(policy(3, false)), TimeoutPolicy::default());
    for reached in [lost(), rpc_error(-32603)] {
        let (result, starts) = run(&s, false, vec![reached.clone()]).await;
        assert_eq!(result.unwrap_err(), reached);
        assert_eq!(starts.len(), 1);
    }
    let unavailable = CallError::Unavailable {
        backend: "b".into(),
        reason: "starting".into(),
    };
    let (result, starts) = run(&s, false, vec![refused(), unavailable]).await;
    assert!(result.is_ok());
    assert_eq!(starts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn codes_not_named_in_on_are_not_retried() {
    let s = stack(Some(policy(3, false)), TimeoutPolicy::default());
    let (result, starts) = run(&s, true, vec![rpc_error(-32602)]).await;
    assert_eq!(result.unwrap_err(), rpc_error(-32602));
    assert_eq!(starts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_retry_the_first_error_is_the_answer() {
    let s = stack(None, TimeoutPolicy::default());
    let (result, starts) = run(&s, true, vec![lost()]).await;
    assert_eq!(result.unwrap_err(), lost());
    assert_eq!(starts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_draws_each_pause_from_zero_to_the_doubled_pause_and_replays_for_a_seed() {
    let pauses = |seed| async move {
        let s = Resilience::new(
            "b",
            Policies {
                retry: Some(policy(3, true)),
                ..Policies::default()
            },
            seed,
        );
        let (_, starts) = run(&s, true, vec![lost(), lost(), lost()]).await;
        starts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    };
    let first = pauses(1).await;
    assert_eq!(first, pauses(1).await);
    assert_ne!(first, pauses(2).await);
    let caps = [10, 20, 25].map(Duration::from_millis);
    for (pause, cap) in first.iter().zip(caps) {
        assert!(*pause <= cap, "{first:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_cut_at_per_try_and_retried() {
    let timeout = TimeoutPolicy {
        per_try: Some(Duration::from_millis(100)),
        overall: None,
    };
    let s = stack(Some(policy(1, false)), timeout);
    let attempts = Mutex::new(0);
    let start = Instant::now();
    let result = s
        .call(
            at_once,
            true,
            unreported(|| {
                let n = {
                    let mut a = attempts.lock().unwrap();
                    *a += 1;
                    *a
                };
                async move {
                    if n == 1 {
                        // Never answers: the per-try timeout must cut it.
                        std::future::pending::<()>().await;
                    }
                    Ok(json!(n))
                }
            }),
        )
        .await;
    assert_eq!(result.unwrap(), json!(2));
    assert_eq!(start.elapsed(), Duration::from_millis(110));
    assert_eq!(
        s.counts(),
        ResilienceCounts {
            hedges: 0,
            retries: 1,
            timeouts: 1,
            refusals: 0,
            breaker: None
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_bounds_retries_and_pauses() {
    let timeout = TimeoutPolicy {
        per_try: Some(Duration::from_millis(100)),
        overall: Some(Duration::from_millis(250)),
    };
    let s = stack(Some(policy(10, false)), timeout);
    let start = Instant::now();
    let result = s
        .call(
            at_once,
            true,
            unreported(|| async {
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }),
        )
        .await;
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let error = result.unwrap_err();
    assert_eq!(
        error,
        CallError::Timeout {
            backend: "b".into(),
            after: Duration::from_millis(250)
        }
    );
    assert_eq!(
        error.to_error_object().code,
        crate::jsonrpc::BACKEND_TIMEOUT
    );
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_returns_the_attempts_own_error() {
    let mut p = policy(3, false);
    p.budget = RetryBudget {
        percent: 0.0,
        min_per_second: 0.0,
    };
    let s = stack(Some(p), TimeoutPolicy::default());
    let (result, starts) = run(&s, true, vec![lost()]).await;
    assert_eq!(result.unwrap_err(), lost());
    assert_eq!(starts.len(), 1);
    assert_eq!(s.counts().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_started_that_the_overall_deadline_would_cut() {
    let timeout = TimeoutPolicy {
        per_try: None,
        overall: Some(Duration::from_millis(5)),
    };
    let mut p = policy(3, false);
    p.backoff.initial = Duration::from_millis(100);
    p.backoff.max = Duration::from_millis(100);
    let s = stack(Some(p), timeout);
    let unavailable = CallError::Unavailable {
        backend: "b".into(),
        reason: "down".into(),
    };
    let (result, starts) = run(&s, true, vec![unavailable.clone()]).await;
    // The backend's own (fast) error, not a timeout blamed on it.
    assert_eq!(result.unwrap_err(), unavailable);
    assert_eq!(starts.len(), 1);
    assert_eq!(s.counts(), ResilienceCounts::default());
}

#[tokio::test(start_paused = true)]
async fn a_call_still_waiting_for_a_slot_at_the_overall_deadline_is_refused_not_timed_out() {
    let timeout = TimeoutPolicy {
        per_try: None,
        overall: Some(Duration::from_millis(100)),
    };
    let s = std::sync::Arc::new(Resilience::new(
        "b",
        Policies {
            timeout,
            max_concurrency: Some(1),
            ..Policies::default()
        },
        1,
    ));
    // The first call holds the only slot for a minute (and times out itself).
    let holder = tokio::spawn({
        let s = std::sync::Arc::clone(&s);
        async move {
            s.call(
                at_once,
                true,
                unreported(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(Value::Null)
                }),
            )
            .await
        }
    });
    tokio::task::yield_now().await;
    let attempts = Mutex::new(0);
    let result = s
        .call(
            at_once,
            true,
            unreported(|| {
                *attempts.lock().unwrap() += 1;
                async { Ok(Value::Null) }
            }),
        )
        .await;
    let error = result.unwrap_err();
    assert_eq!(
        error,
        CallError::Refused {
            backend: "b".into(),
            reason: Refusal::Concurrency
        }
    );
    assert_eq!(
        error.to_error_object().code,
        crate::jsonrpc::BACKEND_LIMITED
    );
    assert_eq!(*attempts.lock().unwrap(), 0, "it never reached the backend");
    // The holder itself ran out of time at the backend: a timeout.
    assert!(matches!(
        holder.await.unwrap(),
        Err(CallError::Timeout { .. })
    ));
    assert_eq!(
        s.counts(),
        ResilienceCounts {
            hedges: 0,
            retries: 0,
            timeouts: 1,
            refusals: 1,
            breaker: None
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_refused_at_once_and_not_retried() {
    let rate = crate::config::RateLimit {
        requests: 1,
        per: Duration::from_secs(3600),
    };
    let s = Resilience::new(
        "b",
        Policies {
            retry: Some(policy(3, false)),
            rate_limit: Some(rate),
            ..Policies::default()
        },
        1,
    );
    let (first, _) = run(&s, true, vec![]).await;
    assert!(first.is_ok());
    let start = Instant::now();
    let (second, starts) = run(&s, true, vec![]).await;
    assert_eq!(
        second.unwrap_err(),
        CallError::Refused {
            backend: "b".into(),
            reason: Refusal::RateLimit
        }
    );
    assert!(starts.is_empty(), "no attempt was made");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(s.counts().retries, 0);
}

/// A stack that hedges after 50 ms, up to `max_hedges` times.
fn hedging(max_hedges: u32) -> Resilience {
    Resilience::new(
        "b",
        Policies {
            hedging: Some(crate::config::HedgePolicy {
                delay: Duration::from_millis(50),
                max_hedges,
            }),
            ..Policies::default()
        },
        1,
    )
}

/// Attempt `n` (from 1) takes `latencies[n-1]` and then answers with
/// `outcomes[n-1]` (`Ok(n)` or an error); records which attempts were
/// dropped before they answered.
struct Script {
    latencies: Vec<u64>,
    errors: Vec<bool>,
    started: Mutex<u64>,
    dropped: std::sync::Arc<Mutex<Vec<u64>>>,
}

struct DropFlag(u64, std::sync::Arc<Mutex<Vec<u64>>>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.2 {
            self.1.lock().unwrap().push(self.0);
        }
    }
}

impl Script {
    fn new(latencies: &[u64], errors: &[bool]) -> Self {
        Self {
            latencies: latencies.to_vec(),
            errors: errors.to_vec(),
            started: Mutex::new(0),
            dropped: Default::default(),
        }
    }

    fn attempt(&self) -> impl Future<Output = Result<Value, CallError>> + use<> {
        let n = {
            let mut started = self.started.lock().unwrap();
            *started += 1;
            *started
        };
        let latency = Duration::from_millis(self.latencies[(n - 1) as usize]);
        let error = self.errors[(n - 1) as usize];
        let flag = DropFlag(n, std::sync::Arc::clone(&self.dropped), false);
        async move {
            let mut flag = flag;
            tokio::time::sleep(latency).await;
            flag.2 = true;
            if error { Err(lost()) } else { Ok(json!(n)) }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_raced_by_a_hedge_and_the_loser_is_dropped() {
    let s = hedging(1);
    let script = Script::new(&[500, 20], &[false, false]);
    let start = Instant::now();
    let result = s.call(at_once, true, |_| (script.attempt(), ())).await;
    assert_eq!(result.unwrap(), json!(2));
    assert_eq!(start.elapsed(), Duration::from_millis(70));
    assert_eq!(
        *script.dropped.lock().unwrap(),
        vec![1],
        "the first was cancelled"
    );
    assert_eq!(s.counts().hedges, 1);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_told_whether_it_is_the_first_a_retry_or_a_hedge() {
    // Retries: a lost connection twice, then a success.
    let s = stack(Some(policy(3, false)), TimeoutPolicy::default());
    let kinds = Mutex::new(Vec::new());
    let mut failures = vec![lost(), lost()].into_iter();
    let result = s
        .call(at_once, true, |kind| {
            kinds.lock().unwrap().push(kind);
            let outcome = failures.next().map_or(Ok(json!("ok")), Err);
            (async move { outcome }, ())
        })
        .await;
    assert_eq!(result.unwrap(), json!("ok"));
    assert_eq!(
        *kinds.lock().unwrap(),
        [AttemptKind::First, AttemptKind::Retry, AttemptKind::Retry]
    );
    // A hedge racing a slow first attempt.
    let s = hedging(1);
    let script = Script::new(&[500, 20], &[false, false]);
    let kinds = Mutex::new(Vec::new());
    let result = s
        .call(at_once, true, |kind| {
            kinds.lock().unwrap().push(kind);
            (script.attempt(), ())
        })
        .await;
    assert_eq!(result.unwrap(), json!(2));
    assert_eq!(
        *kinds.lock().unwrap(),
        [AttemptKind::First, AttemptKind::Hedge]
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_error_does_not_beat_a_slower_success() {
    let s = hedging(1);
    // The first fails at 60 ms, after the hedge started at 50 ms; the hedge
    // succeeds at 150 ms.
    let script = Script::new(&[60, 100], &[true, false]);
    let start = Instant::now();
    let result = s.call(at_once, true, |_| (script.attempt(), ())).await;
    assert_eq!(result.unwrap(), json!(2));
    assert_eq!(start.elapsed(), Duration::from_millis(150));
}

#[tokio::test(start_paused = true)]
async fn hedges_stop_at_max_hedges_and_all_failing_returns_an_error() {
    let s = hedging(2);
    let script = Script::new(&[300, 300, 300], &[true, true, true]);
    let result = s.call(at_once, true, |_| (script.attempt(), ())).await;
    assert_eq!(result.unwrap_err(), lost());
    assert_eq!(*script.started.lock().unwrap(), 3);
    assert_eq!(s.counts().hedges, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_is_not_safe_to_repeat_is_never_hedged() {
    let s = hedging(1);
    let script = Script::new(&[500, 20], &[false, false]);
    let start = Instant::now();
    let result = s.call(at_once, false, |_| (script.attempt(), ())).await;
    assert_eq!(result.unwrap(), json!(1));
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(*script.started.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn each_try_waits_for_readiness_before_its_timer_starts_and_never_past_the_deadline() {
    let timeout = TimeoutPolicy {
        per_try: Some(Duration::from_millis(100)),
        overall: Some(Duration::from_secs(5)),
    };
    let stack = stack(Some(policy(3, false)), timeout);
    let start = Instant::now();
    let waits = Mutex::new(Vec::new());
    // A restart in progress: each wait takes 300 ms, longer than a try may.
    let ready = |deadline: Option<Instant>| {
        waits.lock().unwrap().push(deadline);
        tokio::time::sleep(Duration::from_millis(300))
    };
    let tries = Mutex::new(Vec::new());
    let result = stack
        .call(
            ready,
            true,
            unreported(|| {
                let mut tries = tries.lock().unwrap();
                tries.push(start.elapsed());
                let first = tries.len() == 1;
                async move {
                    if first {
                        Err(lost())
                    } else {
                        Ok(json!({"ok": true}))
                    }
                }
            }),
        )
        .await;
    assert_eq!(result, Ok(json!({"ok": true})), "no try timed out waiting");
    let waits = waits.into_inner().unwrap();
    assert_eq!(waits.len(), 2, "the retry waited too");
    assert!(
        waits
            .iter()
            .all(|&d| d == Some(start + Duration::from_secs(5))),
        "each wait knows the call's deadline: {waits:?}"
    );
    assert_eq!(
        tries.into_inner().unwrap(),
        // The retry: after the first wait, the 10 ms pause and the second wait.
        vec![Duration::from_millis(300), Duration::from_millis(610)]
    );
}
