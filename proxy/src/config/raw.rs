//! The file's shape, as `serde` reads it: every table denies unknown keys,
//! every optional key is an `Option` (defaults are applied in
//! [`validate`](super::validate), where they are documented once).
//!
//! Checks that concern a single value (a duration's unit, an address's
//! syntax, the transport's spelling) happen here, inside deserialization, so
//! they get the value's line and path for free. Checks that relate several
//! values (transport keys, unique names) happen in `validate`.
//!
//! A backend is flat (`transport: stdio` next to `command:`), so both
//! transports' keys live in [`RawBackend`] and `validate` rejects the ones
//! that do not belong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::duration::ConfigDuration;
use super::size::ByteSize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) proxy: Option<RawProxy>,
    pub(crate) backends: Vec<RawBackend>,
    pub(crate) auth: Option<RawAuth>,
    pub(crate) authorization: Option<RawAuthorization>,
    /// `audit:` written with nothing under it turns the audit log on with
    /// its defaults (unlike other tables, where it is the same as leaving
    /// the table out: here leaving it out means no audit log).
    #[serde(default, deserialize_with = "present_is_default")]
    pub(crate) audit: Option<RawAudit>,
    pub(crate) admin: Option<RawAdmin>,
}

/// A key that is present makes `Some`, even with an empty (null) value.
fn present_is_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(deserializer).map(|value| Some(value.unwrap_or_default()))
}

/// `proxy:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub(crate) name: Option<String>,
    pub(crate) listen: Option<Listen>,
    pub(crate) separator: Option<String>,
    pub(crate) shutdown_timeout: Option<ConfigDuration>,
    pub(crate) max_body_size: Option<ByteSize>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) session_idle_timeout: Option<ConfigDuration>,
    pub(crate) default_call_timeout: Option<ConfigDuration>,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) max_in_flight_per_session: Option<usize>,
    pub(crate) progress_queue: Option<usize>,
    pub(crate) seed: Option<u64>,
    pub(crate) allow_unauthenticated: Option<bool>,
    pub(crate) admin_tools: Option<bool>,
    pub(crate) tracing: Option<RawTracing>,
}

/// `proxy.tracing:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) service_name: Option<String>,
}

/// One entry of `backends:`, with the keys of both transports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    pub(crate) name: String,
    pub(crate) transport: TransportKind,
    // stdio
    pub(crate) command: Option<String>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) env: Option<BTreeMap<String, String>>,
    pub(crate) cwd: Option<String>,
    pub(crate) inherit_env: Option<bool>,
    // http
    pub(crate) url: Option<String>,
    pub(crate) endpoints: Option<Vec<String>>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
    pub(crate) forward_auth: Option<bool>,
    // both
    pub(crate) init_timeout: Option<ConfigDuration>,
    pub(crate) reconnect: Option<RawReconnect>,
    pub(crate) wait_for_ready: Option<ConfigDuration>,
    pub(crate) timeout: Option<RawTimeout>,
    pub(crate) retry: Option<RawRetry>,
    pub(crate) safe_to_repeat: Option<RawSafeToRepeat>,
    pub(crate) capabilities: Option<Vec<String>>,
    pub(crate) concurrency: Option<RawConcurrency>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    pub(crate) circuit_breaker: Option<RawBreaker>,
    pub(crate) hedging: Option<RawHedging>,
    pub(crate) load_balancing: Option<String>,
    pub(crate) outlier_detection: Option<RawOutlier>,
    // traffic roles
    pub(crate) canary_of: Option<String>,
    pub(crate) weight: Option<f64>,
    pub(crate) sticky: Option<bool>,
    pub(crate) mirror_of: Option<String>,
    pub(crate) mirror_percent: Option<f64>,
    pub(crate) mirror_max_in_flight: Option<usize>,
    pub(crate) mirror_unsafe: Option<bool>,
    pub(crate) failover_for: Option<String>,
    pub(crate) priority: Option<u32>,
    // shaping
    pub(crate) expose: Option<RawNameLists>,
    pub(crate) hide: Option<RawNameLists>,
    pub(crate) aliases: Option<Vec<RawAlias>>,
    pub(crate) default_arguments: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) inject_arguments: Option<Vec<RawInjection>>,
    pub(crate) max_argument_size: Option<ByteSize>,
    pub(crate) cache: Option<RawCache>,
    pub(crate) coalesce: Option<bool>,
}

