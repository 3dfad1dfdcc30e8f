//! The stdio face over an in-memory pipe. The harness builds tokio without
//! `test-util`, so these run on real time with short scripted delays and
//! generous bounds.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::*;
use crate::fake::stdio::{MAX_LINE, StdioEnd, serve};
use crate::journal::JournalEntry;

/// The client end of a stdio fake running in-process.
struct Pipe {
    input: DuplexStream,
    output: Lines<BufReader<DuplexStream>>,
    served: JoinHandle<StdioEnd>,
}

impl Pipe {
    fn start(cfg: FakeConfig) -> Pipe {
        let (input, fake_input) = tokio::io::duplex(64 * 1024);
        let (fake_output, output) = tokio::io::duplex(64 * 1024);
        Pipe {
            input,
            output: BufReader::new(output).lines(),
            served: tokio::spawn(serve(cfg, fake_input, fake_output)),
        }
    }

    async fn send_raw(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).await.unwrap();
        self.input.write_all(b"\n").await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string()).await;
    }

    /// The next line, `None` at the end of the output; panics if nothing
    /// comes promptly.
    async fn line(&mut self) -> Option<String> {
        timeout(PROMPTLY, self.output.next_line())
            .await
            .expect("an answer")
            .unwrap()
    }

    async fn answer(&mut self) -> Value {
        serde_json::from_str(&self.line().await.expect("a line")).unwrap()
    }

    async fn end(self) -> StdioEnd {
        timeout(PROMPTLY, self.served)
            .await
            .expect("serve returned")
            .unwrap()
    }
}

fn stdio(tools: Vec<ToolSpec>, faults: Vec<Fault>) -> FakeConfig {
    config(FakeTransport::Stdio, tools, faults)
}

#[tokio::test]
async fn answers_the_mcp_handshake_listing_and_a_call_and_journals_each() {
    let mut tools = vec![
        tool("read", Outcome::Success),
        tool("write", Outcome::Success),
    ];
    tools[0].read_only = Some(true);
    tools[0].idempotent = Some(false);
    let cfg = stdio(tools, vec![]);
    let journal = cfg.journal.clone();
    let mut pipe = Pipe::start(cfg);

    pipe.send(initialize(1)).await;
    let init = pipe.answer().await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "files");
    assert_eq!(
        init["result"]["capabilities"]["tools"],
        json!({"listChanged": false})
    );
    pipe.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    pipe.send(json!({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}))
        .await;
    let list = pipe.answer().await;
    assert_eq!(list["id"], "list");
    let tools = list["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["name"], "read");
    assert_eq!(tools[0]["inputSchema"], json!({"type": "object"}));
    assert_eq!(
        tools[0]["annotations"],
        json!({"readOnlyHint": true, "idempotentHint": false})
    );
    assert!(tools[1].get("annotations").is_none());

    tokio::time::sleep(Duration::from_millis(300)).await;
    pipe.send(call(7, "read", 12)).await;
    let answer = pipe.answer().await;
    assert_eq!(answer["id"], 7);
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    let echoed: Value = serde_json::from_str(text).unwrap();
    assert_eq!(echoed, json!({"path": "/a", "harness_call": 12}));
    assert_eq!(crate::fake::echoed_call(&answer["result"]), Some(12));
    assert!(answer["result"].get("isError").is_none());
    pipe.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": 7, "reason": "late"}}),
    )
    .await;
    pipe.send(json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}))
        .await;
    assert_eq!(pipe.answer().await["result"], json!({}));

    let entries = journal.snapshot();
    let methods: Vec<&str> = entries.iter().map(|e| e.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call",
            "notifications/cancelled",
            "ping"
        ]
    );
    let endpoint = format!("stdio:{}", std::process::id());
    assert!(
        entries
            .iter()
            .all(|e| e.fake == "files" && e.endpoint == endpoint)
    );
    assert_eq!(entries[1].id, None);
    assert_eq!(entries[1].outcome, "ok");
    let the_call = &entries[3];
    assert_eq!(
        the_call,
        &JournalEntry {
            at: the_call.at,
            fake: "files".into(),
            endpoint,
            method: "tools/call".into(),
            tool: Some("read".into()),
            arguments: Some(json!({"path": "/a", "harness_call": 12})),
            id: Some(json!(7)),
            call: Some(12),
            traceparent: None,
            outcome: "success".into(),
        }
    );
    // Stamped with the scenario time it was received at.
    assert!(the_call.at >= Duration::from_millis(300));
    assert!(the_call.at < Duration::from_millis(300) + PROMPTLY);

    drop(pipe.input);
    assert_eq!(
        timeout(PROMPTLY, pipe.served).await.unwrap().unwrap(),
        StdioEnd::InputClosed
    );
}

