//! The validated scenario: what a run is built from.
//!
//! These types hold only values that passed validation (durations parsed,
//! probabilities in range, names resolved, windows turned into absolute time
//! ranges). Reading and validating the YAML lives in the sibling modules; the
//! format is documented key by key in `docs/scenarios.md`.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use mcp_proxy::config::ConfigError;
use mcp_proxy::config::document::Node;
use serde_json::Value;

pub use super::codes::{CodeSelector, FailureKind, FakeErrorCode};

/// One scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it was read from, as named on the command line.
    pub file: PathBuf,
    /// `name`: short identifier, shown in reports.
    pub name: String,
    /// `description`: one line, shown by `mcp-harness list`.
    pub description: String,
    /// `seed`: seeds every random choice of the harness (latency, outcomes, call mix).
    pub seed: u64,
    /// `duration`: how long load runs.
    pub duration: Duration,
    /// `grace`: how long calls still in flight at the end may take to be answered. Default 5s.
    pub grace: Duration,
    /// `proxy`: the inline `mcp-proxy` config, as a tree; backends name fakes
    /// with `fake:`. `None` when left out: the scenario then runs only
    /// against a gateway of its own (`--target`), see [`Scenario::needs_target`].
    pub proxy: Option<ProxySection>,
    /// `fakes`: the fake backends.
    pub fakes: Vec<FakeSpec>,
    /// `issuer`: the token issuer whose keys the identities' JWTs are signed
    /// with, and whose JWKS the proxy fetches. `None`: no JWTs.
    pub issuer: Option<Issuer>,
    /// `faults`: the fault timeline, in file order (later entries override earlier ones).
    pub faults: Vec<Fault>,
    /// `workload`: the client load.
    pub workload: Workload,
    /// `expect`: the checks, in file order.
    pub expect: Vec<CheckSpec>,
}

/// The `proxy:` section: validated against the proxy's schema with the fakes
/// filled in, and kept as a tree so a run can fill in real addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySection {
    /// The tree of the section, `fake:` keys still in place.
    pub tree: Node,
    /// For each backend, in order: the fakes it names (`fake: NAME`, or
    /// `fake: [A, B]` for a replica pool; empty for a real backend).
    pub backend_fakes: Vec<Vec<String>>,
    /// The issuer's name when the scenario has one: the address function of
    /// a run answers for it with the JWKS URL, which fills in
    /// `{issuer.jwks_url}`.
    pub issuer: Option<String>,
}

/// The `issuer:` section: a token issuer with a fake JWKS server
/// (`GET /jwks.json`), as `crate::identity` runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Issuer {
    /// `name`: names the issuer in faults (`issuer: NAME`), checks
    /// (`count: { fake: NAME, method: GET }`) and journals; not a fake's name.
    pub name: String,
    /// `iss`: the `iss` claim of every token. Default `https://NAME.test`.
    pub iss: String,
    /// `audience`: the `aud` claim of every token (the proxy's `auth.resource`, say).
    pub audience: String,
    /// `keys`: key ids (`kid`), each an Ed25519 key derived from the run's
    /// seed. The first is published and signs from the start; `rotate_key`
    /// faults bring in the others. `algorithm: EdDSA` is the only one.
    pub keys: Vec<String>,
    /// `port`: fixed port of the JWKS server in a real run; 0 (default): a free one.
    pub port: u16,
}

/// One entry of `workload.identities`: who some of the clients are.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `name`: unique; checks select by it (`identity: NAME`), and it is
    /// the default `sub` claim.
    pub name: String,
    /// The clients that carry it: identities take the clients in file
    /// order (`clients: N` each, default 1).
    pub clients: Range<usize>,
    /// `auth`: what the clients send as `Authorization: Bearer ...`.
    pub auth: ClientAuth,
}

