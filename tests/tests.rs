//! The proxy's integration-test binary: the proxy end to end, against real
//! MCP peers (a third-party stdio server and tower-mcp HTTP backends) on
//! 127.0.0.1. The harness runs scenarios against the proxy in its own binary,
//! `tests/harness.rs`.
//!
//! Run with `npm ci --prefix tests/interop && python3 -m venv
//! tests/interop/.venv && tests/interop/.venv/bin/pip install -q -r
//! tests/interop/requirements.txt && cargo test`: the npm step installs the
//! third-party server the tests spawn, the venv the official MCP Python SDK
//! that `python_client` drives the proxy with.

// Shared by modules that each use a part of it; an unused helper is not a
// reason to fail a build.
#[allow(dead_code, unused_imports)]
mod support;

// Baselines: the real peers talked to directly, without the proxy.
mod direct;
// The proxy forwards faithfully: same answers, errors and progress as direct.
mod forwarding;
// /mcp keeps the streamable-HTTP rules and survives malformed input.
mod endpoint;
// Backends come and go (killed, stopped, late, garbage); the proxy stays.
mod recovery;
// Graceful shutdown (drain, cancel, 503, children stopped) and ops endpoints.
mod lifecycle;
// The mcp-proxy binary: check, --help, serve until SIGTERM.
mod cli;
// Hot reload: a new config applied as a diff, in process and through the binary.
mod reload;
// The MCP admin tools: proxy/backends and proxy/errors, under authorization.
mod admin_tools;
// Per-backend timeouts and retries, configured as an operator writes them.
mod resilience;
// Replica pools: load balancing, retries and hedges across replicas, ejection.
mod pool;
// Canary, mirror and failover across backends.
mod traffic;
// Filters, aliases, arguments, size limit, cache and coalescing.
mod shaping;
// Bounds: default call timeout, sessions, requests in flight, idle expiry.
mod bounds;
// Authentication (bearer), roles per tool, sessions per subject, admin token.
mod auth;
// JWTs against a real JWKS server: claims, rotation, outage.
mod jwt;
// The official MCP Python SDK's client through the proxy, with bearer auth,
// and answering sampling and elicitation.
mod python_client;
// Generated hostile input at the front door: always a well-formed answer.
mod hostile;
// W3C trace context from the client through the proxy's spans to HTTP and
// stdio backends, across retries and hedges; the spans exported over OTLP.
mod tracing;
// A backend's requests to the client (sampling, elicitation, roots) passed on.
mod server_requests;
// The MCP conformance suite's server scenarios, through the proxy.
mod conformance;
