//! `mcp-harness run --sim`: a scenario in virtual time, replayable from its
//! seed.
//!
//! The same YAML as a real run, on [turmoil]: one simulated network, one
//! virtual clock, one thread. Each HTTP fake is a host of its own (`fake-NAME`),
//! the issuer's JWKS server (if the scenario has one) is the host
//! `issuer-NAME`, the proxy — the real `mcp-proxy` library, started with
//! [`mcp_proxy::server::start_on`] — is the host `proxy`, and the load
//! generator is the client `harness`. The proxy and the harness read the
//! time of day from [`SimWallClock`]s, so the JWTs the harness mints
//! expire in virtual time, as the proxy judges them. Stdio fakes run as tasks of the proxy's
//! host on in-memory pipes ([`stdio`]). Nothing waits on the wall clock: a
//! 20-second scenario takes as long as its work, and the same scenario and
//! seed give the same report, byte for byte.
//!
//! Why turmoil rather than tokio's paused clock with in-memory pipes:
//! it runs the real TCP-speaking code (hyper on both sides) over a network
//! with seeded latency, partitions and holds, so network faults come for
//! free (`network.rs` applies a scenario's); and it is fast: `cargo bench
//! --bench simulation` measures a 20 s, 4,000-call scenario in about 0.24 s
//! (~85× real time).
//!
//! What the simulation does not cover: real sockets, real processes (a stdio
//! fake's "exit" is its task ending), and the operating system's scheduling.
//! The real mode keeps those covered.
//!
//! Determinism needs every decision to come from a seed: the proxy's
//! (`proxy.seed`, set from the run's seed), the fakes' and the load's (the
//! scenario seed), turmoil's (the same), session ids from a seeded
//! generator, `tokio::select!` made `biased`, and no hash-map iteration order
//! in a decision or an output. [`check_determinism`] runs twice and compares.

pub mod net;
mod network;
pub mod stdio;
pub mod sweep;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mcp_proxy::platform::{Platform, SeededSessionIds, SeededTraceIds};

use crate::admin::BackendSampler;
use crate::checks::Verdict;
use crate::checks::figures::{Figures, Measure};
use crate::clock::{ScenarioClock, SimWallClock};
use crate::fake::{FakeConfig, HttpFake};
use crate::identity::{Callers, IssuerKeys, JWKS_PATH, JwksServer};
use crate::journal::{Journal, JournalEntry};
use crate::load::record::ReloadRecord;
use crate::load::{self, LoadResult, Progress};
use crate::report::RunReport;
use crate::report::replay::{self, Flag};
use crate::report::timeline::BackendSample;
use crate::run::{RunError, reloads};
use crate::scenario::{FakeAddress, FakeSpec, FakeTransport, Scenario};
use net::{HTTP_PORT, SimDialer, SimListener, SimNetwork};
use stdio::{InProcessSpawner, SIM_FAKE_PROGRAM};

/// The proxy's simulated host name and port.
const PROXY_HOST: &str = "proxy";
const PROXY_PORT: u16 = 8080;
/// One simulation step: hosts advance in lockstep by this much, and a
/// message between hosts is delivered at a step boundary.
const TICK: Duration = Duration::from_millis(1);
/// Virtual time allowed beyond the scenario's duration and grace for
/// start-up and teardown before the simulation is called stuck.
const SLACK: Duration = Duration::from_secs(60);

/// The mode name in reports.
pub const MODE: &str = "simulation";

/// What one simulated run produced.
#[derive(Debug)]
pub struct SimRun {
    /// The verdict, as a real run reports it.
    pub report: RunReport,
    /// Virtual time the scenario took.
    pub virtual_time: Duration,
    /// Every request the fakes received, in order.
    pub journal: Vec<JournalEntry>,
}

