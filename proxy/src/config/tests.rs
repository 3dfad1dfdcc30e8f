//! Tests of the whole loader (`load_str` and `load`): every rule's message,
//! line and path, YAML and TOML agreeing, the example configs, and
//! robustness against arbitrary input. Each stage's own tests sit at the
//! foot of its module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const BASE: &str = "/etc/mcp";

fn env(name: &str) -> Option<String> {
    match name {
        "LOG_LEVEL" => Some("debug".into()),
        "SEARCH_TOKEN" => Some("s3cret".into()),
        _ => None,
    }
}

fn yaml(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Format::Yaml, "proxy.yaml", Path::new(BASE), &env)
}

fn toml(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Format::Toml, "proxy.toml", Path::new(BASE), &env)
}

/// The error as the user sees it.
fn yaml_err(text: &str) -> String {
    yaml(text).expect_err("should be rejected").to_string()
}

fn toml_err(text: &str) -> String {
    toml(text).expect_err("should be rejected").to_string()
}

const FULL_YAML: &str = r#"proxy:
  name: my-proxy
  listen: 0.0.0.0:9090
  separator: "__"
  shutdown_timeout: 5s
  max_body_size: 1MiB
  allowed_origins: ["https://app.example.com"]
  session_idle_timeout: 1h
  default_call_timeout: 90s
  max_sessions: 10
  max_in_flight: 20
  max_in_flight_per_session: 5
  progress_queue: 8
  seed: 7
  allow_unauthenticated: true
  tracing:
    otlp_endpoint: http://127.0.0.1:4318
