//! The `mcp-harness` command line: `run`, `report`, `bench`, `check`,
//! `list` and `fake-backend`. Exit codes: 0 every check passed (bench:
//! measured, and within the goals of --memory or --soak; report: the page
//! written), 1 a check failed (bench: a goal missed), 2 an invalid
//! scenario or a harness error (bench: could not measure; report: the JSON
//! unreadable), 130 interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mcp_harness::clock::ScenarioClock;
use mcp_harness::fake::{self, FakeConfig, HttpFake, StdioEnd};
use mcp_harness::journal::Journal;
use mcp_harness::report::terminal::Colour;
use mcp_harness::report::{self, RunReport};
use mcp_harness::run::{self, NamedPort, PortPlan, ProxyMode, RunOptions, TargetCmd};
use mcp_harness::scenario::{self, CodeOverlay, FakeTransport, Scenario};
use mcp_harness::sim::{self, sweep};
use tokio_util::sync::CancellationToken;

/// Chaos-testing toolkit for MCP gateways: fake backends with scripted
/// faults, real MCP client load through a proxy, and checks of what the
/// proxy did.
#[derive(Parser)]
#[command(name = "mcp-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and judge them (exit 0 all checks pass, 1 a check failed,
    /// 2 invalid scenario or harness error).
    Run {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override every scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the reports as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also write the reports as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the reports as one HTML page (charts, tables, no
        /// script, nothing fetched) to this file; with --seeds, a page of
        /// the sweep.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Spawn this mcp-proxy binary with a generated config instead of
        /// running the proxy in-process.
        #[arg(long, value_name = "PATH", conflicts_with = "target")]
        proxy_bin: Option<PathBuf>,
        /// Aim at another gateway's MCP endpoint: one already running (fakes
        /// listen on the ports the scenario or --ports/--port name; http
        /// fakes only), or one --target-cmd starts.
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// Start the --target gateway with this command once the fakes
        /// listen, and stop it after the run (its process group: SIGTERM,
        /// then SIGKILL). Placeholders: {fake.NAME.url}, {fake.NAME.port},
        /// {fake.NAME.command} (a stdio fake's command line), {config}.
        #[arg(long, value_name = "CMD", requires = "target")]
        target_cmd: Option<String>,
        /// A config file for the --target-cmd gateway, with the same
        /// placeholders; rendered into the run's work folder as {config}.
        #[arg(long, value_name = "FILE", requires = "target_cmd")]
        target_config: Option<PathBuf>,
        /// Write the --target-cmd gateway's output here (default: the run's
        /// work folder, removed after the run).
        #[arg(long, value_name = "FILE", requires = "target_cmd")]
        target_log: Option<PathBuf>,
        /// The HTTP fakes listen on BASE, BASE+1, … in declaration order.
        #[arg(long, value_name = "BASE")]
        ports: Option<u16>,
        /// The HTTP fake NAME listens on PORT (repeatable; wins over --ports
        /// and the scenario's `port`).
        #[arg(long = "port", value_name = "NAME=PORT", value_parser = run::parse_named_port)]
        named_ports: Vec<NamedPort>,
        /// The target's JSON-RPC codes for the checks' failure kinds (and
        /// whether its messages name the backend): a YAML overlay.
        #[arg(long, value_name = "FILE", requires = "target")]
        codes: Option<PathBuf>,
        /// Do not draw the live progress line.
        #[arg(long)]
        quiet: bool,
        /// Run in simulation: virtual time, one simulated network, the
        /// proxy and every fake in this process; replayable from the seed.
        #[arg(long, conflicts_with_all = ["proxy_bin", "target", "ports", "named_ports"])]
        sim: bool,
        /// With --sim: run each scenario twice and fail at the first line
        /// where the reports or journals differ.
        #[arg(long, requires = "sim", conflicts_with = "seeds")]
        check_determinism: bool,
        /// With --sim: run every seed of A..B (or A..=B) and tally, per
        /// check, the seeds that failed it.
        #[arg(
            long,
            value_name = "A..B",
            requires = "sim",
            conflicts_with_all = ["seed", "json", "junit"]
        )]
        seeds: Option<String>,
    },
    /// Render a JSON report written by `run --json` again, as HTML.
    Report {
        /// The JSON report.
        #[arg(value_name = "RUN.json")]
        file: PathBuf,
        /// Write the HTML page to this file.
        #[arg(long, value_name = "OUT.html")]
        html: PathBuf,
    },
    /// Measure tools/call throughput and latency of any MCP endpoint, or
    /// (--compare) of an echo backend direct and through the proxy; or the
    /// memory of a proxy binary (--memory, --soak).
    Bench(mcp_harness::bench::BenchArgs),
    /// Validate scenarios without running them.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the scenarios in a folder with their descriptions.
    List {
        /// The folder (default: scenarios).
        #[arg(default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of the report files `run --json` writes.
    Schema,
    /// Run one fake backend of a scenario by itself (this is also how the
    /// proxy runs stdio fakes).
    FakeBackend {
        /// The face to serve: stdio (stdin/stdout) or http (127.0.0.1).
        #[arg(long, value_enum)]
        transport: Transport,
        /// The scenario that declares the fake.
        #[arg(long, value_name = "FILE")]
        scenario: PathBuf,
        /// The fake's name in the scenario.
        #[arg(long, value_name = "NAME")]
        fake: String,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Append every request received to this JSON-lines journal.
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// The scenario's start as Unix milliseconds (default: now).
        #[arg(long, value_name = "MS")]
        epoch_ms: Option<u64>,
        /// http: the port (default: the scenario's, else an ephemeral one).
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-harness: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let colour = Colour::for_stdout();
    // The runtime is dropped before the process exits, so tasks that own
    // child processes are dropped too and their guards kill the children.
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run {
                files,
                seed,
                json,
                junit,
                html,
                proxy_bin,
                target,
                target_cmd,
                target_config,
                target_log,
                ports,
                named_ports,
                codes,
                quiet,
                sim,
                check_determinism,
                seeds,
            } => {
                if sim {
                    let how = match seeds {
                        Some(seeds) => match sweep::parse_seeds(&seeds) {
                            Ok(seeds) => SimHow::Sweep(seeds),
                            Err(e) => {
                                eprintln!("error: --seeds: {e}");
                                return 2;
                            }
                        },
                        None if check_determinism => SimHow::Twice(seed),
                        None => SimHow::Once(seed),
                    };
                    let outputs = Outputs { json, junit, html };
                    return sim_command(&files, how, outputs, colour).await;
                }
                let mode = match (proxy_bin, target, target_cmd) {
                    (Some(bin), _, _) => ProxyMode::Binary(bin),
                    (None, Some(url), Some(command)) => ProxyMode::TargetCmd(TargetCmd {
                        url,
                        command,
                        config_template: target_config,
                        log: target_log,
                    }),
                    (None, Some(url), None) => ProxyMode::Target(url),
                    (None, None, _) => ProxyMode::InProcess,
                };
                let codes = match codes.as_deref().map(CodeOverlay::load).transpose() {
                    Ok(codes) => codes,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 2;
                    }
                };
                let ports = PortPlan {
                    base: ports,
                    named: named_ports,
                };
                let how = RunHow {
                    seed,
                    mode,
                    ports,
                    codes,
                    progress: !quiet,
                };
                let outputs = Outputs { json, junit, html };
                run_command(&files, how, outputs, colour).await
            }
            Command::Report { file, html } => report_command(&file, &html),
            // Interrupted, the bench is dropped here, inside the runtime:
            // the proxy child is killed with it (kill_on_drop).
            Command::Bench(args) => tokio::select! {
                code = mcp_harness::bench::bench_command(args) => code,
                _ = wait_for_stop_signal() => {
                    eprintln!("mcp-harness bench: interrupted");
                    130
                }
            },
            Command::Check { files } => check_command(&files),
            Command::List { dir } => list_command(&dir),
            Command::Schema => {
                print!("{}", mcp_harness::report::json::schema());
                0
            }
            Command::FakeBackend {
                transport,
                scenario,
                fake,
                seed,
                journal,
                epoch_ms,
                port,
            } => fake_command(transport, &scenario, &fake, seed, journal, epoch_ms, port).await,
        }
    });
    drop(runtime);
    ExitCode::from(code)
}

