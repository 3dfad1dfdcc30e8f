//! The `bench` subcommand: its flags, and turning them into a [`Plan`]
//! (or a memory or soak plan), the tables on stdout and the JSON file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_proxy::config::parse_duration;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::compare::{Comparison, DIRECT, LOADED, PROXY};
use super::memory::{self, MemoryError, MemoryPlan, MemoryReport};
use super::soak::{self, SoakError, SoakPlan, SoakReport};
use super::{Load, Measurement, Plan, ProcessCpu, Target, table};
use crate::run::WorkDir;
use crate::target_cmd::TargetProcess;

/// `mcp-harness bench`: measure `tools/call` throughput and latency, or
/// the proxy's memory (`--memory`, `--soak`).
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("mode").args(["compare", "memory", "soak"]))]
#[command(group = clap::ArgGroup::new("open").args(["rate", "soak"]).multiple(true))]
pub struct BenchArgs {
    /// MCP endpoint to measure (plain http://); repeat for several, measured
    /// interleaved. With --compare, measured beside the proxy.
    #[arg(long, value_name = "URL")]
    target: Vec<String>,
    /// A command that serves a --target (the first --target-cmd the first
    /// --target, and so on): started once --compare's echo backend listens
    /// (so another gateway can be set up in front of it with --fake-port),
    /// ready when the target's port accepts connections, stopped at the
    /// end; the CPU time of the process it execs is measured per call (so
    /// one program and its arguments: `env VAR=value program`, no `&&`).
    #[arg(long, value_name = "COMMAND")]
    target_cmd: Vec<String>,
    /// The tool to call at each --target.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// The call's arguments, as a JSON object (the load engine adds
    /// "harness_call": N to number the calls; a tool whose schema forbids
    /// extra properties will refuse them).
    #[arg(long, value_name = "JSON", default_value = "{}")]
    arguments: String,
    /// Closed loop: calls in flight (one session each), one cell per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Open loop instead: calls per second, one cell per value (latency
    /// counted from when each call was due).
    #[arg(long, value_delimiter = ',', conflicts_with = "concurrency")]
    rate: Vec<f64>,
    /// Open loop (and --soak): sessions the calls are spread over.
    #[arg(long, default_value_t = 8, requires = "open")]
    sessions: usize,
    /// The measured window of each cell.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before each window, not counted.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Start an echo backend and the proxy in front of it, and measure the
    /// backend direct and through the proxy (and any --target) side by side.
    #[arg(long)]
    compare: bool,
    /// With --compare: run this mcp-proxy binary rather than the proxy in
    /// this process. --memory and --soak need it: the memory they read
    /// must be the proxy's alone.
    #[arg(long, value_name = "PATH", requires = "mode")]
    proxy_bin: Option<PathBuf>,
    /// With --compare: the echo backend's port (default: an ephemeral one),
    /// so that another gateway given with --target can serve it too.
    #[arg(long, value_name = "PORT", requires = "compare")]
    fake_port: Option<u16>,
    /// Measure the proxy's resident memory (Linux): at the start, with
    /// --idle-sessions sessions open, and with --in-flight more sessions
    /// each holding a call to a backend that answers after --hold.
    #[arg(
        long,
        conflicts_with_all = MEMORY_AND_SOAK_CONFLICTS,
        conflicts_with = "open"
    )]
    memory: bool,
    /// With --memory: sessions opened and left idle.
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "memory")]
    idle_sessions: usize,
    /// With --memory: sessions opened beside the idle ones, each holding one
    /// call in flight.
    #[arg(long, value_name = "N", default_value_t = 1_000, requires = "memory")]
    in_flight: usize,
    /// With --memory: how long the backend holds each call (the calls must
    /// all be sent within half of it).
    #[arg(long, default_value = "5s", value_parser = parse_duration, requires = "memory")]
    hold: Duration,
    /// Run a soak of this length (default 10m): an open loop of --rate calls
    /// a second (default 200) through the proxy to backends with mixed
    /// faults, sampling the proxy's resident memory (Linux); passes if it
    /// grows under 10 % after the warm-up.
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        default_missing_value = "10m",
        value_parser = parse_duration,
        conflicts_with_all = MEMORY_AND_SOAK_CONFLICTS
    )]
    soak: Option<Duration>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Do not draw the live progress line (it is drawn only on a terminal).
    #[arg(long)]
    quiet: bool,
}

