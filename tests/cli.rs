//! The `mcp-proxy` binary as an operator runs it.
//!
//! `check` accepts the shipped example configs (YAML and TOML) and prints a
//! summary, and rejects bad files with exit 1 and a `file:line: key: message`
//! error; `--help` documents every flag; `serve` starts from a config file,
//! serves MCP and the ops endpoints, and on SIGTERM exits 0 having stopped its
//! stdio children; `serve` with a bad config exits 1 without serving.
//!
//! The binary is built by `support::bins` (a no-op when it is fresh).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::RawClient;
use crate::support::bins::{TempDir, proxy_binary as binary, root};
use crate::support::proxy::{
    admin_backend, ops_get_json, pid_gone, reserve_addr, spawn_serve, wait_ready,
};

/// How long the binary may take to exit after SIGTERM (or after failing).
const EXIT_BOUND: Duration = Duration::from_secs(30);

/// Run the binary to completion with `args` and extra environment.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stdin(Stdio::null());
    command
        .output()
        .unwrap_or_else(|error| panic!("run mcp-proxy {args:?}: {error}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `check` on `path`, with the example configs' variables set.
fn check(path: &Path) -> Output {
    let path = path.to_str().expect("a UTF-8 path");
    run(
        &["check", "--config", path],
        &[("LOG_LEVEL", "debug"), ("SEARCH_TOKEN", "secret")],
    )
}

#[test]
fn check_accepts_the_example_configs_and_prints_a_summary() {
    for example in ["proxy/examples/proxy.yaml", "proxy/examples/proxy.toml"] {
        let output = check(&root().join(example));
        let summary = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{example}: {summary}{}",
            stderr(&output)
        );
        assert!(summary.contains("valid"), "{example}: {summary}");
        assert!(
            summary.contains("http://127.0.0.1:8080/mcp"),
            "the listen address, in {example}: {summary}"
        );
        let lines: Vec<&str> = summary.lines().collect();
        for (name, transport) in [
            ("everything", "stdio"),
            ("search", "http"),
            ("catalog", "http"),
            ("docs", "http"),
            ("docs-next", "http"),
        ] {
            assert!(
                lines.iter().any(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    words.starts_with(&[name, transport])
                }),
                "a line naming {name} and {transport}, in {example}: {summary}"
            );
        }
        assert!(
            summary.contains("http://127.0.0.1:9101/mcp, http://127.0.0.1:9102/mcp"),
            "the pool's endpoints, in {example}: {summary}"
        );
        assert!(
            summary.contains("2 endpoints, least requests, ejection after 5 failures in a row"),
            "the pool's policies, in {example}: {summary}"
        );
        for role in [
            "canary of docs: 10% of its calls",
            "mirror of docs: 5% of its calls",
            "failover for docs (priority 1)",
        ] {
            assert!(summary.contains(role), "{role}, in {example}: {summary}");
        }
    }
}

#[test]
fn check_rejects_an_unknown_key_with_file_line_and_key_path() {
    let dir = TempDir::new();
    let text = "\
proxy:
  listen: 127.0.0.1:0
backends:
  - name: broken
    transport: stdio
    comand: python3
";
    let path = dir.write("typo.yaml", text);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let expected = format!("{}:6: backends[0]: unknown key \"comand\"", path.display());
    assert!(
        stderr(&output).contains(&expected),
        "{expected:?} in {:?}",
        stderr(&output)
    );
}

#[test]
fn check_rejects_an_unset_variable_naming_it() {
    let dir = TempDir::new();
    let variable = "MCP_PROXY_CLI_TEST_SURELY_UNSET";
    let text = format!(
        "\
backends:
  - name: search
    transport: http
    url: http://127.0.0.1:9/mcp
    headers: {{ Authorization: \"Bearer ${{{variable}}}\" }}
"
    );
    let path = dir.write("unset.yaml", &text);
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .env_remove(variable)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-proxy check");
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains(variable), "names {variable}: {error}");
    assert!(
        error.contains(&path.display().to_string()),
        "names the file: {error}"
    );
}

#[test]
fn check_rejects_a_json_file() {
    let dir = TempDir::new();
    let path = dir.write(
        "proxy.json",
        r#"{"backends": [{"name": "a", "transport": "http", "url": "http://127.0.0.1:9/mcp"}]}"#,
    );
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains("extension"), "{error}");
}

