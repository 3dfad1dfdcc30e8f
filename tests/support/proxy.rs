//! Running `mcp-proxy` in-process for a test: config builders for the three
//! kinds of backend the tests use, and a start that waits until every
//! backend that should be up is connected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mcp_proxy::State;
use mcp_proxy::config::{BackendConfig, Config, ProxySettings, ReconnectPolicy, TransportConfig};
use mcp_proxy::server::RunningProxy;

use super::{server_everything, wait_until};

/// Reconnect quickly in tests: failures are provoked on purpose.
pub const FAST_RECONNECT: ReconnectPolicy = ReconnectPolicy {
    initial: Duration::from_millis(50),
    max: Duration::from_millis(500),
};

/// A backend entry with test defaults.
pub fn backend(name: &str, transport: TransportConfig) -> BackendConfig {
    BackendConfig {
        init_timeout: Duration::from_secs(20),
        reconnect: FAST_RECONNECT,
        ..BackendConfig::new(name, transport)
    }
}

/// A streamable-HTTP backend at `url`.
pub fn http_backend(name: &str, url: &str) -> BackendConfig {
    backend(
        name,
        TransportConfig::Http {
            url: url.to_owned(),
            headers: BTreeMap::new(),
        },
    )
}

/// The third-party `server-everything` over stdio.
pub fn everything_backend(name: &str) -> BackendConfig {
    let command = server_everything();
    backend(
        name,
        TransportConfig::Stdio {
            command: command.program,
            args: command.args,
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        },
    )
}

/// The scripted Python stdio server in `tests/fixtures`, with extra arguments.
pub fn scripted_backend(name: &str, extra_args: &[&str]) -> BackendConfig {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripted_server.py");
    let mut args = vec![script.display().to_string()];
    args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
    backend(
        name,
        TransportConfig::Stdio {
            command: "python3".into(),
            args,
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        },
    )
}

/// A config on an ephemeral loopback port.
pub fn config(backends: Vec<BackendConfig>) -> Config {
    Config {
        proxy: ProxySettings {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            ..ProxySettings::default()
        },
        backends,
        ..Config::default()
    }
}

/// Start the proxy and wait until every backend is connected.
pub async fn start(backends: Vec<BackendConfig>) -> RunningProxy {
    start_config(config(backends)).await
}

/// Start the proxy from a whole config and wait until every backend is connected.
pub async fn start_config(config: Config) -> RunningProxy {
    let proxy = mcp_proxy::server::start(config)
        .await
        .expect("the proxy starts");
    wait_connected(&proxy).await;
    proxy
}

/// Start the proxy from YAML as an operator writes it (through the proxy's
/// own loader) and wait until every backend is connected.
pub async fn start_yaml(text: &str) -> RunningProxy {
    start_config(load_yaml(text)).await
}

/// A config from YAML as an operator writes it, through the proxy's own
/// loader (no environment variables, paths relative to the current folder).
///
/// # Panics
///
/// When the loader refuses it, with its error and the text.
pub fn load_yaml(text: &str) -> Config {
    mcp_proxy::config::load_str(
        text,
        mcp_proxy::config::Format::Yaml,
        "test.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A raw client with an initialized session on `proxy`.
pub async fn client(proxy: &RunningProxy) -> super::RawClient {
    let client = super::RawClient::new(proxy.url());
    client.initialize().await;
    client
}

/// Wait until every backend of the proxy is connected.
pub async fn wait_connected(proxy: &RunningProxy) {
    wait_until("every backend connected", || async {
        proxy
            .backend_status()
            .iter()
            .all(|status| status.state == State::Connected)
    })
    .await;
}

/// The status of the named backend.
pub fn status(proxy: &RunningProxy, name: &str) -> mcp_proxy::Status {
    proxy
        .backend_status()
        .into_iter()
        .find(|status| status.name == name)
        .unwrap_or_else(|| panic!("no backend named {name}"))
}

// ---- Helpers for the recovery, lifecycle and CLI tests (appended). ----

/// `GET http://<addr><path>` on the proxy's operations endpoints: the HTTP
/// status and the body as JSON (`Value::Null` when it is not JSON).
///
/// # Panics
///
/// When the HTTP exchange fails.
pub async fn ops_get_json(
    addr: std::net::SocketAddr,
    path: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let (status, body) = ops_get_text(addr, path).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// `GET http://<addr><path>`: the HTTP status and the body as text.
///
/// # Panics
///
/// When the HTTP exchange fails.
pub async fn ops_get_text(addr: std::net::SocketAddr, path: &str) -> (reqwest::StatusCode, String) {
    let url = format!("http://{addr}{path}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client builds");
    let response = client
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let status = response.status();
    let body = response
        .text()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: reading the body: {error}"));
    (status, body)
}

/// The entry of `/admin/backends` for the backend `name`, as JSON.
///
/// # Panics
///
/// When there is no such entry.
pub async fn admin_backend(addr: std::net::SocketAddr, name: &str) -> serde_json::Value {
    let (status, body) = ops_get_json(addr, "/admin/backends").await;
    assert_eq!(status, reqwest::StatusCode::OK, "/admin/backends: {body}");
    body["backends"]
        .as_array()
        .and_then(|backends| backends.iter().find(|b| b["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no backend {name:?} in /admin/backends: {body}"))
}

/// Whether the process `pid` is gone: no `/proc/<pid>` at all, or only a
/// zombie waiting to be reaped (it runs no code any more).
pub fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name, which may itself
        // contain spaces or parentheses: take the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// A loopback address held for a server that is to be started later: bound,
/// so no other socket (a parallel test's `bind(0)` included) is given its
/// port, but not listening, so a connection to it is refused as by a server
/// that is down.
pub struct ReservedAddr {
    socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl ReservedAddr {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Frees the port for the server about to bind it.
    pub fn release(self) -> std::net::SocketAddr {
        drop(self.socket);
        self.addr
    }
}

/// Reserves a free loopback port; see [`ReservedAddr`].
pub fn reserve_addr() -> ReservedAddr {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("a bound socket has an address");
    ReservedAddr { socket, addr }
}

/// `mcp-proxy serve --config <path> [extra]` as a child the test owns:
/// killed on drop, its stderr collected in the background (the log, for
/// failure messages and assertions).
pub fn spawn_serve(
    path: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(super::bins::proxy_binary())
        .args(["serve", "--log", "info", "--config"])
        .arg(path)
        .args(extra)
        .env_remove("RUST_LOG")
        .current_dir(super::bins::root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mcp-proxy serve");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let log = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    (child, log)
}

/// Wait until the proxy at `addr` answers `/readyz` with 200 (refused
/// until the binary listens: a probe error is "not yet").
pub async fn wait_ready(addr: std::net::SocketAddr) {
    super::wait_until("/readyz to answer 200", || async {
        let url = format!("http://{addr}/readyz");
        let client = reqwest::Client::builder().no_proxy().build();
        match client {
            Ok(client) => client
                .get(&url)
                .send()
                .await
                .is_ok_and(|response| response.status() == reqwest::StatusCode::OK),
            Err(_) => false,
        }
    })
    .await;
}

/// The tool names `client`'s session lists, in the proxy's order.
///
/// # Panics
///
/// When the answer has no tool list.
pub async fn tool_names(client: &super::RawClient) -> Vec<String> {
    let listed = client.request("tools/list", serde_json::json!({})).await;
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
        .collect()
}
