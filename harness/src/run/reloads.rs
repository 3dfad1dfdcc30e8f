//! A scenario's `reload` faults, done to the proxy at their times: in
//! process (and in simulation) by the library's `RunningProxy::reload`;
//! with `--proxy-bin` by rewriting the config file the binary was started
//! with and `POST /admin/reload`. With `restart: true` the proxy is instead
//! stopped and started again with the new config — what a gateway without
//! hot reload has to do, and what the reload checks must catch. What the
//! proxy answered is kept as a [`ReloadRecord`] for the reload checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_proxy::config::{Config, ConfigError};
use mcp_proxy::server::RunningProxy;

use crate::clock::ScenarioClock;
use crate::load::record::ReloadRecord;
use crate::scenario::{FakeAddress, FaultAction, ProxySection, ReloadExpect, Scenario, Trigger};

/// One reload fault of a scenario.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Its place among the scenario's reload faults.
    pub(crate) index: usize,
    name: String,
    at: Duration,
    section: ProxySection,
    expect: ReloadExpect,
    restart: bool,
}

impl Step {
    /// The section as a proxy config for a run (an error when the patch
    /// made it invalid, as a rejected reload's must).
    pub(crate) fn config(
        &self,
        scenario: &Scenario,
        address: &dyn Fn(&str) -> FakeAddress,
        listen: SocketAddr,
        seed: u64,
    ) -> Result<Config, ConfigError> {
        let (file, base_dir) = file_and_dir(scenario);
        self.section.config(&file, &base_dir, address, listen, seed)
    }

    /// The section as the file a binary reads (JSON, which YAML reads).
    pub(crate) fn file_text(
        &self,
        address: &dyn Fn(&str) -> FakeAddress,
        listen: SocketAddr,
        seed: u64,
    ) -> String {
        let tree = self.section.config_tree(address, listen, seed);
        serde_json::to_string_pretty(&crate::scenario::to_json(&tree)).unwrap_or_default()
    }

    /// Whether it is done by a restart rather than a reload.
    pub(crate) fn restarts(&self) -> bool {
        self.restart
    }

    fn record(&self, outcome: Result<Vec<String>, String>) -> ReloadRecord {
        let (result, detail) = match outcome {
            Ok(kept) if kept.is_empty() => ("applied", None),
            // The patch changed keys the proxy keeps until a restart: not
            // what the scenario asked for.
            Ok(kept) => (
                "partly applied",
                Some(format!("kept until a restart: {}", kept.join(", "))),
            ),
            Err(detail) => ("rejected", Some(detail)),
        };
        ReloadRecord {
            name: self.name.clone(),
            at: self.at,
            expected: self.expect.label(),
            result,
            detail,
        }
    }
}

/// The scenario's reload faults, in time order.
pub(crate) fn steps(scenario: &Scenario) -> Vec<Step> {
    scenario
        .faults
        .iter()
        .filter_map(|fault| match (&fault.action, &fault.trigger) {
            (
                FaultAction::Reload {
                    section,
                    expect,
                    restart,
                },
                Trigger::Time { at, .. },
            ) => Some(Step {
                index: 0,
                name: fault
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("reload at {}", crate::scenario::fmt_duration(*at))),
                at: *at,
                section: (**section).clone(),
                expect: *expect,
                restart: *restart,
            }),
            _ => None,
        })
        .enumerate()
        .map(|(index, step)| Step { index, ..step })
        .collect()
}

/// The scenario's file name and the folder its relative paths start from.
pub(crate) fn file_and_dir(scenario: &Scenario) -> (String, PathBuf) {
    let base_dir = match scenario.file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    (scenario.file.display().to_string(), base_dir)
}

/// How one proxy mode carries out a step: `Ok` when the proxy took the
/// new config (with the changed keys it keeps until a restart, if any),
/// `Err` with its reason when it did not.
pub(crate) trait Reloader {
    async fn apply(&mut self, step: &Step) -> Result<Vec<String>, String>;
}

/// Does each step at its time of `clock`, handing each record to `done`
/// as soon as it is made (a run may end before the last step).
pub(crate) async fn follow(
    steps: &[Step],
    clock: ScenarioClock,
    reloader: &mut impl Reloader,
    done: &mut impl FnMut(ReloadRecord),
) {
    for step in steps {
        tokio::time::sleep_until(clock.at(step.at)).await;
        let outcome = reloader.apply(step).await;
        done(step.record(outcome));
    }
}

/// A step's config for the run, addresses filled in.
pub(crate) type Configure<'a> = dyn Fn(&Step) -> Result<Config, ConfigError> + 'a;

/// The in-process proxy (and the simulated one): the library's reload, or
/// a stop and a start on the same listener address.
pub(crate) struct InProcess<'a, S> {
    /// The proxy; `None` once a restart failed to start it again.
    pub(crate) proxy: &'a mut Option<RunningProxy>,
    pub(crate) configure: &'a Configure<'a>,
    /// Starts a proxy with a config where the stopped one listened.
    pub(crate) start: S,
}

impl<S, F> Reloader for InProcess<'_, S>
where
    S: FnMut(Config) -> F,
    F: std::future::Future<Output = Result<RunningProxy, String>>,
{
    async fn apply(&mut self, step: &Step) -> Result<Vec<String>, String> {
        let Some(proxy) = self.proxy.as_ref() else {
            return Err("the proxy did not come back from the last restart".to_owned());
        };
        let loaded = (self.configure)(step);
        if !step.restarts() {
            return proxy
                .reload(loaded)
                .await
                .map(|report| report.restart_needed)
                .map_err(|error| error.to_string());
        }
        // A gateway without hot reload: it must be restarted to take a new
        // config (an invalid one is refused before the old one stops).
        let mut config = loaded.map_err(|error| error.to_string())?;
        // Where the clients find it: the address it listened on.
        config.proxy.listen = proxy.local_addr();
        if let Some(running) = self.proxy.take() {
            running.shutdown().await;
        }
        *self.proxy = Some((self.start)(config).await?);
        Ok(Vec::new())
    }
}

/// A spawned `mcp-proxy serve`: its config file rewritten, then
/// `POST /admin/reload`.
pub(crate) struct Binary<'a> {
    pub(crate) config_path: &'a Path,
    pub(crate) url: String,
    pub(crate) listen: SocketAddr,
    pub(crate) address: &'a dyn Fn(&str) -> FakeAddress,
    pub(crate) seed: u64,
    pub(crate) token: Option<String>,
}

impl Reloader for Binary<'_> {
    async fn apply(&mut self, step: &Step) -> Result<Vec<String>, String> {
        if step.restarts() {
            // Refused before the run (`Scenario::restarts_in_process`).
            return Err("`restart: true` runs in process or with --sim only".to_owned());
        }
        let text = step.file_text(self.address, self.listen, self.seed);
        std::fs::write(self.config_path, text)
            .map_err(|error| format!("writing {}: {error}", self.config_path.display()))?;
        crate::admin::post_reload(
            &self.url,
            std::sync::Arc::new(mcp_proxy::platform::TcpDialer),
            self.token.as_deref(),
        )
        .await
    }
}
