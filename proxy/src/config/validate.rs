//! The last loading stage: [`RawConfig`] → [`Config`], applying defaults
//! and the rules that relate several values.
//!
//! The raw structs carry no positions; an error finds its line by looking
//! its key path up in the [`Node`] tree (the tree and the raw structs have
//! the same shape, because one was deserialized from the other). A value
//! that was defaulted has no line of its own, so the lookup falls back to
//! the table that would have held it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::ConfigError;
use super::duration::ConfigDuration;
use super::raw::{
    RawBackend, RawBreaker, RawConfig, RawProxy, RawReconnect, RawRetry, RawTimeout, RetryOnItem,
    TransportKind,
};
use super::source::{Node, Seg, path_string};
use super::{
    BackendConfig, BreakerPolicy, Config, DEFAULT_INIT_TIMEOUT, DEFAULT_WAIT_FOR_READY,
    HedgePolicy, ProxySettings, RateLimit, ReconnectPolicy, RetryBackoff, RetryBudget, RetryOn,
    RetryPolicy, SlowCall, TimeoutPolicy, TransportConfig,
};

mod pool;
mod shaping;
mod traffic;

/// Default `retry.max_retries`, and the most allowed.
const DEFAULT_MAX_RETRIES: u32 = 2;
const MAX_RETRIES: u32 = 10;
/// The most `concurrency.max` allowed (a semaphore's practical bound).
const MAX_CONCURRENCY: usize = 1_000_000;
/// Default `retry.backoff`.
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(20);
const DEFAULT_RETRY_MAX: Duration = Duration::from_millis(500);
/// Default `retry.budget`.
const DEFAULT_BUDGET_PERCENT: f64 = 20.0;
const DEFAULT_BUDGET_MIN_PER_SECOND: f64 = 5.0;

/// Turns the deserialized file into a [`Config`]; `tree` supplies lines,
/// `base_dir` anchors relative `cwd`s.
pub(crate) fn validate(
    raw: RawConfig,
    tree: &Node,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let v = Validator { tree };
    let proxy = v.proxy(raw.proxy)?;
    let backends_path = [key("backends")];
    if raw.backends.is_empty() {
        return Err(v.error(&backends_path, "at least one backend is required"));
    }
    let mut backends: Vec<BackendConfig> = Vec::with_capacity(raw.backends.len());
    let mut first_index: HashMap<String, usize> = HashMap::new();
    for (i, raw_backend) in raw.backends.into_iter().enumerate() {
        let path = [key("backends"), Seg::Index(i)];
        let backend = v.backend(raw_backend, &path, &proxy, base_dir)?;
        if let Some(&first) = first_index.get(&backend.name) {
            let first_line = tree.line_near(&[key("backends"), Seg::Index(first), key("name")]);
            return Err(v.error(
                &child(&path, "name"),
                format!(
                    "duplicate backend name {:?} (first at line {first_line})",
                    backend.name
                ),
            ));
        }
        first_index.insert(backend.name.clone(), i);
        backends.push(backend);
    }
    v.roles(&backends)?;
    Ok(Config { proxy, backends })
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn child(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(key(k));
    p
}

struct Validator<'a> {
    tree: &'a Node,
}

