//! mcp-harness end to end, as a user runs it. In real mode (real sockets,
//! processes and wall clock): `run` judges `scenarios/outage.yaml` — a stdio
//! and an HTTP backend — against the proxy in-process and as a spawned
//! binary, and passes (that it fails on a weakened set-up is shown in
//! simulation, with every other mutant); `--target` (a running gateway, and
//! one the harness starts with `--target-cmd`), Ctrl-C, a proxy that dies,
//! `check`, `list` and bad files behave as promised; `bench` measures
//! (`--compare`, and the proxy binary's memory: `--memory`, `--soak`); a
//! stdio fake run by hand exits as scripted. In simulation ([`simulation`]): every shipped scenario
//! passes and replays identically, and every check fails on a mutant.
//!
//! Real-mode runs take real time (about 20 s each) and load the machine, so
//! they run one at a time, in this test binary of their own (cargo runs test
//! binaries one after another, so they never overlap the proxy's tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

#[path = "support/bins.rs"]
mod bins;
mod simulation;

use bins::{TempDir, harness_binary, proxy_binary, root, run_bounded};

/// A scenario run ends by itself (duration + grace + start-up); this bound
/// only stops a broken run from hanging the test suite.
const RUN_BOUND: Duration = Duration::from_secs(180);

/// One scenario run at a time: parallel runs would compete for the two
/// cores and blur each other's latency.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn outage_scenario() -> PathBuf {
    root().join("scenarios/outage.yaml")
}

fn harness(args: &[&str]) -> Output {
    let mut command = Command::new(harness_binary());
    command
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(command, RUN_BOUND)
}

/// Runs the harness with `args`, which must exit 0; returns its stdout.
fn harness_passes(args: &[&str]) -> String {
    let output = harness(args);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    stdout
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `scenario` with `extra` flags, returning the exit code, the terminal
/// report and the JSON report of the one scenario.
fn run_scenario(scenario: &Path, extra: &[&str]) -> (Option<i32>, String, Value) {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new();
    let json_path = dir.0.join("report.json");
    let junit_path = dir.0.join("report.xml");
    let mut args = vec![
        "run".to_owned(),
        scenario.display().to_string(),
        "--json".into(),
        json_path.display().to_string(),
        "--junit".into(),
        junit_path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = harness(&args);
    let stdout = text(&output.stdout);
    let json = std::fs::read_to_string(&json_path).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{}",
            text(&output.stderr)
        )
    });
    let json: Value = serde_json::from_str(&json).expect("the JSON report parses");
    if let Err(error) = simulation::report_schema().validate(&json) {
        panic!(
            "the report does not match docs/report-schema.json: {error} at {}",
            error.instance_path()
        );
    }
    let typed: Vec<mcp_harness::report::RunReport> =
        serde_json::from_value(json.clone()).expect("the JSON report reads back");
    simulation::html_shows_the_run(scenario, &typed[0]);
    let junit = std::fs::read_to_string(&junit_path).expect("a JUnit report");
    assert!(junit.contains("<testsuite"), "{junit}");
    (output.status.code(), stdout, json[0].clone())
}

/// The checks of a report that did not pass, by name.
fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] != true)
        .map(|c| c["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn outage_passes_against_the_in_process_proxy() {
    let (code, stdout, report) = run_scenario(&outage_scenario(), &[]);
    assert_eq!(report["error"], Value::Null, "{stdout}");
    assert_eq!(failed_checks(&report), Vec::<String>::new(), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("outage: PASS"), "{stdout}");
    // The accounting checks are always there.
    let kinds: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"accounting"), "{kinds:?}");
    // The timeline shows each outage: fast -32010 refusals while a backend
    // is down (files 3-6 s; both search replicas 10-13 s), none before.
    let refusals_between = |from_s: u64, to_s: u64| -> u64 {
        report["timeline"]["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .filter(|b| {
                (from_s * 1_000_000..to_s * 1_000_000).contains(&b["at_us"].as_u64().unwrap())
            })
            .filter_map(|b| b["errors"]["-32010"].as_u64())
            .sum()
    };
    assert_eq!(refusals_between(0, 3), 0, "{stdout}");
    assert!(refusals_between(3, 6) > 100, "{stdout}");
    assert!(refusals_between(10, 13) > 100, "{stdout}");
    let faults: Vec<&str> = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["label"].as_str())
        .collect();
    assert_eq!(faults, ["files-down", "search-a-down", "search-down"]);
}