/// Loads every file; prints each error; `None` if any was invalid.
fn load_all(files: &[PathBuf]) -> Option<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    let mut ok = true;
    for file in files {
        match scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    }
    ok.then_some(scenarios)
}

/// How `run` runs each scenario in real mode (the flags other than files
/// and report files).
struct RunHow {
    seed: Option<u64>,
    mode: ProxyMode,
    ports: PortPlan,
    codes: Option<CodeOverlay>,
    progress: bool,
}

async fn run_command(files: &[PathBuf], how: RunHow, outputs: Outputs, colour: Colour) -> u8 {
    let Some(scenarios) = load_all(files) else {
        return 2;
    };
    let harness_bin = match std::env::current_exe() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: cannot find the mcp-harness binary for stdio fakes: {e}");
            return 2;
        }
    };
    let cancel = CancellationToken::new();
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if wait_for_stop_signal().await {
                // The first signal lets the run tear down in order; a second
                // one means now: exit runs no destructors, so every process
                // group the harness started is killed first. Stdio fakes then
                // exit on end of input.
                cancel.cancel();
                if wait_for_stop_signal().await {
                    eprintln!("mcp-harness: stopping at once");
                    mcp_harness::process_group::kill_all();
                    std::process::exit(130);
                }
            }
        }
    });
    let options = RunOptions {
        mode: how.mode,
        seed: how.seed,
        harness_bin,
        progress: how.progress,
        cancel: cancel.clone(),
        ports: how.ports,
        codes: how.codes,
    };
    // Refused before any scenario runs, like an invalid file.
    let refused: Vec<String> = scenarios
        .iter()
        .filter_map(|s| {
            s.needs_simulation()
                .map(|e| e.to_string())
                .or_else(|| run::prepare(s, &options).err())
        })
        .collect();
    if !refused.is_empty() {
        for error in refused {
            eprintln!("error: {error}");
        }
        return 2;
    }
    let mut reports: Vec<RunReport> = Vec::new();
    let mut blocks = Blocks::default();
    for scenario in &scenarios {
        let report = run::run(scenario, &options).await;
        blocks.print(&report::terminal::render(&report, colour));
        reports.push(report);
        if cancel.is_cancelled() {
            break;
        }
    }
    if let Some(tally) = report::terminal::tally(&reports, colour) {
        blocks.print(&tally);
    }
    if !outputs.write(&reports) {
        return 2;
    }
    if cancel.is_cancelled() {
        130
    } else if reports.iter().any(|r| r.error.is_some()) {
        2
    } else if reports.iter().all(RunReport::passed) {
        0
    } else {
        1
    }
}

