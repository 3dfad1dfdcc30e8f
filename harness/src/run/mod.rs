//! One scenario from start to verdict.
//!
//! The order matters and is kept in [`run`]: the scenario clock starts
//! first (fakes schedule their faults on it, stdio fakes get it as Unix
//! time), then the HTTP fakes (the proxy config needs their ports), then
//! the proxy, then a wait until the proxy lists every tool the workload
//! calls; then the load runs to the scenario's end and its grace period;
//! then everything is stopped (the proxy first, which stops the stdio fakes
//! it spawned), the journals are collected, and the checks judge.
//!
//! Before that, [`prepare`] turns the scenario file into the scenario this
//! run judges: the fakes' ports from the command line (`ports.rs`), the
//! failure kinds of its checks as the target's codes (`--codes`).
//!
//! A failure of the harness itself (a fake cannot bind, the proxy never gets
//! ready) ends the run with an error in the report rather than a verdict.
//! So does a scenario with a `network` fault, before anything starts: the
//! operating system's network cannot be partitioned or slowed per link by
//! the harness, only the simulated one can (`run --sim`).

mod error;
mod placeholders;
mod ports;
mod progress;
mod proxy;
pub(crate) mod reloads;
mod workdir;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcp_proxy::platform::TcpDialer;
use tokio_util::sync::CancellationToken;

use crate::admin::BackendSampler;
use crate::checks::figures::{Figures, Measure};
use crate::checks::{CheckResult, Verdict};
use crate::clock::ScenarioClock;
use crate::fake::{FakeConfig, HttpFake};
use crate::identity::{Callers, IssuerKeys, JwksServer};
use crate::journal::{self, Journal, JournalEntry};
use crate::load::{self, Caller, LoadResult, LoadTarget, McpSession, Progress};
use crate::report::RunReport;
use crate::report::replay::Flag;
use crate::report::timeline::BackendSample;
use crate::scenario::{
    CodeOverlay, FakeAddress, FakeSpec, FakeTransport, FaultAction, LinkFault, Scenario, Trigger,
};
pub(crate) use error::RunError;
pub use ports::{NamedPort, PortPlan, parse_named_port};
pub(crate) use progress::{Headline, ProgressLine};
pub(crate) use proxy::ProxyUnderTest;
pub use proxy::{ProxyMode, TargetCmd};
pub(crate) use workdir::WorkDir;

/// How long the proxy may take to list every tool the workload calls.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one readiness attempt (open a session, list tools) may take.
const READY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(50);

/// How to run scenarios.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Which proxy to aim at.
    pub mode: ProxyMode,
    /// Overrides each scenario's `seed`.
    pub seed: Option<u64>,
    /// The `mcp-harness` binary that stdio fakes are run with.
    pub harness_bin: PathBuf,
    /// Draw the live progress line (only ever drawn on a terminal).
    pub progress: bool,
    /// Cancelled on Ctrl-C: the run stops its load early and cleans up.
    pub cancel: CancellationToken,
    /// `--ports`, `--port`: the HTTP fakes' ports.
    pub ports: PortPlan,
    /// `--codes`: the target's codes for the checks' failure kinds.
    pub codes: Option<CodeOverlay>,
}

impl RunOptions {
    /// The mode as reports name it, with the code overlay if one is used.
    fn describe(&self) -> String {
        let mode = self.mode.describe();
        match &self.codes {
            Some(codes) => format!("{mode}; {}", codes.describe()),
            None => mode,
        }
    }
}

/// The scenario as this run judges it: refused if it has no `proxy:`
/// section and the mode needs one, its fakes on the ports the command line
/// gives, its failure kinds as the `--codes` overlay maps them.
pub fn prepare(scenario: &Scenario, options: &RunOptions) -> Result<Scenario, String> {
    let aims_at_target = matches!(options.mode, ProxyMode::Target(_) | ProxyMode::TargetCmd(_));
    if !aims_at_target && let Some(error) = scenario.needs_target() {
        return Err(error);
    }
    let scenario = options.ports.apply(scenario)?;
    match &options.codes {
        Some(codes) => codes.apply(&scenario),
        None => Ok(scenario),
    }
}

