//! The traffic stage alone, over fake backends that answer from a script
//! and log what reached them: where a call goes, when it fails over, and
//! what a mirror and a fallback receive.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::mirror::Mirror;
use super::split::Split;
use super::{Route, Traffic};
use crate::backend::{CallError, Refusal};
use crate::call::{Backends, Call, Method, Safety};
use crate::jsonrpc::ErrorObject;
use crate::upstream::{ProgressSink, UpstreamError};

const PRIMARY: usize = 0;
const CANARY: usize = 1;
const STANDBY: usize = 2;
const SECOND_STANDBY: usize = 3;
const MIRROR: usize = 4;

/// What one fake backend received: whether with a progress sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Received {
    backend: usize,
    with_progress: bool,
}

/// Backends answering from a script (success once it runs out), logging
/// each call and each mirror copy.
#[derive(Default)]
struct Fakes {
    script: Mutex<HashMap<usize, VecDeque<Result<Value, CallError>>>>,
    calls: Mutex<Vec<Received>>,
    copies: Arc<Mutex<Vec<Received>>>,
}

impl Fakes {
    fn failing(self, backend: usize, error: CallError) -> Self {
        self.script
            .lock()
            .unwrap()
            .entry(backend)
            .or_default()
            .push_back(Err(error));
        self
    }

    fn calls(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.backend)
            .collect()
    }
}

impl Backends for Fakes {
    fn call(
        &self,
        backend: usize,
        call: Call,
    ) -> impl Future<Output = Result<Value, CallError>> + Send {
        self.calls.lock().unwrap().push(Received {
            backend,
            with_progress: call.progress.is_some(),
        });
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&backend)
            .and_then(VecDeque::pop_front);
        async move {
            match scripted {
                Some(answer) => answer,
                None => Ok(json!({ "served_by": backend })),
            }
        }
    }

    fn copy(&self, backend: usize, call: Call) -> impl Future<Output = ()> + Send + 'static {
        let copies = Arc::clone(&self.copies);
        async move {
            copies.lock().unwrap().push(Received {
                backend,
                with_progress: call.progress.is_some(),
            });
        }
    }

    fn name(&self, backend: usize) -> &str {
        ["primary", "canary", "standby", "second", "mirror"][backend]
    }
}

fn unavailable() -> CallError {
    CallError::Unavailable {
        backend: "x".into(),
        reason: "down".into(),
    }
}

fn timeout() -> CallError {
    CallError::Timeout {
        backend: "x".into(),
        after: Duration::from_secs(1),
    }
}

/// A route of the primary: `canary_weight` percent to the canary, the two
/// standbys in order, and a mirror taking every call.
fn traffic(canary_weight: f64, mirrored: bool) -> Traffic {
    let canaries = if canary_weight > 0.0 {
        vec![(CANARY, canary_weight, false)]
    } else {
        Vec::new()
    };
    let mirrors = if mirrored {
        vec![Mirror::new(MIRROR, 100.0, 8, 7)]
    } else {
        Vec::new()
    };
    routed(canaries, mirrors)
}

/// No canary, the two standbys and `mirror`.
fn traffic_with_mirror(mirror: Mirror) -> Traffic {
    routed(Vec::new(), vec![mirror])
}

fn routed(canaries: Vec<(usize, f64, bool)>, mirrors: Vec<Mirror>) -> Traffic {
    let route = Route {
        split: Split::new(canaries, 7),
        mirrors,
        failovers: vec![STANDBY, SECOND_STANDBY],
    };
    let mut routes: Vec<Option<Route>> = (0..5).map(|_| None).collect();
    routes[PRIMARY] = Some(route);
    Traffic { routes }
}

fn call(backend: usize, safety: Safety) -> Call {
    let mut call = Call::new(Method::ToolsCall, backend, Some(json!({ "name": "t" })));
    call.safety = safety;
    call.progress = Some(ProgressSink::bounded(1, Arc::default()).0);
    call
}

const SAFE: Safety = Safety {
    repeatable: true,
    read_only: false,
};

fn served_by(answer: &Result<Value, ErrorObject>) -> Option<u64> {
    answer.as_ref().ok()?.get("served_by")?.as_u64()
}

#[tokio::test]
async fn a_backend_without_a_route_serves_its_calls_alone() {
    let fakes = Fakes::default().failing(CANARY, unavailable());
    let answer = traffic(0.0, false).serve(call(CANARY, SAFE), &fakes).await;
    assert_eq!(
        answer.unwrap_err().code,
        crate::jsonrpc::BACKEND_UNAVAILABLE
    );
    assert_eq!(fakes.calls(), [CANARY]);
}

#[tokio::test]
async fn a_health_failure_goes_to_the_standbys_in_order() {
    let fakes = Fakes::default().failing(PRIMARY, unavailable()).failing(
        STANDBY,
        CallError::Refused {
            backend: "standby".into(),
            reason: Refusal::BreakerOpen,
        },
    );
    let answer = traffic(0.0, false)
        .serve(call(PRIMARY, Safety::UNSAFE), &fakes)
        .await;
    assert_eq!(served_by(&answer), Some(SECOND_STANDBY as u64));
    assert_eq!(fakes.calls(), [PRIMARY, STANDBY, SECOND_STANDBY]);
    // Nothing was sent before the second standby: progress stays with the call.
    assert!(fakes.calls.lock().unwrap().iter().all(|r| r.with_progress));
}

