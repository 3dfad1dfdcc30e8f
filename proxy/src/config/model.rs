//! The validated configuration: what `mcp-proxy` runs from.
//!
//! These types are the *result* of loading; they hold only values that have
//! already passed validation (durations parsed, `${VAR}` expanded, names
//! unique, transport keys consistent). Loading lives in the sibling modules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The name the admin tools are listed under (`proxy.admin_tools`), which
/// no backend may then have.
pub const ADMIN_TOOLS_NAME: &str = "proxy";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Settings of the proxy itself (`proxy:` table).
    pub proxy: ProxySettings,
    /// The MCP servers behind the proxy, in file order (`backends:` list).
    pub backends: Vec<BackendConfig>,
    /// `auth:`: who may use the proxy. `None`: no authentication (allowed
    /// only on a loopback `listen`, or with `proxy.allow_unauthenticated`).
    pub auth: Option<AuthConfig>,
    /// `authorization:`: what each role may use. `None`: every caller
    /// that authenticated may use everything.
    pub authorization: Option<Authorization>,
    /// `audit:`: one JSON line per call. `None`: no audit log.
    pub audit: Option<AuditConfig>,
    /// `admin:`: where and to whom `/admin/*` answers.
    pub admin: AdminSettings,
    /// Every value that came from `${VAR}` or from a file (tokens, keys,
    /// secrets): `check` and the logs print `[redacted]` in their place.
    pub secrets: Secrets,
}

/// The `proxy:` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// `name`: the server name the proxy reports in `initialize`. Default `mcp-proxy`.
    pub name: String,
    /// `listen`: the address of the HTTP endpoint. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `separator`: joins backend and item names (`everything/echo`). Default `/`. Non-empty.
    pub separator: String,
    /// `shutdown_timeout`: how long in-flight calls may drain on SIGTERM. Default 10s.
    pub shutdown_timeout: Duration,
    /// `max_body_size`: the largest request body accepted, in bytes (integer, or a
    /// string with a `KiB`/`MiB` suffix). Default 4 MiB. Larger bodies get 413.
    pub max_body_size: usize,
    /// `allowed_origins`: browser origins allowed besides localhost ones
    /// (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`). Default empty.
    pub allowed_origins: Vec<String>,
    /// `session_idle_timeout`: a client session that sent no request and
    /// got no answer for this long is forgotten (an open GET stream does not
    /// count; see [`crate::session`]). Default 30m.
    pub session_idle_timeout: Duration,
    /// `default_call_timeout`: the `timeout.overall` of every backend that
    /// sets none, so no call waits for a hung backend forever. Default 60s.
    pub default_call_timeout: Duration,
    /// `max_sessions`: client sessions at once; an `initialize` beyond it is
    /// refused (HTTP 503). Default 10,000.
    pub max_sessions: usize,
    /// `max_in_flight`: client requests in flight at once, over all
    /// sessions; one beyond it is refused with `-32014`. Default 1024.
    pub max_in_flight: usize,
    /// `max_in_flight_per_session`: client requests in flight at once in
    /// one session; one beyond it is refused with `-32014`. Default 128.
    pub max_in_flight_per_session: usize,
    /// `progress_queue`: progress notifications of one request waiting for
    /// the client to read them; newer ones are dropped while it is full.
    /// Default 64.
    pub progress_queue: usize,
    /// `seed`: seeds every random choice of the proxy (retry jitter). Default 0.
    pub seed: u64,
    /// `allow_unauthenticated`: listen on a non-loopback address with no
    /// `auth:` (a config error otherwise). Default false.
    pub allow_unauthenticated: bool,
    /// `admin_tools`: list MCP tools under the `proxy` name
    /// (`proxy/backends`, `proxy/errors`) that show the backends' health
    /// and recent failures, under the same `authorization:` as any tool.
    /// Default false.
    pub admin_tools: bool,
    /// `tracing`: export spans over OTLP. `None` (the default): trace
    /// context is still read and propagated, and spans are only logged.
    pub tracing: Option<TracingSettings>,
}