/// What an identity's clients send as their bearer token.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuth {
    /// `bearer: TOKEN`: this token, always.
    Bearer(String),
    /// `jwt: { ... }`: a JWT the harness mints from the issuer's keys.
    Jwt(JwtSpec),
}

/// `auth.jwt` of an identity.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSpec {
    /// `claims`: added to (and overriding) `iss`, `aud`, `sub`, `iat`, `exp`.
    pub claims: serde_json::Map<String, Value>,
    /// `lifetime`: `exp − iat`, from the moment of minting (whole seconds, ≥ 1s).
    pub lifetime: Duration,
    /// `renew`: mint a fresh token when the current one has (nearly)
    /// expired; `false` keeps sending the expired one.
    pub renew: bool,
    /// `key`: always sign with this key of the issuer; default: the key the
    /// issuer signs with at the moment of minting (see `rotate_key`).
    pub key: Option<String>,
}

/// An identity a check selects by: its name and the clients that carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRef {
    /// The identity's name.
    pub name: String,
    /// Its clients.
    pub clients: Range<usize>,
}

/// One entry of `fakes:`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSpec {
    /// `name`: unique among fakes.
    pub name: String,
    /// `transport` (and `port` for http).
    pub transport: FakeTransport,
    /// `tools`: at least one.
    pub tools: Vec<ToolSpec>,
    /// `startup` (stdio fakes): how long each process of the fake takes to
    /// start before it reads its input; `None` starts at once.
    pub startup: Option<Latency>,
}

/// How a fake is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeTransport {
    /// A child process the proxy runs (`mcp-harness fake-backend --transport stdio`).
    Stdio,
    /// An HTTP server on 127.0.0.1; `port` 0 (the default) means an ephemeral one.
    Http {
        /// `port`: fixed port, required for a running `--target` (or given
        /// by `run --ports` / `--port`).
        port: u16,
    },
}

/// One tool of a fake.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// `name`: unique within the fake.
    pub name: String,
    /// `read_only`: advertised as the MCP `readOnlyHint` annotation.
    pub read_only: Option<bool>,
    /// `idempotent`: advertised as the MCP `idempotentHint` annotation.
    pub idempotent: Option<bool>,
    /// `latency` and `outcomes`: the behaviour outside any fault.
    pub behaviour: Behaviour,
}

/// How a tool answers: a latency distribution and an outcome mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// `latency`: default `{ fixed: 0ms }`.
    pub latency: Latency,
    /// `outcomes`: each with a probability; whatever probability is left is success.
    pub outcomes: Vec<WeightedOutcome>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency: Latency::Fixed(Duration::ZERO),
            outcomes: Vec::new(),
        }
    }
}

/// A latency distribution, sampled with the seeded generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// `{ fixed: 10ms }`
    Fixed(Duration),
    /// `{ uniform: { min: 5ms, max: 20ms } }`
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound (≥ min).
        max: Duration,
    },
    /// `{ normal: { mean: 20ms, stddev: 5ms } }` (negative samples become 0).
    Normal {
        /// Mean.
        mean: Duration,
        /// Standard deviation.
        stddev: Duration,
    },
    /// `{ lognormal: { median: 20ms, sigma: 0.5 } }`
    LogNormal {
        /// Median (e^μ).
        median: Duration,
        /// σ of the underlying normal.
        sigma: f64,
    },
    /// `{ pareto: { scale: 5ms, shape: 1.5 } }`: heavy tail, never below `scale`.
    Pareto {
        /// Minimum value (x_m).
        scale: Duration,
        /// Tail index α (> 0; smaller is heavier).
        shape: f64,
    },
}

/// An outcome with its probability (0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedOutcome {
    /// What happens.
    pub outcome: Outcome,
    /// `probability`: chance of this outcome per call.
    pub probability: f64,
}

