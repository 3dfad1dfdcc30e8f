//! What a bench mode starts before it measures, from a built-in scenario:
//! its HTTP fakes (with their faults, on the scenario clock), then the
//! proxy in front of them (in this process, or a binary with a generated
//! config in a work folder of its own), and a wait until the proxy lists
//! the tools the scenario's workload calls. `--compare`, `--memory` and
//! `--soak` share it, so there is one way a bench starts and stops what it
//! measures; [`Setup::stop`] ends it all, and dropping it does too (a
//! spawned proxy is killed with it). `--memory` and `--soak` go through
//! [`with_proxy_binary`], which runs the proxy as a binary and hands them
//! its process id.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::rss::{self, RssError};
use crate::clock::ScenarioClock;
use crate::fake::HttpFake;
use crate::journal::Journal;
use crate::load::LoadTarget;
use crate::run::{self, ProxyMode, ProxyUnderTest, RunError, WorkDir};
use crate::scenario::{self, ConfigError, FakeAddress, Scenario};

/// Why a bench's setup could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A fake, the proxy, or the wait for it failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A built-in scenario does not validate: a bug of the harness (or of
    /// flag values that slipped past their checks), said rather than
    /// panicked on.
    #[error("the bench's built-in setup is invalid (a bug of mcp-harness): {0}")]
    Builtin(ConfigError),
    /// The proxy binary was ready, and gone before its memory was read.
    #[error("the proxy binary exited right after it became ready")]
    Exited,
}

/// Parses a built-in scenario (named `name` in errors).
pub(super) fn builtin(text: &str, name: &str) -> Result<Scenario, StartError> {
    scenario::load_str(text, Path::new(&format!("<bench {name}>"))).map_err(StartError::Builtin)
}

/// Starts `scenario`'s fakes and the proxy binary `proxy_bin` in front of
/// them, runs `measure` with the setup and the proxy's process id (whose
/// memory is the proxy's alone), and stops it all, however `measure`
/// ended. Fails before starting anything where the proxy's memory cannot
/// be read.
pub(super) async fn with_proxy_binary<T, E>(
    scenario: &Scenario,
    proxy_bin: &Path,
    journal: Journal,
    measure: impl AsyncFnOnce(&mut Setup, u32) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StartError> + From<RssError>,
{
    rss::supported()?;
    let mode = ProxyMode::Binary(proxy_bin.to_path_buf());
    let mut setup = Setup::start(scenario, &mode, journal).await?;
    let measured = match setup.proxy_pid() {
        Some(pid) => measure(&mut setup, pid).await,
        None => Err(StartError::Exited.into()),
    };
    setup.stop().await;
    measured
}

/// The running fakes and proxy of a bench.
pub(super) struct Setup {
    /// The scenario's HTTP fakes, in its order.
    fakes: Vec<HttpFake>,
    proxy: ProxyUnderTest,
    /// The proxy binary's config and log; removed when dropped.
    work_dir: WorkDir,
}

impl Setup {
    /// Starts every fake of `scenario` (all HTTP; each on the port its spec
    /// names, 0 for an ephemeral one), journalling to `journal`, then the
    /// proxy in `mode`, and waits until it lists the workload's tools.
    pub(super) async fn start(
        scenario: &Scenario,
        mode: &ProxyMode,
        journal: Journal,
    ) -> Result<Setup, StartError> {
        let work_dir = WorkDir::create().map_err(RunError::WorkDir)?;
        let clock = ScenarioClock::start_now();
        let mut fakes = Vec::new();
        for spec in &scenario.fakes {
            fakes.push(run::start_http_fake(scenario, spec, scenario.seed, clock, &journal).await?);
        }
        let urls: Vec<(String, String)> = scenario
            .fakes
            .iter()
            .zip(&fakes)
            .map(|(spec, fake)| (spec.name.clone(), fake.url()))
            .collect();
        let address = |name: &str| FakeAddress::Http {
            url: urls
                .iter()
                .find(|(fake, _)| fake == name)
                .map(|(_, url)| url.clone())
                .unwrap_or_default(),
        };
        // Ctrl-C drops a bench (main.rs), which kills what it started: no
        // token is ever cancelled.
        let never = CancellationToken::new();
        let started = ProxyUnderTest::start(
            mode,
            scenario,
            &address,
            work_dir.path(),
            scenario.seed,
            &never,
        )
        .await;
        let proxy = match started {
            Ok(proxy) => proxy,
            Err(error) => {
                for fake in fakes {
                    fake.shutdown().await;
                }
                return Err(error.into());
            }
        };
        let mut setup = Setup {
            fakes,
            proxy,
            work_dir,
        };
        let url = setup.proxy.url();
        let ready = match LoadTarget::new(&url) {
            Ok(target) => {
                let proxy = &mut setup.proxy;
                run::wait_ready(
                    scenario,
                    &target,
                    &url,
                    (clock, &crate::identity::Callers::anonymous()),
                    &never,
                    &mut || proxy.exited(),
                )
                .await
            }
            Err(error) => Err(RunError::Load(error)),
        };
        match ready {
            Ok(()) => Ok(setup),
            Err(error) => {
                setup.stop().await;
                Err(error.into())
            }
        }
    }

    /// The MCP endpoint of the `index`th fake of the scenario.
    pub(super) fn fake_url(&self, index: usize) -> Option<String> {
        self.fakes.get(index).map(HttpFake::url)
    }

    /// The proxy's MCP endpoint.
    pub(super) fn proxy_url(&self) -> String {
        self.proxy.url()
    }

    /// The process id of a spawned proxy binary (`None` in this process,
    /// or once it has been reaped).
    pub(super) fn proxy_pid(&self) -> Option<u32> {
        self.proxy.pid()
    }

    /// Whether a spawned proxy has exited (with its status).
    pub(super) fn proxy_exited(&mut self) -> Option<String> {
        self.proxy.exited()
    }

    /// Stops the proxy, then the fakes, then removes the work folder.
    pub(super) async fn stop(self) {
        self.proxy.stop().await;
        for fake in self.fakes {
            fake.shutdown().await;
        }
        drop(self.work_dir);
    }
}
