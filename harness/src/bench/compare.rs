//! `bench --compare`: what a side-by-side measure of the proxy needs,
//! started by the harness itself: an echo backend (a harness fake, no
//! latency, no faults, keeping no journal) and the proxy in front of it,
//! in this process or as a binary (`--proxy-bin`). The targets are the
//! backend `direct`, through the proxy with nothing configured (`proxy`)
//! and with the resilience and shaping features configured (`loaded`);
//! [`super::run`] then measures them interleaved, load by load, and the
//! ratios compare each with `direct`, and `loaded` with `proxy`.

use std::path::Path;

use serde_json::{Map, Value};

use super::setup::{self, Setup, StartError};
use super::{ProcessCpu, Target};
use crate::journal::Journal;
use crate::run::ProxyMode;
use crate::scenario::{FakeTransport, Scenario};

/// The label of the backend measured without the proxy.
pub const DIRECT: &str = "direct";
/// The label of the same backend through the proxy.
pub const PROXY: &str = "proxy";

/// The same backend through the proxy with every per-backend feature
/// configured.
pub const LOADED: &str = "loaded";

/// The comparison's backend and proxy, as a scenario: one HTTP fake with
/// one read-only tool (so the cache and coalescing apply to it), served by
/// two backends of the proxy: `bench`, with nothing configured, and
/// `loaded`, with a timeout, retries, a circuit breaker, a pool of one
/// endpoint with outlier detection, a cache and coalescing. No fault ever
/// makes them act; the calls carry distinct arguments, so the cache misses:
/// what `loaded / proxy` measures is what having them costs each call.
const SETUP: &str = "\
name: bench
description: An echo backend behind the proxy, for mcp-harness bench --compare.
duration: 1s
proxy:
  backends:
    - name: bench
      fake: bench
    - name: loaded
      fake: [bench]
      timeout: { per_try: 5s, overall: 10s }
      retry:
        max_retries: 2
        backoff: { initial: 1ms, max: 5ms }
        on: [transport, unavailable, -32603]
      circuit_breaker:
        window: 10s
        min_calls: 20
        failure_rate: 0.5
        open_for: 5s
        half_open_probes: 3
      outlier_detection:
        consecutive_failures: 5
        base_ejection: 30s
        max_ejection: 5m
        max_ejection_percent: 10
      cache: { tools: 30s, max_entries: 1000 }
      coalesce: true
fakes:
  - name: bench
    transport: http
    tools:
      - name: echo
        read_only: true
workload:
  closed: { concurrency: 1 }
  calls:
    - tool: bench/echo
    - tool: loaded/echo
expect: []
";

/// The running backend and proxy; [`Comparison::stop`] ends both.
pub struct Comparison {
    setup: Setup,
    /// `direct`, `proxy` and `loaded`.
    pub targets: Vec<Target>,
}

impl Comparison {
    /// Starts the backend (on `fake_port`, or an ephemeral port), then the
    /// proxy (`proxy_bin`, or in this process), and waits until the proxy
    /// lists the backend's tool. A fixed port lets another gateway be set
    /// up in front of the same backend and measured beside it.
    pub async fn start(
        proxy_bin: Option<&Path>,
        fake_port: Option<u16>,
        arguments: &Map<String, Value>,
    ) -> Result<Comparison, StartError> {
        let mut scenario = scenario()?;
        scenario.fakes[0].transport = FakeTransport::Http {
            port: fake_port.unwrap_or(0),
        };
        let mode = proxy_bin.map_or(ProxyMode::InProcess, |bin| {
            ProxyMode::Binary(bin.to_path_buf())
        });
        let setup = Setup::start(&scenario, &mode, Journal::discard()).await?;
        let targets = vec![
            Target {
                label: DIRECT.into(),
                url: setup.fake_url(0).unwrap_or_default(),
                tool: "echo".into(),
                arguments: arguments.clone(),
                process: None,
                distinct_cells: true,
            },
            Target {
                label: PROXY.into(),
                url: setup.proxy_url(),
                tool: "bench/echo".into(),
                arguments: arguments.clone(),
                process: setup.proxy_pid().and_then(ProcessCpu::of),
                distinct_cells: true,
            },
            Target {
                label: LOADED.into(),
                url: setup.proxy_url(),
                tool: "loaded/echo".into(),
                arguments: arguments.clone(),
                process: setup.proxy_pid().and_then(ProcessCpu::of),
                distinct_cells: true,
            },
        ];
        Ok(Comparison { setup, targets })
    }

    /// Stops the proxy, then the backend, then removes the work folder.
    pub async fn stop(self) {
        self.setup.stop().await;
    }
}

/// The built-in scenario (one fake, `bench`).
fn scenario() -> Result<Scenario, StartError> {
    setup::builtin(SETUP, "compare")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_setup_is_a_valid_scenario() {
        let setup = super::scenario().unwrap();
        assert_eq!(setup.fakes.len(), 1);
        assert_eq!(setup.workload.calls[0].tool, "bench/echo");
        assert_eq!(setup.workload.calls[1].tool, "loaded/echo");
    }
}