backends:
  - name: everything
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-everything", "stdio"]
    env: { LOG_LEVEL: "${LOG_LEVEL}" }
    cwd: ./servers
    init_timeout: 1.5s
    reconnect: { initial: 100ms, max: 2m }
    wait_for_ready: 500ms
  - name: search
    transport: http
    endpoints: [http://127.0.0.1:9001/mcp, http://127.0.0.1:9002/mcp]
    load_balancing: round_robin
    headers: { Authorization: "Bearer ${SEARCH_TOKEN}" }
    outlier_detection:
      consecutive_failures: 3
      base_ejection: 10s
      max_ejection: 2m
      max_ejection_percent: 50
    timeout: { per_try: 500ms, overall: 2s }
    retry:
      max_retries: 3
      backoff: { initial: 10ms, max: 200ms, jitter: none }
      budget: { percent: 10, min_per_second: 1 }
      on: [transport, timeout, -32603]
    safe_to_repeat: { tools: ["lookup", "get_*"] }
    concurrency: { max: 64 }
    rate_limit: { requests: 100, per: 1s }
    circuit_breaker:
      window: 10s
      min_calls: 20
      failure_rate: 0.5
      slow_call: { threshold: 1s, rate: 0.8 }
      open_for: 5s
      half_open_probes: 3
    hedging: { delay: 50ms, max_hedges: 1 }
"#;

const FULL_TOML: &str = r#"[proxy]
name = "my-proxy"
listen = "0.0.0.0:9090"
separator = "__"
shutdown_timeout = "5s"
max_body_size = 1048576
allowed_origins = ["https://app.example.com"]
session_idle_timeout = "1h"
default_call_timeout = "90s"
max_sessions = 10
max_in_flight = 20
max_in_flight_per_session = 5
progress_queue = 8
seed = 7
allow_unauthenticated = true

[proxy.tracing]
otlp_endpoint = "http://127.0.0.1:4318"

[[backends]]
name = "everything"
transport = "stdio"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-everything", "stdio"]
env = { LOG_LEVEL = "${LOG_LEVEL}" }
cwd = "./servers"
init_timeout = "1.5s"
reconnect.initial = "100ms"
reconnect.max = "2m"
wait_for_ready = "500ms"

[[backends]]
name = "search"
transport = "http"
endpoints = ["http://127.0.0.1:9001/mcp", "http://127.0.0.1:9002/mcp"]
load_balancing = "round_robin"
outlier_detection = { consecutive_failures = 3, base_ejection = "10s", max_ejection = "2m", max_ejection_percent = 50 }
timeout = { per_try = "500ms", overall = "2s" }
retry.max_retries = 3
retry.on = ["transport", "timeout", -32603]
retry.backoff = { initial = "10ms", max = "200ms", jitter = "none" }
retry.budget = { percent = 10, min_per_second = 1 }
safe_to_repeat = { tools = ["lookup", "get_*"] }
concurrency = { max = 64 }
rate_limit = { requests = 100, per = "1s" }
hedging = { delay = "50ms", max_hedges = 1 }
circuit_breaker = { window = "10s", min_calls = 20, failure_rate = 0.5, open_for = "5s", half_open_probes = 3, slow_call = { threshold = "1s", rate = 0.8 } }

[backends.headers]
Authorization = "Bearer ${SEARCH_TOKEN}"
"#;

fn full_config() -> Config {
    Config {
        proxy: ProxySettings {
            name: "my-proxy".into(),
            listen: "0.0.0.0:9090".parse().unwrap(),
            separator: "__".into(),
            shutdown_timeout: Duration::from_secs(5),
            max_body_size: 1 << 20,
            allowed_origins: vec!["https://app.example.com".into()],
            session_idle_timeout: Duration::from_secs(3600),
            default_call_timeout: Duration::from_secs(90),
            max_sessions: 10,
            max_in_flight: 20,
            max_in_flight_per_session: 5,
            progress_queue: 8,
            seed: 7,
            allow_unauthenticated: true,
            admin_tools: false,
            tracing: Some(TracingSettings {
                otlp_endpoint: "http://127.0.0.1:4318".into(),
                // proxy.name, when not given.
                service_name: "my-proxy".into(),
            }),
        },
        backends: vec![
            BackendConfig {
                name: "everything".into(),
                endpoints: vec![TransportConfig::Stdio {
                    command: "npx".into(),
                    args: vec![
                        "-y".into(),
                        "@modelcontextprotocol/server-everything".into(),
                        "stdio".into(),
                    ],
                    env: BTreeMap::from([("LOG_LEVEL".into(), "debug".into())]),
                    cwd: Some(PathBuf::from(BASE).join("./servers")),
                    inherit_env: false,
                }],
                load_balancing: LoadBalancing::LeastRequests,
                outlier_detection: None,
                init_timeout: Duration::from_millis(1500),
                reconnect: ReconnectPolicy {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(120),
                },
                wait_for_ready: Duration::from_millis(500),
                // No `timeout`: `overall` is proxy.default_call_timeout.
                timeout: TimeoutPolicy {
                    per_try: None,
                    overall: Some(Duration::from_secs(90)),
                },
                retry: None,
                safe_to_repeat: Vec::new(),
                max_concurrency: None,
                rate_limit: None,
                circuit_breaker: None,
                hedging: None,
                role: Role::Primary,
                shaping: Shaping::default(),
                forward_auth: false,
                capabilities: None,
            },
            BackendConfig {
                name: "search".into(),
                endpoints: [9001, 9002]
                    .map(|port| TransportConfig::Http {
                        url: format!("http://127.0.0.1:{port}/mcp"),
                        headers: BTreeMap::from([("Authorization".into(), "Bearer s3cret".into())]),
                    })
                    .to_vec(),
                load_balancing: LoadBalancing::RoundRobin,
                outlier_detection: Some(OutlierPolicy {
                    consecutive_failures: 3,
                    base_ejection: Duration::from_secs(10),
                    max_ejection: Duration::from_secs(120),
                    max_ejection_percent: 50,
                }),
                init_timeout: Duration::from_secs(10),
                reconnect: ReconnectPolicy::default(),
                wait_for_ready: DEFAULT_WAIT_FOR_READY,
                timeout: TimeoutPolicy {
                    per_try: Some(Duration::from_millis(500)),
                    overall: Some(Duration::from_secs(2)),
                },
                retry: Some(RetryPolicy {
                    max_retries: 3,
                    backoff: RetryBackoff {
                        initial: Duration::from_millis(10),
                        max: Duration::from_millis(200),
                        full_jitter: false,
                    },
                    budget: RetryBudget {
                        percent: 10.0,
                        min_per_second: 1.0,
                    },
                    on: RetryOn {
                        transport: true,
                        timeout: true,
                        unavailable: false,
                        codes: vec![-32603],
                    },
                }),
                safe_to_repeat: vec!["lookup".into(), "get_*".into()],
                max_concurrency: Some(64),
                rate_limit: Some(RateLimit {
                    requests: 100,
                    per: Duration::from_secs(1),
                }),
                circuit_breaker: Some(BreakerPolicy {
                    window: Duration::from_secs(10),
                    min_calls: 20,
                    failure_rate: 0.5,
                    slow_call: Some(SlowCall {
                        threshold: Duration::from_secs(1),
                        rate: 0.8,
                    }),
                    open_for: Duration::from_secs(5),
                    half_open_probes: 3,
                }),
                hedging: Some(HedgePolicy {
                    delay: Duration::from_millis(50),
                    max_hedges: 1,
                }),
                role: Role::Primary,
                shaping: Shaping::default(),
                forward_auth: false,
                capabilities: None,
            },
        ],
        secrets: Secrets(vec!["debug".into(), "s3cret".into()]),
        ..Config::default()
    }
}

// ------------------------------------------------------------- success ----

#[test]
fn loads_every_key_from_yaml() {
    assert_eq!(yaml(FULL_YAML).unwrap(), full_config());
}

#[test]
fn yaml_and_toml_of_the_same_config_are_equal() {
    assert_eq!(toml(FULL_TOML).unwrap(), yaml(FULL_YAML).unwrap());
}

#[test]
fn defaults_fill_everything_optional() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n";
    let config = yaml(text).unwrap();
    assert_eq!(config.proxy, ProxySettings::default());
    assert_eq!(
        config.proxy.listen,
        SocketAddr::from(([127, 0, 0, 1], 8080))
    );
    let backend = &config.backends[0];
    assert_eq!(backend.init_timeout, Duration::from_secs(10));
    assert_eq!(backend.reconnect, ReconnectPolicy::default());
    assert_eq!(
        backend.endpoints,
        [TransportConfig::Stdio {
            command: "srv".into(),
            args: vec![],
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        }]
    );
    assert_eq!(backend.load_balancing, LoadBalancing::LeastRequests);
    assert_eq!(backend.outlier_detection, None);
    // No backend waits for an answer forever.
    assert_eq!(
        backend.timeout,
        TimeoutPolicy {
            per_try: None,
            overall: Some(Duration::from_secs(60)),
        }
    );
    // An empty `proxy:` or `reconnect:` is the same as leaving it out.
    let text =
        "proxy:\nbackends:\n  - name: a\n    transport: stdio\n    command: srv\n    reconnect:\n";
    assert_eq!(yaml(text).unwrap(), config);
}

#[test]
fn absolute_cwd_is_kept() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    cwd: /srv/a\n";
    let TransportConfig::Stdio { cwd, .. } = &yaml(text).unwrap().backends[0].endpoints[0] else {
        panic!("not stdio")
    };
    assert_eq!(cwd.as_deref(), Some(Path::new("/srv/a")));
}

#[test]
fn env_expansion_reaches_every_string() {
    let text = "proxy:\n  listen: \"127.0.0.1:${PORT}\"\nbackends:\n  - name: a\n    transport: stdio\n    command: ${CMD}\n    args: [\"$${HOME}\", \"${CMD}\"]\n";
    let env = |name: &str| match name {
        "PORT" => Some("7000".to_owned()),
        "CMD" => Some("srv".to_owned()),
        _ => None,
    };
    let config = load_str(text, Format::Yaml, "p.yaml", Path::new("."), &env).unwrap();
    assert_eq!(config.proxy.listen.port(), 7000);
    let TransportConfig::Stdio { command, args, .. } = &config.backends[0].endpoints[0] else {
        panic!("not stdio")
    };
    assert_eq!(command, "srv");
    assert_eq!(args, &["${HOME}", "srv"]);
}

// ---------------------------------------------------------- unknown keys ----

#[test]
fn unknown_key_at_top_level() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\nbakends: []\n";
    assert_eq!(yaml_err(text), "proxy.yaml:5: unknown key \"bakends\"");
}