/// `proxy.tracing`: where spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// `otlp_endpoint`: the OTLP/HTTP collector's base URL (`http://` or
    /// `https://`, like `OTEL_EXPORTER_OTLP_ENDPOINT`); spans are POSTed,
    /// protobuf-encoded, to its `/v1/traces`. Required.
    pub otlp_endpoint: String,
    /// `service_name`: the `service.name` of the exported spans. Default:
    /// `proxy.name`.
    pub service_name: String,
}

/// One entry of `backends:`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// `name`: unique, non-empty, must not contain the separator.
    pub name: String,
    /// The replicas of the server, one per endpoint (`url`, or each of
    /// `endpoints`, for `transport: http`; the `command` for `stdio`).
    /// Never empty; a single-endpoint backend is a pool of one.
    pub endpoints: Vec<TransportConfig>,
    /// `load_balancing`: how calls are spread over `endpoints`.
    pub load_balancing: LoadBalancing,
    /// `outlier_detection`: take an endpoint that keeps failing out of the
    /// pool for a while. Default: off.
    pub outlier_detection: Option<OutlierPolicy>,
    /// `init_timeout`: how long connecting plus the `initialize` handshake may take. Default 10s.
    pub init_timeout: Duration,
    /// `reconnect`: backoff between attempts to (re)start or reconnect the backend.
    pub reconnect: ReconnectPolicy,
    /// `wait_for_ready`: how long a call waits for a start or restart in
    /// progress (the first attempt after a healthy connection ended) before
    /// failing as unavailable. Default 2s; `0s` fails at once.
    pub wait_for_ready: Duration,
    /// `timeout`: bounds on each attempt and on the whole call. Default: no
    /// `per_try`; `overall` is `proxy.default_call_timeout`.
    pub timeout: TimeoutPolicy,
    /// `retry`: repeat failed calls. Default: off.
    pub retry: Option<RetryPolicy>,
    /// `safe_to_repeat.tools`: tool name patterns (`get_*`) that may be
    /// repeated even though the backend does not mark them read-only or
    /// idempotent.
    pub safe_to_repeat: Vec<String>,
    /// `concurrency.max`: calls in flight to the backend at once; more wait
    /// for a slot (within `timeout.overall`). Default: no limit.
    pub max_concurrency: Option<usize>,
    /// `rate_limit`: calls sent to the backend per period; more are refused
    /// at once. Default: no limit.
    pub rate_limit: Option<RateLimit>,
    /// `circuit_breaker`: stop sending to a failing backend for a while.
    /// Default: off.
    pub circuit_breaker: Option<BreakerPolicy>,
    /// `hedging`: race extra attempts of slow calls that are safe to repeat.
    /// Default: off.
    pub hedging: Option<HedgePolicy>,
    /// `canary_of`, `mirror_of` or `failover_for`: whose traffic this
    /// backend serves. Default: its own ([`Role::Primary`]).
    pub role: Role,
    /// How calls to this backend are filtered and rewritten before they
    /// are sent (a primary's keys; a canary, mirror or failover receives
    /// the calls as its primary shaped them).
    pub shaping: Shaping,
    /// `capabilities`: what the backend offers, as the MCP capabilities
    /// object its `initialize` would answer, advertised to clients until it
    /// has connected once (then its own answer counts, and is kept while it
    /// is down). Default: `tools` only.
    pub capabilities: Option<serde_json::Map<String, serde_json::Value>>,
    /// `forward_auth`: send the client's own `Authorization` header on to
    /// this (HTTP) backend. Contrary to the MCP specification's advice
    /// (token passthrough); off unless set, and warned about at start.
    pub forward_auth: bool,
}