#[test]
fn help_documents_every_subcommand_and_flag() {
    let cases: [(&[&str], &[&str]); 3] = [
        (&["--help"], &["serve", "check", "--help", "--version"]),
        (&["serve", "--help"], &["--config", "--log", "--help"]),
        (&["check", "--help"], &["--config", "--help"]),
    ];
    for (args, mentions) in cases {
        let output = run(args, &[]);
        let help = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        for mention in mentions {
            assert!(
                help.contains(mention),
                "{args:?} mentions {mention}: {help}"
            );
        }
    }
    // `check` has no --log: the help says only what is there.
    let check_help = stdout(&run(&["check", "--help"], &[]));
    assert!(!check_help.contains("--log"), "{check_help}");
}

/// A config serving on `addr` with the scripted stdio backend.
fn serve_config(addr: std::net::SocketAddr) -> String {
    let script = root().join("tests/fixtures/scripted_server.py");
    // A JSON string is a valid YAML scalar, whatever the path contains.
    let script = serde_json::to_string(&script.display().to_string()).expect("a string");
    format!(
        "\
proxy:
  listen: {addr}
  shutdown_timeout: 5s
backends:
  - name: scripted
    transport: stdio
    command: python3
    args: [{script}]
    reconnect: {{ initial: 50ms, max: 500ms }}
"
    )
}

#[tokio::test]
async fn serve_runs_until_sigterm_then_exits_0_and_stops_its_children() {
    let dir = TempDir::new();
    let reserved = reserve_addr();
    let path = dir.write("serve.yaml", &serve_config(reserved.addr()));
    let addr = reserved.release();
    let (mut child, log) = spawn_serve(&path, &[]);

    wait_ready(addr).await;

    let client = RawClient::new(format!("http://{addr}/mcp"));
    client.initialize().await;
    let echo = client
        .call_tool("scripted/echo", json!({ "message": "via the binary" }))
        .await;
    assert_eq!(
        echo["result"]["content"][0]["text"], "via the binary",
        "{echo}"
    );
    let (status, live) = ops_get_json(addr, "/livez").await;
    assert_eq!(status, StatusCode::OK, "{live}");
    let pid = admin_backend(addr, "scripted").await["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .expect("the stdio child's pid in /admin/backends");
    assert!(!pid_gone(pid), "the stdio child {pid} runs");

    let proxy_pid = child.id().expect("the proxy runs");
    let proxy_pid = i32::try_from(proxy_pid).expect("a pid fits in i32");
    kill(Pid::from_raw(proxy_pid), Signal::SIGTERM).expect("SIGTERM the proxy");
    let exit = tokio::time::timeout(EXIT_BOUND, child.wait())
        .await
        .expect("the proxy exits after SIGTERM")
        .expect("wait for the proxy");
    let log = log.await.unwrap_or_default();
    assert_eq!(exit.code(), Some(0), "exit status {exit}; log:\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    // The proxy stopped and reaped its child before exiting; if it had left
    // it running, it would still be there (reparented), so no wait here.
    assert!(pid_gone(pid), "the stdio child {pid} is gone; log:\n{log}");
}

#[tokio::test]
async fn serve_with_an_invalid_config_exits_1_without_listening() {
    let dir = TempDir::new();
    let reserved = reserve_addr();
    let text = serve_config(reserved.addr()).replace("command: python3", "comand: python3");
    let path = dir.write("broken.yaml", &text);
    let addr = reserved.release();
    let (mut child, log) = spawn_serve(&path, &[]);
    let exit = tokio::time::timeout(EXIT_BOUND, child.wait())
        .await
        .expect("serve gives up on a bad config")
        .expect("wait for the proxy");
    let log = log.await.unwrap_or_default();
    assert_eq!(exit.code(), Some(1), "exit status {exit}; log:\n{log}");
    assert!(log.contains("unknown key \"comand\""), "{log}");
    assert!(
        !log.contains("listening"),
        "it never got as far as listening: {log}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens on {addr}"
    );
}

#[test]
fn check_prints_no_secret() {
    let dir = TempDir::new();
    let secret = "s3cr3t-value-123";
    dir.write("reader.token", "file-token-0123456789\n");
    let text = "\
proxy:
  listen: 0.0.0.0:8080
auth:
  resource: https://mcp.example.com/mcp
  bearer:
    tokens:
      - token_file: reader.token
        subject: reader
backends:
  - name: tool
    transport: stdio
    command: server
    args: [\"--key\", \"${API_KEY}\"]
";
    let path = dir.write("secret.yaml", text);
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .env("API_KEY", secret)
        .stdin(Stdio::null())
        .output()
        .expect("run mcp-proxy check");
    let summary = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{summary}{}",
        stderr(&output)
    );
    assert!(summary.contains("server --key [redacted]"), "{summary}");
    assert!(!summary.contains(secret), "{summary}");
    assert!(!summary.contains("file-token-0123456789"), "{summary}");
    assert!(
        summary.contains("auth: 1 bearer token(s) (reader), resource https://mcp.example.com/mcp"),
        "{summary}"
    );
}
