//! `bench --compare`: what a side-by-side measure of the proxy needs,
//! started by the harness itself: an echo backend (a harness fake, no
//! latency, no faults, keeping no journal) and the proxy in front of it,
//! in this process or as a binary (`--proxy-bin`). The targets are the
//! backend `direct` and `proxy`; [`super::run`] then measures them
//! interleaved, load by load, and the ratios compare each with `direct`.

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

/// The comparison's backend and proxy, as a scenario: one HTTP fake with
/// one tool, one backend of the proxy serving it.
const SETUP: &str = "\
name: bench
description: An echo backend behind the proxy, for mcp-harness bench --compare.
duration: 1s
proxy:
  backends:
    - name: bench
      fake: bench
fakes:
  - name: bench
    transport: http
    tools:
      - name: echo
workload:
  closed: { concurrency: 1 }
  calls:
    - tool: bench/echo
expect: []
";

/// The running backend and proxy; [`Comparison::stop`] ends both.
pub struct Comparison {
    setup: Setup,
    /// `direct`, then `proxy`.
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
            },
            Target {
                label: PROXY.into(),
                url: setup.proxy_url(),
                tool: "bench/echo".into(),
                arguments: arguments.clone(),
                process: setup.proxy_pid().and_then(ProcessCpu::of),
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
    }
}
