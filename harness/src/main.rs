//! The `mcp-harness` command line (skeleton).

use clap::Parser;

/// Chaos-testing toolkit for MCP gateways (skeleton: no commands yet).
#[derive(Parser)]
#[command(name = "mcp-harness", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("mcp-harness: no commands yet; scenarios arrive with the harness issue");
    std::process::exit(2);
}