#[test]
fn unknown_key_in_proxy() {
    let text = "proxy:\n  name: p\n  listen_addr: 127.0.0.1:1\nbackends: []\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:3: proxy: unknown key \"listen_addr\""
    );
}

#[test]
fn unknown_key_in_a_backend() {
    let text = r#"backends:
  - name: a
    transport: stdio
    command: srv
  - name: b
    transport: stdio

    comand: srv
"#;
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:8: backends[1]: unknown key \"comand\""
    );
}

#[test]
fn unknown_key_in_reconnect() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    reconnect:\n      initial: 1s\n      maximum: 5s\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:7: backends[0].reconnect: unknown key \"maximum\""
    );
}

// ------------------------------------------------------- backend rules ----

#[test]
fn missing_name() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n  - transport: stdio\n    command: srv\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[1]: missing key \"name\""
    );
}

#[test]
fn missing_backends() {
    assert_eq!(
        yaml_err("proxy:\n  name: p\n"),
        "proxy.yaml:1: missing key \"backends\""
    );
    assert_eq!(yaml_err(""), "proxy.yaml:1: missing key \"backends\"");
}

#[test]
fn empty_backends() {
    assert_eq!(
        yaml_err("proxy:\n  name: p\nbackends: []\n"),
        "proxy.yaml:3: backends: at least one backend is required"
    );
}

#[test]
fn bad_transport() {
    let text = "backends:\n  - name: a\n    transport: grpc\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:3: backends[0].transport: unknown transport \"grpc\"; expected \"stdio\" or \"http\""
    );
}

#[test]
fn missing_transport() {
    let text = "backends:\n  - name: a\n    command: srv\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: backends[0]: missing key \"transport\""
    );
}

#[test]
fn key_of_the_other_transport() {
    let text =
        "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    url: http://x/\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[0]: key \"url\" is not valid for transport \"stdio\""
    );
    let text = "backends:\n  - name: a\n    transport: http\n    url: http://x/\n    env: {}\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[0]: key \"env\" is not valid for transport \"http\""
    );
}

#[test]
fn each_transport_needs_its_target() {
    let text = "backends:\n  - name: a\n    transport: stdio\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: backends[0]: missing key \"command\" (required for transport \"stdio\")"
    );
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: \" \"\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:4: backends[0].command: must not be empty"
    );
    let text = "backends:\n  - name: a\n    transport: http\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: backends[0]: missing key \"url\" (or \"endpoints\"), required for transport \"http\""
    );
}

#[test]
fn duplicate_name() {
    let text = r#"backends:
  - name: files
    transport: stdio
    command: srv
  - name: search
    transport: http
    url: http://127.0.0.1:9001/mcp
  - name: search
    transport: http
    url: http://127.0.0.1:9002/mcp
"#;
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:8: backends[2].name: duplicate backend name \"search\" (first at line 5)"
    );
}

#[test]
fn bad_names() {
    let text = "backends:\n  - name: \"\"\n    transport: stdio\n    command: srv\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: backends[0].name: backend name must not be empty"
    );
    let text = "backends:\n  - name: my server\n    transport: stdio\n    command: srv\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: backends[0].name: backend name \"my server\" may only contain letters, digits, \"_\", \".\" and \"-\""
    );
    let text = "proxy:\n  separator: \".\"\nbackends:\n  - name: a.b\n    transport: stdio\n    command: srv\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:4: backends[0].name: backend name \"a.b\" contains the separator \".\" (proxy.separator)"
    );
}

#[test]
fn bad_url() {
    let text = "backends:\n  - name: a\n    transport: http\n    url: ftp://example.com/mcp\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:4: backends[0].url: URL must start with http:// or https://"
    );
    let text = "backends:\n  - name: a\n    transport: http\n    url: \"http://:80/mcp\"\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:4: backends[0].url: invalid URL: empty host"
    );
}

#[test]
fn bad_headers() {
    let text = "backends:\n  - name: a\n    transport: http\n    url: http://x/\n    headers:\n      \"X Key\": v\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:6: backends[0].headers: invalid header name \"X Key\": use letters, digits and !#$%&'*+-.^_`|~ only"
    );
    let text = "backends:\n  - name: a\n    transport: http\n    url: http://x/\n    headers:\n      X-Key: \"a\\r\\nb\"\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:6: backends[0].headers.X-Key: header value must not contain control characters (such as CR or LF)"
    );
}

#[test]
fn reconnect_rules() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    reconnect:\n      initial: 5s\n      max: 1s\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:7: backends[0].reconnect.max: max (1s) must not be less than initial (5s)"
    );
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    reconnect: { initial: 0s }\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[0].reconnect.initial: must be greater than zero"
    );
    let text =
        "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    init_timeout: 0ms\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[0].init_timeout: must be greater than zero"
    );
}

