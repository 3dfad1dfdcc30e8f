//! Micro-benchmarks of the proxy's hot path, part by part, so that a
//! regression in the end-to-end figures (`forwarding`) shows where it is.
//! Each runs the proxy's own functions, reached through
//! `mcp_proxy::internals` (the `bench-internals` feature, which the root
//! package's dev-dependency enables):
//!
//! - `hot_path/parse`: a client's `tools/call` POST body parsed,
//!   classified, split into id, method and params, and its method parsed
//!   (`front::mcp::post`, `front::mcp::request`, `Gateway::handle`);
//! - `hot_path/remap`: the upstream's id remap: the proxy's own id out
//!   (`Pending::start`), the backend's answer routed back by it
//!   (`inbound::route`, `InFlight::wait`), the client's id back in
//!   (`jsonrpc::response`);
//! - `hot_path/route`: `backend/tool` resolved into a call
//!   (`Gateway::resolve`: backend by name, the tool's own name, its
//!   shaped arguments and safety) by a running proxy whose 20 backends
//!   have listed 50 tools each;
//! - `hot_path/session_lookup`: `SessionStore::get` among 10,000 sessions;
//! - `hot_path/session_admit_release`: a request admitted to its session
//!   (`SessionStore::admit`) and released (its guard dropped);
//! - `hot_path/pass_10k`: a 10 KiB tool result from the backend's JSON
//!   body bytes to the client's response body bytes: parsed (as
//!   `upstream/http/answers.rs` does), routed to its waiter, wrapped under
//!   the client's id and serialized by axum's `Json`, as the front answers.
//!   Not in it: what `Link::read_answer` does beside parsing (it is
//!   private to the HTTP transport and needs a live response body).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::IntoResponse;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::future::AbortHandle;
use mcp_harness::fake::{FakeConfig, HttpFake};
use mcp_harness::scenario::{Behaviour, FakeSpec, FakeTransport, ToolSpec};
use mcp_proxy::config::{BackendConfig, Config, ProxySettings, TransportConfig};
use mcp_proxy::internals::{self, RequestTable, Router, Sessions};
use serde_json::{Value, json};

/// The allocator of the mcp-proxy binary, so each part runs as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BACKENDS: usize = 20;
const TOOLS: usize = 50;
const SESSIONS: usize = 10_000;
/// The tool result's size, as the backend's JSON body.
const RESULT_BYTES: usize = 10 * 1024;

/// Short runs, so that the whole file takes about 20 s.
fn configured(
    c: &mut Criterion,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("hot_path");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

/// A client's `tools/call` body, as a typical client sends it.
fn client_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": 42,
        "method": "tools/call",
        "params": {
            "name": "b07/tool_23",
            "arguments": { "path": "/srv/data/reports/2025", "recursive": true, "limit": 100 },
            "_meta": { "progressToken": "client-token-42" }
        }
    }))
    .expect("serializable")
}

/// Parse and classify a client's body as the front does, then take it
/// apart and parse its method as the front and the gateway do.
fn parse(body: &[u8]) -> (Value, Option<Value>) {
    let message: Value = serde_json::from_slice(body).expect("JSON");
    assert!(!message.is_array() && internals::is_request(&message));
    let Value::Object(mut message) = message else {
        unreachable!("a request is an object");
    };
    let id = message.remove("id").unwrap_or(Value::Null);
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        _ => String::new(),
    };
    assert!(method != "initialize" && internals::knows_method(&method));
    (id, message.remove("params"))
}

/// A tool result of about `RESULT_BYTES` as a backend's JSON body, with
/// the id it answers left to `backend_body`: text with quotes and
/// newlines to escape (7 bytes more a line in JSON), as JSON in text is.
fn backend_result() -> Vec<u8> {
    let line = "{\"path\": \"/srv/data/reports/2025/file-0000.csv\", \"size\": 123456}\n";
    let text = line.repeat(RESULT_BYTES / (line.len() + 7));
    serde_json::to_vec(&json!({ "content": [{ "type": "text", "text": text }], "isError": false }))
        .expect("serializable")
}

/// The backend's JSON body answering `id` with `result`.
fn backend_body(id: u64, result: &[u8]) -> Vec<u8> {
    let mut body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#).into_bytes();
    body.extend_from_slice(result);
    body.push(b'}');
    body
}