/// What a fake does with one call, after its latency.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A normal result: the tool echoes its arguments as text.
    Success,
    /// `tool_error`: a result with `isError: true` and this text.
    ToolError {
        /// The error text.
        message: String,
    },
    /// `jsonrpc_error`: a JSON-RPC error response.
    JsonRpcError {
        /// The code.
        code: i64,
        /// The message.
        message: String,
    },
    /// `http_status` (http fakes): the POST is answered with this status and no JSON-RPC body.
    HttpStatus {
        /// 4xx or 5xx.
        status: u16,
        /// `retry_after`: sent as a `Retry-After` header (whole seconds, rounded up).
        retry_after: Option<Duration>,
    },
    /// `reset`: http — the connection is reset (RST); stdio — stdout is closed and the process exits 1.
    Reset,
    /// `hang`: never answered.
    Hang,
    /// `malformed`: an invalid frame (a non-JSON line on stdio, a non-JSON body on http).
    Malformed,
    /// `exit` (stdio fakes): the process exits with this code.
    Exit {
        /// The exit code.
        code: i32,
    },
}

impl Outcome {
    /// The outcome's key in the scenario file, also used in journals.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ToolError { .. } => "tool_error",
            Outcome::JsonRpcError { .. } => "jsonrpc_error",
            Outcome::HttpStatus { .. } => "http_status",
            Outcome::Reset => "reset",
            Outcome::Hang => "hang",
            Outcome::Malformed => "malformed",
            Outcome::Exit { .. } => "exit",
        }
    }
}

/// One entry of `faults:`: a change of behaviour of one fake while its trigger holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `name`: names the phase for windows and reports (time triggers only).
    pub name: Option<String>,
    /// `fake`: the fake it applies to; or `issuer`: the issuer's name
    /// (an `outage` of its JWKS server, or `rotate_key`); or
    /// [`PROXY_TARGET`] for a `reload`.
    pub fake: String,
    /// `tool`: only this tool (default: every tool of the fake). Not with `outage`.
    pub tool: Option<String>,
    /// When it applies.
    pub trigger: Trigger,
    /// What it does.
    pub action: FaultAction,
}

/// What [`Fault::fake`] names for a `reload` fault: the proxy itself.
pub const PROXY_TARGET: &str = "proxy";

/// What a `reload` fault requires of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadExpect {
    /// `applied` (the default): it takes the new config.
    Applied,
    /// `rejected`: the new config is invalid; it must keep the running one.
    Rejected,
}

impl ReloadExpect {
    /// The word reports use.
    pub fn label(self) -> &'static str {
        match self {
            ReloadExpect::Applied => "applied",
            ReloadExpect::Rejected => "rejected",
        }
    }
}

/// When a fault applies.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `at` (default 0s), `for` (default: to the end), `every` (repeat period).
    Time {
        /// Start, from scenario start.
        at: Duration,
        /// Length; `None` lasts until the end.
        length: Option<Duration>,
        /// Repeat period (≥ `for`); `None` happens once.
        every: Option<Duration>,
    },
    /// `calls: { first: N }` or `calls: { every: N }`, counted per tool per fake process.
    Calls(CallTrigger),
}

/// A call-count trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTrigger {
    /// Calls 1..=N.
    First(u64),
    /// Calls N, 2N, 3N, ...
    Every(u64),
}

impl Trigger {
    /// Whether a time trigger holds at `t`; call triggers never hold by time.
    pub fn holds_at(&self, t: Duration) -> bool {
        match *self {
            Trigger::Time { at, length, every } => {
                if t < at {
                    return false;
                }
                let since = t - at;
                let since = match every {
                    Some(period) if !period.is_zero() => {
                        Duration::from_nanos((since.as_nanos() % period.as_nanos()) as u64)
                    }
                    _ => since,
                };
                length.is_none_or(|len| since < len)
            }
            Trigger::Calls(_) => false,
        }
    }