/// Runs one scenario and judges it. Every report, a stopped one too,
/// carries the seed and the command that replays the run.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> RunReport {
    let seed = options.seed.unwrap_or(scenario.seed);
    let mut report = run_with_seed(scenario, options, seed).await;
    report.seed = seed;
    report.replay = replay_command(scenario, options, seed);
    report
}

/// [`run`] without the seed and replay command.
async fn run_with_seed(scenario: &Scenario, options: &RunOptions, seed: u64) -> RunReport {
    let mode = options.describe();
    let scenario = match prepare(scenario, options) {
        Ok(prepared) => prepared,
        Err(error) => return RunReport::stopped(scenario, &mode, Duration::ZERO, error),
    };
    let scenario = &scenario;
    if let Some(error) = scenario.needs_simulation() {
        return RunReport::stopped(scenario, &mode, Duration::ZERO, error.to_string());
    }
    if let (ProxyMode::Target(_) | ProxyMode::TargetCmd(_), Some(error)) =
        (&options.mode, scenario.needs_our_proxy())
    {
        return RunReport::stopped(scenario, &mode, Duration::ZERO, error);
    }
    if let (ProxyMode::Binary(_), Some(error)) = (&options.mode, scenario.restarts_in_process()) {
        return RunReport::stopped(scenario, &mode, Duration::ZERO, error);
    }
    let started = tokio::time::Instant::now();
    let outcome = execute(scenario, options, seed).await;
    let took = started.elapsed();
    match outcome {
        Ok(finished) => {
            let mut report =
                RunReport::from_run(scenario, &mode, took, &finished.load, &finished.journal);
            report.backends = finished.backends;
            if let Some(stayed_up) = finished.stayed_up {
                report.checks.push(proxy_stayed_up(stayed_up));
            }
            if options.cancel.is_cancelled() {
                report.error = Some("interrupted".into());
            }
            report
        }
        Err(e) => RunReport::stopped(scenario, &mode, took, e.to_string()),
    }
}

/// The command that runs `scenario` again as `options` and `seed` did.
fn replay_command(scenario: &Scenario, options: &RunOptions, seed: u64) -> String {
    let mut flags = options.mode.flags();
    flags.extend(options.ports.flags());
    flags.extend(
        options
            .codes
            .iter()
            .map(|codes| Flag::with("--codes", codes.file.display().to_string())),
    );
    crate::report::replay::command(&flags, seed, &scenario.file.display().to_string())
}

/// What a run that went through observed.
struct Finished {
    load: LoadResult,
    journal: Vec<JournalEntry>,
    /// The proxy's `/admin/backends` during the load, when it is ours.
    backends: Vec<BackendSample>,
    /// For a spawned proxy: whether it was still running at the end (`Err`
    /// with its exit status if not); `None` when the harness cannot know.
    stayed_up: Option<Result<(), String>>,
}

/// The always-on check for a spawned proxy: it must not exit during a run,
/// whatever its backends did.
fn proxy_stayed_up(stayed_up: Result<(), String>) -> CheckResult {
    let exits = u64::from(stayed_up.is_err());
    Verdict {
        figures: Figures::whole_run(vec![Measure::count("proxy_exits", exits, None, Some(0))]),
        expected: "running until stopped".into(),
        passed: stayed_up.is_ok(),
        observed: match stayed_up {
            Ok(()) => "running until stopped".into(),
            Err(status) => format!("exited during the run ({status})"),
        },
        detail: None,
    }
    .named("the proxy stayed up".into(), "accounting", None)
}