/// Whose calls a backend serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Role {
    /// Its own: its names are listed and callable.
    #[default]
    Primary,
    /// `canary_of: NAME` with `weight` (percent of the primary's calls,
    /// 0 to 100) and `sticky` (one choice per client session).
    Canary {
        /// The primary's name.
        of: String,
        /// Percent of the primary's calls, drawn per call (or per session).
        weight: f64,
        /// Draw once per client session instead of once per call.
        sticky: bool,
    },
    /// `mirror_of: NAME` with `mirror_percent` (0 to 100),
    /// `mirror_max_in_flight` (copies in flight at once; more are dropped)
    /// and `mirror_unsafe` (copy calls that are not safe to repeat too).
    Mirror {
        /// The primary's name.
        of: String,
        /// Percent of the primary's calls copied here.
        percent: f64,
        /// Copies in flight at once; a copy beyond it is dropped (counted).
        max_in_flight: usize,
        /// Copy calls that are not safe to repeat too (tools with side
        /// effects): off by default, so a shadow never repeats a write.
        unsafe_calls: bool,
    },
    /// `failover_for: NAME` with `priority` (lower first; config order breaks ties).
    Failover {
        /// The primary's name.
        of: String,
        /// Lower is tried first.
        priority: u32,
    },
}

/// Which [`Role`] a backend has, without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    /// Serves its own traffic.
    Primary,
    /// `canary_of`.
    Canary,
    /// `mirror_of`.
    Mirror,
    /// `failover_for`.
    Failover,
}

impl RoleKind {
    /// The config key that gives this role (`None` for a primary).
    pub fn key(self) -> Option<&'static str> {
        match self {
            RoleKind::Primary => None,
            RoleKind::Canary => Some("canary_of"),
            RoleKind::Mirror => Some("mirror_of"),
            RoleKind::Failover => Some("failover_for"),
        }
    }
}

impl Role {
    /// Which role this is.
    pub fn kind(&self) -> RoleKind {
        match self {
            Role::Primary => RoleKind::Primary,
            Role::Canary { .. } => RoleKind::Canary,
            Role::Mirror { .. } => RoleKind::Mirror,
            Role::Failover { .. } => RoleKind::Failover,
        }
    }

    /// The primary whose calls this backend serves, unless it is one.
    pub fn primary(&self) -> Option<&str> {
        match self {
            Role::Primary => None,
            Role::Canary { of, .. } | Role::Mirror { of, .. } | Role::Failover { of, .. } => {
                Some(of)
            }
        }
    }
}

/// The shaping keys of a backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shaping {
    /// `expose`: only names matching these patterns are listed and callable
    /// (per kind; a kind not given is not narrowed).
    pub expose: NamePatterns,
    /// `hide`: names matching these are neither listed nor callable.
    pub hide: NamePatterns,
    /// `aliases`: a tool listed and called as `from` is the backend's `to`.
    pub aliases: Vec<Alias>,
    /// `default_arguments`: merged into every tool call's arguments, never
    /// over an argument the client gave.
    pub default_arguments: serde_json::Map<String, serde_json::Value>,
    /// `inject_arguments`: per tool pattern, arguments added to its calls.
    pub inject_arguments: Vec<Injection>,
    /// `max_argument_size`: a tool call whose arguments take more bytes (as
    /// JSON) is refused with invalid params. Default: no limit.
    pub max_argument_size: Option<usize>,
    /// `cache`: answers kept for repeated identical reads. Default: off.
    pub cache: Option<CachePolicy>,
    /// `coalesce`: identical read calls in flight at once share one backend call.
    pub coalesce: bool,
}

/// Name patterns per kind (`*` matches any run of characters); `None`
/// when the kind was not given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamePatterns {
    /// Tool names (the backend's own).
    pub tools: Option<Vec<String>>,
    /// Resource URIs.
    pub resources: Option<Vec<String>>,
    /// Prompt names.
    pub prompts: Option<Vec<String>>,
}

/// `aliases: [{ from, to }]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    /// The name clients see and call.
    pub from: String,
    /// The backend's own tool name.
    pub to: String,
}

