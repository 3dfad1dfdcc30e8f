//! mcp-proxy: a resilient MCP gateway.
//!
//! Many MCP servers (stdio child processes and streamable-HTTP servers)
//! behind one streamable-HTTP endpoint, their tools, resources and prompts
//! namespaced per backend. The modules follow the path of one request:
//!
//! - `front`: the HTTP front door (`/mcp`, Origin check, body limit, ops endpoints)
//! - `session`: client sessions (ids, in-flight requests, event streams)
//! - `gateway`: the dispatcher: the aggregated catalog, a request resolved
//!   by name or URI into one typed `call::Call`
//! - `shaping`: filters, aliases, arguments, size limit, answer cache, coalescing
//! - `traffic`: canary split, mirroring and failover across backends
//! - `backend`: one configured server: resilience, replica pool,
//!   supervision, reconnects, status
//! - `upstream`: transports to servers (stdio child, HTTP client)
//!
//! plus `platform` (what comes from the machine: listener, dialer,
//! spawner, session ids), `config` (strict loading with file:line:key
//! errors), `glob`, `server` (start and graceful shutdown), `metrics` and
//! `jsonrpc`.
//!
//! The public face is what a program embedding the proxy (the harness, the
//! tests, the benchmarks, the binary) needs: [`config`] to load and build a
//! configuration, [`platform`] to run it on simulated sockets and
//! processes, [`server`] to start and stop it, the [`Status`] it reports,
//! [`error_codes`], the codes of its own errors, and [`glob`], the
//! pattern rule configs use. Everything else is the
//! crate's own; the `bench-internals` feature adds `internals`, a facade
//! over the hot path's parts for the micro-benchmarks, and nothing else.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mcp_proxy::config::load(std::path::Path::new("proxy.yaml"))?;
//! let proxy = mcp_proxy::server::start(config).await?;
//! println!("serving on {}", proxy.url());
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(unreachable_pub)]

mod audit;
mod auth;
mod backend;
mod backoff;
mod call;
pub mod config;
pub mod error_codes;
mod front;
mod gateway;
pub mod glob;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod internals;
mod jsonrpc;
mod metrics;
pub mod platform;
mod reload;
pub mod server;
mod session;
mod shaping;
pub mod trace;
mod traffic;
mod upstream;

pub use backend::{BreakerState, EndpointStatus, State, Status};
pub use reload::{ConfigWatch, ReloadError, ReloadReport};
