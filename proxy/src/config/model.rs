//! The validated configuration: what `mcp-proxy` runs from.
//!
//! These types are the *result* of loading; they hold only values that have
//! already passed validation (durations parsed, `${VAR}` expanded, names
//! unique, transport keys consistent). Loading lives in the sibling modules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Settings of the proxy itself (`proxy:` table).
    pub proxy: ProxySettings,
    /// The MCP servers behind the proxy, in file order (`backends:` list).
    pub backends: Vec<BackendConfig>,
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
    /// `session_idle_timeout`: a client session unused this long is forgotten. Default 30m.
    pub session_idle_timeout: Duration,
}

/// One entry of `backends:`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// `name`: unique, non-empty, must not contain the separator.
    pub name: String,
    /// `transport` with its own keys.
    pub transport: TransportConfig,
    /// `init_timeout`: how long connecting plus the `initialize` handshake may take. Default 10s.
    pub init_timeout: Duration,
    /// `reconnect`: backoff between attempts to (re)start or reconnect the backend.
    pub reconnect: ReconnectPolicy,
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
    },
    /// A streamable-HTTP MCP server.
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
        }
    }
}
