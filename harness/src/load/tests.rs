//! Runs of the load generator against the test server on 127.0.0.1, in real
//! time with short periods; bounds on timing are generous, and counts that
//! do not depend on speed are asserted exactly.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::test_server::TestServer;
use super::*;
use crate::scenario::CallMix;

fn mix(tool: &str, arguments: Value, weight: f64) -> CallMix {
    let Value::Object(arguments) = arguments else {
        panic!("arguments are an object")
    };
    CallMix {
        tool: tool.into(),
        arguments,
        weight,
    }
}

fn workload(
    clients: usize,
    mode: LoadMode,
    calls: Vec<CallMix>,
    call_timeout: Duration,
) -> Workload {
    Workload {
        clients,
        mode,
        calls,
        call_timeout,
        identities: Vec::new(),
    }
}

async fn run_for(
    server_url: &str,
    workload: &Workload,
    seed: u64,
    duration: Duration,
    grace: Duration,
) -> (LoadResult, Duration, ProgressSnapshot) {
    let target = LoadTarget::new(server_url).unwrap();
    let clock = ScenarioClock::start_now();
    let progress = Arc::new(Progress::new());
    let result = run(
        &target,
        workload,
        seed,
        clock,
        duration,
        grace,
        Arc::clone(&progress),
    )
    .await;
    (result, clock.elapsed(), progress.snapshot())
}