/// One `inject_arguments` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// Tool name pattern (the backend's own name).
    pub tool: String,
    /// The arguments to add.
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// Replace an argument the client gave (default false: only fill in).
    pub overwrite: bool,
}

/// `cache: { tools: 30s, resources: 1m, max_entries: 1000 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachePolicy {
    /// How long a read-only tool's successful result is reused.
    pub tools: Option<Duration>,
    /// How long a `resources/read` result is reused.
    pub resources: Option<Duration>,
    /// The most answers kept (the oldest goes first). Default 1000.
    pub max_entries: usize,
}

/// `load_balancing: round_robin | least_requests | random`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadBalancing {
    /// Each endpoint in turn.
    RoundRobin,
    /// The less busy of two endpoints drawn at random (power of two
    /// choices). The default.
    #[default]
    LeastRequests,
    /// An endpoint drawn at random.
    Random,
}

/// `outlier_detection:` (Envoy's consecutive-failure ejection).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierPolicy {
    /// `consecutive_failures`: failures in a row that eject an endpoint. Default 5.
    pub consecutive_failures: u32,
    /// `base_ejection`: the first ejection's length; the n-th lasts n times
    /// this. Default 30s.
    pub base_ejection: Duration,
    /// `max_ejection`: the cap on one ejection. Default 5m; at least `base_ejection`.
    pub max_ejection: Duration,
    /// `max_ejection_percent`: the most of the pool ejected at once, 0 to
    /// 100; one endpoint may always be ejected. Default 10.
    pub max_ejection_percent: u32,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

/// `hedging: { delay: 50ms, max_hedges: 1 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgePolicy {
    /// `delay`: start another attempt when the running ones have not
    /// answered for this long.
    pub delay: Duration,
    /// `max_hedges`: extra attempts per call, 1 to 5. Default 1.
    pub max_hedges: u32,
}

/// `circuit_breaker:`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// `window`: how far back outcomes are counted (rolling). Default 10s.
    pub window: Duration,
    /// `min_calls`: no verdict on fewer calls in the window. Default 20.
    pub min_calls: u32,
    /// `failure_rate`: opens when this share of the window's calls failed. Default 0.5.
    pub failure_rate: f64,
    /// `slow_call`: also opens when `rate` of the calls took at least `threshold`.
    pub slow_call: Option<SlowCall>,
    /// `open_for`: how long it refuses calls once open. Default 5s.
    pub open_for: Duration,
    /// `half_open_probes`: calls let through after `open_for`; all must
    /// succeed to close it, one failure opens it again. Default 3.
    pub half_open_probes: u32,
}

/// `circuit_breaker.slow_call: { threshold: 1s, rate: 0.8 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCall {
    /// `threshold`: an attempt this long or longer is slow.
    pub threshold: Duration,
    /// `rate`: the share of slow calls that opens the breaker.
    pub rate: f64,
}

/// `rate_limit: { requests: 100, per: 1s }`: a bucket of `requests` calls,
/// refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// `requests`: at least 1.
    pub requests: u32,
    /// `per`: greater than zero.
    pub per: Duration,
}

impl BackendConfig {
    /// A backend with every optional key at its default (as if the file
    /// named only `name` and the transport).
    pub fn new(name: impl Into<String>, transport: TransportConfig) -> Self {
        Self {
            name: name.into(),
            endpoints: vec![transport],
            load_balancing: LoadBalancing::default(),
            outlier_detection: None,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            forward_auth: false,
            reconnect: ReconnectPolicy::default(),
            wait_for_ready: DEFAULT_WAIT_FOR_READY,
            timeout: TimeoutPolicy {
                per_try: None,
                overall: Some(DEFAULT_CALL_TIMEOUT),
            },
            retry: None,
            safe_to_repeat: Vec::new(),
            max_concurrency: None,
            rate_limit: None,
            circuit_breaker: None,
            hedging: None,
            role: Role::Primary,
            shaping: Shaping::default(),
            capabilities: None,
        }
    }