impl Validator<'_> {
    /// An error at the value `path` names (or the nearest table that exists).
    fn error(&self, path: &[Seg], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: String::new(),
            line: Some(self.tree.line_near(path)),
            path: path_string(path),
            message: message.into(),
        }
    }

    /// An error about the key `k` of the table at `path`, at the key's line.
    fn key_error(&self, path: &[Seg], k: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: String::new(),
            line: Some(self.tree.key_line(&child(path, k))),
            path: path_string(path),
            message: message.into(),
        }
    }

    fn proxy(&self, raw: Option<RawProxy>) -> Result<ProxySettings, ConfigError> {
        let defaults = ProxySettings::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        let path = [key("proxy")];
        let name = raw.name.unwrap_or(defaults.name);
        if name.is_empty() {
            return Err(self.error(&child(&path, "name"), "must not be empty"));
        }
        let separator = raw.separator.unwrap_or(defaults.separator);
        if separator.is_empty() {
            return Err(self.error(&child(&path, "separator"), "must not be empty"));
        }
        let max_body_size = raw.max_body_size.map_or(defaults.max_body_size, |s| s.0);
        if max_body_size == 0 {
            return Err(self.error(&child(&path, "max_body_size"), "must be greater than zero"));
        }
        let positive = |value: Option<ConfigDuration>, k: &str, default: Duration| match value {
            Some(d) if d.0.is_zero() => {
                Err(self.error(&child(&path, k), "must be greater than zero"))
            }
            value => Ok(value.map_or(default, |d| d.0)),
        };
        let session_idle_timeout = positive(
            raw.session_idle_timeout,
            "session_idle_timeout",
            defaults.session_idle_timeout,
        )?;
        let default_call_timeout = positive(
            raw.default_call_timeout,
            "default_call_timeout",
            defaults.default_call_timeout,
        )?;
        let at_least_one = |value: Option<usize>, k: &str, default: usize| match value {
            Some(0) => Err(self.error(&child(&path, k), "must be at least 1")),
            value => Ok(value.unwrap_or(default)),
        };
        let max_sessions = at_least_one(raw.max_sessions, "max_sessions", defaults.max_sessions)?;
        let max_in_flight =
            at_least_one(raw.max_in_flight, "max_in_flight", defaults.max_in_flight)?;
        let max_in_flight_per_session = at_least_one(
            raw.max_in_flight_per_session,
            "max_in_flight_per_session",
            defaults.max_in_flight_per_session,
        )?;
        let progress_queue = at_least_one(
            raw.progress_queue,
            "progress_queue",
            defaults.progress_queue,
        )?;
        let allowed_origins = raw.allowed_origins.unwrap_or(defaults.allowed_origins);
        for (i, origin) in allowed_origins.iter().enumerate() {
            let mut p = child(&path, "allowed_origins");
            p.push(Seg::Index(i));
            check_origin(origin).map_err(|m| self.error(&p, m))?;
        }
        Ok(ProxySettings {
            name,
            listen: raw.listen.map_or(defaults.listen, |l| l.0),
            separator,
            // Zero is allowed: it means "do not wait for in-flight calls".
            shutdown_timeout: raw
                .shutdown_timeout
                .map_or(defaults.shutdown_timeout, |d| d.0),
            max_body_size,
            allowed_origins,
            session_idle_timeout,
            default_call_timeout,
            max_sessions,
            max_in_flight,
            max_in_flight_per_session,
            progress_queue,
            seed: raw.seed.unwrap_or(defaults.seed),
        })
    }

    fn backend(
        &self,
        raw: RawBackend,
        path: &[Seg],
        proxy: &ProxySettings,
        base_dir: &Path,
    ) -> Result<BackendConfig, ConfigError> {
        self.backend_name(&raw.name, path, &proxy.separator)?;
        if let Some(foreign) = raw.foreign_keys().first() {
            return Err(self.key_error(
                path,
                foreign,
                format!(
                    "key {foreign:?} is not valid for transport {:?}",
                    raw.transport.as_str()
                ),
            ));
        }
        let endpoints = match raw.transport {
            TransportKind::Stdio => vec![self.stdio(&raw, path, base_dir)?],
            TransportKind::Http => self.http(&raw, path)?,
        };
        let load_balancing = self.load_balancing(raw.load_balancing.as_deref(), path)?;
        let outlier_detection = raw
            .outlier_detection
            .as_ref()
            .map(|o| self.outlier(o, &child(path, "outlier_detection")))
            .transpose()?;
        let init_timeout = raw.init_timeout.map_or(DEFAULT_INIT_TIMEOUT, |d| d.0);
        if init_timeout.is_zero() {
            return Err(self.error(&child(path, "init_timeout"), "must be greater than zero"));
        }
        let reconnect = self.reconnect(raw.reconnect.as_ref(), &child(path, "reconnect"))?;
        let wait_for_ready = raw.wait_for_ready.map_or(DEFAULT_WAIT_FOR_READY, |d| d.0);
        let timeout = self.timeout(
            raw.timeout.as_ref(),
            &child(path, "timeout"),
            proxy.default_call_timeout,
        )?;
        let retry = raw
            .retry
            .as_ref()
            .map(|r| self.retry(r, &timeout, path))
            .transpose()?;
        let safe_to_repeat = raw
            .safe_to_repeat
            .as_ref()
            .map(|s| s.tools.clone())
            .unwrap_or_default();
        for (i, pattern) in safe_to_repeat.iter().enumerate() {
            if pattern.is_empty() {
                let mut p = child(&child(path, "safe_to_repeat"), "tools");
                p.push(Seg::Index(i));
                return Err(self.error(&p, "must not be empty"));
            }
        }
        let max_concurrency = match &raw.concurrency {
            Some(c) if !(1..=MAX_CONCURRENCY).contains(&c.max) => {
                return Err(self.error(
                    &child(&child(path, "concurrency"), "max"),
                    format!("must be 1 to {MAX_CONCURRENCY}"),
                ));
            }
            c => c.as_ref().map(|c| c.max),
        };
        let rate_limit = match &raw.rate_limit {
            None => None,
            Some(r) => {
                let p = child(path, "rate_limit");
                if r.requests == 0 {
                    return Err(self.error(&child(&p, "requests"), "must be at least 1"));
                }
                if r.per.0.is_zero() {
                    return Err(self.error(&child(&p, "per"), "must be greater than zero"));
                }
                Some(RateLimit {
                    requests: r.requests,
                    per: r.per.0,
                })
            }
        };
        let circuit_breaker = raw
            .circuit_breaker
            .as_ref()
            .map(|b| self.breaker(b, &child(path, "circuit_breaker")))
            .transpose()?;
        let hedging = match &raw.hedging {
            None => None,
            Some(h) => {
                let p = child(path, "hedging");
                if h.delay.0.is_zero() {
                    return Err(self.error(&child(&p, "delay"), "must be greater than zero"));
                }
                let max_hedges = h.max_hedges.unwrap_or(1);
                if !(1..=5).contains(&max_hedges) {
                    return Err(self.error(&child(&p, "max_hedges"), "must be 1 to 5"));
                }
                if let Some(per_try) = timeout.per_try
                    && h.delay.0 >= per_try
                {
                    return Err(self.error(
                        &child(&p, "delay"),
                        format!("must be shorter than timeout.per_try ({per_try:?})"),
                    ));
                }
                Some(HedgePolicy {
                    delay: h.delay.0,
                    max_hedges,
                })
            }
        };
        let role = self.role(&raw, path)?;
        let shaping = self.shaping(&raw, path, role.kind().key())?;
        Ok(BackendConfig {
            role,
            shaping,
            name: raw.name,
            endpoints,
            load_balancing,
            outlier_detection,
            init_timeout,
            reconnect,
            wait_for_ready,
            timeout,
            retry,
            safe_to_repeat,
            max_concurrency,
            rate_limit,
            circuit_breaker,
            hedging,
        })
    }

    fn backend_name(&self, name: &str, path: &[Seg], separator: &str) -> Result<(), ConfigError> {
        let name_path = child(path, "name");
        if name.is_empty() {
            return Err(self.error(&name_path, "backend name must not be empty"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(self.error(
                &name_path,
                format!(
                    "backend name {name:?} may only contain letters, digits, \"_\", \".\" and \"-\""
                ),
            ));
        }
        if name.contains(separator) {
            return Err(self.error(
                &name_path,
                format!(
                    "backend name {name:?} contains the separator {separator:?} (proxy.separator)"
                ),
            ));
        }
        Ok(())
    }

    fn stdio(
        &self,
        raw: &RawBackend,
        path: &[Seg],
        base_dir: &Path,
    ) -> Result<TransportConfig, ConfigError> {
        let Some(command) = raw.command.clone() else {
            return Err(self.error(
                path,
                "missing key \"command\" (required for transport \"stdio\")",
            ));
        };
        if command.trim().is_empty() {
            return Err(self.error(&child(path, "command"), "must not be empty"));
        }
        no_nul(&command).map_err(|m| self.error(&child(path, "command"), m))?;
        let args = raw.args.clone().unwrap_or_default();
        for (i, arg) in args.iter().enumerate() {
            let mut p = child(path, "args");
            p.push(Seg::Index(i));
            no_nul(arg).map_err(|m| self.error(&p, m))?;
        }
        let env = raw.env.clone().unwrap_or_default();
        for (name, value) in &env {
            let p = child(&child(path, "env"), name);
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(self.key_error(
                    &child(path, "env"),
                    name,
                    format!("invalid environment variable name {name:?}: it must be non-empty, without \"=\" or NUL"),
                ));
            }
            no_nul(value).map_err(|m| self.error(&p, m))?;
        }
        let cwd = match &raw.cwd {
            None => None,
            Some(dir) if dir.is_empty() => {
                return Err(self.error(&child(path, "cwd"), "must not be empty"));
            }
            Some(dir) => Some(base_dir.join(dir)),
        };
        Ok(TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
        })
    }

    /// The endpoints of an HTTP backend: its `url`, or each of `endpoints`,
    /// all sharing `headers`.
    fn http(&self, raw: &RawBackend, path: &[Seg]) -> Result<Vec<TransportConfig>, ConfigError> {
        let urls = self.urls(raw, path)?;
        let headers: BTreeMap<String, String> = raw.headers.clone().unwrap_or_default();
        let headers_path = child(path, "headers");
        let mut seen: HashMap<String, &str> = HashMap::new();
        for (name, value) in &headers {
            if !is_header_name(name) {
                return Err(self.key_error(
                    &headers_path,
                    name,
                    format!(
                        "invalid header name {name:?}: use letters, digits and !#$%&'*+-.^_`|~ only"
                    ),
                ));
            }
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), name) {
                return Err(self.key_error(
                    &headers_path,
                    name,
                    format!("header {name:?} is also set as {other:?} (header names ignore case)"),
                ));
            }
            // The value is not echoed: it is often a secret.
            if value
                .chars()
                .any(|c| (c.is_ascii_control() && c != '\t') || c == '\u{7f}')
            {
                return Err(self.error(
                    &child(&headers_path, name),
                    "header value must not contain control characters (such as CR or LF)",
                ));
            }
        }
        Ok(urls
            .into_iter()
            .map(|url| TransportConfig::Http {
                url,
                headers: headers.clone(),
            })
            .collect())
    }

    fn reconnect(
        &self,
        raw: Option<&RawReconnect>,
        path: &[Seg],
    ) -> Result<ReconnectPolicy, ConfigError> {
        let defaults = ReconnectPolicy::default();
        let initial = raw
            .and_then(|r| r.initial)
            .map_or(defaults.initial, |d| d.0);
        let max = raw.and_then(|r| r.max).map_or(defaults.max, |d| d.0);
        if initial.is_zero() {
            return Err(self.error(&child(path, "initial"), "must be greater than zero"));
        }
        if max < initial {
            let written = raw.is_some_and(|r| r.max.is_some());
            let (at, default) = if written {
                ("max", "")
            } else {
                ("initial", ", the default")
            };
            return Err(self.error(
                &child(path, at),
                format!("max ({max:?}{default}) must not be less than initial ({initial:?})"),
            ));
        }
        Ok(ReconnectPolicy { initial, max })
    }
}