#[test]
fn timeout_and_retry_rules() {
    let base = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n";
    let cases = [
        (
            "    timeout: { per_try: 2s, overall: 1s }\n",
            "proxy.yaml:5: backends[0].timeout.per_try: per_try (2s) must not be longer than overall (1s)",
        ),
        (
            "    timeout: { per_try: 2m }\n",
            "proxy.yaml:5: backends[0].timeout.per_try: per_try (120s) must not be longer than overall (60s, proxy.default_call_timeout)",
        ),
        (
            "    timeout: { per_try: 0ms }\n",
            "proxy.yaml:5: backends[0].timeout.per_try: must be greater than zero",
        ),
        (
            "    retry: { max_retries: 0 }\n",
            "proxy.yaml:5: backends[0].retry.max_retries: must be 1 to 10",
        ),
        (
            "    retry: { on: [transport, timeout] }\n",
            "proxy.yaml:5: backends[0].retry.on[1]: retrying timeouts needs timeout.per_try (an overall timeout ends the call)",
        ),
        (
            "    timeout: { per_try: 1s, overall: 1s }\n    retry: {}\n",
            "proxy.yaml:5: backends[0].timeout.per_try: equals overall, which leaves no time to retry",
        ),
        (
            "    retry: { on: [transport, timeot] }\n",
            "proxy.yaml:5: backends[0].retry.on[1]: unknown failure \"timeot\"; expected transport, timeout, unavailable or a JSON-RPC error code",
        ),
        (
            "    retry: { on: [] }\n",
            "proxy.yaml:5: backends[0].retry.on: must name at least one failure",
        ),
        (
            "    retry: { backoff: { initial: 1s, max: 10ms } }\n",
            "proxy.yaml:5: backends[0].retry.backoff.max: max (10ms) must not be less than initial (1s)",
        ),
        (
            "    retry: { backoff: { jitter: half } }\n",
            "proxy.yaml:5: backends[0].retry.backoff.jitter: unknown jitter \"half\"; expected \"full\" or \"none\"",
        ),
        (
            "    retry: { budget: { percent: 120 } }\n",
            "proxy.yaml:5: backends[0].retry.budget.percent: must be 0 to 100",
        ),
        (
            "    retry: { retries: 3 }\n",
            "proxy.yaml:5: backends[0].retry: unknown key \"retries\"",
        ),
        (
            "    circuit_breaker: { failure_rate: 1.5 }\n",
            "proxy.yaml:5: backends[0].circuit_breaker.failure_rate: must be above 0 and at most 1",
        ),
        (
            "    circuit_breaker: { half_open_probes: 0 }\n",
            "proxy.yaml:5: backends[0].circuit_breaker.half_open_probes: must be at least 1",
        ),
        (
            "    hedging: { delay: 0ms }\n",
            "proxy.yaml:5: backends[0].hedging.delay: must be greater than zero",
        ),
        (
            "    timeout: { per_try: 50ms }\n    hedging: { delay: 50ms }\n",
            "proxy.yaml:6: backends[0].hedging.delay: must be shorter than timeout.per_try (50ms)",
        ),
        (
            "    hedging: { delay: 10ms, max_hedges: 6 }\n",
            "proxy.yaml:5: backends[0].hedging.max_hedges: must be 1 to 5",
        ),
        (
            "    concurrency: { max: 0 }\n",
            "proxy.yaml:5: backends[0].concurrency.max: must be 1 to 1000000",
        ),
        (
            "    rate_limit: { requests: 0, per: 1s }\n",
            "proxy.yaml:5: backends[0].rate_limit.requests: must be at least 1",
        ),
        (
            "    rate_limit: { requests: 5 }\n",
            "proxy.yaml:5: backends[0].rate_limit: missing key \"per\"",
        ),
        (
            "    safe_to_repeat: { tools: [\"\"] }\n",
            "proxy.yaml:5: backends[0].safe_to_repeat.tools[0]: must not be empty",
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(yaml_err(&format!("{base}{extra}")), expected, "{extra}");
    }
}

#[test]
fn retry_defaults() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    retry: {}\n";
    let retry = yaml(text).unwrap().backends[0].retry.clone().unwrap();
    assert_eq!(retry.max_retries, 2);
    assert_eq!(retry.backoff.initial, Duration::from_millis(20));
    assert_eq!(retry.backoff.max, Duration::from_millis(500));
    assert!(retry.backoff.full_jitter);
    assert_eq!(
        (retry.budget.percent, retry.budget.min_per_second),
        (20.0, 5.0)
    );
    assert!(retry.on.transport && retry.on.unavailable);
    // Without a per-try limit nothing can time out and be retried.
    assert!(!retry.on.timeout);
    assert!(retry.on.codes.is_empty());
    let with_per_try = text.replace("retry: {}", "retry: {}\n    timeout: { per_try: 1s }");
    assert!(
        yaml(&with_per_try).unwrap().backends[0]
            .retry
            .as_ref()
            .unwrap()
            .on
            .timeout
    );
}

// --------------------------------------------------- values and proxy ----

#[test]
fn unset_env_var() {
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    env:\n      LOG_LEVEL: \"${LOG_LVL}\"\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:6: backends[0].env.LOG_LEVEL: environment variable \"LOG_LVL\" is not set"
    );
}

#[test]
fn bad_durations() {
    let text = "proxy:\n  shutdown_timeout: 10\nbackends: []\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: proxy.shutdown_timeout: duration 10 has no unit: write e.g. \"10s\" (units: ms, s, m, h)"
    );
    let text = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    init_timeout: 10 seconds\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:5: backends[0].init_timeout: invalid duration \"10 seconds\": write a number and a unit, e.g. \"250ms\" or \"10s\" (units: ms, s, m, h)"
    );
}

#[test]
fn bad_listen() {
    let text = "proxy:\n  listen: localhost:8080\nbackends: []\n";
    assert_eq!(
        yaml_err(text),
        "proxy.yaml:2: proxy.listen: invalid listen address \"localhost:8080\": expected IP:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not resolved)"
    );
}

#[test]
fn tracing_rules() {
    let backend = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n";
    let err = |tracing: &str| yaml_err(&format!("proxy:\n  tracing:\n    {tracing}\n{backend}"));
    assert_eq!(
        err("service_name: gw"),
        "proxy.yaml:3: proxy.tracing: missing `otlp_endpoint` (the OTLP/HTTP collector, e.g. http://127.0.0.1:4318)"
    );
    assert_eq!(
        err("otlp_endpoint: grpc://c:4317"),
        "proxy.yaml:3: proxy.tracing.otlp_endpoint: must start with http:// or https:// (OTLP over HTTP)"
    );
    assert_eq!(
        err("otlp_endpoint: http://collector:4318/?x=1"),
        "proxy.yaml:3: proxy.tracing.otlp_endpoint: must have no query or fragment (`/v1/traces` is appended)"
    );
    assert_eq!(
        err("otlp_endpoint: http://me:secret@collector:4318"),
        "proxy.yaml:3: proxy.tracing.otlp_endpoint: must hold no credentials (it is printed and logged)"
    );
    assert_eq!(
        err("otlp_endpoint: not a url"),
        "proxy.yaml:3: proxy.tracing.otlp_endpoint: invalid URL: relative URL without a base"
    );
    assert_eq!(
        err("otlp_endpoint: http://c:4318\n    service_name: \"\""),
        "proxy.yaml:4: proxy.tracing.service_name: must not be empty"
    );
    assert_eq!(
        err("otlp_endpoint: http://c:4318\n    sample: 1"),
        "proxy.yaml:4: proxy.tracing: unknown key \"sample\""
    );
    let config = yaml(&format!(
        "proxy:\n  tracing:\n    otlp_endpoint: https://c.example/otel\n    service_name: gw\n{backend}"
    ))
    .unwrap();
    assert_eq!(
        config.proxy.tracing,
        Some(TracingSettings {
            otlp_endpoint: "https://c.example/otel".into(),
            service_name: "gw".into(),
        })
    );
    // Off unless configured.
    let config = yaml(&format!("proxy:\n  name: p\n{backend}")).unwrap();
    assert_eq!(config.proxy.tracing, None);
}

