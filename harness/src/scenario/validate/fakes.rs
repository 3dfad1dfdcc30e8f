//! The `fakes` section: each fake's name, transport and port, its tools,
//! and the behaviour a tool is scripted with (a latency distribution and
//! weighted outcomes), which faults reuse.

use std::collections::HashSet;
use std::time::Duration;

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::{KeyPath, Validator};

impl Validator<'_> {
    pub(super) fn fakes(
        &self,
        raw: Vec<RawFake>,
        path: &KeyPath,
    ) -> Result<Vec<FakeSpec>, ConfigError> {
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

    pub(super) fn latency(&self, raw: RawLatency, path: &KeyPath) -> Result<Latency, ConfigError> {
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

    pub(super) fn outcomes(
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
}
