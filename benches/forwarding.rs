//! End-to-end cost of the proxy on the hot path: `tools/call echo` sent
//! directly to a Rust (tower-mcp) streamable-HTTP backend, versus the same
//! call through `mcp-proxy`, at 1, 8 and 32 concurrent client sessions.
//!
//! Everything runs in one process on one multi-threaded tokio runtime: the
//! clients, the proxy and the backend share the machine's cores, as they
//! would on one host. Throughput is reported per call; the ratio
//! proxy/direct at 32 sessions is the figure the project is held to (goal:
//! at least 0.70).

#[allow(dead_code, missing_docs)]
#[path = "../tests/support/backend.rs"]
mod backend;
#[allow(dead_code, missing_docs)]
#[path = "../tests/support/client.rs"]
mod client;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_proxy::config::{BackendConfig, Config, ProxySettings, TransportConfig};
use serde_json::json;

use backend::TestBackend;
use client::RawClient;

/// The allocator of the mcp-proxy binary, so the proxy here runs as it
/// ships (the client and backend in this process use it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SESSIONS: [usize; 3] = [1, 8, 32];

/// Open `count` initialized client sessions to `url`.
async fn sessions(url: &str, count: usize) -> Vec<RawClient> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let client = RawClient::new(url);
        client.initialize().await;
        clients.push(client);
    }
    clients
}

const ECHO: &str = "echo";

fn proxy_config(backend_url: String) -> Config {
    Config {
        proxy: ProxySettings {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            ..ProxySettings::default()
        },
        backends: vec![BackendConfig::new(
            "bench",
            TransportConfig::Http {
                url: backend_url,
                headers: Default::default(),
            },
        )],
        ..Config::default()
    }
}

fn forwarding(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let backend = runtime.block_on(TestBackend::start());
    let proxy = runtime.block_on(async {
        let proxy = mcp_proxy::server::start(proxy_config(backend.url()))
            .await
            .expect("proxy starts");
        for _ in 0..200 {
            if proxy
                .backend_status()
                .iter()
                .all(|s| s.state == mcp_proxy::State::Connected)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        proxy
    });

    let mut group = c.benchmark_group("tools_call_echo");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    for count in SESSIONS {
        for (route, url, tool) in [
            ("direct", backend.url(), ECHO.to_owned()),
            ("proxy", proxy.url(), format!("bench/{ECHO}")),
        ] {
            let clients = runtime.block_on(sessions(&url, count));
            group.bench_with_input(BenchmarkId::new(route, count), &count, |b, _| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let clients = &clients;
                    let tool = tool.clone();
                    async move { drive_tool(clients, &tool, iters).await }
                });
            });
        }
    }
    group.finish();
    runtime.block_on(proxy.shutdown());
}

/// Send `total` calls of `tool` spread over the sessions, each session one
/// call at a time (closed loop), and return the wall time.
async fn drive_tool(clients: &[RawClient], tool: &str, total: u64) -> Duration {
    let per_client = total.div_ceil(clients.len() as u64);
    let started = Instant::now();
    let runs = clients.iter().map(|client| async move {
        for _ in 0..per_client {
            let response = client.call_tool(tool, json!({ "message": "hello" })).await;
            assert!(response.get("result").is_some(), "echo failed: {response}");
        }
    });
    futures_util::future::join_all(runs).await;
    // Report time per requested iteration, although per_client rounding may send a few more.
    started
        .elapsed()
        .mul_f64(total as f64 / (per_client * clients.len() as u64) as f64)
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