/// Starts everything, runs the load, stops everything, collects journals.
async fn execute(
    scenario: &Scenario,
    options: &RunOptions,
    seed: u64,
) -> Result<Finished, RunError> {
    let work_dir = WorkDir::create().map_err(RunError::WorkDir)?;
    // A running target knows its backends' addresses already; one the
    // harness starts learns them (ephemeral ports, stdio commands) from
    // its command line and config.
    let fixed_target = matches!(options.mode, ProxyMode::Target(_));
    let clock = ScenarioClock::start_now();
    let journal = Journal::in_memory();
    let scenario_file =
        std::path::absolute(&scenario.file).map_err(|source| RunError::ResolveScenario {
            path: scenario.file.clone(),
            source,
        })?;

    let mut http_fakes = Vec::new();
    let mut addresses: HashMap<String, FakeAddress> = HashMap::new();
    let mut journal_files = Vec::new();
    for spec in &scenario.fakes {
        let address = match spec.transport {
            FakeTransport::Http { port } => {
                if fixed_target && port == 0 {
                    return Err(RunError::FakeNeedsPort {
                        fake: spec.name.clone(),
                    });
                }
                let fake = start_http_fake(scenario, spec, seed, clock, &journal).await?;
                let url = fake.url();
                http_fakes.push(fake);
                FakeAddress::Http { url }
            }
            FakeTransport::Stdio => {
                if fixed_target {
                    return Err(RunError::StdioFakeWithTarget {
                        fake: spec.name.clone(),
                    });
                }
                let journal_file = work_dir.path().join(format!("{}.jsonl", spec.name));
                let args = stdio_fake_args(&scenario_file, &spec.name, &journal_file, clock, seed);
                journal_files.push(journal_file);
                FakeAddress::Stdio {
                    command: options.harness_bin.display().to_string(),
                    args,
                }
            }
        };
        addresses.insert(spec.name.clone(), address);
    }

    // The issuer's JWKS server: the proxy config names its URL with
    // `{issuer.jwks_url}`, which the address of the issuer's name fills in.
    let keys = IssuerKeys::of(scenario, seed)
        .map_err(RunError::Identity)?
        .map(Arc::new);
    let mut jwks = None;
    if let Some(keys) = &keys {
        if fixed_target && keys.issuer().port == 0 {
            return Err(RunError::IssuerNeedsPort {
                issuer: keys.name().to_owned(),
            });
        }
        let server = JwksServer::start(Arc::clone(keys), scenario, clock, journal.clone())
            .await
            .map_err(|source| RunError::StartJwks {
                issuer: keys.name().to_owned(),
                source,
            })?;
        addresses.insert(
            keys.name().to_owned(),
            FakeAddress::Http { url: server.url() },
        );
        jwks = Some(server);
    }
    let wall: Arc<dyn mcp_proxy::platform::WallClock> = Arc::new(mcp_proxy::platform::SystemClock);
    let callers =
        Callers::of(&scenario.workload, keys.as_ref(), clock, &wall).map_err(RunError::Identity)?;

    let address = |name: &str| {
        addresses
            .get(name)
            .cloned()
            .unwrap_or(FakeAddress::Http { url: String::new() })
    };
    let outcome = async {
        let mut proxy = ProxyUnderTest::start(
            &options.mode,
            scenario,
            &address,
            work_dir.path(),
            seed,
            &options.cancel,
        )
        .await?;
        let result = drive(
            scenario,
            options,
            (seed, &address, work_dir.path()),
            (clock, &callers),
            &mut proxy,
        )
        .await;
        let stayed_up = proxy.stayed_up();
        proxy.stop().await;
        result.map(|(load, backends)| (load, backends, stayed_up))
    }
    .await;
    for fake in http_fakes {
        fake.shutdown().await;
    }
    if let Some(server) = jwks {
        server.shutdown().await;
    }
    let (load, backends, stayed_up) = outcome?;

    let mut entries = journal.snapshot();
    for file in &journal_files {
        entries.extend(
            journal::read_file(file).map_err(|source| RunError::ReadJournal {
                path: file.clone(),
                source,
            })?,
        );
    }
    entries.sort_by_key(|e| e.at);
    Ok(Finished {
        load,
        journal: entries,
        backends,
        stayed_up,
    })
}