    /// `stdio` or `http`: the transport all its endpoints share.
    pub fn transport_kind(&self) -> &'static str {
        self.endpoints[0].kind()
    }
}

/// Default `init_timeout` of a backend.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `proxy.default_call_timeout`: what MCP SDKs wait for a request.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Default `wait_for_ready` of a backend.
pub const DEFAULT_WAIT_FOR_READY: Duration = Duration::from_secs(2);

/// `timeout: { per_try: 500ms, overall: 2s }`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeoutPolicy {
    /// `per_try`: one attempt may take this long; it is then cancelled at the backend.
    pub per_try: Option<Duration>,
    /// `overall`: the call, retries and backoff included, may take this long.
    /// A loaded config always has one (`proxy.default_call_timeout` when the
    /// backend sets none); `None`, no limit, is left to code that builds a
    /// policy itself.
    pub overall: Option<Duration>,
}

/// `retry:`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// `max_retries`: attempts after the first. Default 2, at most 10.
    pub max_retries: u32,
    /// `backoff`: the pause before each retry.
    pub backoff: RetryBackoff,
    /// `budget`: the share of live traffic retries may add.
    pub budget: RetryBudget,
    /// `on`: which failures are retried.
    pub on: RetryOn,
}

/// `retry.backoff: { initial: 20ms, max: 500ms, jitter: full }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBackoff {
    /// `initial`: the pause before the first retry (doubling after). Default 20ms.
    pub initial: Duration,
    /// `max`: the cap. Default 500ms; at least `initial`.
    pub max: Duration,
    /// `jitter`: `full` (a uniform draw from 0 to the pause; default) or `none`.
    pub full_jitter: bool,
}

/// `retry.budget: { percent: 20, min_per_second: 5 }`: retries may add at
/// most `percent` % of the calls made over the last 10 s, but never fewer
/// than `min_per_second` per second of that window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// `percent`: 0 to 100. Default 20.
    pub percent: f64,
    /// `min_per_second`: ≥ 0. Default 5.
    pub min_per_second: f64,
}

/// `retry.on: [transport, timeout, unavailable, -32603]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOn {
    /// `transport`: the connection failed or was lost, or the answer was not valid MCP.
    pub transport: bool,
    /// `timeout`: an attempt ran out of `timeout.per_try`.
    pub timeout: bool,
    /// `unavailable`: the backend was not connected (the call was never sent).
    pub unavailable: bool,
    /// JSON-RPC error codes from the backend.
    pub codes: Vec<i64>,
}

/// `transport: stdio` or `transport: http`, with the keys each allows.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        /// `command`: program to run (looked up on PATH).
        command: String,
        /// `args`: its arguments.
        args: Vec<String>,
        /// `env`: extra environment variables (values `${VAR}`-expanded).
        env: BTreeMap<String, String>,
        /// `cwd`: working directory; relative paths are taken from the config file's folder.
        cwd: Option<PathBuf>,
        /// `inherit_env`: the child gets the proxy's whole environment.
        /// Default false: only `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`,
        /// `LC_*`, `TZ`, `TMPDIR`, `SHELL`, `TERM` and the variables `env` names.
        inherit_env: bool,
    },
    /// A streamable-HTTP MCP server (one endpoint of it).
    Http {
        /// `url`: the MCP endpoint, `http://` or `https://`.
        url: String,
        /// `headers`: sent with every request (values `${VAR}`-expanded).
        headers: BTreeMap<String, String>,
    },
}

impl TransportConfig {
    /// `stdio` or `http`, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::Http { .. } => "http",
        }
    }

    /// How logs and `/admin/backends` name this endpoint: the command, or
    /// the URL without credentials or query (they may hold secrets).
    pub fn label(&self) -> String {
        match self {
            TransportConfig::Stdio { command, .. } => format!("stdio:{command}"),
            TransportConfig::Http { url, .. } => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    let _ = parsed.set_username("");
                    let _ = parsed.set_password(None);
                    parsed.set_query(None);
                    parsed.set_fragment(None);
                    parsed.to_string()
                }
                Err(_) => "http:(invalid URL)".to_owned(),
            },
        }
    }
}

