//! `bench --compare`: what a side-by-side measure of the proxy needs,
//! started by the harness itself: an echo backend (a harness fake, no
//! latency, no faults, keeping no journal) and the proxy in front of it,
//! in this process or as a binary (`--proxy-bin`). The targets are the
//! backend `direct` and `proxy`; [`super::run`] then measures them
//! interleaved, load by load, and the ratios compare each with `direct`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{ProcessCpu, Target};
use crate::clock::ScenarioClock;
use crate::fake::{FakeConfig, HttpFake};
use crate::journal::Journal;
use crate::load::LoadTarget;
use crate::run::{self, ProxyMode, ProxyUnderTest, RunError, WorkDir};
use crate::scenario::{self, FakeAddress, FakeTransport, Scenario};

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

/// Why the comparison could not start.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StartError(#[from] RunError);

/// The running backend and proxy; [`Comparison::stop`] ends both.
pub struct Comparison {
    fake: HttpFake,
    proxy: ProxyUnderTest,
    /// The proxy binary's config and log; removed when dropped.
    work_dir: WorkDir,
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
        let setup = setup();
        let work_dir = WorkDir::create().map_err(RunError::WorkDir)?;
        let clock = ScenarioClock::start_now();
        let mut spec = setup.fakes[0].clone();
        spec.transport = FakeTransport::Http {
            port: fake_port.unwrap_or(0),
        };
        let fake = HttpFake::start(FakeConfig {
            spec,
            faults: Vec::new(),
            seed: setup.seed,
            clock,
            journal: Journal::discard(),
            generation: 0,
        })
        .await
        .map_err(|source| RunError::FakeStart {
            fake: "bench".into(),
            source,
        })?;
        let url = fake.url();
        let address = |_: &str| FakeAddress::Http { url: url.clone() };
        let mode = proxy_bin.map_or(ProxyMode::InProcess, |bin| {
            ProxyMode::Binary(PathBuf::from(bin))
        });
        let mut proxy =
            match ProxyUnderTest::start(&mode, &setup, &address, work_dir.path(), setup.seed).await
            {
                Ok(proxy) => proxy,
                Err(error) => {
                    fake.shutdown().await;
                    return Err(error.into());
                }
            };
        let proxy_url = proxy.url();
        let ready = match LoadTarget::new(&proxy_url) {
            Ok(target) => {
                let cancel = CancellationToken::new();
                run::wait_ready(&setup, &target, &proxy_url, clock, &cancel, &mut || {
                    proxy.exited()
                })
                .await
            }
            Err(error) => Err(RunError::Load(error)),
        };
        if let Err(error) = ready {
            proxy.stop().await;
            fake.shutdown().await;
            return Err(error.into());
        }
        let targets = vec![
            Target {
                label: DIRECT.into(),
                url,
                tool: "echo".into(),
                arguments: arguments.clone(),
                process: None,
            },
            Target {
                label: PROXY.into(),
                url: proxy_url,
                tool: "bench/echo".into(),
                arguments: arguments.clone(),
                process: proxy.pid().and_then(ProcessCpu::of),
            },
        ];
        Ok(Comparison {
            fake,
            proxy,
            work_dir,
            targets,
        })
    }

    /// Stops the proxy, then the backend, then removes the work folder.
    pub async fn stop(self) {
        self.proxy.stop().await;
        self.fake.shutdown().await;
        drop(self.work_dir);
    }
}

/// The built-in setup, parsed as any scenario is (it is a constant: a
/// failure here is a bug of this file, caught by its test).
fn setup() -> Scenario {
    scenario::load_str(SETUP, Path::new("<bench setup>"))
        .expect("the built-in bench setup is a valid scenario")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_setup_is_a_valid_scenario() {
        let setup = super::setup();
        assert_eq!(setup.fakes.len(), 1);
        assert_eq!(setup.workload.calls[0].tool, "bench/echo");
    }
}