#[tokio::test]
async fn protocol_errors_get_their_json_rpc_codes_and_are_journalled() {
    let cfg = stdio(
        vec![
            tool("read", Outcome::Success),
            tool(
                "status",
                Outcome::HttpStatus {
                    status: 503,
                    retry_after: None,
                },
            ),
        ],
        vec![],
    );
    let journal = cfg.journal.clone();
    let mut pipe = Pipe::start(cfg);
    pipe.send_raw("{not json").await;
    let parse = pipe.answer().await;
    assert_eq!(error_code(&parse), Some(-32700));
    assert_eq!(parse["id"], Value::Null);
    pipe.send(json!({"jsonrpc": "2.0", "id": 5})).await;
    let invalid = pipe.answer().await;
    assert_eq!(error_code(&invalid), Some(-32600));
    assert_eq!(invalid["id"], 5);
    // A response (to nothing the fake asked) is not answered.
    pipe.send(json!({"jsonrpc": "2.0", "id": 9, "result": {}}))
        .await;
    pipe.send(json!({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}))
        .await;
    assert_eq!(error_code(&pipe.answer().await), Some(-32601));
    pipe.send(call(2, "delete", 1)).await;
    assert_eq!(error_code(&pipe.answer().await), Some(-32602));
    // An HTTP status cannot be sent on stdio: an internal error instead.
    pipe.send(call(3, "status", 2)).await;
    assert_eq!(error_code(&pipe.answer().await), Some(-32603));

    let journalled: Vec<(String, Option<Value>, String)> = journal
        .snapshot()
        .into_iter()
        .map(|e| (e.method, e.id, e.outcome))
        .collect();
    let entry = |method: &str, id: Option<Value>, outcome: &str| {
        (method.to_owned(), id, outcome.to_owned())
    };
    assert_eq!(
        journalled,
        [
            entry("(unparseable)", None, "parse_error"),
            entry("(unparseable)", Some(json!(5)), "invalid_request"),
            entry("(response)", Some(json!(9)), "ok"),
            entry("resources/list", Some(json!(1)), "ok"),
            entry("tools/call", Some(json!(2)), "jsonrpc_error"),
            entry("tools/call", Some(json!(3)), "http_status"),
        ]
    );
}