/// `reconnect: { initial: 250ms, max: 30s }`: capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// `initial`: the first delay. Default 250ms.
    pub initial: Duration,
    /// `max`: the cap. Default 30s. Must be ≥ `initial`.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            name: "mcp-proxy".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            separator: "/".into(),
            shutdown_timeout: Duration::from_secs(10),
            max_body_size: 4 * 1024 * 1024,
            allowed_origins: Vec::new(),
            session_idle_timeout: Duration::from_secs(30 * 60),
            default_call_timeout: DEFAULT_CALL_TIMEOUT,
            max_sessions: 10_000,
            max_in_flight: 1024,
            max_in_flight_per_session: 128,
            progress_queue: 64,
            seed: 0,
            allow_unauthenticated: false,
            admin_tools: false,
            tracing: None,
        }
    }
}

/// `auth:`: how callers prove who they are, and what the proxy tells
/// clients about it (RFC 9728 protected-resource metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// `bearer:` or `jwt:` (exactly one).
    pub method: AuthMethod,
    /// `resource`: the public URL of the MCP endpoint as clients reach it
    /// (e.g. `https://mcp.example.com/mcp`), the `resource` of the metadata
    /// and the default JWT audience. Required; never derived from `listen`.
    pub resource: String,
    /// `authorization_servers`: issuer URLs clients get tokens from
    /// (metadata `authorization_servers`). Default empty.
    pub authorization_servers: Vec<String>,
    /// `scopes_supported`: listed in the metadata. Default: the roles named
    /// in `authorization.roles`.
    pub scopes_supported: Vec<String>,
    /// `rate_limit`: calls per caller (by subject) per period; more are
    /// refused with `-32014` at once. Default: none.
    pub rate_limit: Option<RateLimit>,
}

/// The way callers authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    /// `bearer: { tokens: [...] }`: static tokens.
    Bearer(Vec<BearerToken>),
    /// `jwt: { ... }`: signed JWTs.
    Jwt(Box<JwtAuth>),
}

/// One entry of `bearer.tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct BearerToken {
    /// `token` (`${VAR}`) or `token_file` (a file holding it; surrounding
    /// whitespace trimmed). At least 16 bytes.
    pub token: String,
    /// `subject`: who holds it, for the audit log and rate limits. Default
    /// `token-N` (its 1-based position).
    pub subject: String,
    /// `scopes`: the roles it has (see `authorization.roles`). Default empty.
    pub scopes: Vec<String>,
}

/// `jwt:`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuth {
    /// `issuer`: the `iss` every token must carry. Default: not checked.
    pub issuer: Option<String>,
    /// `audiences`: one of them must be in `aud` (RFC 8707). Default:
    /// `[auth.resource]`.
    pub audiences: Vec<String>,
    /// `algorithms`: the allow-list, e.g. `[RS256, ES256]`. Default
    /// `[RS256, ES256]`. `none` is never allowed; `HS*` only with `secret`.
    pub algorithms: Vec<String>,
    /// `leeway`: clock skew allowed on `exp` and `nbf`. Default 60s.
    pub leeway: Duration,
    /// `jwks_url` and/or `keys`/`secret`: where the verification keys come from.
    pub keys: JwtKeys,
    /// `roles_claim`: the claim holding the caller's roles: an array of
    /// strings or one space-separated string (as `scope` is). Default `scope`.
    pub roles_claim: String,
    /// `subject_claim`: the claim naming the caller. Default `sub`.
    pub subject_claim: String,
}