    /// Whether a call trigger holds for the `n`th call (1-based); time triggers never do.
    pub fn holds_for_call(&self, n: u64) -> bool {
        match *self {
            Trigger::Calls(CallTrigger::First(first)) => n <= first,
            Trigger::Calls(CallTrigger::Every(every)) => every > 0 && n.is_multiple_of(every),
            Trigger::Time { .. } => false,
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// `outage: true` or `outage: { exit_code: N }`: http — refuse connections and
    /// reset open ones; stdio — exit (with `exit_code`, default 1), and exit again
    /// at once if respawned while the outage lasts.
    Outage {
        /// Exit code of a stdio fake.
        exit_code: i32,
    },
    /// `latency` and/or `outcomes` replace the tool's own while the fault holds.
    Behave {
        /// Replacement latency.
        latency: Option<Latency>,
        /// Replacement outcome mix.
        outcomes: Option<Vec<WeightedOutcome>>,
    },
    /// `rotate_key: { to: KID, keep_old: BOOL }` (issuer only): at `at`, the
    /// issuer publishes key `to` and signs every token minted from then on
    /// with it; `keep_old: false` takes the key it signed with before out of
    /// the JWKS. Lasts to the end (no `for`).
    RotateKey {
        /// The key signing from then on.
        to: String,
        /// Whether the previous signing key stays published.
        keep_old: bool,
    },
    /// `reload: { patch, expect, restart }`: at `at`, the proxy is given
    /// its `proxy:` section as the reloads before made it, with `patch`
    /// merged in. Happens once, at `at`.
    Reload {
        /// The section after the patch (invalid when `expect` is rejected).
        section: Box<ProxySection>,
        /// Whether the proxy must take it.
        expect: ReloadExpect,
        /// Apply it by restarting the proxy with the new config (what a
        /// gateway without hot reload has to do) instead of reloading.
        restart: bool,
    },
    /// `network`: the link between the proxy and an HTTP fake misbehaves
    /// while the fault holds. Only a simulated network can do this, so a
    /// scenario with one runs only with `--sim` ([`Scenario::needs_simulation`]).
    Network {
        /// What happens to the link.
        link: LinkFault,
        /// The line of the `network` key, for the error that refuses a real run.
        line: usize,
    },
}

/// What a `network` fault does to the link between the proxy and a fake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkFault {
    /// `{ latency: 50ms, jitter: 20ms }`: each message, either way, takes
    /// between `latency` and `latency + jitter` to cross.
    Latency {
        /// The least time a message takes.
        latency: Duration,
        /// How much more it may take (0: exactly `latency`).
        jitter: Duration,
    },
    /// `{ partition: both | to_fake | from_fake }`: messages that way are dropped.
    Partition(Direction),
    /// `{ drop_connections: 0.05 }`: the chance that a message breaks the
    /// link, losing it and everything else in flight on the link.
    DropConnections(f64),
}

/// Which way a partition drops messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `both`: nothing crosses.
    Both,
    /// `to_fake`: what the proxy sends to the fake is dropped.
    ToFake,
    /// `from_fake`: what the fake sends to the proxy is dropped.
    FromFake,
}

impl Direction {
    /// Whether messages from the proxy to the fake are dropped.
    pub fn cuts_to_fake(self) -> bool {
        matches!(self, Direction::Both | Direction::ToFake)
    }

    /// Whether messages from the fake to the proxy are dropped.
    pub fn cuts_from_fake(self) -> bool {
        matches!(self, Direction::Both | Direction::FromFake)
    }
}

impl Scenario {
    /// Why this scenario cannot run with a proxy the harness configures
    /// (in-process, `--proxy-bin`, `--sim`): it has no `proxy:` section.
    pub fn needs_target(&self) -> Option<String> {
        self.proxy.is_none().then(|| {
            format!(
                "{} has no proxy: section; run it against a gateway with --target",
                self.file.display()
            )
        })
    }