fn parse_and_remap(c: &mut Criterion) {
    let mut group = configured(c);
    let body = client_body();
    group.bench_function("parse", |b| b.iter(|| parse(black_box(&body))));

    // One connection's table; each iteration is one request through it.
    // Its ids count from 1, so the answer the backend will send is built
    // before the timing (a backend's work, not the proxy's).
    let table = RequestTable::new("bench");
    let next_id = AtomicU64::new(1);
    let (client_id, params) = parse(&body);
    group.bench_function("remap", |b| {
        b.iter_batched(
            || {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let answer = json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "ok"}]}});
                (id, params.clone(), answer)
            },
            |(id, params, answer)| {
                let (message, waiter) = table.start("tools/call", params).expect("open table");
                assert_eq!(waiter.id(), id);
                black_box(message);
                table.route(answer);
                let result = waiter.answer().now_or_never().expect("answered");
                internals::response(client_id.clone(), result.expect("a result"))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A running proxy with `BACKENDS` backends (`b00`..), all sessions with
/// one fake that lists `TOOLS` tools (`tool_00`..; every third
/// read-only), once every backend has listed.
async fn proxy_with_catalog() -> (mcp_proxy::server::RunningProxy, HttpFake) {
    let tools = (0..TOOLS)
        .map(|n| ToolSpec {
            name: format!("tool_{n:02}"),
            read_only: Some(n.is_multiple_of(3)),
            idempotent: None,
            behaviour: Behaviour::default(),
        })
        .collect();
    let spec = FakeSpec {
        name: "catalog".into(),
        transport: FakeTransport::Http { port: 0 },
        tools,
        startup: None,
    };
    let fake = HttpFake::start(FakeConfig::unscripted(spec, 1))
        .await
        .expect("fake starts");
    let backends = (0..BACKENDS)
        .map(|n| {
            let transport = TransportConfig::Http {
                url: fake.url(),
                headers: Default::default(),
            };
            BackendConfig::new(format!("b{n:02}"), transport)
        })
        .collect();
    let config = Config {
        proxy: ProxySettings {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            ..ProxySettings::default()
        },
        backends,
        ..Config::default()
    };
    let proxy = mcp_proxy::server::start(config)
        .await
        .expect("proxy starts");
    for _ in 0..400 {
        let statuses = proxy.backend_status();
        if statuses.iter().all(|s| s.listed && s.tools == TOOLS) {
            return (proxy, fake);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the backends did not list within 10 s");
}

fn route(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (proxy, fake) = runtime.block_on(proxy_with_catalog());
    let router = Router::of(&proxy).expect("room for a session");
    let separator = ProxySettings::default().separator;
    // Every backend's every tool, in an order that jumps between backends.
    let names: Vec<(usize, String, String)> = (0..BACKENDS * TOOLS)
        .map(|n| {
            let (backend, tool) = (n % BACKENDS, (n * 7) % TOOLS);
            let own = format!("tool_{tool:02}");
            (backend, format!("b{backend:02}{separator}{own}"), own)
        })
        .collect();
    let params =
        |name: &str| json!({"name": name, "arguments": {"path": "/srv/data", "limit": 100}});
    for (backend, name, own) in &names {
        let call = router.tools_call(params(name)).expect("known tool");
        assert_eq!((call.backend(), call.target()), (*backend, own.as_str()));
        let tool: usize = own["tool_".len()..].parse().expect("numbered");
        assert_eq!(
            call.repeatable(),
            tool.is_multiple_of(3),
            "safety from the listing"
        );
    }

    let mut group = configured(c);
    let mut next = 0;
    group.bench_function("route", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % names.len();
                params(&names[next].1)
            },
            |params| router.tools_call(params).expect("known tool"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    drop(router);
    runtime.block_on(async {
        proxy.shutdown().await;
        fake.shutdown().await;
    });
}

fn sessions(c: &mut Criterion) {
    let store = Sessions::default();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|_| store.create().expect("room within max_sessions"))
        .collect();
    let ids: Vec<String> = sessions.iter().map(|s| s.id().to_owned()).collect();

    let mut group = configured(c);
    let mut next = 0;
    group.bench_function("session_lookup", |b| {
        b.iter(|| {
            next = (next + 1) % ids.len();
            store.get(black_box(&ids[next])).expect("live session")
        })
    });
    let mut request = 0u64;
    group.bench_function("session_admit_release", |b| {
        b.iter_batched(
            || {
                request += 1;
                let session = &sessions[request as usize % SESSIONS];
                (session, Value::from(request), AbortHandle::new_pair().0)
            },
            |(session, id, abort)| drop(store.admit(session, &id, abort).expect("admitted")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn pass_10k(c: &mut Criterion) {
    let table = RequestTable::new("bench");
    let client_id = Value::from(42);
    let result = backend_result();
    let bytes = backend_body(1, &result).len();
    let mut group = configured(c);
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("pass_10k", |b| {
        b.iter_batched(
            || {
                let (_, waiter) = table.start("tools/call", None).expect("open table");
                let body = backend_body(waiter.id(), &result);
                (waiter, body)
            },
            |(waiter, body)| {
                let message: Value = serde_json::from_slice(&body).expect("JSON");
                table.route(message);
                let result = waiter.answer().now_or_never().expect("answered");
                let response = internals::response(client_id.clone(), result.expect("a result"));
                let body = axum::Json(response).into_response().into_body();
                axum::body::to_bytes(body, usize::MAX)
                    .now_or_never()
                    .expect("a full body")
                    .expect("serialized")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Figures only: plotting would take longer than measuring.
    config = Criterion::default().without_plots();
    targets = parse_and_remap, route, sessions, pass_10k
}
criterion_main!(benches);