/// Where each fake of a run listens, by name.
type FakeAddresses<'a> = dyn Fn(&str) -> FakeAddress + 'a;

/// Waits for the proxy, then runs the load with the progress line, and
/// samples the proxy's `/admin/backends` meanwhile when it is ours.
async fn drive(
    scenario: &Scenario,
    options: &RunOptions,
    (seed, address, work_dir): (u64, &FakeAddresses<'_>, &Path),
    (clock, callers): (ScenarioClock, &Callers),
    proxy: &mut ProxyUnderTest,
) -> Result<(LoadResult, Vec<BackendSample>), RunError> {
    let url = proxy.url();
    // One client for readiness and load: its pool carries over.
    let target = LoadTarget::new(&url)?;
    let mut exited = || proxy.exited();
    wait_ready(
        scenario,
        &target,
        &url,
        (clock, callers),
        &options.cancel,
        &mut exited,
    )
    .await?;
    let progress = Arc::new(Progress::default());
    let line = ProgressLine::start(
        options.progress,
        Headline::of_scenario(scenario),
        clock,
        progress.clone(),
    );
    let load = load::run_as(
        &target,
        &scenario.workload,
        seed,
        load::Timing {
            clock,
            duration: scenario.duration,
            grace: scenario.grace,
        },
        progress,
        callers,
    );
    // Another gateway's admin, if any, is not ours to read: a running
    // target or a started one (`--target-cmd`) is a black box.
    let sampler = match options.mode {
        ProxyMode::Target(_) | ProxyMode::TargetCmd(_) => None,
        ProxyMode::InProcess | ProxyMode::Binary(_) => {
            let token = scenario.proxy.as_ref().and_then(|p| p.admin_token());
            BackendSampler::new(&url, Arc::new(TcpDialer), token.as_deref())
        }
    };
    let sampled = async {
        match &sampler {
            Some(sampler) => sampler.sample_while(clock, scenario.duration, load).await,
            None => (load.await, Vec::new()),
        }
    };
    // The reload faults, beside the load: the in-process proxy is taken out
    // of `proxy` meanwhile (a restart replaces it), and put back after.
    let steps = reloads::steps(scenario);
    let mut in_process = match std::mem::replace(proxy, ProxyUnderTest::Target(url.clone())) {
        ProxyUnderTest::InProcess(running) => Some(running),
        other => {
            *proxy = other;
            None
        }
    };
    let reloading = async {
        if steps.is_empty() {
            return Vec::new();
        }
        match proxy {
            ProxyUnderTest::Binary { .. } => {
                let mut binary = reloads::Binary {
                    config_path: &work_dir.join(proxy::BINARY_CONFIG_FILE),
                    url: url.clone(),
                    listen: listen_of(&url),
                    address,
                    seed,
                    token: scenario.proxy.as_ref().and_then(|p| p.admin_token()),
                };
                let mut records = Vec::new();
                reloads::follow(&steps, clock, &mut binary, &mut |r| records.push(r)).await;
                records
            }
            _ => {
                // As the proxy was started (`ProxyUnderTest::start`): the
                // bound port is not a change of `listen`.
                let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                let configure = |step: &reloads::Step| step.config(scenario, address, listen, seed);
                let mut library = reloads::InProcess {
                    proxy: &mut in_process,
                    configure: &configure,
                    start: |config| async move {
                        mcp_proxy::server::start(config)
                            .await
                            .map_err(|error| error.to_string())
                    },
                };
                let mut records = Vec::new();
                reloads::follow(&steps, clock, &mut library, &mut |r| records.push(r)).await;
                records
            }
        }
    };
    // Ctrl-C wins over a load that ends at the same moment: the run is
    // reported as interrupted either way.
    let result = tokio::select! {
        biased;
        () = options.cancel.cancelled() => (LoadResult::default(), Vec::new()),
        ((mut load, samples), reloads) = async { tokio::join!(sampled, reloading) } => {
            load.reloads = reloads;
            (load, samples)
        }
    };
    if let Some(running) = in_process {
        *proxy = ProxyUnderTest::InProcess(running);
    }
    line.finish();
    Ok(result)
}

/// The listen address in a proxy's MCP URL (`http://ADDR/mcp`).
fn listen_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|authority| authority.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Polls until one MCP session through the proxy (`target`, at `url`) lists
/// every tool the workload calls — with identities, until one session of
/// each identity opens and together they list every tool, since a role
/// sees only its own — and fails if that came after the first outage.
/// `exited` says whether (and how) the proxy process ended.
pub(crate) async fn wait_ready(
    scenario: &Scenario,
    target: &LoadTarget,
    url: &str,
    (clock, callers): (ScenarioClock, &Callers),
    cancel: &CancellationToken,
    exited: &mut dyn FnMut() -> Option<String>,
) -> Result<(), RunError> {
    poll_until_listed(scenario, target, url, callers, cancel, exited).await?;
    let ready_at = clock.elapsed();
    if let Some(first_outage) = first_outage_start(scenario)
        && ready_at > first_outage
    {
        return Err(RunError::ReadyTooLate {
            ready_at,
            first_outage,
        });
    }
    Ok(())
}

async fn poll_until_listed(
    scenario: &Scenario,
    target: &LoadTarget,
    url: &str,
    callers: &Callers,
    cancel: &CancellationToken,
    exited: &mut dyn FnMut() -> Option<String>,
) -> Result<(), RunError> {
    let wanted: Vec<&str> = scenario
        .workload
        .calls
        .iter()
        .map(|c| c.tool.as_str())
        .collect();
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if cancel.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        if let Some(status) = exited() {
            return Err(RunError::ProxyExited { status });
        }
        // Each attempt is bounded too: a proxy that accepts and never
        // answers must not hold the run (or Ctrl-C) forever.
        let attempt_deadline = deadline.min(tokio::time::Instant::now() + READY_ATTEMPT_TIMEOUT);
        let attempt = tokio::time::timeout_at(attempt_deadline, list_tools(target, callers));
        let problem = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(RunError::Interrupted),
            listed = attempt => match listed {
                Err(_) => "no answer".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(tools)) => {
                    let missing: Vec<&str> = wanted
                        .iter()
                        .copied()
                        .filter(|w| !tools.iter().any(|t| t == w))
                        .collect();
                    if missing.is_empty() {
                        return Ok(());
                    }
                    format!("tools not listed yet: {}", missing.join(", "))
                }
            },
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::NotReady {
                url: url.to_owned(),
                timeout: READY_TIMEOUT,
                problem,
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Lists the proxy's tools in a fresh session: an anonymous one, or one of
/// each identity (all the tools they list).
async fn list_tools(target: &LoadTarget, callers: &Callers) -> Result<Vec<String>, RunError> {
    let firsts = callers.first_of_each_identity();
    let clients: Vec<Option<usize>> = if firsts.is_empty() {
        vec![None]
    } else {
        firsts.iter().copied().map(Some).collect()
    };
    let mut tools = Vec::new();
    for client in clients {
        let caller = Caller {
            client: client.unwrap_or(0),
            credentials: client.and_then(|c| callers.credentials(c)),
            statuses: None,
        };
        let session = McpSession::open_as(target, caller).await?;
        let listed = session.list_tools().await;
        session.close().await;
        tools.extend(listed.map_err(RunError::ListTools)?);
    }
    Ok(tools)
}

/// Starts the HTTP fake `spec` of `scenario` with the faults that name it,
/// journalling to `journal`.
pub(crate) async fn start_http_fake(
    scenario: &Scenario,
    spec: &FakeSpec,
    seed: u64,
    clock: ScenarioClock,
    journal: &Journal,
) -> Result<HttpFake, RunError> {
    HttpFake::start(FakeConfig {
        spec: spec.clone(),
        faults: faults_of(scenario, &spec.name),
        seed,
        clock,
        journal: journal.clone(),
        generation: 0,
    })
    .await
    .map_err(|source| RunError::FakeStart {
        fake: spec.name.clone(),
        source,
    })
}

/// The faults that apply to one fake.
pub(crate) fn faults_of(scenario: &Scenario, fake: &str) -> Vec<crate::scenario::Fault> {
    scenario
        .faults
        .iter()
        .filter(|f| f.fake == fake)
        .cloned()
        .collect()
}

/// When the first outage (or network partition) starts. A proxy that only
/// gets ready after it would be judged on a scenario that did not happen (its
/// backends were never reachable before the outage), so the run stops there.
/// Other faults may start at 0s: they change behaviour, not availability.
fn first_outage_start(scenario: &Scenario) -> Option<Duration> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match (&f.trigger, &f.action) {
            (
                Trigger::Time { at, .. },
                FaultAction::Outage { .. }
                | FaultAction::Network {
                    link: LinkFault::Partition(_),
                    ..
                },
            ) => Some(*at),
            _ => None,
        })
        .min()
}