impl Validator<'_> {
    /// `timeout` of a backend; `overall` is `default_overall`
    /// (`proxy.default_call_timeout`) when the backend sets none.
    fn timeout(
        &self,
        raw: Option<&RawTimeout>,
        path: &[Seg],
        default_overall: Duration,
    ) -> Result<TimeoutPolicy, ConfigError> {
        let per_try = raw.and_then(|r| r.per_try).map(|d| d.0);
        let written_overall = raw.and_then(|r| r.overall).map(|d| d.0);
        for (key, value) in [("per_try", per_try), ("overall", written_overall)] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(self.error(&child(path, key), "must be greater than zero"));
            }
        }
        let overall = written_overall.unwrap_or(default_overall);
        if let Some(per_try) = per_try
            && per_try > overall
        {
            let whose = if written_overall.is_some() {
                ""
            } else {
                ", proxy.default_call_timeout"
            };
            return Err(self.error(
                &child(path, "per_try"),
                format!(
                    "per_try ({per_try:?}) must not be longer than overall ({overall:?}{whose})"
                ),
            ));
        }
        Ok(TimeoutPolicy {
            per_try,
            overall: Some(overall),
        })
    }

    /// `retry` of the backend at `backend_path`, whose `timeout` is known.
    fn retry(
        &self,
        raw: &RawRetry,
        timeout: &TimeoutPolicy,
        backend_path: &[Seg],
    ) -> Result<RetryPolicy, ConfigError> {
        let path = &child(backend_path, "retry");
        if let (Some(per_try), Some(overall)) = (timeout.per_try, timeout.overall)
            && per_try == overall
        {
            return Err(self.error(
                &child(&child(backend_path, "timeout"), "per_try"),
                "equals overall, which leaves no time to retry",
            ));
        }
        let max_retries = raw.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if !(1..=MAX_RETRIES).contains(&max_retries) {
            return Err(self.error(
                &child(path, "max_retries"),
                format!("must be 1 to {MAX_RETRIES}"),
            ));
        }
        let backoff_path = child(path, "backoff");
        let backoff = raw.backoff.as_ref();
        let initial = backoff
            .and_then(|b| b.initial)
            .map_or(DEFAULT_RETRY_INITIAL, |d| d.0);
        let max = backoff
            .and_then(|b| b.max)
            .map_or(DEFAULT_RETRY_MAX, |d| d.0);
        if max < initial {
            return Err(self.error(
                &child(&backoff_path, "max"),
                format!("max ({max:?}) must not be less than initial ({initial:?})"),
            ));
        }
        let full_jitter = match backoff.and_then(|b| b.jitter.as_deref()) {
            None | Some("full") => true,
            Some("none") => false,
            Some(other) => {
                return Err(self.error(
                    &child(&backoff_path, "jitter"),
                    format!("unknown jitter {other:?}; expected \"full\" or \"none\""),
                ));
            }
        };
        let budget_path = child(path, "budget");
        let budget = raw.budget.as_ref();
        let percent = budget
            .and_then(|b| b.percent)
            .unwrap_or(DEFAULT_BUDGET_PERCENT);
        if !(0.0..=100.0).contains(&percent) {
            return Err(self.error(&child(&budget_path, "percent"), "must be 0 to 100"));
        }
        let min_per_second = budget
            .and_then(|b| b.min_per_second)
            .unwrap_or(DEFAULT_BUDGET_MIN_PER_SECOND);
        if !(min_per_second.is_finite() && min_per_second >= 0.0) {
            return Err(self.error(&child(&budget_path, "min_per_second"), "must be ≥ 0"));
        }
        let mut on = RetryOn {
            transport: false,
            timeout: false,
            unavailable: false,
            codes: Vec::new(),
        };
        match &raw.on {
            None => {
                on.transport = true;
                // Only attempts with a per-try limit can time out and be retried.
                on.timeout = timeout.per_try.is_some();
                on.unavailable = true;
            }
            Some(items) => {
                if items.is_empty() {
                    return Err(self.error(&child(path, "on"), "must name at least one failure"));
                }
                for (i, item) in items.iter().enumerate() {
                    let mut p = child(path, "on");
                    p.push(Seg::Index(i));
                    match item {
                        RetryOnItem::Kind(k) if k == "transport" => on.transport = true,
                        RetryOnItem::Kind(k) if k == "timeout" => {
                            if timeout.per_try.is_none() {
                                return Err(self.error(
                                    &p,
                                    "retrying timeouts needs timeout.per_try (an overall timeout ends the call)",
                                ));
                            }
                            on.timeout = true;
                        }
                        RetryOnItem::Kind(k) if k == "unavailable" => on.unavailable = true,
                        RetryOnItem::Kind(k) => {
                            return Err(self.error(
                                &p,
                                format!("unknown failure {k:?}; expected transport, timeout, unavailable or a JSON-RPC error code"),
                            ));
                        }
                        RetryOnItem::Code(code) => on.codes.push(*code),
                    }
                }
            }
        }
        Ok(RetryPolicy {
            max_retries,
            backoff: RetryBackoff {
                initial,
                max,
                full_jitter,
            },
            budget: RetryBudget {
                percent,
                min_per_second,
            },
            on,
        })
    }
}