/// `expose:` and `hide:`: name patterns per kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNameLists {
    pub(crate) tools: Option<Vec<String>>,
    pub(crate) resources: Option<Vec<String>>,
    pub(crate) prompts: Option<Vec<String>>,
}

/// One entry of `aliases:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlias {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// One entry of `inject_arguments:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInjection {
    pub(crate) tool: String,
    pub(crate) arguments: serde_json::Map<String, serde_json::Value>,
    pub(crate) overwrite: Option<bool>,
}

/// `cache:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub(crate) tools: Option<ConfigDuration>,
    pub(crate) resources: Option<ConfigDuration>,
    pub(crate) max_entries: Option<usize>,
}

/// `outlier_detection:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutlier {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) base_ejection: Option<ConfigDuration>,
    pub(crate) max_ejection: Option<ConfigDuration>,
    pub(crate) max_ejection_percent: Option<u32>,
}

/// `hedging:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHedging {
    pub(crate) delay: ConfigDuration,
    pub(crate) max_hedges: Option<u32>,
}

/// `circuit_breaker:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub(crate) window: Option<ConfigDuration>,
    pub(crate) min_calls: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call: Option<RawSlowCall>,
    pub(crate) open_for: Option<ConfigDuration>,
    pub(crate) half_open_probes: Option<u32>,
}

/// `circuit_breaker.slow_call:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlowCall {
    pub(crate) threshold: ConfigDuration,
    pub(crate) rate: f64,
}

/// `concurrency:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConcurrency {
    pub(crate) max: usize,
}

/// `rate_limit:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) requests: u32,
    pub(crate) per: ConfigDuration,
}

impl RawBackend {
    /// The keys that were written and belong only to the other transport.
    pub(crate) fn foreign_keys(&self) -> Vec<&'static str> {
        let present = |set: bool, key: &'static str| set.then_some(key);
        match self.transport {
            TransportKind::Stdio => [
                present(self.url.is_some(), "url"),
                present(self.endpoints.is_some(), "endpoints"),
                present(self.headers.is_some(), "headers"),
                present(self.forward_auth.is_some(), "forward_auth"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            TransportKind::Http => [
                present(self.command.is_some(), "command"),
                present(self.args.is_some(), "args"),
                present(self.env.is_some(), "env"),
                present(self.cwd.is_some(), "cwd"),
                present(self.inherit_env.is_some(), "inherit_env"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

/// `auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) resource: Option<String>,
    pub(crate) authorization_servers: Option<Vec<String>>,
    pub(crate) scopes_supported: Option<Vec<String>>,
    pub(crate) rate_limit: Option<RawRateLimit>,
    pub(crate) bearer: Option<RawBearer>,
    pub(crate) jwt: Option<RawJwt>,
}

/// `auth.bearer:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBearer {
    pub(crate) tokens: Vec<RawBearerToken>,
}

/// One entry of `auth.bearer.tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBearerToken {
    pub(crate) token: Option<String>,
    pub(crate) token_file: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
}

/// `auth.jwt:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub(crate) issuer: Option<String>,
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) leeway: Option<ConfigDuration>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwks_ttl: Option<ConfigDuration>,
    pub(crate) jwks_min_refetch: Option<ConfigDuration>,
    pub(crate) keys: Option<Vec<RawJwtKey>>,
    pub(crate) secret: Option<String>,
    pub(crate) secret_file: Option<String>,
    pub(crate) roles_claim: Option<String>,
    pub(crate) subject_claim: Option<String>,
}

/// One entry of `auth.jwt.keys`: one of `pem_file`, `pem`, `jwk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtKey {
    pub(crate) pem_file: Option<String>,
    pub(crate) pem: Option<String>,
    pub(crate) jwk: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) kid: Option<String>,
}

