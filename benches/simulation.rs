//! How fast the simulation runs: a 20 s scenario at 200 calls/s (4,000
//! calls through the proxy to an HTTP fake and a stdio fake, with one
//! outage) simulated end to end by `mcp_harness::sim::run`. The goal is at
//! least 20× real time, i.e. under 1 s of wall time per run in release.
//!
//! `cargo bench --bench simulation`; criterion reports the time per run,
//! and the bench prints the speed-up once.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const SCENARIO: &str = "\
name: sim-speed
description: 20 s at 200 calls/s over an HTTP and a stdio fake, one outage
seed: 1
duration: 20s
proxy:
  backends:
    - { name: search, fake: search, reconnect: { initial: 100ms, max: 400ms } }
    - { name: files, fake: files, reconnect: { initial: 100ms, max: 400ms } }
fakes:
  - name: search
    transport: http
    tools:
      - name: query
        latency: { lognormal: { median: 3ms, sigma: 0.5 } }
  - name: files
    transport: stdio
    tools:
      - name: read
        latency: { uniform: { min: 1ms, max: 4ms } }
faults:
  - { name: search-down, fake: search, at: 8s, for: 3s, outage: true }
workload:
  clients: 4
  open: { rate: 200 }
  calls:
    - { tool: search/query, weight: 1 }
    - { tool: files/read, weight: 1 }
expect:
  - name: files never notices
    threshold: { calls: files/*, error_rate: { max: 0 } }
";

fn simulate(c: &mut Criterion) {
    let scenario = mcp_harness::scenario::load_str(SCENARIO, Path::new("sim-speed.yaml"))
        .expect("the bench scenario is valid");
    let started = Instant::now();
    let run = mcp_harness::sim::run(&scenario, scenario.seed);
    let wall = started.elapsed();
    assert!(run.report.passed(), "{:?}", run.report);
    println!(
        "sim-speed: {:.1}s simulated in {:.3}s ({:.0}× real time), {} calls",
        run.virtual_time.as_secs_f64(),
        wall.as_secs_f64(),
        run.virtual_time.as_secs_f64() / wall.as_secs_f64(),
        run.report.calls
    );
    let mut group = c.benchmark_group("simulation");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("20s at 200 calls/s", |b| {
        b.iter(|| mcp_harness::sim::run(&scenario, scenario.seed));
    });
    group.finish();
}

criterion_group!(benches, simulate);
criterion_main!(benches);
