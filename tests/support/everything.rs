//! The real third-party MCP server the tests talk to over stdio:
//! `@modelcontextprotocol/server-everything`, pinned in
//! `tests/interop/package.json` and installed by `npm ci --prefix tests/interop`.
//!
//! This module owns finding that install and saying how to run it; it starts
//! nothing itself, so the caller (a test, or the proxy under test) owns the
//! child's lifetime. [`StdioCommand::tokio_command`] gives a command that is
//! killed on drop and leads its own process group, so a test can always clean
//! up after it.
//!
//! What the pinned version (2026.8.31) does, checked by hand and by
//! `tests/direct.rs`:
//! - thirteen tools; `echo {message}` answers `"Echo: <message>"`, `get-sum {a, b}`
//!   adds numbers, `trigger-long-running-operation {duration, steps}` sends
//!   `steps` progress notifications when the call carries a `progressToken`;
//! - bad arguments and an unknown tool are NOT JSON-RPC errors: the answer is a
//!   result with `isError: true` whose text starts `MCP error -32602: ...`;
//! - an unknown method is a JSON-RPC error `-32601`; a line that is not JSON
//!   gets no answer at all;
//! - it sends `notifications/tools/list_changed` right after `initialize`;
//! - a client that declares `sampling`, `elicitation` (with `url`) and
//!   `roots` at `initialize` (as the proxy does) also gets
//!   `trigger-sampling-request`, `trigger-elicitation-request`,
//!   `trigger-url-elicitation` and `get-roots-list`, which send that request
//!   to the client while they run (over stdio the SDK ties it to the call
//!   only inside the server); 350 ms after `initialize` it asks `roots/list`
//!   once, and only keeps a successful answer (`tests/server_requests.rs`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// The package's name under `node_modules`.
const PACKAGE: &str = "@modelcontextprotocol/server-everything";

/// How to start a stdio MCP server: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioCommand {
    /// The program to run (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl StdioCommand {
    /// A command with piped stdin and stdout, stderr discarded (it is free-form
    /// logging, not a signal), killed when dropped, and leading its own process
    /// group so the whole group can be signalled on shutdown.
    pub fn tokio_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0);
        cmd
    }
}

/// `tests/interop`, where the npm set-up lives.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// The installed server's entry point: the file its `package.json` `bin` runs.
///
/// # Panics
///
/// When the package is not installed, with the command that installs it.
pub fn entry_point() -> PathBuf {
    let package_dir = interop_dir().join("node_modules").join(PACKAGE);
    let manifest_path = package_dir.join("package.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap_or_else(|error| {
        panic!(
            "{PACKAGE} is not installed ({}: {error}); run `npm ci --prefix tests/interop` \
             at the repository root first",
            manifest_path.display()
        )
    });
    let manifest: serde_json::Value = serde_json::from_str(&manifest)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", manifest_path.display()));
    // `bin` is either a path or a map from command name to path.
    let bin = match &manifest["bin"] {
        serde_json::Value::String(path) => Some(path.as_str()),
        serde_json::Value::Object(map) => map.values().find_map(|v| v.as_str()),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{} has no `bin` entry", manifest_path.display()));
    let entry = package_dir.join(bin);
    assert!(
        entry.is_file(),
        "{PACKAGE}'s entry point {} is missing; run `npm ci --prefix tests/interop`",
        entry.display()
    );
    entry
}

/// `node <entry point> stdio`: server-everything as a stdio MCP server.
pub fn server_everything() -> StdioCommand {
    StdioCommand {
        program: "node".to_string(),
        args: vec![entry_point().display().to_string(), "stdio".to_string()],
    }
}