/// Flags of the throughput bench that --memory and --soak do not take.
const MEMORY_AND_SOAK_CONFLICTS: [&str; 8] = [
    "target",
    "target_cmd",
    "tool",
    "arguments",
    "concurrency",
    "duration",
    "warmup",
    "fake_port",
];

/// A soak's rate when --rate is not given, in calls per second.
const SOAK_RATE: f64 = 200.0;
/// The shortest soak.
const MIN_SOAK: Duration = Duration::from_secs(2);
/// The most sessions --memory opens in all.
const MAX_MEMORY_SESSIONS: usize = 100_000;

/// The most sessions a closed-loop cell opens (each holds a connection
/// and a task in this process).
const MAX_CONCURRENCY: usize = 10_000;

/// What `--json` writes: a version, then the mode's figures.
#[derive(Serialize)]
struct JsonReport<T> {
    version: u32,
    #[serde(flatten)]
    report: T,
}

/// The throughput bench's figures, under `cells`.
#[derive(Serialize)]
struct Cells<'a> {
    cells: &'a [Measurement],
}

/// The figures of a mode with goals, under its name.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Judged {
    Memory(MemoryReport),
    Soak(SoakReport),
}

impl Judged {
    fn render(&self) -> String {
        match self {
            Judged::Memory(report) => report.render(),
            Judged::Soak(report) => report.render(),
        }
    }

    fn passed(&self) -> bool {
        match self {
            Judged::Memory(report) => report.passed(),
            Judged::Soak(report) => report.passed,
        }
    }
}

/// How a measure that went through ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Measured; within its goals, where it has some.
    Passed,
    /// Measured, and a goal was missed (--memory, --soak).
    Failed,
}

/// Runs the bench; the exit code: 0 measured (and within the goals of
/// --memory or --soak), 1 a goal of --memory or --soak missed, 2 could not
/// measure (bad flags, nothing reachable, a cell where no call succeeded,
/// no proxy memory to read).
pub async fn bench_command(args: BenchArgs) -> u8 {
    match bench(args).await {
        Ok(Verdict::Passed) => 0,
        Ok(Verdict::Failed) => 1,
        Err(error) => {
            eprintln!("mcp-harness bench: {error}");
            2
        }
    }
}