    /// Why this scenario cannot run against another gateway (`--target`):
    /// its first `reload` fault, which rewrites our proxy's config.
    pub fn needs_our_proxy(&self) -> Option<String> {
        self.faults
            .iter()
            .position(|fault| matches!(fault.action, FaultAction::Reload { .. }))
            .map(|i| {
                format!(
                    "{}: faults[{i}].reload: a reload fault changes our proxy's config: run the scenario in process, with --proxy-bin or with --sim",
                    self.file.display()
                )
            })
    }

    /// Why this scenario cannot run with `--proxy-bin`: its first reload
    /// with `restart: true`, which restarts the library in this process.
    pub fn restarts_in_process(&self) -> Option<String> {
        self.faults
            .iter()
            .position(|fault| matches!(fault.action, FaultAction::Reload { restart: true, .. }))
            .map(|i| {
                format!(
                    "{}: faults[{i}].reload.restart: a restart runs in process or with --sim only",
                    self.file.display()
                )
            })
    }

    /// Why this scenario cannot run on the operating system's network: its
    /// first `network` fault, as an error at that fault's line and key.
    /// `None` when it runs in every mode.
    pub fn needs_simulation(&self) -> Option<ConfigError> {
        self.faults
            .iter()
            .enumerate()
            .find_map(|(i, fault)| match fault.action {
                FaultAction::Network { line, .. } => Some(ConfigError {
                    file: self.file.display().to_string(),
                    line: Some(line),
                    path: format!("faults[{i}].network"),
                    message:
                        "a network fault needs the simulated network: run the scenario with --sim"
                            .into(),
                }),
                _ => None,
            })
    }
}

/// The `workload:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `clients`: MCP sessions opened through the proxy. Default 1.
    pub clients: usize,
    /// `closed` or `open` loop.
    pub mode: LoadMode,
    /// `calls`: the mix of tool calls.
    pub calls: Vec<CallMix>,
    /// `call_timeout`: a call unanswered this long is given up and counted as hung. Default 30s.
    pub call_timeout: Duration,
    /// `identities`: who the clients are (none: anonymous clients).
    pub identities: Vec<Identity>,
}

impl Workload {
    /// The identity client `client` carries, if any.
    pub fn identity_of(&self, client: usize) -> Option<&Identity> {
        self.identities.iter().find(|i| i.clients.contains(&client))
    }
}

/// How calls are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    /// `closed: { concurrency: N }`: N calls always in flight, spread over the clients.
    Closed {
        /// Calls in flight.
        concurrency: usize,
    },
    /// `open: { rate: 200, max_in_flight: 1000, max_missed_share: 0.1 }`:
    /// calls start at a constant rate (per second) whatever the answers do;
    /// a slot that finds `max_in_flight` calls outstanding, or comes too
    /// late to send, is counted as missed.
    Open {
        /// Calls per second.
        rate: f64,
        /// Cap on outstanding calls.
        max_in_flight: usize,
        /// The largest share of slots that may be missed before the
        /// accounting check fails the run (0..=1). Default 0.1.
        max_missed_share: f64,
    },
}

/// One entry of `workload.calls`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallMix {
    /// `tool`: the name as the proxy lists it (`files/read`).
    pub tool: String,
    /// `arguments`: sent with every call (the harness adds `harness_call`).
    pub arguments: serde_json::Map<String, Value>,
    /// `weight`: relative share of the mix. Default 1.
    pub weight: f64,
}

/// One entry of `expect:`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// `name`: shown in reports; defaults to a description of the check.
    pub name: String,
    /// The line of the entry, for reports.
    pub line: usize,
    /// What is checked.
    pub kind: CheckKind,
}