#[test]
fn outage_passes_against_the_proxy_binary() {
    let bin = proxy_binary().display().to_string();
    let (code, stdout, report) = run_scenario(&outage_scenario(), &["--proxy-bin", &bin]);
    assert_eq!(report["error"], Value::Null, "{stdout}");
    assert_eq!(failed_checks(&report), Vec::<String>::new(), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
}

/// reload.yaml through the binary: its reloads rewrite the config file and
/// `POST /admin/reload`, the broken one answered 422 with the file's line.
#[test]
fn reload_passes_against_the_proxy_binary() {
    let bin = proxy_binary().display().to_string();
    let scenario = root().join("scenarios/reload.yaml");
    let (code, stdout, report) = run_scenario(&scenario, &["--proxy-bin", &bin]);
    assert_eq!(report["error"], Value::Null, "{stdout}");
    assert_eq!(failed_checks(&report), Vec::<String>::new(), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
    let rejected = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "reload `broken-edit` rejected")
        .unwrap_or_else(|| panic!("no check of the broken edit: {stdout}"));
    let observed = rejected["observed"].as_str().unwrap_or_default();
    assert!(
        observed.starts_with("rejected: 422 Unprocessable Entity: ")
            && observed.contains("proxy.yaml:")
            && observed.contains("weight"),
        "{observed}"
    );
}

#[test]
fn check_accepts_the_shipped_scenarios_and_rejects_a_bad_one_with_its_line() {
    let output = harness(&["check", &outage_scenario().display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("outage"));

    let dir = TempDir::new();
    let original = std::fs::read_to_string(outage_scenario()).unwrap();
    let bad = original.replace("    at: 7s\n", "    at: 7s\n    four: 3s\n");
    assert_ne!(bad, original, "the scenario's second fault moved");
    let path = dir.write("bad.yaml", &bad);
    let output = harness(&["check", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    let line = bad.lines().position(|l| l.contains("four:")).unwrap() + 1;
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("bad.yaml:{line}: faults[1]: unknown key \"four\"")),
        "{stderr}"
    );
    // `run` refuses it the same way, before starting anything.
    let output = harness(&["run", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn list_shows_each_scenario_with_its_description() {
    let output = harness(&["list", &root().join("scenarios").display().to_string()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("outage.yaml"), "{stdout}");
    assert!(stdout.contains("the rest is unaffected"), "{stdout}");
    assert!(stdout.contains("outlier.yaml"), "{stdout}");
}

/// `run --sim` of the outage scenario with `extra` flags, which must pass;
/// returns the last line printed, having checked that the output has no
/// colour (it is piped).
fn simulate_outage(extra: &[&str]) -> String {
    let scenario = outage_scenario().display().to_string();
    let stdout = harness_passes(&[&["run", "--sim", &scenario], extra].concat());
    assert!(!stdout.contains('\x1b'), "no colour when piped: {stdout}");
    // The verdict is the very last line: `tail -n 1` reads it.
    let last = stdout.strip_suffix('\n').unwrap_or_default();
    assert!(
        !last.ends_with('\n'),
        "a blank line after the verdict: {stdout:?}"
    );
    last.lines().last().unwrap_or_default().to_owned()
}

/// `run --sim --json --html` writes both; `report` renders the JSON into
/// the same page; a file that is not a report is named with what is wrong.
/// Piped, the terminal report has no colour and ends with its verdict.
#[test]
fn report_renders_a_json_report_as_the_page_run_wrote() {
    let dir = TempDir::new();
    let (json, html, again) = (
        dir.0.join("run.json"),
        dir.0.join("run.html"),
        dir.0.join("again.html"),
    );
    let verdict = simulate_outage(&[
        "--json",
        &json.display().to_string(),
        "--html",
        &html.display().to_string(),
    ]);
    assert!(verdict.starts_with("outage: PASS ("), "{verdict}");

    let output = harness(&[
        "report",
        &json.display().to_string(),
        "--html",
        &again.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let page = std::fs::read_to_string(&again).unwrap();
    assert_eq!(page, std::fs::read_to_string(&html).unwrap());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(page.contains("<h2>outage</h2>"), "{page}");
    assert!(page.contains(">PASS<"), "{page}");
    for check in report[0]["checks"].as_array().unwrap() {
        let name = check["name"].as_str().unwrap();
        let escaped = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;");
        assert!(page.contains(&format!("<td>{escaped}</td>")), "{name}");
    }
    // A `run --sim` report has a timeline, and the page draws it.
    assert!(
        report[0]["timeline"]["buckets"]
            .as_array()
            .is_some_and(|b| !b.is_empty()),
        "{report}"
    );
    assert!(page.contains("<svg"), "{page}");

    let missing = dir.0.join("missing.json");
    let output = harness(&[
        "report",
        &missing.display().to_string(),
        "--html",
        &again.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}", missing.display())),
        "{stderr}"
    );
    let scenario = outage_scenario().display().to_string();
    let output = harness(&["report", &scenario, "--html", &again.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{scenario}: not a report written by `mcp-harness run --json`"
        )),
        "{stderr}"
    );
}

/// `--html` goes with `--seeds`: a page of the sweep, and the summary
/// verdict is the last line printed.
#[test]
fn a_seed_sweep_writes_its_page() {
    let dir = TempDir::new();
    let page = dir.0.join("sweep.html");
    let verdict = simulate_outage(&["--seeds", "1..3", "--html", &page.display().to_string()]);
    let scenario = outage_scenario().display().to_string();
    assert_eq!(verdict, format!("{scenario}: PASS on every seed"));
    let page = std::fs::read_to_string(&page).unwrap();
    assert!(page.contains("seeds 1..3 (2 runs)"), "{page}");
    assert!(
        page.contains("<td>no call hung</td><td class=\"num\">0 of 2</td>"),
        "{page}"
    );
}

#[test]
fn a_stdio_fake_run_by_hand_answers_and_exits_as_scripted() {
    let dir = TempDir::new();
    let scenario = dir.write(
        "fake.yaml",
        "\
name: fake
description: one stdio fake
duration: 1s
proxy:
  backends:
    - { name: f, fake: f }
fakes:
  - name: f
    transport: stdio
    tools:
      - name: ok
      - name: die
        outcomes: [{ probability: 1, exit: { code: 7 } }]
workload:
  closed: { concurrency: 1 }
  calls: [{ tool: f/ok }]
expect:
  - threshold: { error_rate: { max: 0 } }
",
    );
    let journal = dir.0.join("journal.jsonl");
    let input = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ok","arguments":{"harness_call":5}}}"#,
    ]
    .join("\n")
        + "\n";
    let mut child = Command::new(harness_binary())
        .args([
            "fake-backend",
            "--transport",
            "stdio",
            "--fake",
            "f",
            "--scenario",
        ])
        .arg(&scenario)
        .arg("--journal")
        .arg(&journal)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child_stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(child_stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut answers: Vec<Value> = Vec::new();
    let mut stdin = child.stdin.take().unwrap();
    {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).unwrap();
        // Wait for the call's answer before asking the fake to die, so the
        // answer cannot be lost to the exit.
        while !answers.iter().any(|a| a["id"] == 2) {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the fake answers call 2");
            answers.extend(serde_json::from_str::<Value>(&line).ok());
        }
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"die","arguments":{}}}"#)
            .unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    // stdin stays open: the fake must exit by itself, not on end of input.
    let output = wait_with_bound(child, Duration::from_secs(30));
    drop(stdin);
    assert_eq!(output.status.code(), Some(7));
    answers.extend(
        lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok()),
    );
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 1 && a["result"]["serverInfo"].is_object()),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 2 && a["result"]["isError"] != true),
        "{answers:?}"
    );
    assert!(!answers.iter().any(|a| a["id"] == 3), "{answers:?}");
    let entries: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let calls: Vec<&Value> = entries
        .iter()
        .filter(|e| e["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2, "{entries:?}");
    assert_eq!(calls[0]["call"], 5);
    assert_eq!(calls[0]["outcome"], "success");
    assert_eq!(calls[1]["outcome"], "exit");
}

/// Waits for `child` to exit by itself, killing it after `bound`.
fn wait_with_bound(mut child: std::process::Child, bound: Duration) -> Output {
    let poll = Duration::from_millis(50);
    for _ in 0..bound.as_millis() / poll.as_millis() {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(poll);
    }
    let _ = child.kill();
    panic!("the fake did not exit within {bound:?}");
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(marker))
        })
        .collect()
}

