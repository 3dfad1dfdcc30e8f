//! Raw scenario → validated [`Scenario`]: defaults, "exactly one of"
//! choices, names that must refer to something, and time windows resolved
//! against the fault timeline.
//!
//! The raw structs carry no positions; an error finds its line by looking its
//! key path up in the tree (the two have the same shape, since one was read
//! from the other).

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use mcp_proxy::config::ConfigError;
use mcp_proxy::config::document::{Node, Seg, path_string};

use super::model::*;
use super::raw::*;

/// Default `grace`.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Default `workload.call_timeout`.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `open.max_in_flight`.
const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// Default `open.max_missed_share`. A slot sent more than a period late
/// counts as missed, so a busy machine misses some from scheduling jitter
/// alone (up to 7 % at 400 calls/s, each a few ms late, on a loaded
/// two-CPU debug build), although those calls were still sent and timed
/// from their slots. A tenth tolerates that, and still fails a run whose
/// harness cannot keep the rate or whose proxy stalled into `max_in_flight`.
const DEFAULT_MAX_MISSED_SHARE: f64 = 0.1;
/// Most repeats of one fault within a scenario (each is a phase range).
const MAX_REPEATS: u128 = 100_000;
/// Most client sessions, calls in flight, or open-loop calls per second: far
/// beyond any loopback test, low enough that a typo cannot exhaust memory.
const MAX_LOAD: usize = 100_000;
/// Default `ratio.min_calls`.
const DEFAULT_RATIO_MIN_CALLS: u64 = 30;

/// A key path under construction.
#[derive(Clone, Default)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(&self, k: &str) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Key(k.to_owned()));
        KeyPath(p)
    }

    pub(crate) fn index(&self, i: usize) -> KeyPath {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        KeyPath(p)
    }
}

pub(crate) struct Validator<'a> {
    pub(crate) tree: &'a Node,
    pub(crate) file: &'a str,
}

