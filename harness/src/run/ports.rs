//! `run --ports BASE` and `--port NAME=PORT`: the ports of a scenario's
//! HTTP fakes chosen on the command line, so one scenario file runs
//! against any gateway whose config names fixed ports, with no copy of it
//! edited. `--port` wins over `--ports`, which wins over the fake's own
//! `port`. Port 0 (ephemeral) cannot be asked for, and two fakes on one
//! port are refused before anything starts.

use std::fmt;

use crate::report::replay::Flag;
use crate::scenario::{FakeTransport, Scenario};

/// The ports asked for on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// `--ports BASE`: the HTTP fakes get BASE, BASE+1, … in declaration order.
    pub base: Option<u16>,
    /// `--port NAME=PORT`, in command-line order (a later one wins).
    pub named: Vec<NamedPort>,
}

/// One `--port NAME=PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// The fake.
    pub fake: String,
    /// Its port.
    pub port: u16,
}

impl fmt::Display for NamedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.fake, self.port)
    }
}

/// Reads `NAME=PORT` (clap's value parser for `--port`).
pub fn parse_named_port(text: &str) -> Result<NamedPort, String> {
    let Some((fake, port)) = text.split_once('=') else {
        return Err("expected NAME=PORT, e.g. files=18001".into());
    };
    if fake.is_empty() {
        return Err("expected NAME=PORT: the fake's name is missing".into());
    }
    let port = match port.parse() {
        Ok(0) => {
            return Err(
                "port 0 is not a fixed port (a fake without --port gets an ephemeral one)".into(),
            );
        }
        Ok(port) => port,
        Err(_) => return Err(format!("{port:?} is not a port (1 to 65535)")),
    };
    Ok(NamedPort {
        fake: fake.to_owned(),
        port,
    })
}

impl PortPlan {
    /// The plan as `mcp-harness run` flags, for the replay command.
    pub fn flags(&self) -> Vec<Flag> {
        let base = self
            .base
            .map(|base| Flag::with("--ports", base.to_string()));
        let named = self
            .named
            .iter()
            .map(|named| Flag::with("--port", named.to_string()));
        base.into_iter().chain(named).collect()
    }

    /// `scenario` with its HTTP fakes on the ports asked for.
    pub fn apply(&self, scenario: &Scenario) -> Result<Scenario, String> {
        let mut scenario = scenario.clone();
        if self.base == Some(0) {
            return Err("--ports 0: the base must be a port from 1 to 65535".into());
        }
        if let Some(base) = self.base {
            let http = scenario
                .fakes
                .iter_mut()
                .filter_map(|fake| match &mut fake.transport {
                    FakeTransport::Http { port } => Some((fake.name.as_str(), port)),
                    FakeTransport::Stdio => None,
                });
            for (offset, (name, port)) in (0u32..).zip(http) {
                let wanted = u32::from(base) + offset;
                *port = u16::try_from(wanted).map_err(|_| {
                    format!("--ports {base}: fake {name:?} would get port {wanted}, past 65535")
                })?;
            }
        }
        for named in &self.named {
            let names: Vec<&str> = scenario.fakes.iter().map(|f| f.name.as_str()).collect();
            let known = names.join(", ");
            let Some(fake) = scenario.fakes.iter_mut().find(|f| f.name == named.fake) else {
                return Err(format!(
                    "--port {named}: {} has no fake named {:?} (its fakes: {known})",
                    scenario.file.display(),
                    named.fake
                ));
            };
            match &mut fake.transport {
                FakeTransport::Http { port } => *port = named.port,
                FakeTransport::Stdio => {
                    return Err(format!(
                        "--port {named}: fake {:?} is a stdio fake, which its gateway runs as a command: it has no port",
                        named.fake
                    ));
                }
            }
        }
        refuse_shared_ports(&scenario)?;
        Ok(scenario)
    }
}

