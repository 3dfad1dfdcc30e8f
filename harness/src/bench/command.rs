//! The `bench` subcommand: its flags, and turning them into a [`Plan`],
//! the tables on stdout and the JSON file.

use std::path::PathBuf;
use std::time::Duration;

use mcp_proxy::config::parse_duration;
use serde::Serialize;
use serde_json::Value;

use super::compare::{Comparison, DIRECT};
use super::{Load, Measurement, Plan, Target, table};

/// `mcp-harness bench`: measure `tools/call` throughput and latency.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// MCP endpoint to measure (plain http://); repeat for several, measured
    /// interleaved. With --compare, measured beside the proxy.
    #[arg(long, value_name = "URL")]
    target: Vec<String>,
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
    /// Open loop: sessions the calls are spread over.
    #[arg(long, default_value_t = 8, requires = "rate")]
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
    /// this process.
    #[arg(long, value_name = "PATH", requires = "compare")]
    proxy_bin: Option<PathBuf>,
    /// With --compare: the echo backend's port (default: an ephemeral one),
    /// so that another gateway given with --target can serve it too.
    #[arg(long, value_name = "PORT", requires = "compare")]
    fake_port: Option<u16>,
    /// Also write every cell's figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// The most sessions a closed-loop cell opens (each holds a connection
/// and a task in this process).
const MAX_CONCURRENCY: usize = 10_000;

/// What `--json` writes.
#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    cells: &'a [Measurement],
}

/// Runs the bench; the exit code (0 measured, 2 could not measure: bad
/// flags, nothing reachable, or a cell where no call succeeded).
pub async fn bench_command(args: BenchArgs) -> u8 {
    match bench(args).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("mcp-harness bench: {error}");
            2
        }
    }
}

async fn bench(args: BenchArgs) -> Result<(), BenchError> {
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
    targets.extend(args.target.iter().map(|url| Target {
        label: url.clone(),
        url: url.clone(),
        tool: args.tool.clone(),
        arguments: arguments.clone(),
    }));
    if targets.is_empty() {
        return Err(BenchError::NoTarget);
    }
    let plan = Plan {
        targets,
        loads,
        duration: args.duration,
        warmup: args.warmup,
    };
    println!("{}", table::header());
    let measured = super::run(&plan, |cell| println!("{}", table::row(cell))).await;
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
    let write_json = |path: &PathBuf| -> Result<(), BenchError> {
        let report = JsonReport {
            version: 1,
            cells: &measurements,
        };
        let text = serde_json::to_string_pretty(&report).map_err(BenchError::Json)?;
        std::fs::write(path, text).map_err(|source| BenchError::WriteJson {
            path: path.clone(),
            source,
        })
    };
    if let Some(path) = &args.json {
        write_json(path)?;
    }
    // A cell that measured nothing is a failed measure, not a zero.
    match measurements.iter().find(|m| m.successes == 0) {
        Some(empty) => Err(BenchError::NothingMeasured {
            target: empty.target.clone(),
            load: empty.load.to_string(),
        }),
        None => Ok(()),
    }
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