/// Runs `scenario` with `seed` in simulation. Blocking: turmoil drives its
/// own runtimes, so call it outside any tokio runtime (a plain thread).
pub fn run(scenario: &Scenario, seed: u64) -> SimRun {
    let outcome = simulate(scenario, seed);
    let mut report = match &outcome {
        Ok(done) => {
            RunReport::from_run(scenario, MODE, done.virtual_time, &done.load, &done.journal)
        }
        Err((error, virtual_time)) => {
            RunReport::stopped(scenario, MODE, *virtual_time, error.clone())
        }
    };
    report.seed = seed;
    report.replay = replay::command(&[Flag::bare("--sim")], seed, &report.file);
    match outcome {
        Ok(done) => SimRun {
            report: RunReport {
                backends: done.backends,
                ..report
            },
            virtual_time: done.virtual_time,
            journal: done.journal,
        },
        Err((_, virtual_time)) => SimRun {
            report,
            virtual_time,
            journal: Vec::new(),
        },
    }
}

/// What the simulation observed.
struct Simulated {
    load: LoadResult,
    journal: Vec<JournalEntry>,
    backends: Vec<BackendSample>,
    virtual_time: Duration,
}

/// The simulated host name of an HTTP fake.
fn fake_host(name: &str) -> String {
    format!("fake-{name}")
}

/// The simulated host name of the issuer's JWKS server.
fn issuer_host(name: &str) -> String {
    format!("issuer-{name}")
}

