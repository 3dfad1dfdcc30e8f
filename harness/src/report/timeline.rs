//! A run as a story in time: what clients saw and what each fake received,
//! in fixed buckets, the fault windows that explain them, the proxy's own
//! view of its backends sampled as it went, and every call's outcome.
//!
//! These are the report's figures for graphs and scripts (the HTML
//! timeline draws them); the phase table and the checks summarise the same
//! run for a verdict.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The width of a [`Timeline`] bucket, in microseconds (100 ms).
pub const BUCKET_US: u64 = 100_000;

/// Client calls and fake requests per bucket of time, from scenario start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Timeline {
    /// The width of each bucket, in microseconds.
    pub bucket_us: u64,
    /// The buckets in order, the first starting at 0; every bucket up to
    /// the last call's end (or the last fake request, if later) is present,
    /// empty ones included.
    pub buckets: Vec<Bucket>,
}

/// What happened in one bucket of time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Bucket {
    /// The bucket's start, from scenario start, in microseconds.
    pub at_us: u64,
    /// Client calls sent in the bucket.
    pub started: u64,
    /// Client calls that ended in the bucket, however they ended.
    pub answered: u64,
    /// Of those, calls that succeeded.
    pub succeeded: u64,
    /// Of those, calls that failed, by [`CallRow::error`] label (`-32010`,
    /// `tool_error`, `http_502`, `transport`, `hung`).
    pub errors: BTreeMap<String, u64>,
    /// Median latency of the calls that ended in the bucket (due to end).
    pub p50_us: Option<u64>,
    /// 99th percentile latency of the calls that ended in the bucket.
    pub p99_us: Option<u64>,
    /// Median latency of the calls that failed and ended in the bucket
    /// (fast refusals and slow timeouts, told apart from the successes).
    /// Absent in reports of harnesses before it was added.
    #[serde(default)]
    pub failed_p50_us: Option<u64>,
    /// `tools/call` requests each fake received in the bucket, by the
    /// journal's outcome label (`success`, `jsonrpc_error`, `outage`, ...).
    pub fakes: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One time-triggered fault's window (each occurrence of a repeating one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaultSpan {
    /// The fault's name, or a description (`outage of files`) without one.
    pub label: String,
    /// The fake it acts on (the issuer's name for an issuer fault, `proxy`
    /// for a reload).
    pub fake: String,
    /// What it does: `outage`, `latency`, `errors` (an outcome mix),
    /// `latency+errors`, `network`, `rotate_key` or `reload`.
    pub action: String,
    /// Its start, from scenario start, in microseconds.
    pub from_us: u64,
    /// Its end (the end of the load for a fault with no length).
    pub to_us: u64,
}

/// The proxy's `/admin/backends`, read at one moment of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackendSample {
    /// When it was read, from scenario start, in microseconds.
    pub at_us: u64,
    /// Each backend's state then.
    pub backends: Vec<BackendState>,
}

/// One backend in a [`BackendSample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackendState {
    /// The backend's name in the proxy.
    pub name: String,
    /// `connecting`, `connected`, `unavailable` or `stopped`.
    pub state: String,
    /// The circuit breaker's state (`closed`, `open`, `half_open`), if it has one.
    pub breaker: Option<String>,
    /// Calls forwarded and not yet answered.
    pub in_flight: u64,
    /// Each endpoint of its pool.
    pub endpoints: Vec<EndpointState>,
}

/// One endpoint of a [`BackendState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointState {
    /// Its URL or `stdio:COMMAND`.
    pub endpoint: String,
    /// `connecting`, `connected`, `unavailable` or `stopped`.
    pub state: String,
    /// Whether outlier detection has taken it out of the pool.
    pub ejected: bool,
}

/// One client call and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallRow {
    /// The `harness_call` number.
    pub call: u64,
    /// The client session that sent it (0-based).
    pub client: usize,
    /// The tool as named through the proxy.
    pub tool: String,
    /// When it was due, in microseconds from scenario start.
    pub due_us: u64,
    /// When it was sent.
    pub sent_us: u64,
    /// Its latency, due to end.
    pub latency_us: u64,
    /// `success`, `tool_error`, `rpc_error`, `http_status`, `transport` or `hung`.
    pub outcome: String,
    /// For a failure: the label it is counted under in the timeline's
    /// `errors` (the JSON-RPC code as text for an `rpc_error`).
    pub error: Option<String>,
    /// The JSON-RPC error code, for an `rpc_error`.
    pub code: Option<i64>,
    /// The HTTP status, for an `http_status`.
    pub status: Option<u16>,
    /// The error's message, if it had one.
    pub message: Option<String>,
    /// The fakes that received it (`tools/call` journal entries with its
    /// number), in order: several after a retry or hedge, none if it never
    /// reached one.
    pub fakes: Vec<String>,
}
