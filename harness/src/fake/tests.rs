//! The faces observed from outside: a raw client sees each scripted outcome
//! exactly as the scenario wrote it, and the journal records what arrived.

use std::time::Duration;

use serde_json::{Value, json};

use super::FakeConfig;
use crate::clock::ScenarioClock;
use crate::journal::Journal;
use crate::scenario::{
    Behaviour, CallTrigger, FakeSpec, FakeTransport, Fault, FaultAction, Latency, Outcome,
    ToolSpec, Trigger, WeightedOutcome,
};

mod http;
mod stdio;

/// A generous bound for anything that should happen at once.
const PROMPTLY: Duration = Duration::from_secs(5);

fn tool(name: &str, outcome: Outcome) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        read_only: None,
        idempotent: None,
        behaviour: Behaviour {
            latency: Latency::Fixed(Duration::ZERO),
            outcomes: vec![WeightedOutcome {
                outcome,
                probability: 1.0,
            }],
        },
    }
}

fn config(transport: FakeTransport, tools: Vec<ToolSpec>, faults: Vec<Fault>) -> FakeConfig {
    FakeConfig {
        spec: FakeSpec {
            name: "files".into(),
            transport,
            tools,
            startup: None,
        },
        faults,
        seed: 42,
        generation: 0,
        clock: ScenarioClock::start_now(),
        journal: Journal::in_memory(),
    }
}

fn outage(at: Duration, length: Duration, exit_code: i32) -> Fault {
    Fault {
        name: Some("down".into()),
        fake: "files".into(),
        tool: None,
        trigger: Trigger::Time {
            at,
            length: Some(length),
            every: None,
        },
        action: FaultAction::Outage { exit_code },
    }
}

fn every_second_call(tool: &str, outcome: Outcome) -> Fault {
    Fault {
        name: None,
        fake: "files".into(),
        tool: Some(tool.into()),
        trigger: Trigger::Calls(CallTrigger::Every(2)),
        action: FaultAction::Behave {
            latency: None,
            outcomes: Some(vec![WeightedOutcome {
                outcome,
                probability: 1.0,
            }]),
        },
    }
}

fn call(id: u64, tool: &str, call: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"path": "/a", "harness_call": call}},
    })
}

fn initialize(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    })
}

fn error_code(answer: &Value) -> Option<i64> {
    answer["error"]["code"].as_i64()
}
