//! Tests of the stdio transport, by the part they exercise (`connect`,
//! `reading`, `writing`, `lifecycle`), and what they share: a small MCP
//! server in Python run as a real child, and waiting for its processes to
//! be gone.

mod connect;
mod lifecycle;
mod reading;
mod writing;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;

/// A small MCP server in Python, its behaviour picked by argv[1] and by
/// the method called. Real process, real pipes.
const FAKE_SERVER: &str = r#"
import json, os, signal, subprocess, sys, time
mode = sys.argv[1]
out = sys.stdout.buffer
def send(message):
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()
def raw(data):
    out.write(data)
    out.flush()
def result(mid, value):
    send({"jsonrpc": "2.0", "id": mid, "result": value})
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
grandchild = None
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen(["sleep", "300"])
if mode == "exit-at-start":
    sys.exit(4)
sys.stderr.write("fake server starting in mode " + mode + "\n")
sys.stderr.flush()
initialized = False
gathered = []
cancelled = []
answers = {}
asking = None
for line in sys.stdin.buffer:
    message = json.loads(line)
    method = message.get("method")
    mid = message.get("id")
    params = message.get("params") or {}
    if method is None:
        answers[mid] = message
        if asking is not None and len(answers) == 2:
            result(asking, answers)
        continue
    if mid is None:
        if method == "notifications/initialized":
            initialized = True
        elif method == "notifications/cancelled":
            cancelled.append(params)
        continue
    if method == "initialize":
        if mode == "silent":
            continue
        if mode == "init-error":
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32099, "message": "not today", "data": [1]}})
            continue
        if mode == "exit-in-init":
            sys.exit(5)
        version = "1999-01-01" if mode == "old-version" else params["protocolVersion"]
        result(mid, {"protocolVersion": version, "capabilities": {"tools": {}},
                     "serverInfo": {"name": "fake", "version": "1.0"}, "sawParams": params})
    elif method == "echo":
        result(mid, {"params": params, "initialized": initialized})
    elif method == "gather":
        gathered.append(message)
        if len(gathered) == params["n"]:
            for held in reversed(gathered):
                result(held["id"], {"tag": held["params"]["tag"]})
            gathered = []
    elif method == "fail":
        send({"jsonrpc": "2.0", "id": mid,
              "error": {"code": -32042, "message": "nope", "data": {"why": ["because"], "n": 1.5}}})
    elif method == "progress":
        token = params["_meta"]["progressToken"]
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": token, "progress": 1, "total": 2, "message": "half"}})
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": "never-issued", "progress": 1}})
        result(mid, {"sawToken": token})
    elif method == "garbage":
        raw(b"this is not json\n")
        raw(b"\xff\xfe{\"jsonrpc\": \"2.0\"}\n")
        raw(b"x" * (17 * 1024 * 1024) + b"\n")
        raw(b"\n")
        raw(b"[1, 2]\n")
        raw(b"\"just a string\"\n")
        send({"jsonrpc": "2.0", "id": 999999, "result": {}})
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
        send([{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "batched"}},
              {"jsonrpc": "2.0", "id": mid, "result": {"survived": True}}])
    elif method == "ask":
        asking = mid
        answers = {}
        send({"jsonrpc": "2.0", "id": "s1", "method": "ping"})
        send({"jsonrpc": "2.0", "id": "s2", "method": "roots/list"})
    elif method == "notify":
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        result(mid, {})
    elif method == "env":
        result(mid, {"x": os.environ.get("MCP_TEST_X"), "cwd": os.getcwd()})
    elif method == "pids":
        result(mid, {"pids": [os.getpid()] + ([grandchild.pid] if grandchild else [])})
    elif method == "cancelled":
        result(mid, {"cancelled": cancelled})
    elif method == "exit":
        sys.exit(3)
    elif method == "hang":
        pass
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown method"}})
if mode == "stubborn":
    while True:
        time.sleep(1)
"#;

/// Generous bound on anything a test waits for: tests assert outcomes,
/// not speed.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("test timed out")
}

fn fake(mode: &str, env: &[(&str, &str)]) -> TransportConfig {
    TransportConfig::Stdio {
        command: "python3".into(),
        args: vec!["-c".into(), FAKE_SERVER.into(), mode.into()],
        env: env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        cwd: None,
        inherit_env: false,
    }
}

fn settings() -> ConnectSettings {
    ConnectSettings {
        platform: crate::platform::Platform::os(),
        backend: "fake".into(),
        client_name: "mcp-proxy-test".into(),
        client_version: "9.9.9".into(),
        init_timeout: Duration::from_secs(20),
    }
}

async fn start(mode: &str) -> (StdioConnection, Value, UnboundedReceiver<Value>) {
    let (events, received) = mpsc::unbounded_channel();
    let (connection, init) = within(StdioConnection::connect(
        &fake(mode, &[]),
        &settings(),
        events,
    ))
    .await
    .unwrap();
    (connection, init, received)
}

fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("mcp-proxy-stdio-{}-{n}-{name}", std::process::id()))
}

/// Gone means: no such process, or a zombie nobody has reaped yet (in a
/// container the init process may not reap orphans).
fn is_gone(pid: u32) -> bool {
    match kill(Pid::from_raw(i32::try_from(pid).unwrap()), None) {
        Err(Errno::ESRCH) => true,
        _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true),
    }
}

async fn wait_gone(pid: u32) {
    within(async {
        while !is_gone(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn pids(connection: &StdioConnection) -> Vec<u32> {
    let result = within(connection.request("pids", None, None))
        .await
        .unwrap();
    result["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pid| u32::try_from(pid.as_u64().unwrap()).unwrap())
        .collect()
}