/// `authorization:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorization {
    pub(crate) default: Option<String>,
    pub(crate) roles: Option<BTreeMap<String, Vec<RawAccessRule>>>,
}

/// One rule of a role: `allow:` or `deny:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessRule {
    pub(crate) allow: Option<RawRuleScope>,
    pub(crate) deny: Option<RawRuleScope>,
}

/// What a rule covers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuleScope {
    pub(crate) backend: Option<String>,
    pub(crate) tools: Option<Vec<String>>,
    pub(crate) resources: Option<Vec<String>>,
    pub(crate) prompts: Option<Vec<String>>,
}

/// `audit:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) to: Option<String>,
    pub(crate) include_arguments: Option<bool>,
    pub(crate) queue: Option<usize>,
}

/// `admin:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<Listen>,
    pub(crate) token: Option<String>,
    pub(crate) token_file: Option<String>,
}

/// `reconnect:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconnect {
    pub(crate) initial: Option<ConfigDuration>,
    pub(crate) max: Option<ConfigDuration>,
}

/// `timeout:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeout {
    pub(crate) per_try: Option<ConfigDuration>,
    pub(crate) overall: Option<ConfigDuration>,
}

/// `retry:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) max_retries: Option<u32>,
    pub(crate) backoff: Option<RawRetryBackoff>,
    pub(crate) budget: Option<RawRetryBudget>,
    pub(crate) on: Option<Vec<RetryOnItem>>,
}

/// `retry.backoff:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryBackoff {
    pub(crate) initial: Option<ConfigDuration>,
    pub(crate) max: Option<ConfigDuration>,
    pub(crate) jitter: Option<String>,
}

/// `retry.budget:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryBudget {
    pub(crate) percent: Option<f64>,
    pub(crate) min_per_second: Option<f64>,
}

/// One entry of `retry.on`: a failure kind by name, or a JSON-RPC code.
#[derive(Debug)]
pub(crate) enum RetryOnItem {
    Kind(String),
    Code(i64),
}

impl<'de> Deserialize<'de> for RetryOnItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl serde::de::Visitor<'_> for ItemVisitor {
            type Value = RetryOnItem;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport, timeout, unavailable or a JSON-RPC error code")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RetryOnItem, E> {
                Ok(RetryOnItem::Kind(v.to_owned()))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RetryOnItem, E> {
                Ok(RetryOnItem::Code(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RetryOnItem, E> {
                i64::try_from(v)
                    .map(RetryOnItem::Code)
                    .map_err(|_| E::custom("error code out of range"))
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}

/// `safe_to_repeat:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSafeToRepeat {
    pub(crate) tools: Vec<String>,
}

/// `transport:`, spelled exactly `stdio` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportKind {
    Stdio,
    Http,
}

impl TransportKind {
    /// As written in the config.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TransportKind::Stdio => "stdio",
            TransportKind::Http => "http",
        }
    }
}

impl<'de> Deserialize<'de> for TransportKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;

        impl Visitor<'_> for KindVisitor {
            type Value = TransportKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"stdio\" or \"http\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TransportKind, E> {
                match v {
                    "stdio" => Ok(TransportKind::Stdio),
                    "http" => Ok(TransportKind::Http),
                    other => Err(E::custom(format!(
                        "unknown transport {other:?}; expected \"stdio\" or \"http\""
                    ))),
                }
            }
        }

        deserializer.deserialize_str(KindVisitor)
    }
}

/// `listen:`, an `IP:PORT` socket address (host names are not resolved).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Listen(pub(crate) SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListenVisitor;

        impl Visitor<'_> for ListenVisitor {
            type Value = Listen;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address such as \"127.0.0.1:8080\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                v.parse().map(Listen).map_err(|_| {
                    E::custom(format!(
                        "invalid listen address {v:?}: expected IP:PORT such as \"127.0.0.1:8080\" \
                         or \"[::1]:8080\" (host names are not resolved)"
                    ))
                })
            }
        }

        deserializer.deserialize_str(ListenVisitor)
    }
}