async fn bench(args: BenchArgs) -> Result<Verdict, BenchError> {
    let judged = if args.memory {
        let plan = memory_plan(&args)?;
        Judged::Memory(memory::measure(plan, proxy_bin(&args, "--memory")?).await?)
    } else if let Some(duration) = args.soak {
        let plan = soak_plan(&args, duration)?;
        Judged::Soak(soak::soak(plan, proxy_bin(&args, "--soak")?).await?)
    } else {
        return throughput(args).await.map(|()| Verdict::Passed);
    };
    print!("{}", judged.render());
    let passed = judged.passed();
    write_json(args.json.as_deref(), judged)?;
    Ok(if passed {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// The binary a memory mode runs, or why it needs one.
fn proxy_bin<'a>(args: &'a BenchArgs, mode: &'static str) -> Result<&'a Path, BenchError> {
    args.proxy_bin
        .as_deref()
        .ok_or(BenchError::NeedsProxyBin(mode))
}

/// --memory's plan from its flags.
fn memory_plan(args: &BenchArgs) -> Result<MemoryPlan, BenchError> {
    let sessions = args.idle_sessions.checked_add(args.in_flight);
    if args.idle_sessions == 0
        || args.in_flight == 0
        || args.in_flight > MAX_CONCURRENCY
        || sessions.is_none_or(|n| n > MAX_MEMORY_SESSIONS)
    {
        return Err(BenchError::MemoryCounts);
    }
    if args.hold.is_zero() {
        return Err(BenchError::Hold);
    }
    Ok(MemoryPlan {
        idle: args.idle_sessions,
        in_flight: args.in_flight,
        hold: args.hold,
    })
}

/// --soak's plan from its flags.
fn soak_plan(args: &BenchArgs, duration: Duration) -> Result<SoakPlan, BenchError> {
    if duration < MIN_SOAK {
        return Err(BenchError::SoakDuration);
    }
    let rate = match args.rate[..] {
        [] => SOAK_RATE,
        [rate] if rate.is_finite() && rate > 0.0 => rate,
        [rate] => return Err(BenchError::Rate(rate)),
        _ => return Err(BenchError::SoakRates),
    };
    if args.sessions == 0 {
        return Err(BenchError::Sessions);
    }
    Ok(SoakPlan {
        duration,
        rate,
        sessions: args.sessions,
    })
}

/// Writes `report`, versioned, to `path` if one was given.
fn write_json(path: Option<&Path>, report: impl Serialize) -> Result<(), BenchError> {
    let Some(path) = path else {
        return Ok(());
    };
    let report = JsonReport { version: 1, report };
    let text = serde_json::to_string_pretty(&report).map_err(BenchError::Json)?;
    std::fs::write(path, text).map_err(|source| BenchError::WriteJson {
        path: path.to_path_buf(),
        source,
    })
}

/// The throughput bench: every cell of the plan the flags make.
async fn throughput(args: BenchArgs) -> Result<(), BenchError> {
    let arguments = match serde_json::from_str::<Value>(&args.arguments) {
        Ok(Value::Object(arguments)) => arguments,
        _ => return Err(BenchError::Arguments(args.arguments.clone())),
    };
    let loads = loads(&args)?;
    if args.duration.is_zero() {
        return Err(BenchError::Duration);
    }
    if let Some(twice) = args
        .target
        .iter()
        .enumerate()
        .find(|(i, url)| args.target[..*i].contains(url))
    {
        return Err(BenchError::SameTarget(twice.1.clone()));
    }
    if args.target_cmd.len() > args.target.len() {
        return Err(BenchError::TargetCmdWithoutTarget);
    }
    let work_dir = WorkDir::create().map_err(BenchError::WorkDir)?;
    let mut targets = Vec::new();
    let comparison = if args.compare {
        let comparison =
            Comparison::start(args.proxy_bin.as_deref(), args.fake_port, &arguments).await?;
        let direct = &comparison.targets[0];
        eprintln!("echo backend at {} (tool {})", direct.url, direct.tool);
        targets.extend(comparison.targets.iter().cloned());
        Some(comparison)
    } else {
        None
    };
    let started = match start_target_cmds(&args, &work_dir).await {
        Ok(started) => started,
        Err(error) => {
            if let Some(comparison) = comparison {
                comparison.stop().await;
            }
            return Err(error);
        }
    };
    targets.extend(args.target.iter().enumerate().map(|(i, url)| {
        Target {
            label: url.clone(),
            url: url.clone(),
            tool: args.tool.clone(),
            arguments: arguments.clone(),
            process: started
                .get(i)
                .and_then(TargetProcess::pid)
                .and_then(ProcessCpu::of),
            distinct_cells: false,
        }
    }));
    if targets.is_empty() {
        return Err(BenchError::NoTarget);
    }
    let plan = Plan {
        targets,
        loads,
        duration: args.duration,
        warmup: args.warmup,
        progress: !args.quiet,
    };
    println!("{}", table::header());
    let measured = super::run(&plan, |cell| println!("{}", table::row(cell))).await;
    for process in started {
        process.stop().await;
    }
    if let Some(comparison) = comparison {
        comparison.stop().await;
    }
    let measurements = measured?;
    let details = table::render(&measurements);
    // The header and rows were printed live; the notes under them follow.
    for line in details.lines().skip(1 + measurements.len()) {
        println!("{line}");
    }
    let baseline = if args.compare {
        DIRECT
    } else {
        plan.targets[0].label.as_str()
    };
    if plan.targets.len() > 1 {
        println!();
        print!("{}", table::render_ratios(&measurements, baseline));
    }
    if args.compare {
        print!("{}", table::render_ratio_of(&measurements, LOADED, PROXY));
    }
    write_json(
        args.json.as_deref(),
        Cells {
            cells: &measurements,
        },
    )?;
    // A cell that measured nothing is a failed measure, not a zero.
    match measurements.iter().find(|m| m.successes == 0) {
        Some(empty) => Err(BenchError::NothingMeasured {
            target: empty.target.clone(),
            load: empty.load.to_string(),
        }),
        None => Ok(()),
    }
}

/// Runs each --target-cmd (its log in `work_dir`) and waits until its
/// target accepts connections; on a failure, stops those already started.
async fn start_target_cmds(
    args: &BenchArgs,
    work_dir: &WorkDir,
) -> Result<Vec<TargetProcess>, BenchError> {
    // Ctrl-C drops a bench (main.rs), which kills what it started: no
    // token is ever cancelled.
    let never = CancellationToken::new();
    let mut started = Vec::new();
    for (i, (command, url)) in args.target_cmd.iter().zip(&args.target).enumerate() {
        let log = work_dir.path().join(format!("target-{}.log", i + 1));
        match TargetProcess::start(command, url, &log, &never).await {
            Ok(process) => {
                eprintln!("started `{command}` for {url}");
                started.push(process);
            }
            Err(error) => {
                for process in started {
                    process.stop().await;
                }
                return Err(error.into());
            }
        }
    }
    Ok(started)
}

/// The cells' loads, from --rate or else --concurrency.
fn loads(args: &BenchArgs) -> Result<Vec<Load>, BenchError> {
    if !args.rate.is_empty() {
        if let Some(&bad) = args.rate.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(BenchError::Rate(bad));
        }
        if args.sessions == 0 {
            return Err(BenchError::Sessions);
        }
        return Ok(args
            .rate
            .iter()
            .map(|&rate| Load::Open {
                rate,
                sessions: args.sessions,
            })
            .collect());
    }
    if args
        .concurrency
        .iter()
        .any(|&c| c == 0 || c > MAX_CONCURRENCY)
    {
        return Err(BenchError::Concurrency);
    }
    Ok(args
        .concurrency
        .iter()
        .map(|&concurrency| Load::Closed { concurrency })
        .collect())
}

/// Why the bench could not measure.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("--arguments must be a JSON object, not {0}")]
    Arguments(String),
    #[error("--rate must be a positive number of calls per second, not {0}")]
    Rate(f64),
    #[error("--sessions must be at least 1")]
    Sessions,
    #[error("--concurrency must be 1 to {MAX_CONCURRENCY}")]
    Concurrency,
    #[error("--duration must be more than 0s")]
    Duration,
    #[error("--target {0} is given twice")]
    SameTarget(String),
    #[error("nothing to measure: give --target URL, or --compare")]
    NoTarget,
    #[error("more --target-cmd than --target: each command serves the --target in its place")]
    TargetCmdWithoutTarget,
    #[error("cannot create a work folder for the target commands' logs: {0}")]
    WorkDir(std::io::Error),
    #[error(transparent)]
    TargetCmd(#[from] crate::target_cmd::TargetCmdError),
    #[error(
        "{0} reads the proxy's own memory, which only a proxy in a process of its own has: give --proxy-bin PATH (e.g. target/release/mcp-proxy)"
    )]
    NeedsProxyBin(&'static str),
    #[error(
        "--idle-sessions and --in-flight must be at least 1, --in-flight at most {MAX_CONCURRENCY}, and together at most {MAX_MEMORY_SESSIONS}"
    )]
    MemoryCounts,
    #[error("--hold must be more than 0s")]
    Hold,
    #[error("--soak must run for at least {}s", MIN_SOAK.as_secs())]
    SoakDuration,
    #[error("--soak runs at one --rate")]
    SoakRates,
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Soak(#[from] SoakError),
    #[error("{target} at {load}: no call succeeded in the window (see above)")]
    NothingMeasured { target: String, load: String },
    #[error(transparent)]
    Start(#[from] super::setup::StartError),
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    #[error("cannot write the JSON report: {0}")]
    Json(serde_json::Error),
    #[error("cannot write {}: {source}", path.display())]
    WriteJson {
        path: PathBuf,
        source: std::io::Error,
    },
}