#[tokio::test]
async fn an_answer_is_final_even_when_it_is_an_error() {
    for answer in [
        CallError::Upstream {
            backend: "primary".into(),
            error: UpstreamError::JsonRpc(ErrorObject::new(-32602, "bad params")),
        },
        CallError::Refused {
            backend: "primary".into(),
            reason: Refusal::RateLimit,
        },
    ] {
        let fakes = Fakes::default().failing(PRIMARY, answer.clone());
        let got = traffic(0.0, false).serve(call(PRIMARY, SAFE), &fakes).await;
        assert_eq!(got.unwrap_err(), answer.to_error_object());
        assert_eq!(fakes.calls(), [PRIMARY]);
    }
}

#[tokio::test]
async fn a_call_that_may_have_run_fails_over_only_when_safe_to_repeat_and_without_progress() {
    let fakes = Fakes::default().failing(PRIMARY, timeout());
    let answer = traffic(0.0, false)
        .serve(call(PRIMARY, Safety::UNSAFE), &fakes)
        .await;
    assert_eq!(answer.unwrap_err().code, crate::jsonrpc::BACKEND_TIMEOUT);
    assert_eq!(fakes.calls(), [PRIMARY]);

    let fakes = Fakes::default().failing(PRIMARY, timeout());
    let answer = traffic(0.0, false).serve(call(PRIMARY, SAFE), &fakes).await;
    assert_eq!(served_by(&answer), Some(STANDBY as u64));
    let received = fakes.calls.lock().unwrap().clone();
    assert!(received[0].with_progress);
    assert!(
        !received[1].with_progress,
        "a second backend would count progress from zero again"
    );
}

#[tokio::test]
async fn a_failed_canary_falls_back_to_its_primary_first() {
    let fakes = Fakes::default().failing(CANARY, unavailable());
    let answer = traffic(100.0, false)
        .serve(call(PRIMARY, SAFE), &fakes)
        .await;
    assert_eq!(served_by(&answer), Some(PRIMARY as u64));
    assert_eq!(fakes.calls(), [CANARY, PRIMARY]);
}

#[tokio::test]
async fn when_every_backend_fails_the_client_hears_of_the_primary() {
    let fakes = Fakes::default()
        .failing(CANARY, unavailable())
        .failing(PRIMARY, unavailable())
        .failing(STANDBY, unavailable())
        .failing(SECOND_STANDBY, unavailable());
    let error = traffic(100.0, false)
        .serve(call(PRIMARY, SAFE), &fakes)
        .await
        .unwrap_err();
    assert_eq!(fakes.calls(), [CANARY, PRIMARY, STANDBY, SECOND_STANDBY]);
    assert_eq!(error.data.unwrap()["backend"], "primary");
}

#[tokio::test]
async fn a_mirror_gets_a_copy_without_progress_and_its_fate_is_not_the_callers() {
    let fakes = Fakes::default();
    let answer = traffic(0.0, true).serve(call(PRIMARY, SAFE), &fakes).await;
    assert_eq!(served_by(&answer), Some(PRIMARY as u64));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *fakes.copies.lock().unwrap(),
        [Received {
            backend: MIRROR,
            with_progress: false
        }]
    );
    assert_eq!(fakes.calls(), [PRIMARY]);
}

#[tokio::test]
async fn a_call_unsafe_to_repeat_is_not_mirrored_unless_the_mirror_says_so() {
    let fakes = Fakes::default();
    let traffic = traffic(0.0, true);
    let answer = traffic.serve(call(PRIMARY, Safety::UNSAFE), &fakes).await;
    assert_eq!(served_by(&answer), Some(PRIMARY as u64));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        fakes.copies.lock().unwrap().is_empty(),
        "a write was copied"
    );
    let counts = traffic.mirror(MIRROR).expect("the mirror").counts();
    assert_eq!(counts.skipped.load(Ordering::Relaxed), 1);
    assert_eq!(counts.sent.load(Ordering::Relaxed), 0);

    // `mirror_unsafe: true` copies it.
    let told = traffic_with_mirror(Mirror::new(MIRROR, 100.0, 8, 7).copying_unsafe(true));
    let fakes = Fakes::default();
    told.serve(call(PRIMARY, Safety::UNSAFE), &fakes).await.ok();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fakes.copies.lock().unwrap().len(), 1);
}

#[test]
fn the_backends_serving_a_primary_are_its_canaries_standbys_and_mirrors() {
    let serving: Vec<usize> = traffic(50.0, true).serving(PRIMARY).collect();
    assert_eq!(serving, [CANARY, STANDBY, SECOND_STANDBY, MIRROR]);
    assert_eq!(traffic(50.0, true).serving(CANARY).count(), 0);
}