impl Validator<'_> {
    fn breaker(&self, raw: &RawBreaker, path: &[Seg]) -> Result<BreakerPolicy, ConfigError> {
        let window = raw.window.map_or(Duration::from_secs(10), |d| d.0);
        let open_for = raw.open_for.map_or(Duration::from_secs(5), |d| d.0);
        for (key, value) in [("window", window), ("open_for", open_for)] {
            if value.is_zero() {
                return Err(self.error(&child(path, key), "must be greater than zero"));
            }
        }
        let failure_rate = raw.failure_rate.unwrap_or(0.5);
        if !(failure_rate > 0.0 && failure_rate <= 1.0) {
            return Err(self.error(
                &child(path, "failure_rate"),
                "must be above 0 and at most 1",
            ));
        }
        let min_calls = raw.min_calls.unwrap_or(20);
        if min_calls == 0 {
            return Err(self.error(&child(path, "min_calls"), "must be at least 1"));
        }
        let half_open_probes = raw.half_open_probes.unwrap_or(3);
        if half_open_probes == 0 {
            return Err(self.error(&child(path, "half_open_probes"), "must be at least 1"));
        }
        let slow_call = match &raw.slow_call {
            None => None,
            Some(slow) => {
                let p = child(path, "slow_call");
                if slow.threshold.0.is_zero() {
                    return Err(self.error(&child(&p, "threshold"), "must be greater than zero"));
                }
                if !(slow.rate > 0.0 && slow.rate <= 1.0) {
                    return Err(self.error(&child(&p, "rate"), "must be above 0 and at most 1"));
                }
                Some(SlowCall {
                    threshold: slow.threshold.0,
                    rate: slow.rate,
                })
            }
        };
        Ok(BreakerPolicy {
            window,
            min_calls,
            failure_rate,
            slow_call,
            open_for,
            half_open_probes,
        })
    }
}