#[test]
fn proxy_rules() {
    let backend = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n";
    let err = |proxy: &str| yaml_err(&format!("proxy:\n  {proxy}\n{backend}"));
    assert_eq!(
        err("separator: \"\""),
        "proxy.yaml:2: proxy.separator: must not be empty"
    );
    assert_eq!(
        err("name: \"\""),
        "proxy.yaml:2: proxy.name: must not be empty"
    );
    assert_eq!(
        err("max_body_size: 0"),
        "proxy.yaml:2: proxy.max_body_size: must be greater than zero"
    );
    assert_eq!(
        err("session_idle_timeout: 0s"),
        "proxy.yaml:2: proxy.session_idle_timeout: must be greater than zero"
    );
    assert_eq!(
        err("default_call_timeout: 0s"),
        "proxy.yaml:2: proxy.default_call_timeout: must be greater than zero"
    );
    for bound in [
        "max_sessions",
        "max_in_flight",
        "max_in_flight_per_session",
        "progress_queue",
    ] {
        assert_eq!(
            err(&format!("{bound}: 0")),
            format!("proxy.yaml:2: proxy.{bound}: must be at least 1")
        );
    }
    assert_eq!(
        err("max_sessions: -1"),
        "proxy.yaml:2: proxy.max_sessions: expected usize, found an integer (-1)"
    );
    assert_eq!(
        err("max_body_size: 4MB"),
        "proxy.yaml:2: proxy.max_body_size: invalid size \"4MB\": write a number of bytes, or an integer with KiB, MiB or GiB, e.g. \"4MiB\""
    );
    assert_eq!(
        err("allowed_origins: [\"https://a.example\", \"https://b.example/\"]"),
        "proxy.yaml:2: proxy.allowed_origins[1]: invalid origin \"https://b.example/\": an origin is scheme://host[:port] with no path or trailing slash; write \"https://b.example\""
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        yaml_err("proxy: []\nbackends: []\n"),
        "proxy.yaml:1: proxy: expected a table, found a list"
    );
    assert_eq!(
        yaml_err("backends:\n  - name: a\n    transport: stdio\n    command: srv\n    args: -y\n"),
        "proxy.yaml:5: backends[0].args: expected a list, found a string (\"-y\")"
    );
    assert_eq!(
        yaml_err(
            "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    args: [-p, 8080]\n"
        ),
        "proxy.yaml:5: backends[0].args[1]: expected a string, found an integer (8080) (quote it to make it a string)"
    );
}

#[test]
fn yaml_format_errors() {
    let err = yaml("backends:\n  - name: a\n    name: b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy.yaml:3: backends[0]: duplicate key \"name\" (first at line 2)"
    );
    let err = yaml("backends:\n  - &x { name: a }\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy.yaml:2: backends[0]: YAML anchors (&name) are not supported"
    );
    let err = yaml("backends: [\n").unwrap_err();
    assert!(
        err.to_string().starts_with("proxy.yaml:2: invalid YAML: "),
        "{err}"
    );
}

// ---------------------------------------------------------------- TOML ----

#[test]
fn toml_unknown_key_in_a_backend() {
    let text = "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"srv\"\n\n[[backends]]\nname = \"b\"\ntransport = \"stdio\"\ncomand = \"srv\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:9: backends[1]: unknown key \"comand\""
    );
}

#[test]
fn toml_unknown_key_in_proxy_and_reconnect() {
    let text = "[proxy]\nname = \"p\"\nport = 1\n";
    assert_eq!(toml_err(text), "proxy.toml:3: proxy: unknown key \"port\"");
    let text = "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"srv\"\n\n[backends.reconnect]\ninitial = \"1s\"\nmaximum = \"2s\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:8: backends[0].reconnect: unknown key \"maximum\""
    );
}

#[test]
fn toml_missing_name() {
    let text = "[proxy]\nname = \"p\"\n\n[[backends]]\ntransport = \"stdio\"\ncommand = \"srv\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:4: backends[0]: missing key \"name\""
    );
}

#[test]
fn toml_duplicate_name() {
    let text = "[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"srv\"\n\n[[backends]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"srv\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:7: backends[1].name: duplicate backend name \"a\" (first at line 2)"
    );
}

#[test]
fn toml_key_of_the_other_transport() {
    let text = "[[backends]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://x/\"\ncommand = \"srv\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:5: backends[0]: key \"command\" is not valid for transport \"http\""
    );
}

#[test]
fn toml_bad_duration_and_env() {
    let text = "[proxy]\nshutdown_timeout = 10\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:2: proxy.shutdown_timeout: duration 10 has no unit: write e.g. \"10s\" (units: ms, s, m, h)"
    );
    let text = "[[backends]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://x/\"\n\n[backends.headers]\nAuthorization = \"Bearer ${TOKEN}\"\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:7: backends[0].headers.Authorization: environment variable \"TOKEN\" is not set"
    );
}

#[test]
fn toml_wrong_types() {
    let text = "[proxy]\nlisten = 8080\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:2: proxy.listen: expected a string, found an integer (8080) (quote it to make it a string)"
    );
    let text = "[proxy]\nname = 1979-05-27\n";
    assert_eq!(
        toml_err(text),
        "proxy.toml:2: proxy.name: expected a string, found a date-time (1979-05-27)"
    );
}

#[test]
fn toml_format_errors() {
    let err = toml("[proxy]\nname = \"p\"\nname = \"q\"\n").unwrap_err();
    assert_eq!((err.file.as_str(), err.line), ("proxy.toml", Some(3)));
    assert!(err.message.starts_with("invalid TOML: "), "{err}");
}