/// An error if two HTTP fakes of `scenario` would listen on one fixed port.
fn refuse_shared_ports(scenario: &Scenario) -> Result<(), String> {
    let mut taken: Vec<(u16, &str)> = Vec::new();
    for fake in &scenario.fakes {
        let FakeTransport::Http { port } = fake.transport else {
            continue;
        };
        if port == 0 {
            continue;
        }
        if let Some((_, first)) = taken.iter().find(|(p, _)| *p == port) {
            return Err(format!(
                "{}: fakes {first:?} and {:?} would both listen on port {port} (from the scenario, --ports or --port)",
                scenario.file.display(),
                fake.name
            ));
        }
        taken.push((port, &fake.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SCENARIO: &str = "\
name: t
description: a test
duration: 2s
proxy:
  backends:
    - { name: a, fake: a }
    - { name: s, fake: s }
    - { name: b, fake: b }
fakes:
  - { name: a, transport: http, port: 7000, tools: [{ name: echo }] }
  - { name: s, transport: stdio, tools: [{ name: echo }] }
  - { name: b, transport: http, tools: [{ name: echo }] }
workload:
  closed: { concurrency: 1 }
  calls: [{ tool: a/echo }]
expect:
  - threshold: { error_rate: { max: 0 } }
";

    fn ports(plan: &PortPlan) -> Result<Vec<Option<u16>>, String> {
        let scenario = crate::scenario::load_str(SCENARIO, Path::new("s.yaml")).unwrap();
        Ok(plan
            .apply(&scenario)?
            .fakes
            .iter()
            .map(|f| match f.transport {
                FakeTransport::Http { port } => Some(port),
                FakeTransport::Stdio => None,
            })
            .collect())
    }

    fn named(text: &str) -> NamedPort {
        parse_named_port(text).unwrap()
    }

    #[test]
    fn a_base_numbers_the_http_fakes_in_order_and_a_named_port_wins() {
        assert_eq!(
            ports(&PortPlan::default()),
            Ok(vec![Some(7000), None, Some(0)])
        );
        let base = PortPlan {
            base: Some(18001),
            named: Vec::new(),
        };
        assert_eq!(ports(&base), Ok(vec![Some(18001), None, Some(18002)]));
        let both = PortPlan {
            base: Some(18001),
            named: vec![named("b=9000"), named("a=9001"), named("b=9002")],
        };
        assert_eq!(ports(&both), Ok(vec![Some(9001), None, Some(9002)]));
    }

    #[test]
    fn unknown_fakes_stdio_fakes_and_overflow_are_errors() {
        let one = |port: &str| PortPlan {
            base: None,
            named: vec![named(port)],
        };
        assert_eq!(
            ports(&one("x=1")),
            Err("--port x=1: s.yaml has no fake named \"x\" (its fakes: a, s, b)".into())
        );
        assert_eq!(
            ports(&one("s=1")),
            Err("--port s=1: fake \"s\" is a stdio fake, which its gateway runs as a command: it has no port".into())
        );
        assert_eq!(
            ports(&PortPlan {
                base: Some(0),
                named: Vec::new(),
            }),
            Err("--ports 0: the base must be a port from 1 to 65535".into())
        );
        // --port moves b onto a's own port; then a onto the port --ports
        // gave b.
        assert_eq!(
            ports(&PortPlan {
                base: None,
                named: vec![named("b=7000")],
            }),
            Err("s.yaml: fakes \"a\" and \"b\" would both listen on port 7000 (from the scenario, --ports or --port)".into())
        );
        assert_eq!(
            ports(&PortPlan {
                base: Some(9000),
                named: vec![named("a=9001")],
            }),
            Err("s.yaml: fakes \"a\" and \"b\" would both listen on port 9001 (from the scenario, --ports or --port)".into())
        );
        let high = PortPlan {
            base: Some(65535),
            named: Vec::new(),
        };
        assert_eq!(
            ports(&high),
            Err("--ports 65535: fake \"b\" would get port 65536, past 65535".into())
        );
    }

    #[test]
    fn a_named_port_reads_name_equals_port() {
        assert_eq!(named("files=18001").to_string(), "files=18001");
        assert!(parse_named_port("files").is_err());
        assert!(parse_named_port("=1").is_err());
        assert_eq!(
            parse_named_port("a=70000").unwrap_err(),
            "\"70000\" is not a port (1 to 65535)"
        );
        assert_eq!(
            parse_named_port("a=0").unwrap_err(),
            "port 0 is not a fixed port (a fake without --port gets an ephemeral one)"
        );
    }
}