/// The keys JWTs are verified with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JwtKeys {
    /// `jwks_url`: a JWK Set, fetched at start, cached for `jwks_ttl`,
    /// refetched early on an unknown `kid` (at most once per
    /// `jwks_min_refetch`); the last good set is kept while it is unreachable.
    pub jwks_url: Option<String>,
    /// `jwks_ttl`: default 5m.
    pub jwks_ttl: Duration,
    /// `jwks_min_refetch`: default 10s.
    pub jwks_min_refetch: Duration,
    /// `keys`: static keys, each `{ pem_file: path }`, `{ pem: "..." }` or
    /// `{ jwk: { ... } }` (public keys; the PEM's text is kept here).
    pub static_keys: Vec<StaticKey>,
    /// `secret`: an HMAC secret (`${VAR}` or `secret_file`), for `HS*` only.
    pub secret: Option<String>,
}

/// One static verification key.
#[derive(Debug, Clone, PartialEq)]
pub enum StaticKey {
    /// A public key in PEM (RSA, EC or Ed25519), with the `kid` it answers
    /// to, if any (`kid:` next to `pem`/`pem_file`).
    Pem {
        /// The PEM text.
        pem: String,
        /// The `kid` it answers to; without one, it is tried for tokens
        /// whose header names no `kid`.
        kid: Option<String>,
    },
    /// A public JWK, as JSON.
    Jwk(serde_json::Value),
}

/// `authorization:`: roles → rules over tools, resources and prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// `default`: what applies when no rule of the caller's roles matches.
    /// Default `deny`.
    pub default: Access,
    /// `roles`: each role's rules, in file order. A deny that matches wins
    /// over an allow that matches.
    pub roles: BTreeMap<String, Vec<AccessRule>>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
}

/// One rule: `- allow: { backend: search, tools: ["find_*"] }` or `- deny: {...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRule {
    /// Which key it was written under.
    pub access: Access,
    /// `backend`: a name pattern (`*` any run). Default `*`.
    pub backend: String,
    /// `tools`, `resources` (URI patterns), `prompts`: name patterns as the
    /// client sees the names, without the `backend/` prefix. A rule that
    /// names none of the three covers all three; one that names some covers
    /// only those kinds.
    pub tools: Option<Vec<String>>,
    /// See `tools`.
    pub resources: Option<Vec<String>>,
    /// See `tools`.
    pub prompts: Option<Vec<String>>,
}

/// `audit:`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// `to`: `stdout` or a file path (appended to). Default `stdout`.
    pub to: AuditTarget,
    /// `include_arguments`: write the raw arguments, not only their
    /// SHA-256 digest. Default false.
    pub include_arguments: bool,
    /// `queue`: lines waiting for the writer; more are dropped (and
    /// counted) rather than blocking a call. Default 10,000.
    pub queue: usize,
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditTarget {
    /// `stdout`.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// `admin:`: `/admin/*` (backends, metrics). `/livez` and `/readyz` stay on
/// the main listener, open.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminSettings {
    /// `listen`: serve `/admin/*` on a listener of its own (and not on the
    /// main one). Default: on the main listener.
    pub listen: Option<SocketAddr>,
    /// `token` (`${VAR}`) or `token_file`: `/admin/*` needs
    /// `Authorization: Bearer <token>`. With `auth:` and neither `listen`
    /// nor `token`, `/admin/*` on the main listener answers 403.
    pub token: Option<String>,
}

/// Secret values of a config, to be redacted wherever text is printed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Secrets(pub Vec<String>);

impl Secrets {
    /// Adds `values` (empty ones and ones already known are skipped).
    pub fn add(&mut self, values: impl IntoIterator<Item = String>) {
        for value in values {
            if !value.is_empty() && !self.0.contains(&value) {
                self.0.push(value);
            }
        }
    }

    /// `text` with every secret value (of 4 bytes or more) replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let mut values: Vec<&String> = self.0.iter().filter(|v| v.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            out = out.replace(value.as_str(), "[redacted]");
        }
        out
    }
}