impl Validator<'_> {
    /// An error at the value `path` names (or the nearest table that exists).
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(self.tree.line_near(&path.0)),
            path: path_string(&path.0),
            message: message.into(),
        }
    }

    /// Validates everything but the proxy section.
    pub(crate) fn scenario(
        &self,
        raw: RawScenario,
        file: &Path,
        base_dir: &Path,
    ) -> Result<Scenario, ConfigError> {
        let root = KeyPath::default();
        if raw.name.trim().is_empty() {
            return Err(self.error(&root.key("name"), "must not be empty"));
        }
        if raw.description.contains('\n') {
            return Err(self.error(&root.key("description"), "must be one line"));
        }
        let duration = raw.duration.0;
        if duration.is_zero() {
            return Err(self.error(&root.key("duration"), "must be greater than zero"));
        }
        let fakes = self.fakes(raw.fakes, &root.key("fakes"))?;
        // The proxy section refers to the fakes, so it is read after them.
        let proxy = super::proxy::read_section(self, self.tree, base_dir, &fakes)?;
        let grace = raw.grace.map_or(DEFAULT_GRACE, |d| d.0);
        let faults = self.faults(
            raw.faults.unwrap_or_default(),
            &root.key("faults"),
            &fakes,
            duration,
            grace,
        )?;
        let phases = Phases::of(&faults, duration);
        let workload = self.workload(raw.workload, &root.key("workload"))?;
        let mut expect = Vec::new();
        for (i, check) in raw.expect.into_iter().enumerate() {
            expect.push(self.check(check, &root.key("expect").index(i), &fakes, &phases)?);
        }
        Ok(Scenario {
            file: file.to_owned(),
            name: raw.name,
            description: raw.description,
            seed: raw.seed.unwrap_or(0),
            duration,
            grace,
            proxy,
            fakes,
            faults,
            workload,
            expect,
        })
    }

    fn fakes(&self, raw: Vec<RawFake>, path: &KeyPath) -> Result<Vec<FakeSpec>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(path, "at least one fake is required"));
        }
        let mut seen = HashSet::new();
        let mut fakes = Vec::new();
        for (i, fake) in raw.into_iter().enumerate() {
            let p = path.index(i);
            if fake.name.is_empty() {
                return Err(self.error(&p.key("name"), "must not be empty"));
            }
            if !seen.insert(fake.name.clone()) {
                return Err(self.error(
                    &p.key("name"),
                    format!("duplicate fake name {:?}", fake.name),
                ));
            }
            let transport = match (fake.transport, fake.port) {
                (RawTransport::Stdio, Some(_)) => {
                    return Err(self.error(&p.key("port"), "only http fakes have a port"));
                }
                (RawTransport::Stdio, None) => FakeTransport::Stdio,
                (RawTransport::Http, port) => FakeTransport::Http {
                    port: port.unwrap_or(0),
                },
            };
            let startup = match (fake.startup, transport) {
                (None, _) => None,
                (Some(_), FakeTransport::Http { .. }) => {
                    return Err(
                        self.error(&p.key("startup"), "only stdio fakes have a startup delay")
                    );
                }
                (Some(l), FakeTransport::Stdio) => Some(self.latency(l, &p.key("startup"))?),
            };
            if fake.tools.is_empty() {
                return Err(self.error(&p.key("tools"), "at least one tool is required"));
            }
            let mut tool_names = HashSet::new();
            let mut tools = Vec::new();
            for (j, tool) in fake.tools.into_iter().enumerate() {
                let tp = p.key("tools").index(j);
                if tool.name.is_empty() {
                    return Err(self.error(&tp.key("name"), "must not be empty"));
                }
                if !tool_names.insert(tool.name.clone()) {
                    return Err(self.error(
                        &tp.key("name"),
                        format!("duplicate tool name {:?}", tool.name),
                    ));
                }
                let latency = match tool.latency {
                    Some(l) => self.latency(l, &tp.key("latency"))?,
                    None => Latency::Fixed(Duration::ZERO),
                };
                let outcomes = match tool.outcomes {
                    Some(o) => self.outcomes(o, &tp.key("outcomes"), transport)?,
                    None => Vec::new(),
                };
                tools.push(ToolSpec {
                    name: tool.name,
                    read_only: tool.read_only,
                    idempotent: tool.idempotent,
                    behaviour: Behaviour { latency, outcomes },
                });
            }
            fakes.push(FakeSpec {
                name: fake.name,
                transport,
                tools,
                startup,
            });
        }
        Ok(fakes)
    }

    fn latency(&self, raw: RawLatency, path: &KeyPath) -> Result<Latency, ConfigError> {
        let mut chosen = Vec::new();
        if let Some(d) = raw.fixed {
            chosen.push(("fixed", Latency::Fixed(d.0)));
        }
        if let Some(u) = raw.uniform {
            if u.max.0 < u.min.0 {
                return Err(self.error(&path.key("uniform").key("max"), "must be ≥ min"));
            }
            chosen.push((
                "uniform",
                Latency::Uniform {
                    min: u.min.0,
                    max: u.max.0,
                },
            ));
        }
        if let Some(n) = raw.normal {
            chosen.push((
                "normal",
                Latency::Normal {
                    mean: n.mean.0,
                    stddev: n.stddev.0,
                },
            ));
        }
        if let Some(l) = raw.lognormal {
            if !(l.sigma.is_finite() && l.sigma >= 0.0) {
                return Err(self.error(&path.key("lognormal").key("sigma"), "must be ≥ 0"));
            }
            if l.median.0.is_zero() {
                return Err(self.error(
                    &path.key("lognormal").key("median"),
                    "must be greater than zero",
                ));
            }
            chosen.push((
                "lognormal",
                Latency::LogNormal {
                    median: l.median.0,
                    sigma: l.sigma,
                },
            ));
        }
        if let Some(p) = raw.pareto {
            if !(p.shape.is_finite() && p.shape > 0.0) {
                return Err(self.error(&path.key("pareto").key("shape"), "must be > 0"));
            }
            if p.scale.0.is_zero() {
                return Err(self.error(
                    &path.key("pareto").key("scale"),
                    "must be greater than zero",
                ));
            }
            chosen.push((
                "pareto",
                Latency::Pareto {
                    scale: p.scale.0,
                    shape: p.shape,
                },
            ));
        }
        match chosen.len() {
            1 => Ok(chosen.remove(0).1),
            0 => Err(self.error(
                path,
                "needs one of fixed, uniform, normal, lognormal, pareto",
            )),
            _ => Err(self.error(
                path,
                format!(
                    "has {}; choose one distribution",
                    chosen.iter().map(|c| c.0).collect::<Vec<_>>().join(" and ")
                ),
            )),
        }
    }

    fn outcomes(
        &self,
        raw: Vec<RawOutcome>,
        path: &KeyPath,
        transport: FakeTransport,
    ) -> Result<Vec<WeightedOutcome>, ConfigError> {
        let mut total = 0.0;
        let mut outcomes = Vec::new();
        for (i, o) in raw.into_iter().enumerate() {
            let p = path.index(i);
            if !(0.0..=1.0).contains(&o.probability) {
                return Err(self.error(&p.key("probability"), "must be between 0 and 1"));
            }
            total += o.probability;
            let mut chosen: Vec<(&str, Outcome)> = Vec::new();
            let mut flag = |key: &'static str, set: Option<bool>, outcome: Outcome| match set {
                Some(true) => {
                    chosen.push((key, outcome));
                    Ok(())
                }
                Some(false) => Err(self.error(&p.key(key), "write `true`, or leave the key out")),
                None => Ok(()),
            };
            flag("success", o.success, Outcome::Success)?;
            flag("reset", o.reset, Outcome::Reset)?;
            flag("hang", o.hang, Outcome::Hang)?;
            flag("malformed", o.malformed, Outcome::Malformed)?;
            if let Some(t) = o.tool_error {
                chosen.push((
                    "tool_error",
                    Outcome::ToolError {
                        message: t.message.unwrap_or_else(|| "scripted tool error".into()),
                    },
                ));
            }
            if let Some(e) = o.jsonrpc_error {
                chosen.push((
                    "jsonrpc_error",
                    Outcome::JsonRpcError {
                        code: e.code,
                        message: e.message.unwrap_or_else(|| "scripted error".into()),
                    },
                ));
            }
            if let Some(h) = o.http_status {
                if transport == FakeTransport::Stdio {
                    return Err(self.error(
                        &p.key("http_status"),
                        "only http fakes answer with an HTTP status",
                    ));
                }
                if !(400..=599).contains(&h.status) {
                    return Err(self.error(
                        &p.key("http_status").key("status"),
                        "must be a 4xx or 5xx status",
                    ));
                }
                chosen.push((
                    "http_status",
                    Outcome::HttpStatus {
                        status: h.status,
                        retry_after: h.retry_after.map(|d| d.0),
                    },
                ));
            }
            if let Some(x) = o.exit {
                if transport != FakeTransport::Stdio {
                    return Err(self.error(&p.key("exit"), "only stdio fakes exit"));
                }
                chosen.push(("exit", Outcome::Exit { code: x.code }));
            }
            let outcome = match chosen.len() {
                1 => chosen.remove(0).1,
                0 => {
                    return Err(self.error(
                        &p,
                        "needs one of success, tool_error, jsonrpc_error, http_status, reset, hang, malformed, exit",
                    ));
                }
                _ => {
                    return Err(self.error(
                        &p,
                        format!(
                            "has {}; an entry is one outcome",
                            chosen.iter().map(|c| c.0).collect::<Vec<_>>().join(" and ")
                        ),
                    ));
                }
            };
            outcomes.push(WeightedOutcome {
                outcome,
                probability: o.probability,
            });
        }
        if total > 1.0 + 1e-9 {
            return Err(self.error(
                path,
                format!("probabilities add up to {total}, more than 1"),
            ));
        }
        Ok(outcomes)
    }

    fn faults(
        &self,
        raw: Vec<RawFault>,
        path: &KeyPath,
        fakes: &[FakeSpec],
        duration: Duration,
        grace: Duration,
    ) -> Result<Vec<Fault>, ConfigError> {
        let mut names = HashSet::new();
        let mut faults = Vec::new();
        for (i, f) in raw.into_iter().enumerate() {
            let p = path.index(i);
            let Some(fake) = fakes.iter().find(|x| x.name == f.fake) else {
                return Err(self.error(&p.key("fake"), format!("no fake named {:?}", f.fake)));
            };
            if let Some(tool) = &f.tool
                && !fake.tools.iter().any(|t| &t.name == tool)
            {
                return Err(self.error(
                    &p.key("tool"),
                    format!("fake {:?} has no tool {tool:?}", fake.name),
                ));
            }
            let timed = f.at.is_some() || f.length.is_some() || f.every.is_some();
            let trigger = match (&f.calls, timed) {
                (Some(_), true) => {
                    return Err(self.error(
                        &p.key("calls"),
                        "a fault is triggered by time (at/for/every) or by calls, not both",
                    ));
                }
                (Some(c), false) => Trigger::Calls(match (c.first, c.every) {
                    (Some(n), None) if n > 0 => CallTrigger::First(n),
                    (None, Some(n)) if n > 0 => CallTrigger::Every(n),
                    (Some(_), Some(_)) => {
                        return Err(self.error(&p.key("calls"), "use first or every, not both"));
                    }
                    (None, None) => {
                        return Err(self.error(&p.key("calls"), "needs first or every"));
                    }
                    _ => {
                        return Err(self.error(&p.key("calls"), "counts must be at least 1"));
                    }
                }),
                (None, _) => {
                    let at = f.at.map_or(Duration::ZERO, |d| d.0);
                    let length = f.length.map(|d| d.0);
                    let every = f.every.map(|d| d.0);
                    if length.is_some_and(|l| l.is_zero()) {
                        return Err(self.error(&p.key("for"), "must be greater than zero"));
                    }
                    if let Some(every) = every {
                        match length {
                            None => {
                                return Err(
                                    self.error(&p.key("every"), "a repeating fault needs `for`")
                                );
                            }
                            Some(l) if every <= l => {
                                return Err(
                                    self.error(&p.key("every"), "must be longer than `for`")
                                );
                            }
                            Some(_) if duration.as_nanos() / every.as_nanos() > MAX_REPEATS => {
                                return Err(self.error(
                                    &p.key("every"),
                                    format!(
                                        "repeats more than {MAX_REPEATS} times in the scenario"
                                    ),
                                ));
                            }
                            _ => {}
                        }
                    }
                    if at >= duration {
                        return Err(
                            self.error(&p.key("at"), "starts after the scenario's duration")
                        );
                    }
                    Trigger::Time { at, length, every }
                }
            };
            if let Some(name) = &f.name {
                if !matches!(trigger, Trigger::Time { .. }) {
                    return Err(
                        self.error(&p.key("name"), "only faults triggered by time name a phase")
                    );
                }
                if !names.insert(name.clone()) {
                    return Err(
                        self.error(&p.key("name"), format!("duplicate phase name {name:?}"))
                    );
                }
            }
            let behave = f.latency.is_some() || f.outcomes.is_some();
            if f.network.is_some() && (f.outage.is_some() || behave) {
                return Err(self.error(
                    &p.key("network"),
                    "a network fault has no outage, latency or outcomes (make them faults of their own)",
                ));
            }
            let action = match (f.outage, behave) {
                (Some(true), true) => {
                    return Err(
                        self.error(&p.key("outage"), "an outage has no latency or outcomes")
                    );
                }
                (Some(true), false) => {
                    if f.tool.is_some() {
                        return Err(
                            self.error(&p.key("tool"), "an outage takes the whole fake down")
                        );
                    }
                    if !matches!(trigger, Trigger::Time { .. }) {
                        return Err(self.error(&p.key("outage"), "an outage is triggered by time"));
                    }
                    if f.exit_code.is_some() && fake.transport != FakeTransport::Stdio {
                        return Err(self.error(&p.key("exit_code"), "only stdio fakes exit"));
                    }
                    FaultAction::Outage {
                        exit_code: f.exit_code.unwrap_or(1),
                    }
                }
                (Some(false), _) => {
                    return Err(self.error(&p.key("outage"), "write `true`, or leave the key out"));
                }
                (None, false) => match &f.network {
                    Some(network) => self.network_action(network, &f, &p, fake)?,
                    None => {
                        return Err(self.error(&p, "needs outage, network, latency or outcomes"));
                    }
                },
                (None, true) => {
                    if f.exit_code.is_some() {
                        return Err(self.error(&p.key("exit_code"), "belongs to an outage"));
                    }
                    FaultAction::Behave {
                        latency: f
                            .latency
                            .map(|l| self.latency(l, &p.key("latency")))
                            .transpose()?,
                        outcomes: f
                            .outcomes
                            .map(|o| self.outcomes(o, &p.key("outcomes"), fake.transport))
                            .transpose()?,
                    }
                }
            };
            faults.push(Fault {
                name: f.name,
                fake: f.fake,
                tool: f.tool,
                trigger,
                action,
            });
        }
        self.no_breaks_under_one_way_partitions(&faults, path, duration.saturating_add(grace))?;
        Ok(faults)
    }

    /// A `network` fault: of the whole link to an HTTP fake, by time.
    fn network_action(
        &self,
        raw: &RawNetwork,
        fault: &RawFault,
        path: &KeyPath,
        fake: &FakeSpec,
    ) -> Result<FaultAction, ConfigError> {
        if fault.tool.is_some() {
            return Err(self.error(
                &path.key("tool"),
                "a network fault breaks the link to the whole fake",
            ));
        }
        if fault.exit_code.is_some() {
            return Err(self.error(&path.key("exit_code"), "belongs to an outage"));
        }
        if fault.calls.is_some() {
            return Err(self.error(
                &path.key("calls"),
                "a network fault is triggered by time (at/for/every): the network does not count calls",
            ));
        }
        if fake.transport == FakeTransport::Stdio {
            return Err(self.error(
                &path.key("network"),
                format!(
                    "fake {:?} is a stdio fake: it has no network link to break (network faults are for http fakes)",
                    fake.name
                ),
            ));
        }
        Ok(FaultAction::Network {
            link: self.network(raw, &path.key("network"))?,
            line: self.tree.line_near(&path.key("network").0),
        })
    }

    fn network(&self, raw: &RawNetwork, path: &KeyPath) -> Result<LinkFault, ConfigError> {
        let mut chosen = Vec::new();
        match (raw.latency, raw.jitter) {
            (Some(latency), jitter) => chosen.push((
                "latency",
                LinkFault::Latency {
                    latency: latency.0,
                    jitter: jitter.map_or(Duration::ZERO, |j| j.0),
                },
            )),
            (None, Some(_)) => {
                return Err(self.error(
                    &path.key("jitter"),
                    "goes with latency (`latency: 0ms` for jitter alone)",
                ));
            }
            (None, None) => {}
        }
        if let Some(direction) = raw.partition {
            chosen.push(("partition", LinkFault::Partition(direction.into())));
        }
        if let Some(rate) = raw.drop_connections {
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(self.error(
                    &path.key("drop_connections"),
                    "must be greater than 0 and at most 1 (the chance that one message breaks the link)",
                ));
            }
            chosen.push(("drop_connections", LinkFault::DropConnections(rate)));
        }
        match chosen.len() {
            1 => Ok(chosen.remove(0).1),
            0 => Err(self.error(path, "needs one of latency, partition, drop_connections")),
            _ => Err(self.error(
                path,
                format!(
                    "has {}; a network fault is one of them (make the others faults of their own)",
                    chosen.iter().map(|c| c.0).collect::<Vec<_>>().join(" and ")
                ),
            )),
        }
    }

    /// turmoil keeps a link's two directions apart only until a random
    /// break (`drop_connections`) hits it: breaking and repairing set both
    /// directions at once, so a one-way partition in force would be lifted
    /// with the repair. A fake's one-way partitions and breaks take turns.
    /// They are compared up to `end` (the scenario's duration and grace):
    /// nothing after it is judged.
    fn no_breaks_under_one_way_partitions(
        &self,
        faults: &[Fault],
        path: &KeyPath,
        end: Duration,
    ) -> Result<(), ConfigError> {
        let one_way = |f: &Fault| {
            matches!(
                f.action,
                FaultAction::Network {
                    link: LinkFault::Partition(Direction::ToFake | Direction::FromFake),
                    ..
                }
            )
        };
        let breaks = |f: &Fault| {
            matches!(
                f.action,
                FaultAction::Network {
                    link: LinkFault::DropConnections(_),
                    ..
                }
            )
        };
        for (later, fault) in faults.iter().enumerate() {
            for (earlier, other) in faults[..later].iter().enumerate() {
                let clash = other.fake == fault.fake
                    && ((one_way(fault) && breaks(other)) || (breaks(fault) && one_way(other)));
                if !clash {
                    continue;
                }
                if let Some(at) = first_overlap(&fault.trigger, &other.trigger, end) {
                    return Err(self.error(
                        &path.index(later).key("network"),
                        format!(
                            "holds together with faults[{earlier}] from {}: fake {:?} would have drop_connections and a one-way partition at once, and the simulated network repairs a broken link in both directions, which would lift the partition; use `partition: both`, or let them take turns",
                            fmt_duration(at),
                            fault.fake
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn workload(&self, raw: RawWorkload, path: &KeyPath) -> Result<Workload, ConfigError> {
        let clients = raw.clients.unwrap_or(1);
        if !(1..=MAX_LOAD).contains(&clients) {
            return Err(self.error(&path.key("clients"), format!("must be 1 to {MAX_LOAD}")));
        }
        let mode = match (raw.closed, raw.open) {
            (Some(c), None) => {
                if !(1..=MAX_LOAD).contains(&c.concurrency) {
                    return Err(self.error(
                        &path.key("closed").key("concurrency"),
                        format!("must be 1 to {MAX_LOAD}"),
                    ));
                }
                LoadMode::Closed {
                    concurrency: c.concurrency,
                }
            }
            (None, Some(o)) => {
                if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= MAX_LOAD as f64) {
                    return Err(self.error(
                        &path.key("open").key("rate"),
                        format!("must be > 0 and at most {MAX_LOAD} (calls per second)"),
                    ));
                }
                let max_in_flight = o.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
                if !(1..=MAX_LOAD).contains(&max_in_flight) {
                    return Err(self.error(
                        &path.key("open").key("max_in_flight"),
                        format!("must be 1 to {MAX_LOAD}"),
                    ));
                }
                let max_missed_share = o.max_missed_share.unwrap_or(DEFAULT_MAX_MISSED_SHARE);
                if !(0.0..=1.0).contains(&max_missed_share) {
                    return Err(self.error(
                        &path.key("open").key("max_missed_share"),
                        "must be between 0 and 1",
                    ));
                }
                LoadMode::Open {
                    rate: o.rate,
                    max_in_flight,
                    max_missed_share,
                }
            }
            (Some(_), Some(_)) => {
                return Err(self.error(path, "choose closed or open, not both"));
            }
            (None, None) => return Err(self.error(path, "needs closed or open")),
        };
        if raw.calls.is_empty() {
            return Err(self.error(&path.key("calls"), "at least one call is required"));
        }
        let mut calls = Vec::new();
        for (i, c) in raw.calls.into_iter().enumerate() {
            let p = path.key("calls").index(i);
            let weight = c.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(self.error(&p.key("weight"), "must be > 0"));
            }
            if c.tool.is_empty() {
                return Err(self.error(&p.key("tool"), "must not be empty"));
            }
            let arguments = c.arguments.unwrap_or_default();
            if arguments.contains_key("harness_call") {
                return Err(self.error(
                    &p.key("arguments").key("harness_call"),
                    "is set by the harness on every call",
                ));
            }
            calls.push(CallMix {
                tool: c.tool,
                arguments,
                weight,
            });
        }
        let call_timeout = raw.call_timeout.map_or(DEFAULT_CALL_TIMEOUT, |d| d.0);
        if call_timeout.is_zero() {
            return Err(self.error(&path.key("call_timeout"), "must be greater than zero"));
        }
        Ok(Workload {
            clients,
            mode,
            calls,
            call_timeout,
        })
    }

    fn check(
        &self,
        raw: RawCheck,
        path: &KeyPath,
        fakes: &[FakeSpec],
        phases: &Phases,
    ) -> Result<CheckSpec, ConfigError> {
        let line = self.tree.line_near(&path.0);
        let mut kinds = Vec::new();
        if let Some(t) = raw.threshold {
            let p = path.key("threshold");
            if t.code.is_some() && matches!(t.outcome, Some(RawOutcomeFilter::Success)) {
                return Err(self.error(&p.key("code"), "selects errors: not with outcome: success"));
            }
            let mut select = self.selector(t.calls, t.window, t.outcome, &p, phases)?;
            select.code = t.code;
            let max_error_rate = match t.error_rate {
                Some(r) if !(0.0..=1.0).contains(&r.max) => {
                    return Err(
                        self.error(&p.key("error_rate").key("max"), "must be between 0 and 1")
                    );
                }
                r => r.map(|r| r.max),
            };
            let mut latency = Vec::new();
            for (key, bound) in t.latency.unwrap_or_default() {
                let Some(percentile) = percentile(&key) else {
                    return Err(self.error(
                        &p.key("latency").key(&key),
                        "unknown percentile; use p50, p90, p95, p99, p999 or max",
                    ));
                };
                latency.push((percentile, bound.0));
            }
            latency.sort_by(|a, b| a.0.quantile.total_cmp(&b.0.quantile));
            if max_error_rate.is_none() && latency.is_empty() {
                return Err(self.error(&p, "needs error_rate or latency"));
            }
            kinds.push((
                "threshold",
                CheckKind::Threshold(ThresholdCheck {
                    select,
                    max_error_rate,
                    latency,
                    min_calls: t.min_calls.unwrap_or(1),
                }),
            ));
        }
        if let Some(e) = raw.errors {
            let p = path.key("errors");
            let select = self.selector(e.calls, e.window, None, &p, phases)?;
            if let Some(r) = e.min_rate
                && !(0.0..=1.0).contains(&r)
            {
                return Err(self.error(&p.key("min_rate"), "must be between 0 and 1"));
            }
            if e.code.is_none() && e.message_contains.is_none() && e.min_rate.is_none() {
                return Err(self.error(&p, "needs code, message_contains or min_rate"));
            }
            kinds.push((
                "errors",
                CheckKind::Errors(ErrorsCheck {
                    select,
                    code: e.code,
                    message_contains: e.message_contains,
                    min_rate: e.min_rate,
                }),
            ));
        }
        if let Some(c) = raw.count {
            let p = path.key("count");
            self.fake_ref(fakes, &c.fake, &p.key("fake"))?;
            if c.min.is_none() && c.max.is_none() {
                return Err(self.error(&p, "needs min or max"));
            }
            if let (Some(min), Some(max)) = (c.min, c.max)
                && min > max
            {
                return Err(self.error(&p.key("max"), "must be ≥ min"));
            }
            let per_call = c.per_call.unwrap_or(false);
            if per_call && (c.min.is_some() || c.max.is_none()) {
                return Err(self.error(&p.key("per_call"), "bounds each call with `max` only"));
            }
            kinds.push((
                "count",
                CheckKind::Count(CountCheck {
                    select: JournalSelector {
                        fake: c.fake,
                        tool: c.tool,
                        method: c.method.unwrap_or_else(|| "tools/call".into()),
                        endpoint: c.endpoint,
                        outcomes: c.outcomes,
                        window: self.window(c.window, &p.key("window"), phases)?,
                    },
                    min: c.min,
                    max: c.max,
                    per_call,
                }),
            ));
        }
        if let Some(r) = raw.ratio {
            let p = path.key("ratio");
            if r.ways.len() < 2 {
                return Err(self.error(&p.key("ways"), "needs at least two ways"));
            }
            let mut ways = Vec::new();
            let mut total = 0.0;
            for (i, w) in r.ways.into_iter().enumerate() {
                let wp = p.key("ways").index(i);
                self.fake_ref(fakes, &w.fake, &wp.key("fake"))?;
                if !(w.share > 0.0 && w.share < 1.0) {
                    return Err(self.error(&wp.key("share"), "must be between 0 and 1 (exclusive)"));
                }
                if ways.iter().any(|(f, _)| f == &w.fake) {
                    return Err(self.error(&wp.key("fake"), "is listed twice"));
                }
                total += w.share;
                ways.push((w.fake, w.share));
            }
            if (total - 1.0).abs() > 1e-6 {
                return Err(self.error(&p.key("ways"), format!("shares add up to {total}, not 1")));
            }
            if !(r.confidence > 0.0 && r.confidence < 1.0) {
                return Err(self.error(
                    &p.key("confidence"),
                    "must be between 0 and 1 (exclusive), e.g. 0.9999",
                ));
            }
            kinds.push((
                "ratio",
                CheckKind::Ratio(RatioCheck {
                    ways,
                    tool: r.tool,
                    window: self.window(r.window, &p.key("window"), phases)?,
                    confidence: r.confidence,
                    min_calls: r.min_calls.unwrap_or(DEFAULT_RATIO_MIN_CALLS),
                }),
            ));
        }
        if let Some(t) = raw.timing {
            let p = path.key("timing");
            let (after, after_label) = match (t.after.start, t.after.end) {
                (Some(phase), None) => {
                    let ranges = phases.get(&phase).ok_or_else(|| {
                        self.error(&p.key("after").key("start"), phases.unknown(&phase))
                    })?;
                    (ranges[0].start, format!("start of {phase}"))
                }
                (None, Some(phase)) => {
                    let ranges = phases.get(&phase).ok_or_else(|| {
                        self.error(&p.key("after").key("end"), phases.unknown(&phase))
                    })?;
                    (ranges[0].end, format!("end of {phase}"))
                }
                _ => {
                    return Err(self.error(
                        &p.key("after"),
                        "needs start or end (a phase name), one of them",
                    ));
                }
            };
            kinds.push((
                "timing",
                CheckKind::Timing(TimingCheck {
                    after,
                    after_label,
                    tool: t.first.calls.unwrap_or_else(|| "*".into()),
                    outcome: t.first.outcome.into(),
                    code: t.first.code,
                    faster_than: t.first.faster_than.map(|d| d.0),
                    within: t.within.0,
                }),
            ));
        }
        let (label, kind) = match kinds.len() {
            1 => kinds.remove(0),
            0 => {
                return Err(
                    self.error(path, "needs one of threshold, errors, count, ratio, timing")
                );
            }
            _ => {
                return Err(self.error(
                    path,
                    format!(
                        "has {}; an entry is one check",
                        kinds.iter().map(|k| k.0).collect::<Vec<_>>().join(" and ")
                    ),
                ));
            }
        };
        Ok(CheckSpec {
            name: raw.name.unwrap_or_else(|| format!("{label} (line {line})")),
            line,
            kind,
        })
    }

    fn fake_ref(&self, fakes: &[FakeSpec], name: &str, path: &KeyPath) -> Result<(), ConfigError> {
        if fakes.iter().any(|f| f.name == name) {
            Ok(())
        } else {
            Err(self.error(path, format!("no fake named {name:?}")))
        }
    }

    fn selector(
        &self,
        calls: Option<String>,
        window: Option<RawWindow>,
        outcome: Option<RawOutcomeFilter>,
        path: &KeyPath,
        phases: &Phases,
    ) -> Result<CallSelector, ConfigError> {
        Ok(CallSelector {
            tool: calls.unwrap_or_else(|| "*".into()),
            window: self.window(window, &path.key("window"), phases)?,
            outcome: outcome.map(Into::into),
            code: None,
        })
    }

    fn window(
        &self,
        raw: Option<RawWindow>,
        path: &KeyPath,
        phases: &Phases,
    ) -> Result<Window, ConfigError> {
        let whole = Duration::ZERO..phases.duration;
        let Some(raw) = raw else {
            return Ok(Window {
                label: "whole run".into(),
                ranges: vec![whole],
            });
        };
        let named = [
            ("during", &raw.during),
            ("before", &raw.before),
            ("after", &raw.after),
        ];
        let given: Vec<_> = named.iter().filter(|(_, v)| v.is_some()).collect();
        let absolute = raw.from.is_some() || raw.to.is_some();
        if given.len() + usize::from(absolute) > 1 {
            return Err(self.error(path, "use one of during, before, after, or from/to"));
        }
        let (mut label, mut ranges) = match given.first() {
            Some((how, Some(phase))) => {
                let occurrences = phases
                    .get(phase)
                    .ok_or_else(|| self.error(&path.key(how), phases.unknown(phase)))?;
                let ranges = match *how {
                    "during" => occurrences.to_vec(),
                    "before" => vec![Duration::ZERO..occurrences[0].start],
                    _ => vec![occurrences[occurrences.len() - 1].end..phases.duration],
                };
                (format!("{how} {phase}"), ranges)
            }
            _ => {
                let from = raw.from.map_or(Duration::ZERO, |d| d.0);
                let to = raw.to.map_or(phases.duration, |d| d.0);
                if to <= from {
                    return Err(self.error(&path.key("to"), "must be after `from`"));
                }
                (
                    format!("{}–{}", fmt_duration(from), fmt_duration(to)),
                    vec![from..to],
                )
            }
        };
        if let Some(skip) = raw.skip {
            let skip = skip.0;
            for r in &mut ranges {
                r.start = (r.start + skip).min(r.end);
            }
            label.push_str(&format!(" (skipping {})", fmt_duration(skip)));
        }
        ranges.retain(|r| r.start < r.end);
        if ranges.is_empty() {
            return Err(self.error(path, "the window is empty"));
        }
        Ok(Window { label, ranges })
    }
}

/// The first instant before `end` at which two time triggers both hold.
fn first_overlap(a: &Trigger, b: &Trigger, end: Duration) -> Option<Duration> {
    let ranges = |t: &Trigger| {
        match *t {
            Trigger::Time { at, length, every } => Some(each_occurrence(at, length, every, end)),
            Trigger::Calls(_) => None,
        }
        .into_iter()
        .flatten()
        .peekable()
    };
    let (mut a, mut b) = (ranges(a), ranges(b));
    // Each is sorted and disjoint (a period is longer than its length).
    loop {
        let (x, y) = (a.peek()?, b.peek()?);
        if x.start < y.end && y.start < x.end {
            return Some(x.start.max(y.start));
        }
        if x.end <= y.end {
            a.next();
        } else {
            b.next();
        }
    }
}

impl From<RawPartition> for Direction {
    fn from(raw: RawPartition) -> Self {
        match raw {
            RawPartition::Both => Direction::Both,
            RawPartition::ToFake => Direction::ToFake,
            RawPartition::FromFake => Direction::FromFake,
        }
    }
}

impl From<RawOutcomeFilter> for OutcomeFilter {
    fn from(raw: RawOutcomeFilter) -> Self {
        match raw {
            RawOutcomeFilter::Success => OutcomeFilter::Success,
            RawOutcomeFilter::Error => OutcomeFilter::Error,
        }
    }
}

/// A percentile key of `threshold.latency`.
fn percentile(key: &str) -> Option<Percentile> {
    let (label, quantile) = match key {
        "p50" => ("p50", 0.5),
        "p90" => ("p90", 0.9),
        "p95" => ("p95", 0.95),
        "p99" => ("p99", 0.99),
        "p999" => ("p999", 0.999),
        "max" => ("max", 1.0),
        _ => return None,
    };
    Some(Percentile { label, quantile })
}

/// `1.5s`, `250ms`: durations as the scenario would write them.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if d.subsec_nanos().is_multiple_of(1_000_000) || ms >= 10 {
        format!("{ms}ms")
    } else {
        format!("{:.2}ms", d.as_secs_f64() * 1000.0)
    }
}

/// The named phases of the timeline: every occurrence of each named,
/// time-triggered fault within the scenario.
pub(crate) struct Phases {
    duration: Duration,
    by_name: HashMap<String, Vec<Range<Duration>>>,
}

impl Phases {
    pub(crate) fn of(faults: &[Fault], duration: Duration) -> Phases {
        let mut by_name = HashMap::new();
        for fault in faults {
            if let (Some(name), Trigger::Time { at, length, every }) = (&fault.name, &fault.trigger)
            {
                by_name.insert(name.clone(), occurrences(*at, *length, *every, duration));
            }
        }
        Phases { duration, by_name }
    }

    fn get(&self, name: &str) -> Option<&[Range<Duration>]> {
        self.by_name.get(name).map(Vec::as_slice)
    }

    fn unknown(&self, name: &str) -> String {
        let mut known: Vec<_> = self.by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        if known.is_empty() {
            format!("no phase named {name:?} (name a fault to make a phase)")
        } else {
            format!("no phase named {name:?}; phases: {}", known.join(", "))
        }
    }
}

/// The occurrences of a time trigger that start before `duration`, each cut at `duration`.
pub fn occurrences(
    at: Duration,
    length: Option<Duration>,
    every: Option<Duration>,
    duration: Duration,
) -> Vec<Range<Duration>> {
    each_occurrence(at, length, every, duration).collect()
}

/// [`occurrences`], one at a time.
fn each_occurrence(
    at: Duration,
    length: Option<Duration>,
    every: Option<Duration>,
    duration: Duration,
) -> impl Iterator<Item = Range<Duration>> {
    let period = every.filter(|p| !p.is_zero());
    std::iter::successors(Some(at), move |start| {
        period.and_then(|p| start.checked_add(p))
    })
    .take_while(move |start| *start < duration)
    .map(move |start| start..length.map_or(duration, |l| start.saturating_add(l).min(duration)))
}