// ------------------------------------------------------- API and files ----

#[test]
fn format_from_extension() {
    assert_eq!(
        Format::from_path(Path::new("a/proxy.yaml")),
        Ok(Format::Yaml)
    );
    assert_eq!(Format::from_path(Path::new("proxy.yml")), Ok(Format::Yaml));
    assert_eq!(Format::from_path(Path::new("proxy.TOML")), Ok(Format::Toml));
    let err = Format::from_path(Path::new("conf/proxy.json")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/proxy.json: unknown config file extension; expected .yaml, .yml or .toml"
    );
    assert!(Format::from_path(Path::new("proxy")).is_err());
}

#[test]
fn display_leaves_out_missing_parts() {
    let mut err = ConfigError {
        file: "p.yaml".into(),
        line: Some(7),
        path: "backends[1]".into(),
        message: "unknown key \"comand\"".into(),
    };
    assert_eq!(
        err.to_string(),
        "p.yaml:7: backends[1]: unknown key \"comand\""
    );
    err.path.clear();
    assert_eq!(err.to_string(), "p.yaml:7: unknown key \"comand\"");
    err.line = None;
    assert_eq!(err.to_string(), "p.yaml: unknown key \"comand\"");
}

#[test]
fn load_reads_the_file_and_anchors_cwd_to_its_folder() {
    let dir = std::env::temp_dir().join(format!("mcp-proxy-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.yaml");
    std::fs::write(
        &file,
        "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    cwd: sub\n",
    )
    .unwrap();
    let config = load(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    let TransportConfig::Stdio { cwd, .. } = &config.unwrap().backends[0].endpoints[0] else {
        panic!("not stdio")
    };
    assert_eq!(cwd.as_deref(), Some(dir.join("sub").as_path()));

    let missing = Path::new("/nonexistent/proxy.toml");
    let err = load(missing).unwrap_err();
    assert_eq!(
        (err.file.as_str(), err.line),
        ("/nonexistent/proxy.toml", None)
    );
    assert!(
        err.message.starts_with("cannot read the config file: "),
        "{err}"
    );
}

/// Every config in `proxy/examples/` loads (any `${VAR}` gets a placeholder).
#[test]
fn every_example_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // Long enough for a bearer token (16 bytes at least), one per variable.
    let placeholder = |name: &str| Some(format!("placeholder-value-of-{name}"));
    let mut loaded = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(format) = Format::from_path(&path) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let config =
            load_str(&text, format, &name, &dir, &placeholder).unwrap_or_else(|e| panic!("{e}"));
        loaded.insert(path.file_name().unwrap().to_owned(), config);
    }
    assert!(
        loaded.len() >= 2,
        "expected proxy.yaml and proxy.toml in {}",
        dir.display()
    );
    // The two documented examples describe the same configuration.
    assert_eq!(
        loaded.get(std::ffi::OsStr::new("proxy.yaml")),
        loaded.get(std::ffi::OsStr::new("proxy.toml"))
    );
}

// ----------------------------------------------------------- robustness ----

/// One edit of a valid config: the kinds of damage a hand edit does.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Insert { at: usize, text: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (
            any::<usize>(),
            prop_oneof![
                Just("\n".to_owned()),
                Just(" ".to_owned()),
                Just("- ".to_owned()),
                Just("[".to_owned()),
                Just("{".to_owned()),
                Just("\"".to_owned()),
                Just("${".to_owned()),
                Just(": ".to_owned()),
                Just("&a ".to_owned()),
                Just("*a".to_owned()),
                Just("!!str ".to_owned()),
                Just("---\n".to_owned()),
                Just("[[backends]]\n".to_owned()),
                ".{0,8}",
            ]
        )
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
    ]
}

/// Applies `m` at char boundaries (positions are taken modulo the length).
fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = chars.clone();
    match m {
        Mutation::Delete { at, len } if n > 0 => {
            let start = at % n;
            out.drain(start..(start + len).min(n));
        }
        Mutation::Duplicate { at, len } if n > 0 => {
            let start = at % n;
            let slice: Vec<char> = chars[start..(start + len).min(n)].to_vec();
            out.splice(start..start, slice);
        }
        Mutation::Insert { at, text } => {
            let start = at % (n + 1);
            out.splice(start..start, text.chars());
        }
        _ => {}
    }
    out.into_iter().collect()
}