/// Writes reports in one format to a file.
type WriteReports = fn(&Path, &[RunReport]) -> std::io::Result<()>;

/// The report files `run` was asked to write.
struct Outputs {
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    html: Option<PathBuf>,
}

impl Outputs {
    /// Writes each file asked for, every one even when an earlier one
    /// cannot be written; false (after saying why) if any could not.
    fn write(&self, reports: &[RunReport]) -> bool {
        let writers: [(&Option<PathBuf>, WriteReports); 3] = [
            (&self.json, report::json::write),
            (&self.junit, report::junit::write),
            (&self.html, report::html::write),
        ];
        writers
            .into_iter()
            .filter_map(|(path, write)| path.as_ref().map(|path| (path, write)))
            .fold(true, |all_written, (path, write)| {
                written(path, write(path, reports)) && all_written
            })
    }
}

/// Whether `result` of writing `path` went well; says why not.
fn written(path: &Path, result: std::io::Result<()>) -> bool {
    result
        .inspect_err(|e| eprintln!("error: cannot write {}: {e}", path.display()))
        .is_ok()
}

/// `report FILE --html OUT`: exit 0 written, 2 the JSON could not be read
/// or the page not written.
fn report_command(file: &Path, html: &Path) -> u8 {
    match report::json::read(file) {
        Ok(reports) if written(html, report::html::write(html, &reports)) => 0,
        Ok(_) => 2,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// How `run --sim` runs each scenario.
enum SimHow {
    /// Once, with this seed or the scenario's.
    Once(Option<u64>),
    /// Twice, comparing the transcripts.
    Twice(Option<u64>),
    /// Once per seed.
    Sweep(std::ops::Range<u64>),
}

async fn sim_command(files: &[PathBuf], how: SimHow, outputs: Outputs, colour: Colour) -> u8 {
    let Some(scenarios) = load_all(files) else {
        return 2;
    };
    let needs_target: Vec<String> = scenarios
        .iter()
        .filter_map(Scenario::needs_target)
        .collect();
    if !needs_target.is_empty() {
        for error in needs_target {
            eprintln!("error: {error}");
        }
        return 2;
    }
    // turmoil drives runtimes of its own: simulate off this one.
    let outcome = tokio::task::spawn_blocking(move || simulate_all(&scenarios, &how, colour)).await;
    let Simulated {
        reports,
        sweeps,
        mut code,
        mut blocks,
    } = match outcome {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: the simulation panicked: {e}");
            return 2;
        }
    };
    if !sweeps.is_empty() {
        let passed = sweeps.iter().filter(|s| s.passed()).count();
        if let Some(summary) = report::terminal::summary_line(passed, sweeps.len(), colour) {
            blocks.print(&summary);
        }
        // A sweep's only page is its summary (--json and --junit are refused).
        return match &outputs.html {
            Some(path) if !written(path, report::html::write_sweeps(path, &sweeps)) => 2,
            _ => code,
        };
    }
    if !reports.is_empty() {
        if let Some(tally) = report::terminal::tally(&reports, colour) {
            blocks.print(&tally);
        }
        if code == 0 && !reports.iter().all(RunReport::passed) {
            code = 1;
        }
        if reports.iter().any(|r| r.error.is_some()) {
            code = 2;
        }
    }
    if !outputs.write(&reports) {
        return 2;
    }
    code
}

/// What `run --sim` produced: reports, or for `--seeds` sweeps.
struct Simulated {
    reports: Vec<RunReport>,
    sweeps: Vec<sweep::Sweep>,
    code: u8,
    /// What has been printed so far, to go on from.
    blocks: Blocks,
}

/// Prints blocks of output (a report, a sweep, a summary) one blank line
/// apart and none after the last, so that the last line printed is the
/// last block's verdict.
#[derive(Default)]
struct Blocks {
    printed: bool,
}

impl Blocks {
    fn print(&mut self, block: &str) {
        if std::mem::replace(&mut self.printed, true) {
            println!();
        }
        println!("{}", block.trim_end_matches('\n'));
    }
}

/// Runs every scenario as `how` says; returns the reports or sweeps and
/// the exit code so far. Each scenario's verdict is the last line it
/// prints (the wall time comes before it).
fn simulate_all(scenarios: &[Scenario], how: &SimHow, colour: Colour) -> Simulated {
    let mut reports = Vec::new();
    let mut sweeps = Vec::new();
    let mut code = 0;
    let mut blocks = Blocks::default();
    for scenario in scenarios {
        let wall = std::time::Instant::now();
        let run = match how {
            SimHow::Once(seed) => sim::run(scenario, seed.unwrap_or(scenario.seed)),
            SimHow::Twice(seed) => sim::run_twice(scenario, seed.unwrap_or(scenario.seed)),
            SimHow::Sweep(seeds) => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let swept = sweep::sweep(scenario, seeds.clone(), threads);
                blocks.print(&format!(
                    "{}\n{}",
                    wall_line(seeds.end - seeds.start, wall.elapsed()),
                    swept.render(colour)
                ));
                if !swept.errors.is_empty() {
                    code = 2;
                } else if !swept.passed() && code == 0 {
                    code = 1;
                }
                sweeps.push(swept);
                continue;
            }
        };
        let wall = wall.elapsed();
        let runs = if matches!(how, SimHow::Twice(_)) {
            2
        } else {
            1
        };
        blocks.print(&format!(
            "simulated {:.1}s in {:.2}s of wall time{} ({:.0}× real time)\n{}",
            run.virtual_time.as_secs_f64(),
            wall.as_secs_f64(),
            if runs == 2 { ", twice" } else { "" },
            run.virtual_time.as_secs_f64() * f64::from(runs) / wall.as_secs_f64().max(1e-9),
            report::terminal::render(&run.report, colour)
        ));
        reports.push(run.report);
    }
    Simulated {
        reports,
        sweeps,
        code,
        blocks,
    }
}

