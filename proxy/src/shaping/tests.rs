//! The shaping stage alone, with a fake `next` that counts what reaches
//! it: what the cache answers, what coalescing joins, and what must pass
//! through untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::Shaper;
use crate::call::{Call, Method, Next, Safety};
use crate::config::{CachePolicy, Shaping};
use crate::jsonrpc::ErrorObject;
use crate::upstream::ProgressSink;

const READ_ONLY: Safety = Safety {
    repeatable: true,
    read_only: true,
};
const IDEMPOTENT: Safety = Safety {
    repeatable: true,
    read_only: false,
};

fn shaper(cache: bool, coalesce: bool) -> Shaper {
    Shaper::new(&Shaping {
        cache: cache.then_some(CachePolicy {
            tools: Some(Duration::from_secs(10)),
            resources: Some(Duration::from_secs(10)),
            max_entries: 100,
        }),
        coalesce,
        ..Shaping::default()
    })
}

fn call(safety: Safety, arguments: Value) -> Call {
    let mut call = Call::new(
        Method::ToolsCall,
        0,
        Some(json!({ "name": "lookup", "arguments": arguments })),
    );
    call.target = "lookup".into();
    call.safety = safety;
    call
}

/// A `next` that answers `answer` after `delay` and counts the calls made.
fn next(answer: Result<Value, ErrorObject>, delay: Duration) -> (impl Next, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let next = move |_call: Call| {
        // Counted when asked for, not when polled: a coalesced follower
        // must not even ask.
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move {
            tokio::time::sleep(delay).await;
            answer
        }
    };
    (next, runs)
}

fn ok() -> Result<Value, ErrorObject> {
    Ok(json!({ "content": [] }))
}

#[tokio::test(start_paused = true)]
async fn without_cache_or_coalescing_every_call_reaches_next_unchanged() {
    let shaper = shaper(false, false);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let next = move |call: Call| {
        log.lock().unwrap().push(call.params.clone());
        async { ok() }
    };
    for _ in 0..2 {
        shaper
            .serve(call(READ_ONLY, json!({"q": 1})), &next)
            .await
            .unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0],
        Some(json!({ "name": "lookup", "arguments": {"q": 1} }))
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_only_answer_is_served_from_the_cache_until_its_ttl() {
    let shaper = shaper(true, false);
    let (next, runs) = next(ok(), Duration::ZERO);
    for _ in 0..3 {
        let answer = shaper.serve(call(READ_ONLY, json!({"q": 1})), &next).await;
        assert_eq!(answer, ok());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(shaper.counts().0.hits, 2);
    // Other arguments are another answer.
    shaper
        .serve(call(READ_ONLY, json!({"q": 2})), &next)
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    tokio::time::advance(Duration::from_secs(11)).await;
    shaper
        .serve(call(READ_ONLY, json!({"q": 1})), &next)
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn writes_tool_errors_and_failures_are_never_cached() {
    let shaper = shaper(true, false);
    let (write, runs) = next(ok(), Duration::ZERO);
    for _ in 0..2 {
        shaper
            .serve(call(IDEMPOTENT, json!({})), &write)
            .await
            .unwrap();
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "an idempotent write runs each time"
    );
    let (tool_error, runs) = next(Ok(json!({ "isError": true })), Duration::ZERO);
    for _ in 0..2 {
        shaper
            .serve(call(READ_ONLY, json!({})), &tool_error)
            .await
            .unwrap();
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "a tool's error result runs again"
    );
    let failure = Err(ErrorObject::new(-32603, "internal"));
    let (failing, runs) = next(failure, Duration::ZERO);
    for _ in 0..2 {
        let answer = shaper.serve(call(READ_ONLY, json!({})), &failing).await;
        assert!(answer.is_err());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "an error runs again");
}

#[tokio::test(start_paused = true)]
async fn each_audience_keeps_its_own_answers() {
    let shaper = shaper(true, false);
    let (next, runs) = next(ok(), Duration::ZERO);
    for side in ["side:1", "side:2", "side:1"] {
        let mut call = call(READ_ONLY, json!({}));
        call.audience = Some(side.into());
        shaper.serve(call, &next).await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn identical_repeatable_calls_in_flight_share_one() {
    let shaper = shaper(false, true);
    let (next, runs) = next(ok(), Duration::from_secs(1));
    let (a, b) = tokio::join!(
        shaper.serve(call(IDEMPOTENT, json!({"q": 1})), &next),
        shaper.serve(call(IDEMPOTENT, json!({"q": 1})), &next),
    );
    assert_eq!((a, b), (ok(), ok()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(shaper.counts().1, 1);
}

#[tokio::test(start_paused = true)]
async fn unsafe_calls_and_calls_with_progress_are_not_coalesced() {
    let shaper = shaper(false, true);
    let (next, runs) = next(ok(), Duration::from_secs(1));
    let _ = tokio::join!(
        shaper.serve(call(Safety::UNSAFE, json!({})), &next),
        shaper.serve(call(Safety::UNSAFE, json!({})), &next),
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let with_progress = || {
        let mut call = call(IDEMPOTENT, json!({}));
        call.progress = Some(ProgressSink::bounded(1, Arc::default()).0);
        call
    };
    let _ = tokio::join!(
        shaper.serve(with_progress(), &next),
        shaper.serve(with_progress(), &next),
    );
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}