fn never_panics(text: &str) {
    for format in [Format::Yaml, Format::Toml] {
        let _ = load_str(text, format, "fuzz", Path::new("."), &env);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        never_panics(&text);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(text in any::<String>()) {
        never_panics(&text);
    }

    #[test]
    fn mutated_configs_never_panic(
        yaml_edits in prop::collection::vec(mutation(), 1..6),
        toml_edits in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut text = FULL_YAML.to_owned();
        for m in &yaml_edits {
            text = apply(&text, m);
        }
        let _ = yaml(&text);
        let mut text = FULL_TOML.to_owned();
        for m in &toml_edits {
            text = apply(&text, m);
        }
        let _ = toml(&text);
    }
}

#[test]
fn replica_pool_rules() {
    let base = "backends:\n  - name: a\n    transport: http\n";
    let one = "    url: http://127.0.0.1:1/mcp\n";
    let cases = [
        (
            "    url: http://127.0.0.1:1/mcp\n    endpoints: [http://127.0.0.1:2/mcp]\n".to_owned(),
            "proxy.yaml:5: backends[0]: give either \"url\" (one endpoint) or \"endpoints\" (replicas), not both",
        ),
        (
            "    endpoints: []\n".to_owned(),
            "proxy.yaml:4: backends[0].endpoints: must list at least one URL",
        ),
        (
            "    endpoints:\n      - http://127.0.0.1:1/mcp\n      - ftp://x\n".to_owned(),
            "proxy.yaml:6: backends[0].endpoints[1]: URL must start with http:// or https://",
        ),
        (
            "    endpoints:\n      - http://127.0.0.1:1/mcp\n      - http://127.0.0.1:1/mcp\n"
                .to_owned(),
            "proxy.yaml:6: backends[0].endpoints[1]: the same URL as endpoints[0]: replicas must differ",
        ),
        (
            format!("{one}    load_balancing: fastest\n"),
            "proxy.yaml:5: backends[0].load_balancing: unknown load balancing \"fastest\"; expected round_robin, least_requests or random",
        ),
        (
            format!("{one}    outlier_detection: {{ base_ejection: 30s, max_ejection: 10s }}\n"),
            "proxy.yaml:5: backends[0].outlier_detection.max_ejection: max_ejection (10s) must not be less than base_ejection (30s)",
        ),
        (
            format!("{one}    outlier_detection: {{ base_ejection: 10m }}\n"),
            "proxy.yaml:5: backends[0].outlier_detection.base_ejection: max_ejection (300s, the default) must not be less than base_ejection (600s)",
        ),
        (
            format!("{one}    outlier_detection: {{ consecutive_failures: 0 }}\n"),
            "proxy.yaml:5: backends[0].outlier_detection.consecutive_failures: must be at least 1",
        ),
        (
            format!("{one}    outlier_detection: {{ max_ejection_percent: 101 }}\n"),
            "proxy.yaml:5: backends[0].outlier_detection.max_ejection_percent: must be 0 to 100",
        ),
        (
            format!("{one}    outlier_detection: {{ interval: 10s }}\n"),
            "proxy.yaml:5: backends[0].outlier_detection: unknown key \"interval\"",
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(yaml_err(&format!("{base}{extra}")), expected, "{extra}");
    }
    let stdio = "backends:\n  - name: a\n    transport: stdio\n    command: srv\n    endpoints: [http://127.0.0.1:1/mcp]\n";
    assert_eq!(
        yaml_err(stdio),
        "proxy.yaml:5: backends[0]: key \"endpoints\" is not valid for transport \"stdio\""
    );
}

#[test]
fn a_url_is_a_pool_of_one_and_endpoints_share_the_headers() {
    let text = "backends:\n  - name: a\n    transport: http\n    url: http://127.0.0.1:1/mcp\n";
    let config = yaml(text).unwrap();
    assert_eq!(config.backends[0].endpoints.len(), 1);
    let config = yaml(FULL_YAML).unwrap();
    let search = &config.backends[1];
    assert!(search.endpoints.iter().all(|e| matches!(
        e,
        TransportConfig::Http { headers, .. } if headers["Authorization"] == "Bearer s3cret"
    )));
}

#[test]
fn an_endpoint_label_hides_credentials_and_query() {
    let endpoint = TransportConfig::Http {
        url: "https://user:pw@example.com:8443/mcp?token=x#f".into(),
        headers: BTreeMap::new(),
    };
    assert_eq!(endpoint.label(), "https://example.com:8443/mcp");
}

const TRAFFIC_YAML: &str = r#"backends:
  - name: search
    transport: http
    url: http://127.0.0.1:1/mcp
    expose: { tools: ["get_*", "query"] }
    hide: { tools: ["get_secret"], resources: ["file:///private/*"] }
    aliases: [{ from: find, to: query }]
    default_arguments: { limit: 10, tags: [a, b] }
    inject_arguments:
      - { tool: "query", arguments: { tenant: acme }, overwrite: true }
    max_argument_size: 64KiB
    cache: { tools: 30s, resources: 1m, max_entries: 500 }
    coalesce: true
  - name: search-canary
    transport: http
    url: http://127.0.0.1:2/mcp
    canary_of: search
    weight: 10
    sticky: true
  - name: search-mirror
    transport: http
    url: http://127.0.0.1:3/mcp
    mirror_of: search
    mirror_percent: 25
  - name: search-standby
    transport: http
    url: http://127.0.0.1:4/mcp
    failover_for: search
    priority: 2
"#;

#[test]
fn traffic_roles_and_shaping_load() {
    let config = yaml(TRAFFIC_YAML).unwrap();
    let [search, canary, mirror, standby] = &config.backends[..] else {
        panic!("four backends")
    };
    assert_eq!(search.role, Role::Primary);
    assert_eq!(
        canary.role,
        Role::Canary {
            of: "search".into(),
            weight: 10.0,
            sticky: true
        }
    );
    assert_eq!(
        mirror.role,
        Role::Mirror {
            of: "search".into(),
            percent: 25.0,
            max_in_flight: 64,
            unsafe_calls: false
        }
    );
    assert_eq!(
        standby.role,
        Role::Failover {
            of: "search".into(),
            priority: 2
        }
    );
    let shaping = &search.shaping;
    assert_eq!(
        shaping.expose.tools,
        Some(vec!["get_*".to_owned(), "query".to_owned()])
    );
    assert_eq!(shaping.expose.prompts, None);
    assert_eq!(
        shaping.hide.resources,
        Some(vec!["file:///private/*".to_owned()])
    );
    assert_eq!(
        shaping.aliases,
        [Alias {
            from: "find".into(),
            to: "query".into()
        }]
    );
    assert_eq!(
        serde_json::Value::Object(shaping.default_arguments.clone()),
        serde_json::json!({ "limit": 10, "tags": ["a", "b"] })
    );
    assert_eq!(shaping.inject_arguments[0].tool, "query");
    assert!(shaping.inject_arguments[0].overwrite);
    assert_eq!(shaping.max_argument_size, Some(64 * 1024));
    assert_eq!(
        shaping.cache,
        Some(CachePolicy {
            tools: Some(Duration::from_secs(30)),
            resources: Some(Duration::from_secs(60)),
            max_entries: 500
        })
    );
    assert!(shaping.coalesce);
    assert_eq!(canary.shaping, Shaping::default());
}

#[test]
fn a_mirror_copies_unsafe_calls_only_when_told() {
    let config = yaml(&format!(
        "{TRAFFIC_YAML}  - name: writes-too\n    transport: http\n    url: http://127.0.0.1:5/mcp\n    mirror_of: search\n    mirror_percent: 5\n    mirror_unsafe: true\n"
    ))
    .unwrap();
    let unsafe_calls = |index: usize| match config.backends[index].role {
        Role::Mirror { unsafe_calls, .. } => unsafe_calls,
        _ => panic!("backend {index} is a mirror"),
    };
    assert!(!unsafe_calls(2), "off by default");
    assert!(unsafe_calls(4));
}

#[test]
fn capabilities_name_what_a_backend_offers_before_it_connects() {
    let backend = "backends:\n  - name: a\n    transport: http\n    url: http://127.0.0.1:1/mcp\n";
    let config = yaml(&format!(
        "{backend}    capabilities: [prompts, resources.subscribe, resources]\n"
    ))
    .unwrap();
    assert_eq!(
        config.backends[0]
            .capabilities
            .clone()
            .map(serde_json::Value::Object),
        Some(serde_json::json!({ "prompts": {}, "resources": { "subscribe": true } }))
    );
    assert_eq!(yaml(backend).unwrap().backends[0].capabilities, None);
    assert_eq!(
        yaml_err(&format!(
            "{backend}    capabilities:\n      - tools\n      - sampling\n"
        )),
        "proxy.yaml:7: backends[0].capabilities[1]: unknown capability \"sampling\"; one of [\"tools\", \"prompts\", \"resources\", \"resources.subscribe\", \"completions\", \"logging\"]"
    );
}

#[test]
fn traffic_role_rules() {
    let primary = "backends:\n  - name: p\n    transport: http\n    url: http://127.0.0.1:1/mcp\n";
    let second = |keys: &str| {
        format!(
            "{primary}  - name: c\n    transport: http\n    url: http://127.0.0.1:2/mcp\n{keys}"
        )
    };
    let cases = [
        (
            second("    canary_of: p\n"),
            "proxy.yaml:5: backends[1]: missing key \"weight\" (a percent, 0 to 100)",
        ),
        (
            second("    canary_of: p\n    weight: 101\n"),
            "proxy.yaml:9: backends[1].weight: must be 0 to 100 (a percent)",
        ),
        (
            second("    weight: 10\n"),
            "proxy.yaml:8: backends[1]: weight needs canary_of",
        ),
        (
            second("    canary_of: p\n    mirror_of: p\n    weight: 1\n"),
            "proxy.yaml:9: backends[1]: a backend has one role: canary_of and mirror_of cannot both be given",
        ),
        (
            second("    mirror_of: p\n    mirror_percent: 5\n    mirror_max_in_flight: 0\n"),
            "proxy.yaml:10: backends[1].mirror_max_in_flight: must be at least 1",
        ),
        (
            second("    mirror_unsafe: true\n"),
            "proxy.yaml:8: backends[1]: mirror_unsafe needs mirror_of",
        ),
        (
            second("    mirror_of: p\n    mirror_percent: 5\n    mirror_unsafe: yes please\n"),
            "proxy.yaml:10: backends[1].mirror_unsafe: expected a boolean, found a string (\"yes please\")",
        ),
        (
            second("    failover_for: nobody\n"),
            "proxy.yaml:8: backends[1].failover_for: no backend named \"nobody\"",
        ),
        (
            second("    failover_for: c\n"),
            "proxy.yaml:8: backends[1].failover_for: a backend cannot serve its own traffic",
        ),
        (
            second("    canary_of: p\n    weight: 10\n    aliases: [{ from: a, to: b }]\n"),
            "proxy.yaml:10: backends[1]: aliases belongs on the primary: a backend with canary_of gets the calls as its primary shaped them",
        ),
        (
            format!(
                "{}  - name: d\n    transport: http\n    url: http://127.0.0.1:3/mcp\n    mirror_of: c\n    mirror_percent: 1\n",
                second("    canary_of: p\n    weight: 10\n")
            ),
            "proxy.yaml:13: backends[2].mirror_of: \"c\" serves another backend's traffic itself; name its primary",
        ),
        (
            format!(
                "{}  - name: d\n    transport: http\n    url: http://127.0.0.1:3/mcp\n    canary_of: p\n    weight: 40\n",
                second("    canary_of: p\n    weight: 70\n")
            ),
            "proxy.yaml:14: backends[2].weight: the canaries of \"p\" add up to 110%, over 100%",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(yaml_err(&text), expected, "{text}");
    }
}

#[test]
fn shaping_rules() {
    let base = "backends:\n  - name: p\n    transport: http\n    url: http://127.0.0.1:1/mcp\n";
    let cases = [
        (
            "    aliases: [{ from: a, to: b }, { from: a, to: c }]\n",
            "proxy.yaml:5: backends[0].aliases[1].from: \"a\" is already the alias at aliases[0]",
        ),
        (
            "    aliases: [{ from: \"\", to: b }]\n",
            "proxy.yaml:5: backends[0].aliases[0].from: must not be empty",
        ),
        (
            "    cache: { max_entries: 5 }\n",
            "proxy.yaml:5: backends[0].cache: name what to cache: tools (a TTL), resources (a TTL), or both",
        ),
        (
            "    cache: { tools: 0s }\n",
            "proxy.yaml:5: backends[0].cache.tools: must be greater than zero",
        ),
        (
            "    max_argument_size: 0\n",
            "proxy.yaml:5: backends[0].max_argument_size: must be greater than zero",
        ),
        (
            "    hide: { tool: [x] }\n",
            "proxy.yaml:5: backends[0].hide: unknown key \"tool\"",
        ),
        (
            "    inject_arguments: [{ tool: q, arguments: 5 }]\n",
            "proxy.yaml:5: backends[0].inject_arguments[0].arguments: expected a table, found an integer (5)",
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(yaml_err(&format!("{base}{extra}")), expected, "{extra}");
    }
}

#[test]
fn two_canaries_of_one_primary_are_both_kept() {
    let text = "backends:
  - { name: p, transport: http, url: http://127.0.0.1:1/mcp }
  - { name: c1, transport: http, url: http://127.0.0.1:2/mcp, canary_of: p, weight: 30 }
  - { name: c2, transport: http, url: http://127.0.0.1:3/mcp, canary_of: p, weight: 70 }
";
    let config = yaml(text).unwrap();
    let weights: Vec<f64> = config
        .backends
        .iter()
        .filter_map(|b| match b.role {
            Role::Canary { weight, .. } => Some(weight),
            _ => None,
        })
        .collect();
    assert_eq!(weights, [30.0, 70.0]);
}