fn simulate(scenario: &Scenario, seed: u64) -> Result<Simulated, (String, Duration)> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(TICK)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        .simulation_duration(scenario.duration + scenario.grace + SLACK)
        .build();
    let journal = Journal::in_memory();
    // A fake's config, on the clock of the host it runs on: every simulated
    // host's clock starts at virtual zero with the simulation.
    let fake_config = |spec: &FakeSpec| {
        let (spec, faults, journal) = (
            spec.clone(),
            crate::run::faults_of(scenario, &spec.name),
            journal.clone(),
        );
        move || FakeConfig {
            spec: spec.clone(),
            faults: faults.clone(),
            seed,
            clock: ScenarioClock::start_now(),
            journal: journal.clone(),
            generation: 0,
        }
    };

    for spec in &scenario.fakes {
        if let FakeTransport::Http { .. } = spec.transport {
            let config = fake_config(spec);
            sim.host(fake_host(&spec.name), move || {
                let config = config();
                async move {
                    let network = SimNetwork::new(fake_host(&config.spec.name));
                    let fake = HttpFake::start_on(config, &network).await?;
                    std::future::pending::<()>().await;
                    drop(fake);
                    Ok(())
                }
            });
        }
    }

    let keys = IssuerKeys::of(scenario, seed)
        .map_err(|e| (e, Duration::ZERO))?
        .map(Arc::new);
    if let Some(keys) = &keys {
        let (keys, jwks_scenario, journal) = (Arc::clone(keys), scenario.clone(), journal.clone());
        sim.host(issuer_host(keys.name()), move || {
            let (keys, scenario, journal) =
                (Arc::clone(&keys), jwks_scenario.clone(), journal.clone());
            async move {
                let network = SimNetwork::new(issuer_host(keys.name()));
                let clock = ScenarioClock::start_now();
                let server =
                    JwksServer::start_on(keys, &scenario, clock, journal, &network, HTTP_PORT)
                        .await?;
                std::future::pending::<()>().await;
                drop(server);
                Ok(())
            }
        });
    }
    let address = |name: &str| match scenario.fakes.iter().find(|f| f.name == name) {
        None if keys.as_ref().is_some_and(|k| k.name() == name) => FakeAddress::Http {
            url: format!("http://{}:{HTTP_PORT}{JWKS_PATH}", issuer_host(name)),
        },
        Some(spec) if matches!(spec.transport, FakeTransport::Stdio) => FakeAddress::Stdio {
            command: SIM_FAKE_PROGRAM.into(),
            args: vec![name.to_owned()],
        },
        Some(FakeSpec {
            transport: FakeTransport::Http { port },
            ..
        }) if *port != 0 => FakeAddress::Http {
            url: format!("http://{}:{port}/mcp", fake_host(name)),
        },
        _ => FakeAddress::Http {
            url: format!("http://{}:{HTTP_PORT}/mcp", fake_host(name)),
        },
    };
    let file = scenario.file.display().to_string();
    let base_dir = match scenario.file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    // The simulated listener is bound below; the config's `listen` is only
    // what the loader checks. Loopback, as in the in-process and binary
    // modes, so a scenario needs no `auth:` to load (the simulated network
    // is closed to everything but the scenario's own hosts).
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PROXY_PORT));
    let Some(section) = &scenario.proxy else {
        return Err((scenario.needs_target().unwrap_or_default(), Duration::ZERO));
    };
    let config = section
        .config(&file, &base_dir, &address, listen, seed)
        .map_err(|e| (e.to_string(), Duration::ZERO))?;
    // Stdio fakes run on the proxy's host, so on its clock.
    let stdio_fakes: Vec<_> = scenario
        .fakes
        .iter()
        .filter(|spec| matches!(spec.transport, FakeTransport::Stdio))
        .map(fake_config)
        .collect();
    // The reload faults, their configs made here (the addresses are this
    // run's), done on the proxy's host at their times.
    let steps = reloads::steps(scenario);
    let step_configs: Vec<_> = steps
        .iter()
        .map(|step| step.config(scenario, &address, listen, seed))
        .collect();
    let reload_records: Rc<RefCell<Vec<ReloadRecord>>> = Rc::default();
    let proxy_records = Rc::clone(&reload_records);
    sim.host(PROXY_HOST, move || {
        let config = config.clone();
        let spawner = Arc::new(InProcessSpawner::new(stdio_fakes.iter().map(|fake| fake())));
        let (steps, step_configs, records) = (
            steps.clone(),
            step_configs.clone(),
            Rc::clone(&proxy_records),
        );
        async move {
            let clock = ScenarioClock::start_now();
            let platform = Platform {
                dialer: Arc::new(SimDialer),
                spawner,
                session_ids: Arc::new(SeededSessionIds::new(seed)),
                // Another stream than the session ids', so a scenario
                // that adds a call does not shift every session id.
                trace_ids: Arc::new(SeededTraceIds::new(seed.rotate_left(17) ^ 0x0074_7261_6365)),
                clock: Arc::new(SimWallClock::started_now()),
            };
            let listener = SimListener::bind(PROXY_PORT).await?;
            let mut proxy = Some(mcp_proxy::server::start_on(
                config,
                listener,
                platform.clone(),
            )?);
            let configure = |step: &reloads::Step| step_configs[step.index].clone();
            let mut library = reloads::InProcess {
                proxy: &mut proxy,
                configure: &configure,
                start: |config| {
                    let platform = platform.clone();
                    async move {
                        let listener = SimListener::bind(PROXY_PORT)
                            .await
                            .map_err(|error| error.to_string())?;
                        mcp_proxy::server::start_on(config, listener, platform)
                            .map_err(|error| error.to_string())
                    }
                },
            };
            reloads::follow(&steps, clock, &mut library, &mut |record| {
                records.borrow_mut().push(record);
            })
            .await;
            std::future::pending::<()>().await;
            drop(proxy);
            Ok(())
        }
    });

    type Sampled = (LoadResult, Vec<BackendSample>);
    let outcome: Rc<RefCell<Option<Result<Sampled, RunError>>>> = Rc::default();
    let load_outcome = Rc::clone(&outcome);
    let client_scenario = scenario.clone();
    let admin_token = section.admin_token();
    sim.client("harness", async move {
        let clock = ScenarioClock::start_now();
        let wall: Arc<dyn mcp_proxy::platform::WallClock> = Arc::new(SimWallClock::started_now());
        let url = format!("http://{PROXY_HOST}:{PROXY_PORT}/mcp");
        let result = async {
            let callers = Callers::of(&client_scenario.workload, keys.as_ref(), clock, &wall)
                .map_err(RunError::Identity)?;
            let target = load::LoadTarget::with_dialer(&url, Arc::new(SimDialer))?;
            let never = tokio_util::sync::CancellationToken::new();
            crate::run::wait_ready(
                &client_scenario,
                &target,
                &url,
                (clock, &callers),
                &never,
                &mut || None,
            )
            .await?;
            let load = load::run_as(
                &target,
                &client_scenario.workload,
                seed,
                load::Timing {
                    clock,
                    duration: client_scenario.duration,
                    grace: client_scenario.grace,
                },
                Arc::new(Progress::default()),
                &callers,
            );
            // The proxy's admin is read on the simulated network too, at
            // fixed virtual times: the samples replay with the run.
            Ok(
                match BackendSampler::new(&url, Arc::new(SimDialer), admin_token.as_deref()) {
                    Some(sampler) => {
                        sampler
                            .sample_while(clock, client_scenario.duration, load)
                            .await
                    }
                    None => (load.await, Vec::new()),
                },
            )
        }
        .await;
        *load_outcome.borrow_mut() = Some(result);
        Ok(())
    });

    let finished = network::run(&mut sim, &scenario.faults);
    let virtual_time = sim.elapsed();
    drop(sim);
    if let Err(error) = finished {
        return Err((format!("the simulation failed: {error}"), virtual_time));
    }
    let (mut load, backends) = match outcome.borrow_mut().take() {
        Some(Ok(sampled)) => sampled,
        Some(Err(error)) => return Err((error.to_string(), virtual_time)),
        None => return Err(("the load never finished".into(), virtual_time)),
    };
    load.reloads = reload_records.take();
    let mut journal = journal.snapshot();
    journal.sort_by_key(|e| e.at);
    Ok(Simulated {
        load,
        journal,
        backends,
        virtual_time,
    })
}