/// Spawns `command` (an mcp-harness run or bench) and waits until a
/// process whose command line names its work folder runs (a stdio fake, a
/// spawned proxy: the folder carries the harness's pid); returns the child
/// and that marker.
fn spawn_until_started(mut command: Command) -> (std::process::Child, String) {
    let child = command
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let marker = format!("mcp-harness-{}-", child.id());
    let poll = Duration::from_millis(50);
    let mut started = false;
    for _ in 0..600 {
        if !processes_with(&marker).is_empty() {
            started = true;
            break;
        }
        std::thread::sleep(poll);
    }
    assert!(started, "no process of the harness's work folder started");
    (child, marker)
}

/// SIGINT to the process `pid`.
fn interrupt(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

/// [`spawn_until_started`], then lets it go on for `then`, interrupts it
/// with SIGINT, and returns its output and the marker.
fn interrupt_once_started(command: Command, then: Duration) -> (Output, String) {
    let (child, marker) = spawn_until_started(command);
    std::thread::sleep(then);
    interrupt(child.id());
    (wait_with_bound(child, Duration::from_secs(60)), marker)
}

#[test]
fn ctrl_c_stops_a_run_and_leaves_no_process_behind() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = Command::new(harness_binary());
    command.args(["run", "--quiet"]).arg(outage_scenario());
    // Once the stdio fake runs.
    let (output, marker) = interrupt_once_started(command, Duration::ZERO);
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("interrupted"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        processes_with(&marker),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_kills_the_started_gateway() {
    let dir = TempDir::new();
    let scenario = dir.write("black-box.yaml", BLACK_BOX_SCENARIO);
    let template = dir.write("gateway.conf", "nothing\n");
    let url = format!("http://127.0.0.1:{}/mcp", free_port());
    let log = dir.0.join("gateway.log");
    // A "gateway" that never listens and ignores SIGTERM: the first Ctrl-C
    // stops it while it starts, and waits for it; the second may not.
    let mut command = Command::new(harness_binary());
    command
        .args(["run", "--quiet", "--target", &url, "--target-cmd"])
        .arg("sh -c 'trap \"\" TERM; echo trapped; while :; do sleep 1; done' {config}")
        .arg("--target-config")
        .arg(&template)
        .arg("--target-log")
        .arg(&log)
        .arg(&scenario);
    let (child, marker) = spawn_until_started(command);
    let pid = child.id();
    // Interrupted only once it ignores SIGTERM, or the first Ctrl-C would
    // simply end it.
    let trapped = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("trapped"))
    });
    assert!(trapped, "the gateway never started");
    interrupt(pid);
    std::thread::sleep(Duration::from_millis(1_000));
    interrupt(pid);
    let output = wait_with_bound(child, Duration::from_secs(3));
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("stopping at once"), "{stderr}");
    let mut left = processes_with(&marker);
    for _ in 0..40 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = processes_with(&marker);
    }
    assert_eq!(left, Vec::<u32>::new(), "the gateway was left behind");
}

