//! The scenario file as written: strict serde shapes (unknown keys are
//! errors) read from the line-tracking tree. "Exactly one of" choices are
//! optional fields here and are settled in `validate`, which knows the lines.

use std::collections::BTreeMap;

use mcp_proxy::config::document::ConfigDuration;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::codes::FailureKind;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) seed: Option<u64>,
    pub(crate) duration: ConfigDuration,
    pub(crate) grace: Option<ConfigDuration>,
    /// Read by `proxy.rs` from the tree: it has the proxy's own schema.
    /// Optional: a scenario for `--target` runs only may leave it out.
    #[serde(rename = "proxy")]
    pub(crate) _proxy: Option<IgnoredAny>,
    pub(crate) fakes: Vec<RawFake>,
    pub(crate) issuer: Option<RawIssuer>,
    pub(crate) faults: Option<Vec<RawFault>>,
    pub(crate) workload: RawWorkload,
    pub(crate) expect: Vec<RawCheck>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawTransport {
    Stdio,
    Http,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFake {
    pub(crate) name: String,
    pub(crate) transport: RawTransport,
    pub(crate) port: Option<u16>,
    pub(crate) startup: Option<RawLatency>,
    pub(crate) tools: Vec<RawTool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIssuer {
    pub(crate) name: String,
    pub(crate) iss: Option<String>,
    pub(crate) audience: String,
    pub(crate) algorithm: Option<String>,
    pub(crate) keys: Vec<String>,
    pub(crate) port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTool {
    pub(crate) name: String,
    pub(crate) read_only: Option<bool>,
    pub(crate) idempotent: Option<bool>,
    pub(crate) latency: Option<RawLatency>,
    pub(crate) outcomes: Option<Vec<RawOutcome>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLatency {
    pub(crate) fixed: Option<ConfigDuration>,
    pub(crate) uniform: Option<RawUniform>,
    pub(crate) normal: Option<RawNormal>,
    pub(crate) lognormal: Option<RawLogNormal>,
    pub(crate) pareto: Option<RawPareto>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUniform {
    pub(crate) min: ConfigDuration,
    pub(crate) max: ConfigDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNormal {
    pub(crate) mean: ConfigDuration,
    pub(crate) stddev: ConfigDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogNormal {
    pub(crate) median: ConfigDuration,
    pub(crate) sigma: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPareto {
    pub(crate) scale: ConfigDuration,
    pub(crate) shape: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    pub(crate) probability: f64,
    pub(crate) success: Option<bool>,
    pub(crate) tool_error: Option<RawMessage>,
    pub(crate) jsonrpc_error: Option<RawRpcError>,
    pub(crate) http_status: Option<RawHttpStatus>,
    pub(crate) reset: Option<bool>,
    pub(crate) hang: Option<bool>,
    pub(crate) malformed: Option<bool>,
    pub(crate) exit: Option<RawExit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessage {
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRpcError {
    pub(crate) code: i64,
    pub(crate) message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpStatus {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<ConfigDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExit {
    pub(crate) code: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    pub(crate) name: Option<String>,
    pub(crate) fake: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) rotate_key: Option<RawRotateKey>,
    pub(crate) tool: Option<String>,
    pub(crate) at: Option<ConfigDuration>,
    #[serde(rename = "for")]
    pub(crate) length: Option<ConfigDuration>,
    pub(crate) every: Option<ConfigDuration>,
    pub(crate) calls: Option<RawCalls>,
    pub(crate) outage: Option<bool>,
    pub(crate) exit_code: Option<i32>,
    pub(crate) latency: Option<RawLatency>,
    pub(crate) outcomes: Option<Vec<RawOutcome>>,
    pub(crate) network: Option<RawNetwork>,
    pub(crate) reload: Option<RawReload>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReload {
    /// Read from the tree (it is a piece of proxy config, kept with its lines).
    #[serde(rename = "patch")]
    pub(crate) _patch: IgnoredAny,
    pub(crate) expect: Option<RawReloadExpect>,
    pub(crate) restart: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawReloadExpect {
    Applied,
    Rejected,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRotateKey {
    pub(crate) to: String,
    pub(crate) keep_old: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetwork {
    pub(crate) latency: Option<ConfigDuration>,
    pub(crate) jitter: Option<ConfigDuration>,
    pub(crate) partition: Option<RawPartition>,
    pub(crate) drop_connections: Option<f64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawPartition {
    Both,
    ToFake,
    FromFake,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalls {
    pub(crate) first: Option<u64>,
    pub(crate) every: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pub(crate) clients: Option<usize>,
    pub(crate) closed: Option<RawClosed>,
    pub(crate) open: Option<RawOpen>,
    pub(crate) calls: Vec<RawCall>,
    pub(crate) call_timeout: Option<ConfigDuration>,
    pub(crate) identities: Option<Vec<RawIdentity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    pub(crate) name: String,
    pub(crate) clients: Option<usize>,
    pub(crate) auth: RawAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) bearer: Option<String>,
    pub(crate) jwt: Option<RawJwt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub(crate) claims: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) lifetime: ConfigDuration,
    pub(crate) renew: bool,
    pub(crate) key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClosed {
    pub(crate) concurrency: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOpen {
    pub(crate) rate: f64,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) max_missed_share: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCall {
    pub(crate) tool: String,
    pub(crate) arguments: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) weight: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) name: Option<String>,
    pub(crate) threshold: Option<RawThreshold>,
    pub(crate) errors: Option<RawErrors>,
    pub(crate) count: Option<RawCount>,
    pub(crate) ratio: Option<RawRatio>,
    pub(crate) timing: Option<RawTiming>,
    pub(crate) status: Option<RawStatus>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatus {
    pub(crate) code: u16,
    pub(crate) identity: Option<String>,
    pub(crate) request: Option<String>,
    pub(crate) window: Option<RawWindow>,
    pub(crate) min: Option<u64>,
    pub(crate) max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub(crate) during: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) from: Option<ConfigDuration>,
    pub(crate) to: Option<ConfigDuration>,
    pub(crate) skip: Option<ConfigDuration>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawOutcomeFilter {
    Success,
    Error,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMax {
    pub(crate) max: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThreshold {
    pub(crate) calls: Option<String>,
    pub(crate) window: Option<RawWindow>,
    pub(crate) outcome: Option<RawOutcomeFilter>,
    pub(crate) code: Option<i64>,
    pub(crate) kind: Option<FailureKind>,
    pub(crate) identity: Option<String>,
    pub(crate) error_rate: Option<RawMax>,
    pub(crate) latency: Option<BTreeMap<String, ConfigDuration>>,
    pub(crate) min_calls: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrors {
    pub(crate) calls: Option<String>,
    pub(crate) window: Option<RawWindow>,
    pub(crate) code: Option<i64>,
    pub(crate) kind: Option<FailureKind>,
    pub(crate) message_contains: Option<String>,
    pub(crate) min_rate: Option<f64>,
    pub(crate) identity: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCount {
    pub(crate) fake: String,
    pub(crate) tool: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) outcomes: Option<Vec<String>>,
    pub(crate) per_call: Option<bool>,
    pub(crate) traced: Option<bool>,
    pub(crate) identity: Option<String>,
    pub(crate) window: Option<RawWindow>,
    pub(crate) min: Option<u64>,
    pub(crate) max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWay {
    pub(crate) fake: String,
    pub(crate) share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRatio {
    pub(crate) ways: Vec<RawWay>,
    pub(crate) tool: Option<String>,
    pub(crate) window: Option<RawWindow>,
    pub(crate) confidence: f64,
    pub(crate) min_calls: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBoundary {
    pub(crate) start: Option<String>,
    pub(crate) end: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirst {
    pub(crate) calls: Option<String>,
    pub(crate) outcome: RawOutcomeFilter,
    pub(crate) code: Option<i64>,
    pub(crate) kind: Option<FailureKind>,
    pub(crate) faster_than: Option<ConfigDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTiming {
    pub(crate) after: RawBoundary,
    pub(crate) first: RawFirst,
    pub(crate) within: ConfigDuration,
}
