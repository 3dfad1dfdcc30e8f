//! mcp-proxy: a resilient MCP gateway.
//!
//! Many MCP servers (stdio child processes and streamable-HTTP servers)
//! behind one streamable-HTTP endpoint, their tools, resources and prompts
//! namespaced per backend. The modules follow the path of one request:
//!
//! - [`front`]: the HTTP front door (`/mcp`, Origin check, body limit, ops endpoints)
//! - [`session`]: client sessions (ids, in-flight requests, event streams)
//! - [`gateway`]: the aggregated catalog and routing by name or URI
//! - `shaping`: filters, aliases, arguments, size limit, answer cache, coalescing
//! - `traffic`: canary split, mirroring and failover across backends
//! - [`backend`]: one configured server: supervision, reconnects, status
//! - [`upstream`]: transports to servers (stdio child, HTTP client)
//!
//! plus [`platform`] (what comes from the machine: listener, dialer,
//! spawner, session ids), [`config`] (strict loading with file:line:key errors), [`glob`], [`server`]
//! (start and graceful shutdown), [`metrics`] and [`jsonrpc`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mcp_proxy::config::load(std::path::Path::new("proxy.yaml"))?;
//! let proxy = mcp_proxy::server::start(config).await?;
//! println!("serving on {}", proxy.url());
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

pub mod backend;
mod backoff;
mod call;
pub mod config;
pub mod front;
pub mod gateway;
pub mod glob;
pub mod jsonrpc;
pub mod metrics;
pub mod platform;
pub mod server;
pub mod session;
mod shaping;
mod traffic;
pub mod upstream;