/// Everything a run leaves that must be the same for the same seed: the
/// JSON report and the journal, one line per entry.
pub fn transcript(run: &SimRun) -> String {
    let mut text = crate::report::json::to_string(std::slice::from_ref(&run.report))
        .unwrap_or_else(|e| format!("the report does not serialize: {e}"));
    text.push('\n');
    for entry in &run.journal {
        text.push_str(&serde_json::to_string(entry).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// The first line where two transcripts differ: `(line number, first,
/// second)`, or `None` when they are the same.
pub fn first_difference(first: &str, second: &str) -> Option<(usize, String, String)> {
    let mut a = first.lines();
    let mut b = second.lines();
    let mut number = 0;
    loop {
        number += 1;
        match (a.next(), b.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                let show = |line: Option<&str>| line.unwrap_or("(end of output)").to_owned();
                return Some((number, show(x), show(y)));
            }
        }
    }
}

/// The name of the check [`check_determinism`] adds.
pub const REPLAY_CHECK: &str = "the same seed replays the same run";

/// Runs `scenario` twice with `seed`; `Err` names the first line of the
/// transcripts (report, then journal) that differs.
pub fn check_determinism(scenario: &Scenario, seed: u64) -> Result<SimRun, String> {
    match compare_twice(scenario, seed) {
        (first, None) => Ok(first),
        (_, Some(difference)) => Err(difference),
    }
}

/// The first of two runs with `seed`, and how the second differed, if it did.
fn compare_twice(scenario: &Scenario, seed: u64) -> (SimRun, Option<String>) {
    let first = run(scenario, seed);
    let second = run(scenario, seed);
    let difference = first_difference(&transcript(&first), &transcript(&second)).map(|(line, a, b)| {
        format!(
            "{}: two runs with seed {seed} differ at line {line} of the report and journal:\n  first:  {a}\n  second: {b}",
            scenario.file.display()
        )
    });
    (first, difference)
}

/// [`check_determinism`] as a run whose report carries the verdict as one
/// more check, [`REPLAY_CHECK`] (so JSON and JUnit show it too).
pub fn run_twice(scenario: &Scenario, seed: u64) -> SimRun {
    let (mut done, difference) = compare_twice(scenario, seed);
    let differing = Measure {
        total: Some(2),
        ..Measure::count(
            "differing_runs",
            u64::from(difference.is_some()),
            None,
            Some(0),
        )
    };
    let verdict = Verdict {
        figures: Figures::whole_run(vec![differing]),
        expected: "an identical report and journal from two runs".into(),
        observed: match &difference {
            None => "identical".into(),
            Some(_) => "different".into(),
        },
        passed: difference.is_none(),
        detail: difference,
    };
    done.report
        .checks
        .push(verdict.named(REPLAY_CHECK.into(), "accounting", None));
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One raw HTTP/1.1 GET of `path` on `host`'s port 80, from a simulated
    /// client: the status line, or the connection's error.
    async fn get(host: &str, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = turmoil::net::TcpStream::connect((host, HTTP_PORT)).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[test]
    fn the_jwks_server_is_a_simulated_host_that_rotates_and_goes_down() {
        let scenario = crate::scenario::load_str(
            "name: t\ndescription: d\nduration: 10s\n\
             fakes: [{ name: f, transport: http, tools: [{ name: a }] }]\n\
             issuer: { name: idp, audience: 'https://mcp.test/mcp', keys: [k1, k2] }\n\
             faults:\n\
             - { issuer: idp, at: 2s, rotate_key: { to: k2, keep_old: true } }\n\
             - { issuer: idp, at: 4s, for: 2s, outage: true }\n\
             workload: { closed: { concurrency: 1 }, calls: [{ tool: a }] }\nexpect: []\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let keys = Arc::new(IssuerKeys::of(&scenario, 9).unwrap().unwrap());
        let journal = Journal::in_memory();
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(30))
            .build();
        let (host_keys, host_journal) = (Arc::clone(&keys), journal.clone());
        sim.host(issuer_host("idp"), move || {
            let (keys, scenario, journal) = (
                Arc::clone(&host_keys),
                scenario.clone(),
                host_journal.clone(),
            );
            async move {
                let network = SimNetwork::new(issuer_host("idp"));
                let clock = ScenarioClock::start_now();
                let _server =
                    JwksServer::start_on(keys, &scenario, clock, journal, &network, HTTP_PORT)
                        .await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        sim.client("probe", async move {
            let host = issuer_host("idp");
            let first = get(&host, JWKS_PATH).await?;
            assert!(first.starts_with("HTTP/1.1 200"), "{first}");
            assert!(
                first.contains("\"k1\"") && !first.contains("\"k2\""),
                "{first}"
            );
            assert!(get(&host, "/other").await?.starts_with("HTTP/1.1 404"));
            tokio::time::sleep(Duration::from_secs(3)).await;
            let rotated = get(&host, JWKS_PATH).await?;
            assert!(
                rotated.contains("\"k1\"") && rotated.contains("\"k2\""),
                "{rotated}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            let refused = get(&host, JWKS_PATH).await.unwrap_err();
            assert_eq!(
                refused.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "{refused}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert!(get(&host, JWKS_PATH).await?.starts_with("HTTP/1.1 200"));
            Ok(())
        });
        sim.run().unwrap();
        let fetched: Vec<String> = journal.snapshot().into_iter().map(|e| e.outcome).collect();
        assert_eq!(fetched, ["ok", "not_found", "ok", "ok"]);
        assert_eq!(
            keys.jwks_at(Duration::from_secs(3))["keys"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn the_first_difference_is_found_and_named_by_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(
            first_difference("a\nb\nc", "a\nx\nc"),
            Some((2, "b".into(), "x".into()))
        );
        assert_eq!(
            first_difference("a", "a\nmore"),
            Some((2, "(end of output)".into(), "more".into()))
        );
    }
}