/// The `harness_call` numbers of the records are 1..=N, each once.
fn assert_numbered(result: &LoadResult) {
    let mut numbers: Vec<u64> = result.calls.iter().map(|r| r.call).collect();
    numbers.sort_unstable();
    let expected: Vec<u64> = (1..=result.calls.len() as u64).collect();
    assert_eq!(numbers, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_keeps_concurrency_calls_in_flight_and_records_each_once() {
    let server = TestServer::start().await;
    let load = workload(
        2,
        LoadMode::Closed { concurrency: 4 },
        vec![mix("slow", serde_json::json!({"ms": 20}), 1.0)],
        Duration::from_secs(5),
    );
    let duration = Duration::from_millis(400);
    let (result, _, progress) =
        run_for(&server.url, &load, 1, duration, Duration::from_secs(1)).await;

    assert_eq!(server.state.max_in_flight(), 4);
    assert!(result.calls.len() >= 8, "only {} calls", result.calls.len());
    assert!(result.calls.iter().all(|r| r.is_success()));
    assert!(result.calls.iter().all(|r| r.sent < duration));
    assert!(
        result
            .calls
            .iter()
            .all(|r| r.intended == r.sent && r.ended >= r.sent)
    );
    assert_numbered(&result);
    // What the server received is exactly what was recorded.
    let received: HashSet<u64> = server
        .state
        .calls()
        .iter()
        .map(|(_, args)| args["harness_call"].as_u64().unwrap())
        .collect();
    let recorded: HashSet<u64> = result.calls.iter().map(|r| r.call).collect();
    assert_eq!(received, recorded);
    assert_eq!(server.state.calls().len(), result.calls.len());
    // Workers take turns over the sessions, and every session was closed.
    let clients: HashSet<usize> = result.calls.iter().map(|r| r.client).collect();
    assert_eq!(clients, HashSet::from([0, 1]));
    assert_eq!(server.state.deleted(), 2);
    let n = result.calls.len() as u64;
    assert_eq!(
        progress,
        ProgressSnapshot {
            sent: n,
            answered: n,
            errors: 0
        }
    );
}

#[tokio::test]
async fn open_loop_sends_one_call_per_slot_at_its_due_time() {
    let server = TestServer::start().await;
    let load = workload(
        2,
        LoadMode::Open {
            rate: 200.0,
            max_in_flight: 1000,
            max_missed_share: 0.01,
        },
        vec![mix("ok", serde_json::json!({}), 1.0)],
        Duration::from_secs(5),
    );
    let (result, _, _) = run_for(
        &server.url,
        &load,
        1,
        Duration::from_millis(500),
        Duration::from_secs(1),
    )
    .await;

    // Slots start when the sessions are open (the first call's due time);
    // each slot until 500 ms is sent, or missed (late or past the end).
    let start = result.calls.iter().map(|r| r.intended).min().unwrap();
    let slots = ((Duration::from_millis(500) - start).as_secs_f64() * 200.0).ceil() as u64;
    assert_eq!(result.slots, slots);
    let sent = result.calls.len() as u64;
    assert!(sent <= slots, "{sent} sent of {slots} slots");
    assert!(
        sent + result.missed_slots >= slots,
        "{sent} sent, {} missed",
        result.missed_slots
    );
    assert_numbered(&result);
    let mut intended: Vec<Duration> = result.calls.iter().map(|r| r.intended).collect();
    intended.sort_unstable();
    for pair in intended.windows(2) {
        // One call per slot, slots 5 ms apart (rounding aside).
        let gap = pair[1] - pair[0];
        assert!(
            gap.abs_diff(Duration::from_millis(5)) < Duration::from_micros(2),
            "{pair:?}"
        );
    }
    for record in &result.calls {
        assert!(record.sent >= record.intended, "{record:?}");
        assert!(record.intended < Duration::from_millis(500), "{record:?}");
        assert!(record.is_success());
    }
    assert_eq!(server.state.calls().len(), result.calls.len());
}

#[tokio::test]
async fn open_loop_counts_slots_missed_at_max_in_flight() {
    let server = TestServer::start().await;
    let load = workload(
        1,
        LoadMode::Open {
            rate: 100.0,
            max_in_flight: 2,
            max_missed_share: 0.01,
        },
        vec![mix("hang", serde_json::json!({}), 1.0)],
        Duration::from_secs(30),
    );
    let duration = Duration::from_millis(300);
    let grace = Duration::from_millis(200);
    let (result, elapsed, _) = run_for(&server.url, &load, 1, duration, grace).await;

    // Two sent; every later slot until 300 ms found two calls outstanding
    // (and the two sent may have been late).
    assert_eq!(result.calls.len(), 2);
    let start = result.calls.iter().map(|r| r.intended).min().unwrap();
    let slots = ((duration - start).as_secs_f64() * 100.0).ceil() as u64;
    assert_eq!(result.slots, slots);
    assert!(
        (slots - 2..=slots).contains(&result.missed_slots),
        "{} missed of {slots} slots",
        result.missed_slots
    );
    // The hanging calls are given up at the end of the grace period.
    for record in &result.calls {
        assert_eq!(record.outcome, CallOutcome::Hung);
        assert!(record.ended >= duration + grace, "{record:?}");
    }
    // The run ends at duration + grace, not when the 30 s call timeout
    // would have given the calls up.
    assert!(elapsed < Duration::from_secs(30), "run took {elapsed:?}");
}

#[tokio::test]
async fn calls_unanswered_for_call_timeout_are_hung() {
    let server = TestServer::start().await;
    let call_timeout = Duration::from_millis(100);
    let load = workload(
        1,
        LoadMode::Closed { concurrency: 1 },
        vec![mix("hang", serde_json::json!({}), 1.0)],
        call_timeout,
    );
    let duration = Duration::from_millis(250);
    let (result, _, progress) =
        run_for(&server.url, &load, 1, duration, Duration::from_secs(1)).await;

    // One call after the other, each given up after 100 ms, until the end.
    assert!(!result.calls.is_empty());
    for record in &result.calls {
        assert_eq!(record.outcome, CallOutcome::Hung);
        assert!(record.ended - record.sent >= call_timeout, "{record:?}");
        assert!(
            record.ended - record.sent < Duration::from_secs(1),
            "{record:?}"
        );
        assert!(record.sent < duration, "{record:?}");
    }
    for pair in result.calls.windows(2) {
        assert!(pair[1].sent >= pair[0].ended, "{pair:?}");
    }
    assert!(result.calls.last().unwrap().ended >= duration);
    assert_eq!(progress.errors, result.calls.len() as u64);
    assert_eq!(progress.in_flight(), 0);
}

#[tokio::test]
async fn closed_loop_calls_outstanding_at_the_end_of_grace_are_hung() {
    let server = TestServer::start().await;
    let load = workload(
        3,
        LoadMode::Closed { concurrency: 3 },
        vec![mix("hang", serde_json::json!({}), 1.0)],
        Duration::from_secs(30),
    );
    let duration = Duration::from_millis(300);
    let grace = Duration::from_millis(200);
    let (result, elapsed, _) = run_for(&server.url, &load, 1, duration, grace).await;

    assert_eq!(result.calls.len(), 3);
    assert_numbered(&result);
    assert!(result.calls.iter().all(|r| r.outcome == CallOutcome::Hung));
    assert!(result.calls.iter().all(|r| r.ended >= duration + grace));
    // The run ends at duration + grace, not when the 30 s call timeout
    // would have given the calls up.
    assert!(elapsed < Duration::from_secs(30), "run took {elapsed:?}");
}

#[tokio::test]
async fn the_mix_is_the_same_for_the_same_seed() {
    let server = TestServer::start().await;
    let load = workload(
        1,
        LoadMode::Open {
            rate: 100.0,
            max_in_flight: 100,
            max_missed_share: 0.01,
        },
        vec![
            mix("ok", serde_json::json!({"n": 1}), 3.0),
            mix("sse_progress", serde_json::json!({"n": 2}), 1.0),
        ],
        Duration::from_secs(5),
    );
    let tools = |result: &LoadResult| {
        let mut calls: Vec<(u64, String)> = result
            .calls
            .iter()
            .map(|r| (r.call, r.tool.clone()))
            .collect();
        calls.sort();
        calls
    };
    let duration = Duration::from_millis(400);
    let grace = Duration::from_secs(1);
    let (first, _, _) = run_for(&server.url, &load, 9, duration, grace).await;
    let (second, _, _) = run_for(&server.url, &load, 9, duration, grace).await;
    let common = first.calls.len().min(second.calls.len());
    assert!(common >= 10, "only {common} calls");
    assert_eq!(tools(&first)[..common], tools(&second)[..common]);
    let used: HashSet<String> = first.calls.iter().map(|r| r.tool.clone()).collect();
    assert_eq!(used.len(), 2, "both tools drawn");
    // Each entry's own arguments went with its tool.
    for (tool, arguments) in server.state.calls() {
        let n = if tool == "ok" { 1 } else { 2 };
        assert_eq!(arguments["n"], n);
    }
}

#[tokio::test]
async fn duplicate_answers_are_counted() {
    let server = TestServer::start().await;
    let load = workload(
        1,
        LoadMode::Closed { concurrency: 1 },
        vec![mix("sse_duplicate", serde_json::json!({}), 1.0)],
        Duration::from_secs(5),
    );
    let (result, _, _) = run_for(
        &server.url,
        &load,
        1,
        Duration::from_millis(300),
        Duration::from_secs(1),
    )
    .await;
    assert!(!result.calls.is_empty());
    assert_eq!(result.duplicate_answers, result.calls.len() as u64);
}

#[tokio::test]
async fn sessions_that_cannot_open_are_reported_and_no_call_is_made() {
    let server = TestServer::start().await;
    let load = workload(
        2,
        LoadMode::Closed { concurrency: 2 },
        vec![mix("ok", serde_json::json!({}), 1.0)],
        Duration::from_secs(5),
    );
    let url = server.url.replace("/mcp", "/elsewhere");
    let (result, _, _) = run_for(
        &url,
        &load,
        1,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .await;
    assert!(result.calls.is_empty());
    assert_eq!(
        result.session_errors,
        [
            "client 0: initialize: HTTP 404",
            "client 1: initialize: HTTP 404"
        ]
    );
}

#[tokio::test]
async fn open_loop_slots_reached_late_are_sent_counted_and_timed_from_their_due_time() {
    let server = TestServer::start().await;
    let load = workload(
        1,
        LoadMode::Open {
            rate: 100.0,
            max_in_flight: 1000,
            max_missed_share: 0.01,
        },
        vec![mix("ok", serde_json::json!({}), 1.0)],
        Duration::from_secs(5),
    );
    // The test runtime has one thread: blocking it holds up the scheduler,
    // as an overloaded harness machine would.
    let stall = Duration::from_millis(80);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        std::thread::sleep(stall);
    });
    let (result, _, _) = run_for(
        &server.url,
        &load,
        1,
        Duration::from_millis(400),
        Duration::from_secs(1),
    )
    .await;

    let late: Vec<&CallRecord> = result
        .calls
        .iter()
        .filter(|r| r.sent - r.intended > Duration::from_millis(10))
        .collect();
    // Slots 10 ms apart fell due during the 80 ms stall; those reached more
    // than a period late were still sent, and counted as missed.
    assert!(late.len() >= 4, "{} late: {late:?}", late.len());
    assert!(result.missed_slots >= late.len() as u64);
    for record in late {
        assert!(record.latency() >= record.sent - record.intended);
        assert!(record.is_success());
    }
    let mut intended: Vec<Duration> = result.calls.iter().map(|r| r.intended).collect();
    intended.sort_unstable();
    for pair in intended.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap.abs_diff(Duration::from_millis(10)) < Duration::from_micros(2),
            "a slot was skipped: {pair:?}"
        );
    }
}

