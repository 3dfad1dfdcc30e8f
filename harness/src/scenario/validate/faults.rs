//! The `faults` section: what a fault does (an outage, scripted behaviour
//! or a network fault), what triggers it (time or calls), the phases it
//! names, and the rule that keeps a fake's one-way partitions and link
//! breaks apart.

use std::collections::HashSet;
use std::time::Duration;

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::reload::ReloadContext;
use super::timeline::{first_overlap, fmt_duration};
use super::{KeyPath, Validator};

/// Most repeats of one fault within a scenario (each is a phase range).
const MAX_REPEATS: u128 = 100_000;

impl Validator<'_> {
    pub(super) fn faults(
        &self,
        raw: Vec<RawFault>,
        path: &KeyPath,
        (duration, grace): (Duration, Duration),
        proxy: Option<&ProxySection>,
        context: &ReloadContext<'_>,
    ) -> Result<Vec<Fault>, ConfigError> {
        let (fakes, issuer) = (context.fakes, context.issuer);
        let mut names = HashSet::new();
        let mut faults = Vec::new();
        // The proxy section as the reloads so far have left it.
        let mut current = proxy.cloned();
        let mut last_reload = Duration::ZERO;
        for (i, f) in raw.into_iter().enumerate() {
            let p = path.index(i);
            let target = match (&f.fake, &f.issuer) {
                _ if f.reload.is_some() => Target::Proxy,
                (Some(name), None) => match fakes.iter().find(|x| &x.name == name) {
                    Some(fake) => Target::Fake(fake),
                    None => {
                        return Err(self.error(&p.key("fake"), format!("no fake named {name:?}")));
                    }
                },
                (None, Some(name)) => match issuer {
                    Some(issuer) if &issuer.name == name => Target::Issuer(issuer),
                    _ => {
                        return Err(
                            self.error(&p.key("issuer"), format!("no issuer named {name:?}"))
                        );
                    }
                },
                (Some(_), Some(_)) => {
                    return Err(self.error(
                        &p.key("issuer"),
                        "a fault is of a fake or of the issuer, not both",
                    ));
                }
                (None, None) => return Err(self.error(&p, "needs fake (or issuer)")),
            };
            if let (Some(tool), Target::Fake(fake)) = (&f.tool, &target)
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
            let fake = match target {
                Target::Proxy => {
                    let reload = f
                        .reload
                        .as_ref()
                        .ok_or_else(|| self.error(&p, "needs reload"))?;
                    let action =
                        self.reload_action(&f, reload, &p, &trigger, &mut current, context)?;
                    if let Trigger::Time { at, .. } = trigger {
                        if at < last_reload {
                            return Err(self.error(
                                &p.key("at"),
                                "reloads build on each other: write them in time order",
                            ));
                        }
                        last_reload = at;
                    }
                    faults.push(Fault {
                        name: f.name,
                        fake: PROXY_TARGET.to_owned(),
                        tool: None,
                        trigger,
                        action,
                    });
                    continue;
                }
                Target::Fake(fake) => fake,
                Target::Issuer(issuer) => {
                    let action = self.issuer_action(&f, &p, issuer, &trigger)?;
                    faults.push(Fault {
                        name: f.name,
                        fake: issuer.name.clone(),
                        tool: None,
                        trigger,
                        action,
                    });
                    continue;
                }
            };
            if f.rotate_key.is_some() {
                return Err(self.error(
                    &p.key("rotate_key"),
                    "rotates the issuer's keys: write `issuer: NAME`, not `fake`",
                ));
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
                fake: fake.name.clone(),
                tool: f.tool,
                trigger,
                action,
            });
        }
        self.no_breaks_under_one_way_partitions(&faults, path, duration.saturating_add(grace))?;
        Ok(faults)
    }

    /// A fault of the issuer: an `outage` of its JWKS server (connections
    /// refused, as a fake's), or `rotate_key`; both by time.
    fn issuer_action(
        &self,
        f: &RawFault,
        p: &KeyPath,
        issuer: &Issuer,
        trigger: &Trigger,
    ) -> Result<FaultAction, ConfigError> {
        for (key, set) in [
            ("tool", f.tool.is_some()),
            ("exit_code", f.exit_code.is_some()),
            ("latency", f.latency.is_some()),
            ("outcomes", f.outcomes.is_some()),
            ("network", f.network.is_some()),
        ] {
            if set {
                return Err(self.error(
                    &p.key(key),
                    "an issuer fault is `outage: true` or `rotate_key` only",
                ));
            }
        }
        let Trigger::Time { length, every, .. } = trigger else {
            return Err(self.error(&p.key("calls"), "an issuer fault is triggered by time"));
        };
        match (f.outage, &f.rotate_key) {
            (Some(true), None) => Ok(FaultAction::Outage { exit_code: 1 }),
            (None, Some(rotate)) => {
                if length.is_some() || every.is_some() {
                    let key = if length.is_some() { "for" } else { "every" };
                    return Err(self.error(
                        &p.key(key),
                        "a key rotation happens once, at `at`, and holds to the end",
                    ));
                }
                if !issuer.keys.contains(&rotate.to) {
                    return Err(self.error(
                        &p.key("rotate_key").key("to"),
                        format!(
                            "issuer {:?} has no key {:?} (keys: {})",
                            issuer.name,
                            rotate.to,
                            issuer.keys.join(", ")
                        ),
                    ));
                }
                Ok(FaultAction::RotateKey {
                    to: rotate.to.clone(),
                    keep_old: rotate.keep_old,
                })
            }
            (Some(false), _) => {
                Err(self.error(&p.key("outage"), "write `true`, or leave the key out"))
            }
            (Some(true), Some(_)) => Err(self.error(
                &p.key("rotate_key"),
                "not with outage: make them faults of their own",
            )),
            (None, None) => Err(self.error(p, "an issuer fault needs outage or rotate_key")),
        }
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
}

/// What a fault applies to.
enum Target<'a> {
    Fake(&'a FakeSpec),
    Issuer(&'a Issuer),
    /// A `reload` of the proxy's config.
    Proxy,
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