/// How long a sweep took.
fn wall_line(runs: u64, wall: std::time::Duration) -> String {
    format!(
        "{runs} simulations in {:.1}s of wall time",
        wall.as_secs_f64()
    )
}

/// Resolves on Ctrl-C or SIGTERM (true), or never if neither can be watched.
async fn wait_for_stop_signal() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return tokio::signal::ctrl_c().await.is_ok();
    };
    tokio::select! {
        biased;
        r = tokio::signal::ctrl_c() => r.is_ok(),
        _ = term.recv() => true,
    }
}

fn check_command(files: &[PathBuf]) -> u8 {
    match load_all(files) {
        Some(scenarios) => {
            for s in scenarios {
                println!(
                    "ok  {}: {} ({} fakes, {} faults, {} checks{})",
                    s.file.display(),
                    s.name,
                    s.fakes.len(),
                    s.faults.len(),
                    s.expect.len(),
                    if s.needs_simulation().is_some() {
                        "; network faults: runs with --sim only"
                    } else if s.needs_target().is_some() {
                        "; no proxy section: runs with --target only"
                    } else {
                        ""
                    }
                );
            }
            0
        }
        None => 2,
    }
}

fn list_command(dir: &Path) -> u8 {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return 2;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut code = 0;
    for file in files {
        match scenario::load(&file) {
            Ok(s) => println!("{:<28} {}", file.display(), s.description),
            Err(e) => {
                println!("{:<28} INVALID: {e}", file.display());
                code = 2;
            }
        }
    }
    code
}

