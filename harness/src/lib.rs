//! mcp-harness: the chaos-testing toolkit for MCP gateways.
//!
//! This crate is a skeleton for now: fake backends, scenarios, load, checks
//! and reports arrive with their own issue. Its command line already exists so
//! that the binary name and `--help` are stable.