/// The kinds of check (one module each under `checks/`).
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `threshold`: error rate and latency percentiles of client calls.
    Threshold(ThresholdCheck),
    /// `errors`: what failed calls looked like.
    Errors(ErrorsCheck),
    /// `count`: how many requests a fake saw.
    Count(CountCheck),
    /// `ratio`: how calls split between fakes, judged statistically.
    Ratio(RatioCheck),
    /// `timing`: how soon a kind of answer first came after a phase boundary.
    Timing(TimingCheck),
    /// `status`: how many HTTP requests of the clients were answered with a status.
    Status(StatusCheck),
}

impl CheckKind {
    /// The check's `code:` or `kind:` selector, if it has one.
    pub fn code_selector(&self) -> Option<&CodeSelector> {
        match self {
            CheckKind::Threshold(t) => t.select.code.as_ref(),
            CheckKind::Errors(e) => e.code.as_ref(),
            CheckKind::Timing(t) => t.code.as_ref(),
            CheckKind::Count(_) | CheckKind::Ratio(_) | CheckKind::Status(_) => None,
        }
    }

    /// [`CheckKind::code_selector`], to change.
    pub fn code_selector_mut(&mut self) -> Option<&mut CodeSelector> {
        match self {
            CheckKind::Threshold(t) => t.select.code.as_mut(),
            CheckKind::Errors(e) => e.code.as_mut(),
            CheckKind::Timing(t) => t.code.as_mut(),
            CheckKind::Count(_) | CheckKind::Ratio(_) | CheckKind::Status(_) => None,
        }
    }
}

/// Which client calls a check looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSelector {
    /// `calls`: a tool name pattern (`*` matches any run of characters). Default `*`.
    pub tool: String,
    /// `window`: calls *started* inside it.
    pub window: Window,
    /// `outcome`: only calls that ended this way. Default any.
    pub outcome: Option<OutcomeFilter>,
    /// `code` or `kind` (threshold only): only calls answered with a
    /// JSON-RPC error of these codes. Default any.
    pub code: Option<CodeSelector>,
    /// `identity`: only calls sent by the clients of this identity. Default any.
    pub identity: Option<IdentityRef>,
}

/// A filter on how a client call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    /// A result without `isError`.
    Success,
    /// Anything else (tool error, JSON-RPC error, HTTP error, transport error, hung).
    Error,
}

/// A time window, resolved to absolute ranges from scenario start.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// How the scenario wrote it (`during files-down`), for reports.
    pub label: String,
    /// The ranges, sorted and disjoint.
    pub ranges: Vec<Range<Duration>>,
}

impl Window {
    /// Whether `t` falls in the window.
    pub fn contains(&self, t: Duration) -> bool {
        self.ranges.iter().any(|r| r.contains(&t))
    }

    /// The start of the first range.
    pub fn start(&self) -> Option<Duration> {
        self.ranges.first().map(|r| r.start)
    }
}

/// `threshold`: bounds on client-side results.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdCheck {
    /// The calls looked at.
    pub select: CallSelector,
    /// `error_rate: { max: 0.01 }`
    pub max_error_rate: Option<f64>,
    /// `latency: { p50: 10ms, p99: 100ms, max: 1s }`: each an upper bound.
    pub latency: Vec<(Percentile, Duration)>,
    /// `min_calls`: fewer selected calls than this fails the check. Default 1.
    pub min_calls: u64,
}

/// A latency percentile named in a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentile {
    /// The key as written (`p99`, `p99.9`, `max`).
    pub label: &'static str,
    /// The quantile in 0..=1 (`max` is 1).
    pub quantile: f64,
}

/// `errors`: failed calls must look like this.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorsCheck {
    /// The calls looked at (the outcome filter is ignored: failures are looked at).
    pub select: CallSelector,
    /// `code` or `kind`: every failure must be a JSON-RPC error of these codes.
    pub code: Option<CodeSelector>,
    /// `message_contains`: every failure's message must contain this text.
    pub message_contains: Option<String>,
    /// The code overlay of the run says the target's messages do not name
    /// the backend: `message_contains` is shown, not judged.
    pub message_ignored: bool,
    /// `min_rate`: at least this share of the selected calls must have failed.
    pub min_rate: Option<f64>,
}