#[tokio::test]
async fn each_record_keeps_the_call_number_a_fakes_answer_echoes() {
    use crate::fake::{FakeConfig, HttpFake};
    use crate::scenario::{Behaviour, FakeSpec, FakeTransport, Latency, ToolSpec};

    let spec = FakeSpec {
        name: "files".into(),
        transport: FakeTransport::Http { port: 0 },
        tools: vec![ToolSpec {
            name: "read".into(),
            read_only: None,
            idempotent: None,
            behaviour: Behaviour {
                latency: Latency::Fixed(Duration::from_millis(5)),
                outcomes: Vec::new(),
            },
        }],
        startup: None,
    };
    let fake = HttpFake::start(FakeConfig::unscripted(spec, 1))
        .await
        .unwrap();
    let load = workload(
        2,
        LoadMode::Closed { concurrency: 4 },
        vec![mix("read", serde_json::json!({"path": "/a"}), 1.0)],
        Duration::from_secs(5),
    );
    let (result, _, _) = run_for(
        &fake.url(),
        &load,
        1,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .await;
    fake.shutdown().await;

    assert!(result.calls.len() >= 8, "only {} calls", result.calls.len());
    for record in &result.calls {
        assert!(record.is_success(), "{record:?}");
        assert_eq!(record.echoed_call, Some(record.call), "{record:?}");
    }
}