fn no_nul(s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err("must not contain a NUL character".into())
    } else {
        Ok(())
    }
}

/// `http://` or `https://`, parseable, with a host. The URL is not echoed
/// in messages: it may carry credentials.
fn check_url(url: &str) -> Result<(), String> {
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    if !has_scheme("http://") && !has_scheme("https://") {
        return Err("URL must start with http:// or https://".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("URL has no host".into());
    }
    Ok(())
}

/// Exactly what a browser sends in `Origin`, so that comparing strings works.
fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| format!("invalid origin {origin:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid origin {origin:?}: it must start with http:// or https://"
        ));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err(format!(
            "invalid origin {origin:?}: an origin is scheme://host[:port] with no path or trailing \
             slash; write {canonical:?}"
        ));
    }
    Ok(())
}

/// RFC 9110 `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:9001/mcp").is_ok());
        assert!(check_url("HTTPS://example.com").is_ok());
        assert_eq!(
            check_url("ftp://x").unwrap_err(),
            "URL must start with http:// or https://"
        );
        assert_eq!(
            check_url("127.0.0.1:9001").unwrap_err(),
            "URL must start with http:// or https://"
        );
        assert_eq!(check_url("http://").unwrap_err(), "invalid URL: empty host");
        assert_eq!(
            check_url("http://[::1").unwrap_err(),
            "invalid URL: invalid IPv6 address"
        );
    }

    #[test]
    fn origins() {
        assert!(check_origin("https://app.example.com").is_ok());
        assert!(check_origin("http://localhost:3000").is_ok());
        assert_eq!(
            check_origin("https://app.example.com/").unwrap_err(),
            "invalid origin \"https://app.example.com/\": an origin is scheme://host[:port] with no \
             path or trailing slash; write \"https://app.example.com\""
        );
        assert!(check_origin("https://App.example.com:443").is_err());
        assert!(check_origin("file:///x").is_err());
        assert!(check_origin("*").is_err());
    }

    #[test]
    fn header_names() {
        assert!(is_header_name("Authorization"));
        assert!(is_header_name("X-Api-Key"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("X Key"));
        assert!(!is_header_name("X:Key"));
        assert!(!is_header_name("Ключ"));
    }
}