async fn fake_command(
    transport: Transport,
    scenario_file: &Path,
    name: &str,
    seed: Option<u64>,
    journal: Option<PathBuf>,
    epoch_ms: Option<u64>,
    port: Option<u16>,
) -> u8 {
    let scenario = match scenario::load(scenario_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(spec) = scenario.fakes.iter().find(|f| f.name == name).cloned() else {
        eprintln!(
            "error: {} declares no fake named {name:?}",
            scenario_file.display()
        );
        return 2;
    };
    let mut spec = spec;
    match (transport, spec.transport) {
        (Transport::Stdio, FakeTransport::Stdio) => {}
        (Transport::Http, FakeTransport::Http { port: declared }) => {
            spec.transport = FakeTransport::Http {
                port: port.unwrap_or(declared),
            };
        }
        _ => {
            eprintln!(
                "error: fake {name:?} is declared with another transport in {}",
                scenario_file.display()
            );
            return 2;
        }
    }
    let (journal, generation) = match &journal {
        Some(path) => {
            // Each respawn of a stdio fake continues the random sequence
            // deterministically: the generation is the number of entries its
            // predecessors journalled.
            let generation = mcp_harness::journal::read_file(path).map_or(0, |e| e.len() as u64);
            match Journal::to_file(path) {
                Ok(j) => (j, generation),
                Err(e) => {
                    eprintln!("error: cannot open the journal {}: {e}", path.display());
                    return 2;
                }
            }
        }
        None => (Journal::in_memory(), 0),
    };
    let clock = epoch_ms.map_or_else(ScenarioClock::start_now, ScenarioClock::from_unix_ms);
    let faults = scenario
        .faults
        .iter()
        .filter(|f| f.fake == name)
        .cloned()
        .collect();
    let config = FakeConfig {
        spec,
        faults,
        seed: seed.unwrap_or(scenario.seed),
        clock,
        journal,
        generation,
    };
    match transport {
        Transport::Stdio => {
            match fake::stdio::serve(config, tokio::io::stdin(), tokio::io::stdout()).await {
                StdioEnd::InputClosed => 0,
                StdioEnd::Exit(code) => {
                    // Exit at once, like a crashing server: no orderly shutdown.
                    std::process::exit(code)
                }
            }
        }
        Transport::Http => {
            let fake = match HttpFake::start(config).await {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: cannot start the fake: {e}");
                    return 2;
                }
            };
            println!("{}", fake.url());
            wait_for_stop_signal().await;
            fake.shutdown().await;
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_file_is_written_even_after_one_that_cannot_be() {
        let dir = std::env::temp_dir().join(format!("outputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let outputs = Outputs {
            json: Some(dir.join("no-such-folder").join("run.json")),
            junit: Some(dir.join("junit.xml")),
            html: Some(dir.join("run.html")),
        };
        let report: RunReport = serde_json::from_str(REPORT).unwrap();
        assert!(!outputs.write(&[report]), "the JSON could not be written");
        assert!(dir.join("junit.xml").exists() && dir.join("run.html").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The smallest report a run writes.
    const REPORT: &str = r#"{"schema_version": 2, "scenario": "s", "file": "s.yaml",
        "seed": 1, "mode": "simulation", "duration_us": 0, "replay": "", "checks": [],
        "phases": [], "missed_slots": 0, "calls": 0, "error": null, "faults": [],
        "timeline": {"bucket_us": 100000, "buckets": []}, "backends": [], "call_log": []}"#;
}