/// A child process killed when dropped, so a failing test leaves none behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn target_mode_aims_at_a_running_proxy_with_fakes_on_fixed_ports() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new();
    let (fake_port, proxy_port) = (free_port(), free_port());
    let scenario = dir.write(
        "target.yaml",
        &one_http_fake_scenario(
            fake_port,
            "3s",
            "  - threshold: { error_rate: { max: 0 } }\n  - count: { fake: search, min: 50 }\n",
        ),
    );
    let config = dir.write(
        "proxy.yaml",
        &format!(
            "\
proxy:
  listen: 127.0.0.1:{proxy_port}
backends:
  - name: search
    transport: http
    url: http://127.0.0.1:{fake_port}/mcp
    reconnect: {{ initial: 100ms, max: 200ms }}
"
        ),
    );
    // The proxy starts before the fake exists and connects once it is up.
    let _proxy = KillOnDrop(
        Command::new(proxy_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{proxy_port}/mcp");
    let stdout = harness_passes(&["run", "--target", &url, &scenario.display().to_string()]);
    assert!(stdout.contains(&format!("target {url}")), "{stdout}");

    // Stdio fakes cannot be reached through someone else's proxy.
    let outage = outage_scenario().display().to_string();
    let output = harness(&["run", "--target", &url, &outage]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stdout).contains("a running --target cannot spawn it"),
        "{}",
        text(&output.stdout)
    );
}