/// Which journal entries a check counts.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSelector {
    /// `fake`: the fake (required).
    pub fake: String,
    /// `tool`: only calls of this tool. Default: every `tools/call`.
    pub tool: Option<String>,
    /// `method`: the JSON-RPC method. Default `tools/call`.
    pub method: String,
    /// `endpoint`: only entries whose endpoint matches this pattern
    /// (`http://127.0.0.1:*/mcp`, `stdio:*`). Default: any.
    pub endpoint: Option<String>,
    /// `outcomes`: only entries with one of these journal outcome labels
    /// (`success`, `jsonrpc_error`, `unknown_session`, ...). Default: any.
    pub outcomes: Option<Vec<String>>,
    /// `window`: entries received inside it.
    pub window: Window,
    /// `identity`: only entries of client calls (by their `harness_call`
    /// number) sent by this identity's clients. Default: any entry.
    pub identity: Option<IdentityRef>,
}

/// `count`: bounds on how many requests a fake saw.
#[derive(Debug, Clone, PartialEq)]
pub struct CountCheck {
    /// What is counted.
    pub select: JournalSelector,
    /// `min`: inclusive.
    pub min: Option<u64>,
    /// `max`: inclusive.
    pub max: Option<u64>,
    /// `per_call`: `max` bounds the entries of each client call (by its
    /// `harness_call` number) instead of the total: `max: 1` means no call
    /// was received twice.
    pub per_call: bool,
    /// `traced`: besides the bounds, every selected entry of a client call
    /// carries a `traceparent` in that call's trace (the one the load
    /// client sent with it), and the entries of one call have parent ids of
    /// their own (each attempt its own span): one trace across retries and
    /// hedges.
    pub traced: bool,
}

/// `ratio`: how calls split over several fakes.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioCheck {
    /// `ways`: each fake with its expected share (shares sum to 1).
    pub ways: Vec<(String, f64)>,
    /// `tool`: only calls of this tool.
    pub tool: Option<String>,
    /// `window`: entries received inside it.
    pub window: Window,
    /// `confidence`: e.g. 0.9999. Two ways: Wilson score interval; more: chi-square test.
    pub confidence: f64,
    /// `min_calls`: fewer calls in total fails the check. Default 30.
    pub min_calls: u64,
}

/// `timing`: after a phase boundary, the first call of a kind ends within a bound.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingCheck {
    /// `after`: the reference instant (`{ start: phase }` or `{ end: phase }`).
    pub after: Duration,
    /// How the reference was written, for reports.
    pub after_label: String,
    /// `first.calls`: tool pattern.
    pub tool: String,
    /// `first.outcome`: the kind of answer awaited.
    pub outcome: OutcomeFilter,
    /// `first.code` or `first.kind`: for errors, only these JSON-RPC codes count.
    pub code: Option<CodeSelector>,
    /// `first.faster_than`: only answers that took less than this count (a *fast* rejection).
    pub faster_than: Option<Duration>,
    /// `within`: the bound on (first such answer's end − reference).
    pub within: Duration,
}

/// `status`: bounds on how many of the clients' HTTP requests were answered
/// with one status (401, 403, ...). Every request counts: `initialize`,
/// calls, `tools/list`, `DELETE`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCheck {
    /// `code`: the HTTP status counted (100..=599).
    pub code: u16,
    /// `identity`: only requests of this identity's clients. Default any.
    pub identity: Option<IdentityRef>,
    /// `request`: only requests of this kind: a JSON-RPC method
    /// (`tools/call`, `initialize`, ...) or `DELETE`. Default any.
    pub request: Option<String>,
    /// `window`: requests answered inside it.
    pub window: Window,
    /// `min`: inclusive.
    pub min: Option<u64>,
    /// `max`: inclusive.
    pub max: Option<u64>,
}
