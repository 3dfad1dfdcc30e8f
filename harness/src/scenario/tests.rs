//! Scenario loading: the shipped scenarios parse, and bad files are rejected
//! with the file, line and key path the error promises.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// A minimal valid scenario; tests splice one mistake into it.
const BASE: &str = "\
name: t
description: a test
duration: 10s
proxy:
  backends:
    - name: a
      fake: a
fakes:
  - name: a
    transport: http
    tools:
      - name: echo
faults:
  - name: down
    fake: a
    at: 2s
    for: 3s
    outage: true
workload:
  closed: { concurrency: 2 }
  calls:
    - tool: a/echo
expect:
  - threshold: { calls: a/*, window: { after: down }, error_rate: { max: 0 } }
";

fn err(text: &str) -> String {
    match load_str(text, Path::new("s.yaml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_shipped_scenario_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 1, "no scenarios found");
}

#[test]
fn the_base_scenario_resolves_windows_and_defaults() {
    let s = load_str(BASE, Path::new("s.yaml")).unwrap();
    assert_eq!(s.seed, 0);
    assert_eq!(s.grace, Duration::from_secs(5));
    assert_eq!(s.workload.clients, 1);
    assert_eq!(
        s.proxy.as_ref().unwrap().backend_fakes,
        vec![vec!["a".to_owned()]]
    );
    let CheckKind::Threshold(t) = &s.expect[0].kind else {
        panic!("not a threshold")
    };
    assert_eq!(
        t.select.window.ranges,
        vec![Duration::from_secs(5)..Duration::from_secs(10)]
    );
    assert_eq!(s.expect[0].line, 24);
}

#[test]
fn outage_scenario_has_its_phases() {
    let s = load(&scenarios_dir().join("outage.yaml")).unwrap();
    // files, and search's two replicas; one outage each.
    assert_eq!(s.fakes.len(), 3);
    assert_eq!(s.faults.len(), 3);
    assert_eq!(
        s.proxy.as_ref().unwrap().backend_fakes[1],
        ["search-a".to_owned(), "search-b".to_owned()]
    );
    assert!(
        s.faults
            .iter()
            .all(|f| matches!(f.action, FaultAction::Outage { .. }))
    );
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let text = BASE.replace("duration: 10s", "duration: 10s\ndurration: 5s");
    assert_eq!(err(&text), "s.yaml:4: unknown key \"durration\"");
    let text = BASE.replace(
        "      - name: echo",
        "      - name: echo\n        latncy: { fixed: 1ms }",
    );
    assert_eq!(
        err(&text),
        "s.yaml:13: fakes[0].tools[0]: unknown key \"latncy\""
    );
}

#[test]
fn the_inline_proxy_config_is_checked_by_the_proxy_loader() {
    let text = BASE.replace("      fake: a", "      fake: a\n      init_timout: 1s");
    assert_eq!(
        err(&text),
        "s.yaml:8: proxy.backends[0]: unknown key \"init_timout\""
    );
    let text = BASE.replace(
        "      fake: a",
        "      fake: a\n      reconnect: { initial: 2s, max: 1s }",
    );
    assert!(
        err(&text).starts_with("s.yaml:8: proxy.backends[0].reconnect"),
        "{}",
        err(&text)
    );
}

#[test]
fn fake_references_must_resolve() {
    let text = BASE.replace("      fake: a", "      fake: b");
    assert_eq!(
        err(&text),
        "s.yaml:7: proxy.backends[0].fake: no fake named \"b\""
    );
    let text = BASE.replace("      fake: a", "      fake: a\n      url: http://x");
    assert!(err(&text).contains("proxy.backends[0].url: a backend with `fake`"));
    let text = BASE.replace("    fake: a\n    at", "    fake: z\n    at");
    assert_eq!(err(&text), "s.yaml:15: faults[0].fake: no fake named \"z\"");
}

#[test]
fn only_stdio_fakes_have_a_startup_delay() {
    let stdio = BASE.replace("transport: http", "transport: stdio");
    let slow = "    tools:\n      - name: echo";
    let text = stdio.replacen(
        slow,
        "    startup: { uniform: { min: 20ms, max: 200ms } }\n    tools:\n      - name: echo",
        1,
    );
    let scenario = load_str(&text, Path::new("s.yaml")).unwrap();
    assert_eq!(
        scenario.fakes[0].startup,
        Some(Latency::Uniform {
            min: Duration::from_millis(20),
            max: Duration::from_millis(200),
        })
    );
    let text = BASE.replacen(
        slow,
        "    startup: { fixed: 20ms }\n    tools:\n      - name: echo",
        1,
    );
    assert_eq!(
        err(&text),
        "s.yaml:11: fakes[0].startup: only stdio fakes have a startup delay"
    );
}

#[test]
fn outcomes_must_fit_the_transport_and_add_up() {
    let stdio = BASE.replace("transport: http", "transport: stdio");
    let text = stdio.replace(
        "      - name: echo",
        "      - name: echo\n        outcomes: [{ probability: 0.5, http_status: { status: 503 } }]",
    );
    assert_eq!(
        err(&text),
        "s.yaml:13: fakes[0].tools[0].outcomes[0].http_status: only http fakes answer with an HTTP status"
    );
    let text = BASE.replace(
        "      - name: echo",
        "      - name: echo\n        outcomes: [{ probability: 0.7, hang: true }, { probability: 0.5, reset: true }]",
    );
    assert!(
        err(&text).contains("probabilities add up to 1.2"),
        "{}",
        err(&text)
    );
    let text = BASE.replace(
        "      - name: echo",
        "      - name: echo\n        outcomes: [{ probability: 0.5, hang: true, reset: true }]",
    );
    assert!(
        err(&text).contains("has reset and hang; an entry is one outcome"),
        "{}",
        err(&text)
    );
}

#[test]
fn windows_name_existing_phases() {
    let text = BASE.replace("after: down", "after: dwn");
    assert_eq!(
        err(&text),
        "s.yaml:24: expect[0].threshold.window.after: no phase named \"dwn\"; phases: down"
    );
    let text = BASE.replace(
        "window: { after: down }",
        "window: { during: down, from: 1s }",
    );
    assert!(err(&text).contains("use one of during, before, after, or from/to"));
}

#[test]
fn a_check_is_exactly_one_kind() {
    let text = BASE.replace(
        "  - threshold:",
        "  - count: { fake: a, max: 1 }\n    threshold:",
    );
    assert!(
        err(&text).contains("has threshold and count; an entry is one check"),
        "{}",
        err(&text)
    );
    let text = BASE.replace(
        "  - threshold: { calls: a/*, window: { after: down }, error_rate: { max: 0 } }",
        "  - name: nothing",
    );
    assert!(err(&text).contains("needs one of threshold, errors, count, ratio, timing"));
}

#[test]
fn a_threshold_may_select_an_error_code_but_not_with_successes() {
    let with = |keys: &str| {
        BASE.replace(
            "error_rate: { max: 0 } }",
            &format!("error_rate: {{ max: 0 }}, {keys} }}"),
        )
    };
    let scenario = load_str(&with("code: -32014"), Path::new("s.yaml")).unwrap();
    let CheckKind::Threshold(t) = &scenario.expect[0].kind else {
        panic!("not a threshold")
    };
    assert_eq!(t.select.code, Some(CodeSelector::code(-32014)));
    assert_eq!(
        err(&with("code: -32014, outcome: success")),
        "s.yaml:24: expect[0].threshold.code: selects errors: not with outcome: success"
    );
}

#[test]
fn a_check_may_select_a_failure_kind_instead_of_a_code() {
    let threshold = |keys: &str| {
        BASE.replace(
            "error_rate: { max: 0 } }",
            &format!("error_rate: {{ max: 0 }}, {keys} }}"),
        )
    };
    let scenario = load_str(&threshold("kind: refused"), Path::new("s.yaml")).unwrap();
    let CheckKind::Threshold(t) = &scenario.expect[0].kind else {
        panic!("not a threshold")
    };
    // By default a kind means this workspace's proxy's code.
    let refused = t.select.code.as_ref().unwrap();
    assert!(refused.matches(-32014) && !refused.matches(-32010));
    assert_eq!(refused.to_string(), "refused (-32014)");
    assert_eq!(
        err(&threshold("kind: refused, code: -32014")),
        "s.yaml:24: expect[0].threshold.kind: not with code: select errors by a code or by a kind, not both"
    );
    assert_eq!(
        err(&threshold("kind: refused, outcome: success")),
        "s.yaml:24: expect[0].threshold.kind: selects errors: not with outcome: success"
    );
    assert!(
        err(&threshold("kind: slow"))
            .starts_with("s.yaml:24: expect[0].threshold.kind: unknown variant `slow`"),
        "{}",
        err(&threshold("kind: slow"))
    );
    let errors = BASE.replace(
        "threshold: { calls: a/*, window: { after: down }, error_rate: { max: 0 } }",
        "errors: { window: { during: down }, kind: unavailable, message_contains: a }",
    );
    let scenario = load_str(&errors, Path::new("s.yaml")).unwrap();
    let CheckKind::Errors(e) = &scenario.expect[0].kind else {
        panic!("not an errors check")
    };
    assert_eq!(e.code, Some(CodeSelector::kind(FailureKind::Unavailable)));
    assert_eq!(
        err(&errors.replace("kind: unavailable", "kind: unavailable, code: 1")),
        "s.yaml:24: expect[0].errors.kind: not with code: select errors by a code or by a kind, not both"
    );
    let timing = BASE.replace(
        "threshold: { calls: a/*, window: { after: down }, error_rate: { max: 0 } }",
        "timing: { after: { start: down }, first: { outcome: error, kind: timeout }, within: 1s }",
    );
    let scenario = load_str(&timing, Path::new("s.yaml")).unwrap();
    let CheckKind::Timing(t) = &scenario.expect[0].kind else {
        panic!("not a timing check")
    };
    assert_eq!(t.code, Some(CodeSelector::kind(FailureKind::Timeout)));
    // A first success is never an error of any code.
    assert_eq!(
        err(&timing.replace(
            "outcome: error, kind: timeout",
            "outcome: success, kind: timeout"
        )),
        "s.yaml:24: expect[0].timing.first.kind: selects errors: not with outcome: success"
    );
    assert_eq!(
        err(&timing.replace(
            "outcome: error, kind: timeout",
            "outcome: success, code: -32603"
        )),
        "s.yaml:24: expect[0].timing.first.code: selects errors: not with outcome: success"
    );
}

#[test]
fn a_threshold_must_want_at_least_one_call() {
    let zero = BASE.replace(
        "error_rate: { max: 0 } }",
        "error_rate: { max: 0 }, min_calls: 0 }",
    );
    assert_eq!(
        err(&zero),
        "s.yaml:24: expect[0].threshold.min_calls: must be at least 1"
    );
    let one = BASE.replace(
        "error_rate: { max: 0 } }",
        "error_rate: { max: 0 }, min_calls: 1 }",
    );
    assert!(load_str(&one, Path::new("s.yaml")).is_ok());
}

#[test]
fn ratio_shares_must_add_up_and_confidence_be_a_probability() {
    let text = BASE.replace(
        "  - threshold: { calls: a/*, window: { after: down }, error_rate: { max: 0 } }",
        "  - ratio: { ways: [{ fake: a, share: 0.5 }, { fake: a, share: 0.4 }], confidence: 0.99 }",
    );
    assert!(err(&text).contains("is listed twice"), "{}", err(&text));
}

#[test]
fn repeating_faults_need_a_period_longer_than_their_length() {
    let text = BASE.replace("    for: 3s\n", "    for: 3s\n    every: 2s\n");
    assert_eq!(
        err(&text),
        "s.yaml:18: faults[0].every: must be longer than `for`"
    );
}

#[test]
fn occurrences_repeat_and_stop_at_the_end() {
    let s = Duration::from_secs;
    assert_eq!(
        occurrences(s(1), Some(s(2)), Some(s(4)), s(10)),
        vec![s(1)..s(3), s(5)..s(7), s(9)..s(10)]
    );
    assert_eq!(occurrences(s(1), None, None, s(10)), vec![s(1)..s(10)]);
}

#[test]
fn the_run_config_fills_in_fakes_and_the_listen_address() {
    let s = load_str(BASE, Path::new("s.yaml")).unwrap();
    let listen = "127.0.0.1:4567".parse().unwrap();
    let config = s
        .proxy
        .as_ref()
        .unwrap()
        .config(
            "s.yaml",
            Path::new("."),
            &|_| FakeAddress::Http {
                url: "http://127.0.0.1:9999/mcp".into(),
            },
            listen,
            u64::MAX,
        )
        .unwrap();
    assert_eq!(config.proxy.listen, listen);
    // The run's seed is the proxy's (its low 63 bits).
    assert_eq!(config.proxy.seed, i64::MAX as u64);
    assert_eq!(
        config.backends[0].endpoints,
        [mcp_proxy::config::TransportConfig::Http {
            url: "http://127.0.0.1:9999/mcp".into(),
            headers: Default::default()
        }]
    );
    let json = to_json(&s.proxy.as_ref().unwrap().config_tree(
        &|_| FakeAddress::Stdio {
            command: "h".into(),
            args: vec!["fake-backend".into()],
        },
        listen,
        7,
    ));
    assert_eq!(json["backends"][0]["command"], "h");
    assert_eq!(json["backends"][0]["args"][0], "fake-backend");
    assert_eq!(json["proxy"]["listen"], "127.0.0.1:4567");
    assert!(json["backends"][0].get("fake").is_none());
}

#[test]
fn a_fault_may_not_repeat_without_bound() {
    let text = BASE
        .replace("    for: 3s\n", "    for: 1ms\n    every: 2ms\n")
        .replace("duration: 10s", "duration: 1h");
    assert_eq!(
        err(&text),
        "s.yaml:18: faults[0].every: repeats more than 100000 times in the scenario"
    );
}

#[test]
fn load_sizes_are_bounded() {
    let text = BASE.replace("concurrency: 2", "concurrency: 100000000");
    assert_eq!(
        err(&text),
        "s.yaml:20: workload.closed.concurrency: must be 1 to 100000"
    );
}

#[test]
fn open_loop_missed_slots_have_a_default_bound_that_a_scenario_may_set() {
    let open =
        |keys: &str| BASE.replace("closed: { concurrency: 2 }", &format!("open: {{ {keys} }}"));
    let mode = |text: &str| load_str(text, Path::new("s.yaml")).unwrap().workload.mode;
    assert_eq!(
        mode(&open("rate: 100")),
        LoadMode::Open {
            rate: 100.0,
            max_in_flight: 1000,
            max_missed_share: 0.1
        }
    );
    assert!(matches!(
        mode(&open("rate: 100, max_missed_share: 0")),
        LoadMode::Open { max_missed_share, .. } if max_missed_share == 0.0
    ));
    assert_eq!(
        err(&open("rate: 100, max_missed_share: 1.5")),
        "s.yaml:20: workload.open.max_missed_share: must be between 0 and 1"
    );
    assert_eq!(
        err(&open("rate: 100, max_missed: 0.1")),
        "s.yaml:20: workload.open: unknown key \"max_missed\""
    );
}

/// BASE with a second HTTP fake `b` and backend `a` on the pool `[a, b]`.
fn pool_scenario(fake: &str, b_transport: &str) -> String {
    BASE.replace("      fake: a\n", &format!("      fake: {fake}\n"))
        .replace(
            "faults:",
            &format!(
                "  - name: b\n    transport: {b_transport}\n    tools:\n      - name: echo\nfaults:"
            ),
        )
}

#[test]
fn a_list_of_http_fakes_becomes_the_backends_endpoints() {
    let s = load_str(&pool_scenario("[a, b]", "http"), Path::new("s.yaml")).unwrap();
    assert_eq!(
        s.proxy.as_ref().unwrap().backend_fakes,
        vec![vec!["a".to_owned(), "b".to_owned()]]
    );
    let url = |name: &str| format!("http://127.0.0.1:{}/mcp", if name == "a" { 1 } else { 2 });
    let config = s
        .proxy
        .as_ref()
        .unwrap()
        .config(
            "s.yaml",
            Path::new("."),
            &|name| FakeAddress::Http { url: url(name) },
            "127.0.0.1:0".parse().unwrap(),
            0,
        )
        .unwrap();
    let urls: Vec<_> = config.backends[0]
        .endpoints
        .iter()
        .map(|e| match e {
            mcp_proxy::config::TransportConfig::Http { url, .. } => url.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(urls, [url("a"), url("b")]);
}

#[test]
fn a_fake_pool_names_http_fakes_once_each() {
    assert_eq!(
        err(&pool_scenario("[a, b]", "stdio")),
        "s.yaml:7: proxy.backends[0].fake[1]: fake \"b\" is not an HTTP fake; a replica pool lists HTTP fakes only"
    );
    assert_eq!(
        err(&pool_scenario("[a, a]", "http")),
        "s.yaml:7: proxy.backends[0].fake[1]: fake \"a\" is listed twice"
    );
    assert_eq!(
        err(&pool_scenario("[a, c]", "http")),
        "s.yaml:7: proxy.backends[0].fake[1]: no fake named \"c\""
    );
    assert_eq!(
        err(&pool_scenario("[]", "http")),
        "s.yaml:7: proxy.backends[0].fake: expected the name of a fake, or a list of HTTP fakes for a replica pool"
    );
}

/// BASE with its outage replaced by `network: {keys}` (the key on line 18).
fn network_fault(keys: &str) -> String {
    BASE.replace("    outage: true", &format!("    network: {{ {keys} }}"))
}

fn link_of(text: &str) -> (LinkFault, usize) {
    let s = load_str(text, Path::new("s.yaml")).unwrap_or_else(|e| panic!("{e}"));
    match s.faults[0].action {
        FaultAction::Network { link, line } => (link, line),
        ref other => panic!("not a network fault: {other:?}"),
    }
}

#[test]
fn network_faults_read_latency_partitions_and_breaks() {
    let ms = Duration::from_millis;
    assert_eq!(
        link_of(&network_fault("latency: 50ms")),
        (
            LinkFault::Latency {
                latency: ms(50),
                jitter: Duration::ZERO
            },
            18
        )
    );
    assert_eq!(
        link_of(&network_fault("latency: 50ms, jitter: 20ms")).0,
        LinkFault::Latency {
            latency: ms(50),
            jitter: ms(20)
        }
    );
    for (written, direction) in [
        ("both", Direction::Both),
        ("to_fake", Direction::ToFake),
        ("from_fake", Direction::FromFake),
    ] {
        assert_eq!(
            link_of(&network_fault(&format!("partition: {written}"))).0,
            LinkFault::Partition(direction)
        );
    }
    assert_eq!(
        link_of(&network_fault("drop_connections: 0.05")).0,
        LinkFault::DropConnections(0.05)
    );
    // A named network fault is a phase like any other.
    let s = load_str(&network_fault("partition: both"), Path::new("s.yaml")).unwrap();
    let CheckKind::Threshold(t) = &s.expect[0].kind else {
        panic!("not a threshold")
    };
    assert_eq!(
        t.select.window.ranges,
        vec![Duration::from_secs(5)..Duration::from_secs(10)]
    );
}

#[test]
fn a_network_fault_is_one_kind_with_valid_values() {
    assert_eq!(
        err(&network_fault("")),
        "s.yaml:18: faults[0].network: needs one of latency, partition, drop_connections"
    );
    assert_eq!(
        err(&network_fault("latency: 5ms, partition: both")),
        "s.yaml:18: faults[0].network: has latency and partition; a network fault is one of them (make the others faults of their own)"
    );
    assert_eq!(
        err(&network_fault("jitter: 5ms")),
        "s.yaml:18: faults[0].network.jitter: goes with latency (`latency: 0ms` for jitter alone)"
    );
    assert_eq!(
        err(&network_fault("drop_connections: 0")),
        "s.yaml:18: faults[0].network.drop_connections: must be greater than 0 and at most 1 (the chance that one message breaks the link)"
    );
    assert!(
        err(&network_fault("drop_connections: 1.5")).contains("drop_connections: must be"),
        "{}",
        err(&network_fault("drop_connections: 1.5"))
    );
    assert_eq!(
        err(&network_fault("latncy: 5ms")),
        "s.yaml:18: faults[0].network: unknown key \"latncy\""
    );
    let sideways = err(&network_fault("partition: sideways"));
    assert!(
        sideways.starts_with("s.yaml:18: faults[0].network.partition: ")
            && sideways.contains("to_fake"),
        "{sideways}"
    );
}

#[test]
fn a_network_fault_breaks_a_whole_http_link_by_time() {
    assert_eq!(
        err(&network_fault("partition: both").replace("transport: http", "transport: stdio")),
        "s.yaml:18: faults[0].network: fake \"a\" is a stdio fake: it has no network link to break (network faults are for http fakes)"
    );
    assert_eq!(
        err(&network_fault("partition: both")
            .replace("    fake: a\n    at", "    fake: a\n    tool: echo\n    at")),
        "s.yaml:16: faults[0].tool: a network fault breaks the link to the whole fake"
    );
    let by_calls = network_fault("partition: both")
        .replace("  - name: down\n    fake: a\n", "  - fake: a\n")
        .replace("    at: 2s\n    for: 3s\n", "    calls: { first: 3 }\n")
        .replace("window: { after: down }", "window: { from: 1s }");
    assert_eq!(
        err(&by_calls),
        "s.yaml:15: faults[0].calls: a network fault is triggered by time (at/for/every): the network does not count calls"
    );
    assert_eq!(
        err(&network_fault("partition: both")
            .replace("    for: 3s\n", "    for: 3s\n    exit_code: 3\n")),
        "s.yaml:18: faults[0].exit_code: belongs to an outage"
    );
    assert_eq!(
        err(&BASE.replace(
            "    outage: true",
            "    outage: true\n    network: { partition: both }"
        )),
        "s.yaml:19: faults[0].network: a network fault has no outage, latency or outcomes (make them faults of their own)"
    );
}

#[test]
fn a_fakes_breaks_and_one_way_partitions_take_turns() {
    // BASE's fault holds from 2s to 5s of 10s (and 5s of grace).
    let with = |first: &str, timing: &str, then: &str| {
        network_fault(first).replace(
            "workload:",
            &format!("  - {{ fake: a, {timing}, network: {{ {then} }} }}\nworkload:"),
        )
    };
    assert_eq!(
        err(&with(
            "partition: to_fake",
            "at: 4s",
            "drop_connections: 0.1"
        )),
        "s.yaml:19: faults[1].network: holds together with faults[0] from 4s: fake \"a\" would have drop_connections and a one-way partition at once, and the simulated network repairs a broken link in both directions, which would lift the partition; use `partition: both`, or let them take turns"
    );
    // A repeating fault meets the other on a later occurrence.
    assert!(
        err(&with(
            "partition: to_fake",
            "at: 0s, for: 1s, every: 4s",
            "drop_connections: 0.1"
        ))
        .contains("faults[1].network: holds together with faults[0] from 4s:")
    );
    // Up to the end of the grace: a partition from 2s on meets breaks at 11s.
    let endless = |every: &str| {
        with(
            "partition: to_fake",
            &format!("at: 0s, for: 1s, every: {every}"),
            "drop_connections: 0.1",
        )
        .replace("    for: 3s\n", "")
        .replace("window: { after: down }", "window: { before: down }")
    };
    assert!(
        err(&endless("11s")).contains("faults[1].network: holds together with faults[0] from 11s:"),
        "{}",
        err(&endless("11s"))
    );
    for fine in [
        with("partition: to_fake", "at: 5s", "drop_connections: 0.1"),
        with(
            "partition: to_fake",
            "at: 0s, for: 2s",
            "drop_connections: 0.1",
        ),
        with(
            "drop_connections: 0.1",
            "at: 0s, for: 1s, every: 16s",
            "partition: to_fake",
        ),
        with("partition: both", "at: 4s", "drop_connections: 0.1"),
        with("partition: to_fake", "at: 4s", "latency: 10ms"),
        with("partition: to_fake", "at: 4s", "partition: from_fake"),
    ] {
        load_str(&fine, Path::new("s.yaml")).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_scenario_with_a_network_fault_says_it_needs_the_simulation() {
    assert!(
        load_str(BASE, Path::new("s.yaml"))
            .unwrap()
            .needs_simulation()
            .is_none()
    );
    let s = load_str(&network_fault("latency: 100ms"), Path::new("s.yaml")).unwrap();
    assert_eq!(
        s.needs_simulation().map(|e| e.to_string()).as_deref(),
        Some(
            "s.yaml:18: faults[0].network: a network fault needs the simulated network: run the scenario with --sim"
        )
    );
}

/// BASE with `fault` (YAML under `faults:`, indented as its items) in place
/// of its outage.
fn with_reload(fault: &str) -> String {
    let outage = "  - name: down\n    fake: a\n    at: 2s\n    for: 3s\n    outage: true\n";
    BASE.replace(outage, fault)
        .replace("window: { after: down }, ", "")
}

#[test]
fn a_reload_patches_the_section_the_reloads_before_left() {
    let text = with_reload(
        "  - name: add\n    at: 2s\n    reload: { patch: { backends: [{ name: b, fake: a, canary_of: a, weight: 5 }] } }\n  - name: shift\n    at: 4s\n    reload: { patch: { backends: [{ name: b, weight: 50 }] } }\n  - name: drop\n    at: 6s\n    reload: { patch: { backends: [{ name: b, remove: true }] } }\n",
    );
    let scenario = load_str(&text, Path::new("s.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let sections: Vec<&ProxySection> = scenario
        .faults
        .iter()
        .filter_map(|f| match &f.action {
            FaultAction::Reload { section, .. } => Some(section.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(sections.len(), 3);
    // The shift builds on the added canary: it keeps its `canary_of`.
    let config = |section: &ProxySection| {
        section
            .config(
                "s.yaml",
                Path::new("."),
                &|_| FakeAddress::Http {
                    url: "http://127.0.0.1:1/mcp".into(),
                },
                "127.0.0.1:0".parse().unwrap(),
                0,
            )
            .unwrap()
    };
    let shifted = config(sections[1]);
    assert_eq!(shifted.backends.len(), 2);
    assert_eq!(
        shifted.backends[1].role,
        mcp_proxy::config::Role::Canary {
            of: "a".into(),
            weight: 50.0,
            sticky: false
        }
    );
    assert_eq!(config(sections[2]).backends.len(), 1);
    assert!(scenario.needs_our_proxy().is_some());
}

#[test]
fn a_reload_meant_to_apply_must_be_valid_and_one_meant_to_fail_invalid() {
    // Line 18: the retry count the proxy's loader refuses, at the patch.
    let invalid = with_reload(
        "  - at: 2s\n    reload:\n      patch:\n        backends:\n          - { name: a, retry: { max_retries: -1 } }\n",
    );
    let error = err(&invalid);
    assert!(
        error.starts_with("s.yaml:18: proxy.backends[0].retry.max_retries"),
        "{error}"
    );
    let valid_but_rejected = with_reload(
        "  - at: 2s\n    reload: { expect: rejected, patch: { backends: [{ name: a, wait_for_ready: 1s }] } }\n",
    );
    assert!(
        err(&valid_but_rejected).contains("faults[0].reload.expect: the patched config is valid"),
        "{}",
        err(&valid_but_rejected)
    );
    let rejected = with_reload(
        "  - at: 2s\n    reload: { expect: rejected, patch: { backends: [{ name: a, wait_for_ready: soon }] } }\n",
    );
    assert!(load_str(&rejected, Path::new("s.yaml")).is_ok());
}

#[test]
fn a_reload_happens_once_in_time_order_and_names_what_it_changes() {
    let lasting = with_reload("  - at: 2s\n    for: 1s\n    reload: { patch: {} }\n");
    assert!(
        err(&lasting).contains("faults[0].for: a reload happens once"),
        "{}",
        err(&lasting)
    );
    let of_a_fake = with_reload("  - fake: a\n    at: 2s\n    reload: { patch: {} }\n");
    assert!(
        err(&of_a_fake).contains("faults[0].fake"),
        "{}",
        err(&of_a_fake)
    );
    let backwards = with_reload(
        "  - at: 4s\n    reload: { patch: {} }\n  - at: 2s\n    reload: { patch: {} }\n",
    );
    assert!(
        err(&backwards).contains("faults[1].at: reloads build on each other"),
        "{}",
        err(&backwards)
    );
    let nameless =
        with_reload("  - at: 2s\n    reload: { patch: { backends: [{ weight: 5 }] } }\n");
    assert!(
        err(&nameless).contains("faults[0].reload.patch.backends[0]: names the backend"),
        "{}",
        err(&nameless)
    );
    let unknown_removal = with_reload(
        "  - at: 2s\n    reload: { patch: { backends: [{ name: zz, remove: true }] } }\n",
    );
    assert!(
        err(&unknown_removal).contains("name: no backend named \"zz\" to remove"),
        "{}",
        err(&unknown_removal)
    );
    let removal_with_keys = with_reload(
        "  - at: 2s\n    reload: { patch: { backends: [{ name: a, remove: true, weight: 5 }] } }\n",
    );
    assert!(
        err(&removal_with_keys).contains("remove: a removed backend"),
        "{}",
        err(&removal_with_keys)
    );
}