#[tokio::test]
async fn an_over_long_line_gets_a_parse_error_and_the_fake_carries_on() {
    let cfg = stdio(vec![tool("read", Outcome::Success)], vec![]);
    let journal = cfg.journal.clone();
    let mut pipe = Pipe::start(cfg);
    // A ping padded to exactly the limit is still read...
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": ""}});
    let padding = "x".repeat(MAX_LINE - ping.to_string().len());
    let mut padded = ping;
    padded["params"]["pad"] = Value::String(padding);
    let padded = padded.to_string();
    assert_eq!(padded.len(), MAX_LINE);
    pipe.send_raw(&padded).await;
    assert_eq!(pipe.answer().await["id"], 1);
    // ...one byte more is not: the whole line is skipped.
    let too_long =
        padded
            .replacen(r#""id":1"#, r#""id":2"#, 1)
            .replacen(r#""pad":""#, r#""pad":"x"#, 1);
    assert_eq!(too_long.len(), MAX_LINE + 1);
    pipe.send_raw(&too_long).await;
    let refused = pipe.answer().await;
    assert_eq!(error_code(&refused), Some(-32700));
    assert_eq!(refused["id"], Value::Null);
    pipe.send(call(3, "read", 3)).await;
    assert_eq!(pipe.answer().await["id"], 3);

    let journalled: Vec<(String, String)> = journal
        .snapshot()
        .into_iter()
        .map(|e| (e.method, e.outcome))
        .collect();
    let entry = |method: &str, outcome: &str| (method.to_owned(), outcome.to_owned());
    assert_eq!(
        journalled,
        [
            entry("ping", "ok"),
            entry("(unparseable)", "parse_error"),
            entry("tools/call", "success"),
        ]
    );
}

#[tokio::test]
async fn tool_errors_json_rpc_errors_and_latency_are_as_scripted() {
    let mut slow = tool("slow", Outcome::Success);
    slow.behaviour.latency = Latency::Fixed(Duration::from_millis(200));
    let cfg = stdio(
        vec![
            tool(
                "fails",
                Outcome::ToolError {
                    message: "disk full".into(),
                },
            ),
            tool(
                "rpc",
                Outcome::JsonRpcError {
                    code: -32050,
                    message: "busy".into(),
                },
            ),
            slow,
        ],
        vec![],
    );
    let journal = cfg.journal.clone();
    let mut pipe = Pipe::start(cfg);
    pipe.send(call(1, "fails", 1)).await;
    let failed = pipe.answer().await;
    assert_eq!(failed["result"]["isError"], true);
    assert_eq!(failed["result"]["content"][0]["text"], "disk full");
    pipe.send(call(2, "rpc", 2)).await;
    let rpc = pipe.answer().await;
    assert_eq!(error_code(&rpc), Some(-32050));
    assert_eq!(rpc["error"]["message"], "busy");

    let sent = Instant::now();
    pipe.send(call(3, "slow", 3)).await;
    assert_eq!(pipe.answer().await["id"], 3);
    assert!(sent.elapsed() >= Duration::from_millis(200));

    let outcomes: Vec<String> = journal.snapshot().into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, ["tool_error", "jsonrpc_error", "success"]);
}

#[tokio::test]
async fn a_malformed_outcome_writes_a_line_that_is_not_json() {
    let mut pipe = Pipe::start(stdio(vec![tool("read", Outcome::Malformed)], vec![]));
    pipe.send(call(1, "read", 1)).await;
    let line = pipe.line().await.unwrap();
    assert!(serde_json::from_str::<Value>(&line).is_err(), "{line}");
    // The fake carries on.
    pipe.send(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
        .await;
    assert_eq!(pipe.answer().await["id"], 2);
}

#[tokio::test]
async fn a_hung_call_is_never_answered_while_later_ones_are() {
    let mut pipe = Pipe::start(stdio(
        vec![tool("stuck", Outcome::Hang), tool("read", Outcome::Success)],
        vec![],
    ));
    pipe.send(call(1, "stuck", 1)).await;
    pipe.send(call(2, "read", 2)).await;
    assert_eq!(pipe.answer().await["id"], 2);
    let silence = timeout(Duration::from_millis(500), pipe.output.next_line()).await;
    assert!(silence.is_err(), "the hung call was answered: {silence:?}");
}

#[tokio::test]
async fn an_exit_outcome_ends_with_its_code_after_earlier_answers() {
    let cfg = stdio(
        vec![tool("read", Outcome::Success)],
        vec![every_second_call("read", Outcome::Exit { code: 3 })],
    );
    let journal = cfg.journal.clone();
    let mut pipe = Pipe::start(cfg);
    pipe.send(call(1, "read", 1)).await;
    assert_eq!(pipe.answer().await["id"], 1);
    pipe.send(call(2, "read", 2)).await;
    // The output closes without an answer, and serve says exit 3.
    assert_eq!(pipe.line().await, None);
    assert_eq!(pipe.end().await, StdioEnd::Exit(3));
    let last = journal.snapshot().pop().unwrap();
    assert_eq!((last.call, last.outcome.as_str()), (Some(2), "exit"));
}

#[tokio::test]
async fn a_reset_closes_the_output_and_exits_1() {
    let mut pipe = Pipe::start(stdio(vec![tool("read", Outcome::Reset)], vec![]));
    pipe.send(call(1, "read", 1)).await;
    assert_eq!(pipe.line().await, None);
    assert_eq!(pipe.end().await, StdioEnd::Exit(1));
}

#[tokio::test]
async fn a_slow_start_answers_nothing_before_its_drawn_delay() {
    let mut cfg = stdio(vec![tool("read", Outcome::Success)], vec![]);
    cfg.spec.startup = Some(Latency::Uniform {
        min: Duration::from_millis(300),
        max: Duration::from_millis(400),
    });
    let journal = cfg.journal.clone();
    let started = Instant::now();
    let mut pipe = Pipe::start(cfg);
    pipe.send(call(1, "read", 1)).await;
    // Sent at once, read only once the process has started.
    assert_eq!(pipe.answer().await["id"], 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(journal.snapshot()[0].at >= Duration::from_millis(300));
}

#[tokio::test]
async fn started_inside_an_outage_it_exits_at_once_without_reading() {
    let cfg = stdio(
        vec![tool("read", Outcome::Success)],
        vec![outage(Duration::ZERO, Duration::from_secs(10), 7)],
    );
    let journal = cfg.journal.clone();
    // Nobody ever writes to the input: serve must not wait for it.
    let (_input, fake_input) = tokio::io::duplex(1024);
    let (fake_output, _output) = tokio::io::duplex(1024);
    let served = timeout(PROMPTLY, serve(cfg, fake_input, fake_output)).await;
    assert_eq!(served.ok(), Some(StdioEnd::Exit(7)));
    assert!(journal.snapshot().is_empty());
}

#[tokio::test]
async fn it_exits_when_an_outage_starts() {
    let cfg = stdio(
        vec![tool("read", Outcome::Success)],
        vec![outage(
            Duration::from_millis(500),
            Duration::from_secs(10),
            4,
        )],
    );
    let clock = cfg.clock;
    let mut pipe = Pipe::start(cfg);
    pipe.send(call(1, "read", 1)).await;
    assert_eq!(pipe.answer().await["id"], 1);
    assert_eq!(pipe.line().await, None);
    assert!(clock.elapsed() >= Duration::from_millis(500));
    assert_eq!(pipe.end().await, StdioEnd::Exit(4));
}

#[tokio::test]
async fn every_second_call_follows_its_fault() {
    let mut pipe = Pipe::start(stdio(
        vec![tool("read", Outcome::Success)],
        vec![every_second_call(
            "read",
            Outcome::ToolError {
                message: "flaky".into(),
            },
        )],
    ));
    let mut failed = Vec::new();
    for n in 1..=6 {
        pipe.send(call(n, "read", n)).await;
        let answer = pipe.answer().await;
        failed.push(answer["result"]["isError"] == true);
    }
    assert_eq!(failed, [false, true, false, true, false, true]);
}
