//! The MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/interop/package.json`) run against the proxy, with the real
//! server-everything behind it as its only backend that serves resources.
//!
//! A scenario passes through the proxy when it passes against the server
//! directly: the proxy must not answer in the backend's place. The suite's
//! `resources-subscribe` and `resources-unsubscribe` subscribe to
//! `test://watched-resource`, a URI server-everything accepts without listing
//! it; the proxy must route it to the one backend that serves resources.
//!
//! The suite runs offline once installed (`npm ci --prefix tests/interop`):
//! it only talks to the URL it is given. It writes its results under
//! `./results`, so it runs in a temporary folder. It is built for Node 22;
//! `tests/interop/node20-compat.mjs` lets it start on Node 20 too.

use std::time::Duration;

use crate::support::bins::{TempDir, root};
use crate::support::output_within;
use crate::support::proxy::{everything_backend, start};

/// How long one scenario may take: generous, it makes a handful of calls.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// The suite's command-line entry point.
fn suite() -> std::path::PathBuf {
    let entry =
        root().join("tests/interop/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        entry.is_file(),
        "{} is missing; run `npm ci --prefix tests/interop` at the repository root",
        entry.display()
    );
    entry
}

/// Run one server scenario of the suite against `url`: whether it passed,
/// and what it printed.
async fn run_scenario(url: &str, scenario: &str) -> (bool, String) {
    let dir = TempDir::new();
    let mut command = tokio::process::Command::new("node");
    command
        // The suite is built for Node 22; see the file for what it bridges.
        .arg("--import")
        .arg(root().join("tests/interop/node20-compat.mjs"))
        .arg(suite())
        .args(["server", "--url", url, "--scenario", scenario])
        .current_dir(&dir.0);
    let output = output_within(command, RUN_BOUND, "the conformance suite").await;
    let printed = format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Each scenario, through the proxy: exit code 0 and no failed check.
async fn passes_through_the_proxy(scenario: &str) {
    let proxy = start(vec![everything_backend("everything")]).await;
    let (passed, printed) = run_scenario(&proxy.url(), scenario).await;
    assert!(passed, "{scenario} fails through the proxy:\n{printed}");
    assert!(
        !printed.contains("FAILURE"),
        "{scenario} reports a failure:\n{printed}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn resources_subscribe_passes_through_the_proxy() {
    passes_through_the_proxy("resources-subscribe").await;
}

#[tokio::test]
async fn resources_unsubscribe_passes_through_the_proxy() {
    passes_through_the_proxy("resources-unsubscribe").await;
}
