//! The `mcp-proxy` binary as an operator runs it.
//!
//! `check` accepts the shipped example configs (YAML and TOML) and prints a
//! summary, and rejects bad files with exit 1 and a `file:line: key: message`
//! error; `--help` documents every flag; `serve` starts from a config file,
//! serves MCP and the ops endpoints, and on SIGTERM exits 0 having stopped its
//! stdio children; `serve` with a bad config exits 1 without serving.
//!
//! The root package cannot use `CARGO_BIN_EXE_mcp-proxy` (the binary belongs
//! to another package), and `cargo test` does not build another package's
//! binary unless that package has integration tests of its own. So the first
//! test that needs the binary runs `cargo build -p mcp-proxy --bin mcp-proxy`
//! (a no-op when it is fresh) and uses the executable cargo reports — never a
//! stale one left over from an older build.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::proxy::{admin_backend, free_addr, ops_get_json, pid_gone};
use crate::support::{RawClient, wait_until};

/// How long the binary may take to exit after SIGTERM (or after failing).
const EXIT_BOUND: Duration = Duration::from_secs(30);

/// How long building the binary may take (a cold build of the proxy, maybe
/// waiting for another cargo to release the build directory).
const BUILD_BOUND: Duration = Duration::from_secs(20 * 60);

/// The workspace root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `mcp-proxy` executable, built (or found fresh) once per test run.
///
/// # Panics
///
/// When cargo cannot build it, with cargo's output.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_binary)
}

fn build_binary() -> PathBuf {
    // Cargo tells the processes it runs which cargo it is.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(root())
        .args([
            "build",
            "-p",
            "mcp-proxy",
            "--bin",
            "mcp-proxy",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The test binary lives in <target>/<profile>/deps; build the same profile
    // (`dev` and `test` share the `debug` folder; other profiles are named
    // after their folder).
    if let Some(profile) = test_profile_dir().as_deref().and_then(Path::file_name)
        && profile != "debug"
    {
        command.arg("--profile").arg(profile);
    }
    let output = run_bounded(command, BUILD_BOUND);
    assert!(
        output.status.success(),
        "`cargo build -p mcp-proxy --bin mcp-proxy` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let executable = output
        .stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "mcp-proxy"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    let executable = executable
        .or_else(|| test_profile_dir().map(|dir| dir.join("mcp-proxy")))
        .unwrap_or_else(|| panic!("cargo built mcp-proxy but did not say where"));
    assert!(
        executable.is_file(),
        "the mcp-proxy binary is missing at {}; build it with `cargo build -p mcp-proxy`",
        executable.display()
    );
    executable
}

/// Run `command` (stdout and stderr piped) to completion, killing it and
/// panicking if it takes longer than `bound` (a cargo waiting forever on a
/// lock held elsewhere must not hang the test run).
fn run_bounded(mut command: Command, bound: Duration) -> Output {
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    // Read both pipes on threads of their own, so a full pipe never stalls it.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut bytes);
        bytes
    });
    let poll = Duration::from_millis(100);
    let mut status = None;
    for _ in 0..=bound.as_millis() / poll.as_millis() {
        status = child.try_wait().expect("wait for the child");
        if status.is_some() {
            break;
        }
        std::thread::sleep(poll);
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not finish within {bound:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `<target>/<profile>`: the parent of the `deps` folder this test runs from.
fn test_profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    (deps.file_name()? == "deps").then(|| deps.parent().map(Path::to_path_buf))?
}

/// A folder of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mcp-proxy-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        Self(path)
    }

    /// Write `contents` to `name` in the folder; return the file's path.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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
        for (name, transport) in [("everything", "stdio"), ("search", "http")] {
            assert!(
                lines.iter().any(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    words.starts_with(&[name, transport])
                }),
                "a line naming {name} and {transport}, in {example}: {summary}"
            );
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

/// `mcp-proxy serve --config <path>` as a child the test owns: killed on
/// drop, stderr collected in the background for failure messages.
fn spawn_serve(path: &Path) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut child = tokio::process::Command::new(binary())
        .args(["serve", "--log", "info", "--config"])
        .arg(path)
        .env_remove("RUST_LOG")
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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

#[tokio::test]
async fn serve_runs_until_sigterm_then_exits_0_and_stops_its_children() {
    let dir = TempDir::new();
    let addr = free_addr();
    let path = dir.write("serve.yaml", &serve_config(addr));
    let (mut child, log) = spawn_serve(&path);

    wait_until("/readyz to answer 200", || async {
        // Refused until the binary listens; a probe error is "not yet".
        let url = format!("http://{addr}/readyz");
        let client = reqwest::Client::builder().no_proxy().build();
        match client {
            Ok(client) => client
                .get(&url)
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK),
            Err(_) => false,
        }
    })
    .await;

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
    let addr = free_addr();
    let text = serve_config(addr).replace("command: python3", "comand: python3");
    let path = dir.write("broken.yaml", &text);
    let (mut child, log) = spawn_serve(&path);
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
