//! mcp-harness: the chaos-testing toolkit for MCP gateways.
//!
//! A run reads a scenario (one YAML file), starts the fake backends it
//! declares, puts an MCP proxy in front of them (in-process, a spawned
//! `mcp-proxy` binary, or an external one at a URL), drives real MCP client
//! load through it while the fault timeline breaks the fakes on cue, and then
//! *checks* what happened: client-side results, what each fake's journal
//! recorded, and statistics where a ratio is judged. The modules follow that
//! path:
//!
//! - [`scenario`]: reading and validating scenario files (file:line:key errors)
//! - [`fake`]: the fake MCP backend (HTTP and stdio faces, scripted faults)
//! - [`identity`]: who the clients are to an authenticating proxy: the
//!   scenario's token issuer (keys, rotations, a fake JWKS server) and the
//!   bearer tokens and JWTs the clients send
//! - [`journal`]: what the fakes received
//! - [`load`]: MCP clients, closed and open loop, call records
//! - [`stats`]: latency histograms and the statistical tests
//! - [`checks`]: one module per kind of check, plus the always-on accounting
//! - [`admin`]: the proxy's `/admin/backends`, sampled during the load
//! - [`report`]: terminal table, JSON (and its schema), JUnit, and an HTML
//!   page with charts
//! - [`run`]: one scenario from start to verdict
//! - [`sim`]: the same run in virtual time on a simulated network
//! - [`target_cmd`]: another gateway the harness starts itself (`run` and
//!   `bench --target-cmd`)
//!
//! plus [`clock`] (scenario time, read from tokio) and [`process_group`]
//! (the children the harness starts, and how they end).

pub mod admin;
pub mod bench;
pub mod checks;
pub mod clock;
pub mod fake;
pub mod identity;
pub mod journal;
pub mod load;
pub mod process_group;
pub mod report;
pub mod run;
pub mod scenario;
mod shell;
pub mod sim;
pub mod stats;
pub mod target_cmd;