/// The command line of `mcp-harness fake-backend` for one stdio fake.
fn stdio_fake_args(
    scenario_file: &Path,
    fake: &str,
    journal_file: &Path,
    clock: ScenarioClock,
    seed: u64,
) -> Vec<String> {
    vec![
        "fake-backend".into(),
        "--transport".into(),
        "stdio".into(),
        "--scenario".into(),
        scenario_file.display().to_string(),
        "--fake".into(),
        fake.into(),
        "--journal".into(),
        journal_file.display().to_string(),
        "--epoch-ms".into(),
        clock.unix_ms().to_string(),
        "--seed".into(),
        seed.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Options for `mode` that start nothing of their own.
    fn options_for(mode: ProxyMode, ports: PortPlan) -> RunOptions {
        RunOptions {
            mode,
            seed: None,
            harness_bin: "/nonexistent/mcp-harness".into(),
            progress: false,
            cancel: CancellationToken::new(),
            ports,
            codes: None,
        }
    }

    /// A scenario with a network fault, which a real run refuses.
    const NETWORK_FAULT: &str = "\
name: t
description: a test
duration: 2s
proxy:
  backends:
    - { name: a, fake: a }
fakes:
  - { name: a, transport: http, tools: [{ name: echo }] }
faults:
  - { fake: a, at: 1s, network: { latency: 10ms } }
workload:
  closed: { concurrency: 1 }
  calls: [{ tool: a/echo }]
expect:
  - threshold: { error_rate: { max: 0 } }
";

    #[tokio::test]
    async fn a_stopped_real_run_replays_with_every_flag_it_ran_with() {
        let scenario = crate::scenario::load_str(NETWORK_FAULT, Path::new("net.yaml")).unwrap();
        let mode = ProxyMode::TargetCmd(TargetCmd {
            url: "http://127.0.0.1:18580/".into(),
            command: "gw --config {config}".into(),
            config_template: Some("/etc/gw templates/gw.toml".into()),
            log: None,
        });
        let ports = PortPlan {
            base: Some(18001),
            named: vec![parse_named_port("a=9000").unwrap()],
        };
        let codes = CodeOverlay::parse(
            "target: gw 1\nkinds: { refused: [-32603] }\n",
            Path::new("targets/gw/codes.yaml"),
        )
        .unwrap();
        let options = RunOptions {
            seed: Some(7),
            codes: Some(codes),
            ..options_for(mode, ports)
        };
        let replay = "mcp-harness run --target http://127.0.0.1:18580/ --target-cmd 'gw --config {config}' --target-config '/etc/gw templates/gw.toml' --ports 18001 --port a=9000 --codes targets/gw/codes.yaml --seed 7 net.yaml";
        // Stopped because it needs the simulated network.
        let report = run(&scenario, &options).await;
        assert!(report.error.as_deref().unwrap().contains("--sim"));
        assert_eq!(report.replay, replay);
        // Stopped because the command line does not fit the scenario.
        let options = RunOptions {
            ports: PortPlan {
                base: Some(18001),
                named: vec![parse_named_port("x=9000").unwrap()],
            },
            ..options
        };
        let report = run(&scenario, &options).await;
        assert!(report.error.as_deref().unwrap().contains("no fake named"));
        assert_eq!(
            report.replay,
            replay.replace("--port a=9000", "--port x=9000")
        );
    }

    #[tokio::test]
    async fn a_network_fault_refuses_a_real_run_before_anything_starts() {
        let scenario = crate::scenario::load_str(NETWORK_FAULT, Path::new("net.yaml")).unwrap();
        // Latency changes behaviour, not availability.
        assert_eq!(first_outage_start(&scenario), None);
        for mode in [
            ProxyMode::InProcess,
            ProxyMode::Binary("/nonexistent/mcp-proxy".into()),
            ProxyMode::Target("http://127.0.0.1:1/mcp".into()),
        ] {
            let options = RunOptions {
                seed: Some(7),
                ..options_for(mode, PortPlan::default())
            };
            let report = run(&scenario, &options).await;
            assert_eq!(
                report.error.as_deref(),
                Some(
                    "net.yaml:10: faults[0].network: a network fault needs the simulated network: run the scenario with --sim"
                )
            );
            assert_eq!((report.calls, report.seed), (0, 7));
        }
    }

    #[test]
    fn a_scenario_without_a_proxy_section_is_prepared_for_targets_only() {
        let text = "\
name: t
description: a test
duration: 2s
fakes:
  - { name: a, transport: http, tools: [{ name: echo }] }
workload:
  closed: { concurrency: 1 }
  calls: [{ tool: a/echo }]
expect:
  - threshold: { error_rate: { max: 0 } }
";
        let scenario = crate::scenario::load_str(text, Path::new("bare.yaml")).unwrap();
        let ports = PortPlan {
            base: Some(18001),
            named: Vec::new(),
        };
        let options = |mode| options_for(mode, ports.clone());
        assert_eq!(
            prepare(&scenario, &options(ProxyMode::InProcess)).unwrap_err(),
            "bare.yaml has no proxy: section; run it against a gateway with --target"
        );
        let prepared = prepare(
            &scenario,
            &options(ProxyMode::Target("http://127.0.0.1:1/mcp".into())),
        )
        .unwrap();
        assert_eq!(
            prepared.fakes[0].transport,
            FakeTransport::Http { port: 18001 }
        );
    }

    #[test]
    fn a_partition_is_an_outage_the_proxy_must_be_ready_before() {
        let text = "\
name: t
description: a test
duration: 5s
proxy:
  backends:
    - { name: a, fake: a }
fakes:
  - { name: a, transport: http, tools: [{ name: echo }] }
faults:
  - { fake: a, at: 1s, network: { latency: 10ms } }
  - { fake: a, at: 3s, network: { partition: from_fake } }
  - { fake: a, at: 2s, for: 500ms, network: { drop_connections: 0.1 } }
workload:
  closed: { concurrency: 1 }
  calls: [{ tool: a/echo }]
expect:
  - threshold: { error_rate: { max: 0 } }
";
        let scenario = crate::scenario::load_str(text, Path::new("s.yaml")).unwrap();
        assert_eq!(first_outage_start(&scenario), Some(Duration::from_secs(3)));
    }
}