/// A scenario with no `proxy:` section: an HTTP fake (no port) that goes
/// down, and a stdio fake, for a gateway the harness starts itself.
const BLACK_BOX_SCENARIO: &str = "\
name: black-box
description: an http fake that goes down and a stdio fake, behind a gateway the harness starts
duration: 5s
grace: 2s
fakes:
  - { name: search, transport: http, tools: [{ name: query }] }
  - { name: local, transport: stdio, tools: [{ name: echo }] }
faults:
  - { name: down, fake: search, at: 2500ms, for: 2s, outage: true }
workload:
  open: { rate: 40 }
  calls: [{ tool: search/query }, { tool: local/echo }]
expect:
  - name: search fails as unavailable
    errors:
      calls: search/*
      window: { during: down, skip: 500ms }
      kind: unavailable
      message_contains: words no gateway says
      min_rate: 0.9
  - name: local stays healthy
    threshold: { calls: local/*, error_rate: { max: 0 } }
  - name: the stdio fake saw its calls
    count: { fake: local, min: 20 }
  - name: the http fake saw calls before its outage
    count: { fake: search, window: { before: down }, min: 20 }
";

/// Our proxy's config as a `--target-config` template: the fakes' places
/// are placeholders (a YAML flow map's braces are text).
fn black_box_template(port: u16) -> String {
    format!(
        "\
proxy:
  listen: 127.0.0.1:{port}
backends:
  - name: search
    transport: http
    url: \"{{fake.search.url}}\"
    reconnect: {{ initial: 50ms, max: 100ms }}
  - name: local
    transport: stdio
    command: sh
    args: [\"-c\", \"exec {{fake.local.command}}\"]
"
    )
}

#[test]
fn target_cmd_starts_a_gateway_from_a_rendered_config_and_judges_it_by_an_overlay() {
    let dir = TempDir::new();
    let scenario = dir.write("black-box.yaml", BLACK_BOX_SCENARIO);
    let scenario = scenario.display().to_string();
    // Without a proxy section the file is valid, but only runs with --target.
    let output = harness(&["check", &scenario]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("runs with --target only"));
    let output = harness(&["run", &scenario]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("has no proxy: section; run it against a gateway with --target"),
        "{}",
        text(&output.stderr)
    );

    let port = free_port();
    let template = dir.write("gateway.yaml", &black_box_template(port));
    let log = dir.0.join("gateway.log");
    let right = dir.write(
        "right.yaml",
        "target: mcp-proxy (this workspace)\nkinds: { unavailable: [-32010] }\nignore_message_contains: true\n",
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    let command = format!("{} serve --config {{config}}", proxy_binary().display());
    let flags = |codes: &Path| {
        [
            "--target".to_owned(),
            url.clone(),
            "--target-cmd".into(),
            command.clone(),
            "--target-config".into(),
            template.display().to_string(),
            "--target-log".into(),
            log.display().to_string(),
            "--codes".into(),
            codes.display().to_string(),
        ]
    };
    let flags_right = flags(&right);
    let flags_right: Vec<&str> = flags_right.iter().map(String::as_str).collect();
    let (code, stdout, report) = run_scenario(Path::new(&scenario), &flags_right);
    assert_eq!(report["error"], Value::Null, "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
    assert!(failed_checks(&report).is_empty(), "{stdout}");
    let mode = report["mode"].as_str().unwrap();
    assert!(
        mode.contains("codes of mcp-proxy (this workspace), messages not judged"),
        "{mode}"
    );
    let ignored = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "search fails as unavailable")
        .unwrap();
    assert!(
        ignored["expected"].as_str().unwrap().contains(
            "unavailable (-32010), message contains \"words no gateway says\" not judged"
        ),
        "{ignored}"
    );
    // A started gateway is a black box: its admin (our proxy has one) is
    // not sampled.
    assert_eq!(report["backends"], Value::Array(Vec::new()), "{stdout}");
    // The gateway ran from the rendered config, and was stopped.
    let gateway_log = std::fs::read_to_string(&log).unwrap();
    assert!(gateway_log.contains("search"), "{gateway_log}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the gateway is stopped after the run"
    );

    // The same run with the kind mapped to a code this gateway never sends:
    // the check that judges the kind fails.
    let wrong = dir.write(
        "wrong.yaml",
        "target: a wrong guess\nkinds: { unavailable: [-32603] }\nignore_message_contains: true\n",
    );
    let flags_wrong = flags(&wrong);
    let flags_wrong: Vec<&str> = flags_wrong.iter().map(String::as_str).collect();
    let (code, stdout, report) = run_scenario(Path::new(&scenario), &flags_wrong);
    assert_eq!(report["error"], Value::Null, "{stdout}");
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        failed_checks(&report),
        ["search fails as unavailable"],
        "{stdout}"
    );
}

#[test]
fn ctrl_c_while_waiting_for_an_unresponsive_proxy_stops_the_run() {
    // A "proxy" that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64).flatten() {
            held.push(stream);
        }
    });
    let dir = TempDir::new();
    let scenario = dir.write(
        "mute.yaml",
        &one_http_fake_scenario(
            free_port(),
            "10s",
            "  - threshold: { error_rate: { max: 0 } }\n",
        ),
    );
    let child = Command::new(harness_binary())
        .args(["run", "--quiet", "--target", &url])
        .arg(&scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = wait_with_bound(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stdout));
}

#[test]
fn a_proxy_binary_that_dies_during_the_run_fails_it() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new();
    let scenario = dir.write(
        "crash.yaml",
        &one_http_fake_scenario(0, "6s", "  - threshold: { error_rate: { max: 0.5 } }\n"),
    );
    let json = dir.0.join("report.json");
    let bin = proxy_binary().display().to_string();
    let child = Command::new(harness_binary())
        .args(["run", "--quiet", "--proxy-bin", &bin, "--json"])
        .arg(&json)
        .arg(&scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The spawned proxy's config lives in the run's work folder.
    let marker = format!("mcp-harness-{}-", child.id());
    let mut killed = false;
    for _ in 0..600 {
        if let Some(&pid) = processes_with(&marker).first() {
            std::thread::sleep(Duration::from_secs(1));
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(killed, "the proxy binary never started");
    let output = wait_with_bound(child, RUN_BOUND);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        failed_checks(&report[0]).contains(&"the proxy stayed up".to_owned()),
        "{stdout}"
    );
}

/// A scenario with one http fake (on `port`, 0 = ephemeral), no faults, 50
/// calls a second, and the `expect` entries given.
fn one_http_fake_scenario(port: u16, duration: &str, expect: &str) -> String {
    format!(
        "\
name: one-fake
description: one http fake, no faults
duration: {duration}
proxy:
  backends:
    - {{ name: search, fake: search, reconnect: {{ initial: 100ms, max: 200ms }} }}
fakes:
  - name: search
    transport: http
    port: {port}
    tools: [{{ name: query }}]
workload:
  open: {{ rate: 50 }}
  calls: [{{ tool: search/query }}]
expect:
{expect}"
    )
}

#[test]
fn bench_compare_measures_the_backend_direct_and_through_the_proxy() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new();
    let json_path = dir.0.join("bench.json");
    let json_arg = json_path.display().to_string();
    let output = harness(&[
        "bench",
        "--compare",
        "--concurrency",
        "1,4",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--json",
        &json_arg,
    ]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for load in ["closed 1", "closed 4"] {
        for ratio in ["proxy / direct", "loaded / direct", "loaded / proxy"] {
            assert!(
                stdout.contains(&format!("{ratio} at {load}: ")),
                "no {ratio} at {load}:\n{stdout}"
            );
        }
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
        .expect("the JSON report parses");
    let cells = report["cells"].as_array().expect("cells");
    let order: Vec<(&str, u64)> = cells
        .iter()
        .map(|c| {
            (
                c["target"].as_str().unwrap(),
                c["load"]["concurrency"].as_u64().unwrap(),
            )
        })
        .collect();
    // Interleaved: every target at one load before the next load.
    assert_eq!(
        order,
        [
            ("direct", 1),
            ("proxy", 1),
            ("loaded", 1),
            ("direct", 4),
            ("proxy", 4),
            ("loaded", 4)
        ]
    );
    for cell in cells {
        assert!(cell["successes"].as_u64().unwrap() > 0, "{cell}");
        assert_eq!(cell["errors"], serde_json::json!({}), "{cell}");
        let latency = &cell["latency_us"];
        assert!(
            latency["p50"].as_u64() <= latency["p99"].as_u64()
                && latency["p99"].as_u64() <= latency["max"].as_u64(),
            "{cell}"
        );
    }
}

/// Runs `bench` with `args` plus `--proxy-bin` (the proxy binary) and
/// `--json`; returns the exit code, stdout and the JSON report.
fn bench_with_proxy_binary(args: &[&str]) -> (Option<i32>, String, Value) {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new();
    let json_path = dir.0.join("bench.json");
    let (bin, json) = (
        proxy_binary().display().to_string(),
        json_path.display().to_string(),
    );
    let mut all = vec!["bench", "--proxy-bin", &bin, "--json", &json];
    all.extend_from_slice(args);
    let output = harness(&all);
    let stdout = text(&output.stdout);
    let report = std::fs::read_to_string(&json_path).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{}",
            text(&output.stderr)
        )
    });
    let report = serde_json::from_str(&report).expect("the JSON report parses");
    (output.status.code(), stdout, report)
}

#[test]
fn bench_compare_measures_the_cpu_time_per_call_of_the_proxy_binary() {
    let (code, stdout, report) = bench_with_proxy_binary(&[
        "--compare",
        "--concurrency",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    let cells = report["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 3, "{report}");
    for cell in cells {
        let cpu = &cell["cpu_us_per_call"];
        if cell["target"] == "direct" {
            // The echo backend runs in the harness's own process.
            assert!(cpu.is_null(), "{cell}");
        } else {
            let us = cpu
                .as_f64()
                .unwrap_or_else(|| panic!("no CPU figure: {cell}"));
            assert!(us > 0.0 && us < 100_000.0, "{cell}");
        }
    }
}

#[test]
fn bench_memory_reads_the_proxy_binarys_memory_as_sessions_and_calls_are_added() {
    let (code, stdout, report) = bench_with_proxy_binary(&[
        "--memory",
        "--idle-sessions",
        "2000",
        "--in-flight",
        "50",
        "--hold",
        "2s",
    ]);
    let memory = &report["memory"];
    let rss = |reading: &str| memory[reading]["rss_kib"].as_u64().expect("rss_kib");
    // A process of its own, read at each step: 2,000 sessions and then 50
    // calls, each with two connections, add to what it holds.
    assert!(rss("baseline") > 1024, "{memory}");
    assert!(rss("baseline") < rss("idle"), "{memory}");
    assert!(rss("idle") < rss("in_flight"), "{memory}");
    assert_eq!(memory["idle"]["sessions"], 2000);
    assert_eq!(memory["in_flight"]["sessions"], 50);
    // Every call was in flight at the reading and came back as its own.
    assert_eq!(memory["calls"]["sent"], 50);
    assert_eq!(
        memory["calls"]["outcomes"],
        serde_json::json!({"success": 50})
    );
    assert_eq!(memory["calls"]["wrong_answers"], 0);
    // A few MiB, far from the goals: it passes.
    assert!(stdout.contains("\nPASS: "), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn bench_soak_samples_the_proxy_binarys_memory_under_faults_and_judges_its_growth() {
    let (code, stdout, report) =
        bench_with_proxy_binary(&["--soak", "6s", "--rate", "150", "--sessions", "4"]);
    let soak = &report["soak"];
    // A sample every 300 ms from 0 to 6 s, in order, each a real reading.
    let samples = soak["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 21, "{soak}");
    for (k, sample) in samples.iter().enumerate() {
        let at = sample["at_s"].as_f64().unwrap();
        assert!((at - 0.3 * k as f64).abs() < 1e-6, "{sample}");
        assert!(sample["rss_kib"].as_u64().unwrap() > 1024, "{sample}");
    }
    // The growth is the highest sample after the 600 ms warm-up over the
    // one that ends it.
    let growth = &soak["growth"];
    assert_eq!(growth["warmup_end"], samples[2], "{soak}");
    let highest = samples[3..]
        .iter()
        .map(|s| s["rss_kib"].as_u64().unwrap())
        .max();
    assert_eq!(growth["max_after"]["rss_kib"].as_u64(), highest, "{soak}");
    // The verdict, its line and the exit code agree.
    let passed = growth["percent"].as_f64().unwrap() < 10.0;
    assert_eq!(soak["passed"], passed, "{soak}");
    let (verdict, exit) = if passed { ("PASS", 0) } else { ("FAIL", 1) };
    assert!(
        stdout.contains(&format!("\n{verdict}: growth after warm-up under 10 %")),
        "{stdout}"
    );
    assert_eq!(code, Some(exit), "{stdout}");
    // The load ran, and the faults made some of it fail.
    let calls = &soak["calls"];
    assert!(calls["successes"].as_u64().unwrap() > 400, "{calls}");
    assert_ne!(calls["errors"], serde_json::json!({}), "{calls}");
}

#[test]
fn ctrl_c_stops_a_soak_and_the_proxy_binary_with_it() {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = proxy_binary().display().to_string();
    let mut command = Command::new(harness_binary());
    command.args([
        "bench",
        "--soak",
        "60s",
        "--rate",
        "50",
        "--proxy-bin",
        &bin,
    ]);
    // Into the load and the sampling.
    let (output, marker) = interrupt_once_started(command, Duration::from_secs(2));
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("(warm-up)"), "{stdout}");
    assert_eq!(
        processes_with(&marker),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[test]
fn bench_memory_needs_a_proxy_binary() {
    let output = harness(&["bench", "--memory", "--idle-sessions", "10"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--memory reads the proxy's own memory") && stderr.contains("--proxy-bin"),
        "{stderr}"
    );
}

#[test]
fn bench_fails_when_nothing_can_be_measured() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let output = harness(&[
        "bench",
        "--target",
        &url,
        "--concurrency",
        "1",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
    ]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("session not opened"), "{stdout}");
    assert!(stderr.contains("no call succeeded"), "{stderr}");
}
