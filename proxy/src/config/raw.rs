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
    // http
    pub(crate) url: Option<String>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
    // both
    pub(crate) init_timeout: Option<ConfigDuration>,
    pub(crate) reconnect: Option<RawReconnect>,
}

impl RawBackend {
    /// The keys that were written and belong only to the other transport.
    pub(crate) fn foreign_keys(&self) -> Vec<&'static str> {
        let present = |set: bool, key: &'static str| set.then_some(key);
        match self.transport {
            TransportKind::Stdio => [
                present(self.url.is_some(), "url"),
                present(self.headers.is_some(), "headers"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            TransportKind::Http => [
                present(self.command.is_some(), "command"),
                present(self.args.is_some(), "args"),
                present(self.env.is_some(), "env"),
                present(self.cwd.is_some(), "cwd"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }
}

/// `reconnect:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconnect {
    pub(crate) initial: Option<ConfigDuration>,
    pub(crate) max: Option<ConfigDuration>,
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
