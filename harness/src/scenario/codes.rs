//! Failure kinds, and which JSON-RPC codes stand for them.
//!
//! A check may select errors by `code: -32010` or by `kind: unavailable`. A
//! code judges one gateway's wire format; a kind judges what happened
//! (the backend was down, the gateway refused), so one scenario can judge
//! any gateway. By default a kind means the codes of this workspace's
//! `mcp-proxy` (its documented client errors); `run --codes FILE` replaces
//! the mapping with another gateway's ([`CodeOverlay`]), and may say that
//! gateway's messages do not name the backend, so `message_contains` is
//! not judged. The overlay is applied to a loaded scenario
//! ([`CodeOverlay::apply`]) before it runs: the checks only ever see a set
//! of codes.

use std::fmt;
use std::path::Path;

use mcp_proxy::config::document::{from_node, parse};
use mcp_proxy::config::{ConfigError, Format};
use mcp_proxy::error_codes;
use serde::Deserialize;

use super::model::{CheckKind, FaultAction, Outcome, Scenario};

/// What kind of failure a gateway reported to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The backend could not be reached: not connected, connection refused.
    Unavailable,
    /// The connection was lost, or the answer was invalid, mid-call.
    Transport,
    /// The backend did not answer in time.
    Timeout,
    /// The gateway refused to send the call (rate limit, no concurrency
    /// slot, breaker open, every replica ejected).
    Refused,
    /// The gateway was shutting down.
    ShuttingDown,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Unavailable,
        FailureKind::Transport,
        FailureKind::ShuttingDown,
        FailureKind::Timeout,
        FailureKind::Refused,
    ];

    /// The kind this workspace's `mcp-proxy` answers with `code`, if any.
    pub fn of_our_code(code: i64) -> Option<FailureKind> {
        Self::ALL.into_iter().find(|kind| kind.our_code() == code)
    }

    /// The kind's key in scenarios and overlays.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Unavailable => "unavailable",
            FailureKind::Transport => "transport",
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "refused",
            FailureKind::ShuttingDown => "shutting_down",
        }
    }

    /// The code this workspace's `mcp-proxy` answers the kind with (its
    /// public `error_codes`; "Errors the client sees" in ARCHITECTURE.md).
    pub fn our_code(self) -> i64 {
        match self {
            FailureKind::Unavailable => error_codes::BACKEND_UNAVAILABLE,
            FailureKind::Transport => error_codes::BACKEND_TRANSPORT,
            FailureKind::ShuttingDown => error_codes::SHUTTING_DOWN,
            FailureKind::Timeout => error_codes::BACKEND_TIMEOUT,
            FailureKind::Refused => error_codes::BACKEND_LIMITED,
        }
    }
}

/// A check's `code:` or `kind:`, with the codes it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSelector {
    /// The kind, when the check named one; `None` for a bare code.
    pub kind: Option<FailureKind>,
    /// The codes that match: the one code, or the kind's codes.
    pub codes: Vec<i64>,
    /// A code of the kind that a fake of the scenario also sends: the
    /// gateway's own failure cannot be told from the fake's error, so the
    /// check cannot be judged against this target ([`CodeOverlay::apply`]).
    pub also_sent_by_fake: Option<FakeErrorCode>,
}

/// A JSON-RPC error code a fake is scripted to send (`jsonrpc_error`, in
/// its tools or in a fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeErrorCode {
    /// The code.
    pub code: i64,
    /// The fake that sends it.
    pub fake: String,
}

impl CodeSelector {
    /// `code: N`.
    pub fn code(code: i64) -> CodeSelector {
        CodeSelector {
            kind: None,
            codes: vec![code],
            also_sent_by_fake: None,
        }
    }

    /// `kind: K`, with this workspace's proxy's code for it.
    pub fn kind(kind: FailureKind) -> CodeSelector {
        CodeSelector {
            kind: Some(kind),
            codes: vec![kind.our_code()],
            also_sent_by_fake: None,
        }
    }

    /// Whether a JSON-RPC error with `code` is selected.
    pub fn matches(&self, code: i64) -> bool {
        self.codes.contains(&code)
    }

    /// Why a check with this selector cannot be judged, if it cannot: its
    /// kind's code is also what a fake sends of its own.
    pub fn cannot_judge(&self) -> Option<String> {
        let kind = self.kind?;
        let FakeErrorCode { code, fake } = self.also_sent_by_fake.as_ref()?;
        Some(format!(
            "cannot be judged against this target: its {} errors are code {code}, which is also what fake {fake} sends, so the gateway's own failures cannot be told from the fake's",
            kind.name()
        ))
    }
}

/// `-32010`, or `unavailable (-32010)`, or `timeout (-32001 or -32603)`.
impl fmt::Display for CodeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = self.codes.iter().map(i64::to_string).collect();
        match self.kind {
            None => f.write_str(&codes.join(" or ")),
            Some(kind) => write!(f, "{} ({})", kind.name(), codes.join(" or ")),
        }
    }
}

/// `run --codes FILE`: another gateway's codes for the failure kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeOverlay {
    /// The file it was read from.
    pub file: std::path::PathBuf,
    /// `target`: which gateway (and version) the mapping is for; shown in
    /// reports.
    pub target: String,
    /// `kinds`: the codes of each kind the file maps.
    pub kinds: Vec<(FailureKind, Vec<i64>)>,
    /// `ignore_message_contains`: the gateway's error messages do not name
    /// the backend, so `errors` checks do not judge messages.
    pub ignore_message_contains: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    target: String,
    kinds: RawKinds,
    ignore_message_contains: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKinds {
    unavailable: Option<Vec<i64>>,
    transport: Option<Vec<i64>>,
    timeout: Option<Vec<i64>>,
    refused: Option<Vec<i64>>,
    shutting_down: Option<Vec<i64>>,
}

impl CodeOverlay {
    /// Reads and validates the overlay at `path`.
    pub fn load(path: &Path) -> Result<CodeOverlay, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            path: String::new(),
            message: format!("cannot read the code overlay: {e}"),
        })?;
        CodeOverlay::parse(&text, path)
    }

    /// Reads and validates an overlay from `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<CodeOverlay, ConfigError> {
        let file = path.display().to_string();
        let with_file = |e: ConfigError| ConfigError {
            file: file.clone(),
            ..e
        };
        let tree = parse(text, Format::Yaml).map_err(with_file)?;
        let raw: RawOverlay = from_node(&tree).map_err(with_file)?;
        let error = |keys: &[&str], message: &str| {
            let segs: Vec<_> = keys
                .iter()
                .map(|k| mcp_proxy::config::document::Seg::Key((*k).to_owned()))
                .collect();
            ConfigError {
                file: file.clone(),
                line: Some(tree.line_near(&segs)),
                path: keys.join("."),
                message: message.to_owned(),
            }
        };
        if raw.target.trim().is_empty() {
            return Err(error(
                &["target"],
                "must name the gateway, e.g. mcp-proxy 0.6.0",
            ));
        }
        let mut kinds = Vec::new();
        for (kind, codes) in [
            (FailureKind::Unavailable, raw.kinds.unavailable),
            (FailureKind::Transport, raw.kinds.transport),
            (FailureKind::Timeout, raw.kinds.timeout),
            (FailureKind::Refused, raw.kinds.refused),
            (FailureKind::ShuttingDown, raw.kinds.shutting_down),
        ] {
            let Some(codes) = codes else { continue };
            if codes.is_empty() {
                return Err(error(
                    &["kinds", kind.name()],
                    "must list at least one code",
                ));
            }
            kinds.push((kind, codes));
        }
        if kinds.is_empty() {
            return Err(error(&["kinds"], "must map at least one kind"));
        }
        Ok(CodeOverlay {
            file: path.to_owned(),
            target: raw.target,
            kinds,
            ignore_message_contains: raw.ignore_message_contains.unwrap_or(false),
        })
    }

    /// `scenario` with every `kind:` selecting this gateway's codes, and
    /// message tests of kind checks dropped if the overlay says so (a bare
    /// `code:` selects a fake's own error, whose message is the fake's). A
    /// check whose kind the overlay does not map is an error: judging it by
    /// another gateway's codes would be a verdict on nothing. A kind whose
    /// codes a fake of the scenario also sends is marked: its check cannot
    /// be judged ([`CodeSelector::cannot_judge`]).
    pub fn apply(&self, scenario: &Scenario) -> Result<Scenario, String> {
        let mut scenario = scenario.clone();
        let sent_by_fakes = fake_error_codes(&scenario);
        for check in &mut scenario.expect {
            if let CheckKind::Errors(e) = &mut check.kind {
                e.message_ignored = self.ignore_message_contains
                    && e.message_contains.is_some()
                    && e.code.as_ref().is_some_and(|c| c.kind.is_some());
            }
            let Some(selector) = check.kind.code_selector_mut() else {
                continue;
            };
            let Some(kind) = selector.kind else {
                continue;
            };
            let Some((_, codes)) = self.kinds.iter().find(|(k, _)| *k == kind) else {
                return Err(format!(
                    "{}:{}: check {:?} selects kind {}, which the code overlay for {} does not map",
                    scenario.file.display(),
                    check.line,
                    check.name,
                    kind.name(),
                    self.target
                ));
            };
            selector.codes = codes.clone();
            selector.also_sent_by_fake = sent_by_fakes
                .iter()
                .find(|sent| codes.contains(&sent.code))
                .cloned();
        }
        Ok(scenario)
    }

    /// How reports name the mapping a run used.
    pub fn describe(&self) -> String {
        let mut text = format!("codes of {}", self.target);
        if self.ignore_message_contains {
            text.push_str(", messages not judged");
        }
        text
    }
}

/// Every JSON-RPC error code the fakes of `scenario` are scripted to send,
/// in their tools' outcomes or in a fault's, in file order.
fn fake_error_codes(scenario: &Scenario) -> Vec<FakeErrorCode> {
    let of_tools = scenario.fakes.iter().flat_map(|fake| {
        fake.tools
            .iter()
            .flat_map(|tool| &tool.behaviour.outcomes)
            .map(move |weighted| (fake.name.as_str(), &weighted.outcome))
    });
    let of_faults = scenario.faults.iter().flat_map(|fault| {
        let outcomes = match &fault.action {
            FaultAction::Behave {
                outcomes: Some(outcomes),
                ..
            } => outcomes.as_slice(),
            _ => &[],
        };
        outcomes
            .iter()
            .map(move |weighted| (fault.fake.as_str(), &weighted.outcome))
    });
    of_tools
        .chain(of_faults)
        .filter_map(|(fake, outcome)| match outcome {
            Outcome::JsonRpcError { code, .. } => Some(FakeErrorCode {
                code: *code,
                fake: fake.to_owned(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checks::test_support::{call, rpc_error};
    use crate::scenario::load_str;

    const PEER: &str = "\
target: mcp-proxy 0.6.0
kinds:
  unavailable: [-32603]
  timeout: [-32001, -32603]
ignore_message_contains: true
";

    fn overlay(text: &str) -> CodeOverlay {
        CodeOverlay::parse(text, Path::new("o.yaml")).unwrap()
    }

    fn err(text: &str) -> String {
        CodeOverlay::parse(text, Path::new("o.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_overlay_maps_kinds_to_codes() {
        let peer = overlay(PEER);
        assert_eq!(peer.target, "mcp-proxy 0.6.0");
        assert_eq!(
            peer.kinds,
            vec![
                (FailureKind::Unavailable, vec![-32603]),
                (FailureKind::Timeout, vec![-32001, -32603]),
            ]
        );
        assert!(peer.ignore_message_contains);
        assert_eq!(
            peer.describe(),
            "codes of mcp-proxy 0.6.0, messages not judged"
        );
    }

    #[test]
    fn an_overlay_is_validated_strictly_with_lines() {
        assert_eq!(
            err("target: x\nkinds:\n  unavailable: [-1]\n  slow: [-2]\n"),
            "o.yaml:4: kinds: unknown key \"slow\""
        );
        assert_eq!(
            err("target: x\nkinds:\n  unavailable: []\n"),
            "o.yaml:3: kinds.unavailable: must list at least one code"
        );
        assert_eq!(
            err("target: ' '\nkinds: { refused: [1] }\n"),
            "o.yaml:1: target: must name the gateway, e.g. mcp-proxy 0.6.0"
        );
        assert_eq!(
            err("target: x\nkinds: {}\n"),
            "o.yaml:2: kinds: must map at least one kind"
        );
        assert!(err("target: x\nkinds: { refused: [1] }\ncodes: 1\n").starts_with("o.yaml:3: "));
        assert_eq!(
            err("kinds: { refused: [1] }\n"),
            "o.yaml:1: missing key \"target\""
        );
    }

    const SCENARIO: &str = "\
name: t
description: a test
duration: 10s
proxy:
  backends:
    - { name: a, fake: a }
fakes:
  - { name: a, transport: http, tools: [{ name: echo }] }
faults:
  - { name: down, fake: a, at: 2s, for: 3s, outage: true }
workload:
  closed: { concurrency: 2 }
  calls: [{ tool: a/echo }]
expect:
  - errors: { window: { during: down }, kind: unavailable, message_contains: a }
  - threshold: { window: { during: down }, code: -32010, error_rate: { max: 1 } }
";

    #[test]
    fn applying_an_overlay_gives_kinds_its_codes_and_leaves_codes_alone() {
        let scenario = load_str(SCENARIO, Path::new("s.yaml")).unwrap();
        let peer = overlay(PEER);
        let applied = peer.apply(&scenario).unwrap();
        let CheckKind::Errors(errors) = &applied.expect[0].kind else {
            panic!("not an errors check")
        };
        let unavailable = errors.code.as_ref().unwrap();
        assert!(unavailable.matches(-32603) && !unavailable.matches(-32010));
        assert_eq!(unavailable.to_string(), "unavailable (-32603)");
        assert!(errors.message_ignored);
        let CheckKind::Threshold(threshold) = &applied.expect[1].kind else {
            panic!("not a threshold")
        };
        assert_eq!(threshold.select.code, Some(CodeSelector::code(-32010)));
        // The scenario itself is untouched: our proxy's codes by default.
        let CheckKind::Errors(errors) = &scenario.expect[0].kind else {
            panic!("not an errors check")
        };
        assert!(errors.code.as_ref().unwrap().matches(-32010));
        assert!(!errors.message_ignored);
    }

    #[test]
    fn ignoring_messages_spares_checks_that_select_a_bare_code() {
        // A fake's own error must reach the client unchanged, message and
        // all, whatever the gateway's own messages say.
        let text = SCENARIO.replace(
            "kind: unavailable, message_contains: a",
            "code: -32602, message_contains: invalid query",
        );
        let scenario = load_str(&text, Path::new("s.yaml")).unwrap();
        let peer = overlay(PEER);
        let applied = peer.apply(&scenario).unwrap();
        let CheckKind::Errors(errors) = &applied.expect[0].kind else {
            panic!("not an errors check")
        };
        assert!(!errors.message_ignored);
    }

    /// A breaker scenario whose fake fails with -32603 of its own.
    const FAKE_SENDS_32603: &str = "\
name: t
description: a test
duration: 10s
proxy:
  backends:
    - { name: a, fake: a }
    - { name: b, fake: b }
fakes:
  - { name: a, transport: http, tools: [{ name: echo }] }
  - name: b
    transport: http
    tools: [{ name: echo, outcomes: [{ probability: 0.1, jsonrpc_error: { code: -32602, message: no } }] }]
faults:
  - name: down
    fake: a
    at: 2s
    for: 3s
    outcomes: [{ probability: 1, jsonrpc_error: { code: -32603, message: db down } }]
workload:
  closed: { concurrency: 2 }
  calls: [{ tool: a/echo }]
expect:
  - threshold: { kind: refused, window: { during: down }, latency: { p99: 250ms } }
  - threshold: { code: -32603, window: { during: down }, latency: { p99: 250ms } }
";

    #[test]
    fn a_kind_whose_code_a_fake_also_sends_cannot_pass() {
        let scenario = load_str(FAKE_SENDS_32603, Path::new("s.yaml")).unwrap();
        let applied = overlay("target: gw 1\nkinds: { refused: [-32099, -32603] }\n")
            .apply(&scenario)
            .unwrap();
        let refused = applied.expect[0].kind.code_selector().unwrap();
        assert_eq!(
            refused.also_sent_by_fake,
            Some(FakeErrorCode {
                code: -32603,
                fake: "a".into()
            })
        );
        // The fake's fast -32603s would pass for fast refusals.
        let load = crate::load::LoadResult {
            calls: (0..20)
                .map(|n| call(n, "a/echo", 2_100 + n * 10, 2, rpc_error(-32603, "db down")))
                .collect(),
            ..Default::default()
        };
        let results = crate::checks::evaluate(&applied, &load, &[]);
        assert!(!results[0].passed, "{:?}", results[0]);
        assert_eq!(
            results[0].detail.as_deref(),
            Some(
                "cannot be judged against this target: its refused errors are code -32603, which is also what fake a sends, so the gateway's own failures cannot be told from the fake's"
            )
        );
        // Its measures say so too, though what was measured is kept.
        let measures = &results[0].figures.measures;
        assert!(!measures.is_empty() && measures.iter().all(|m| !m.passed && m.value.is_some()));
        // A bare code means the fake's own error: judged as usual.
        assert!(results[1].passed, "{:?}", results[1]);
        // Our proxy's codes (no overlay) are not what the fakes send.
        let ours = crate::checks::evaluate(&scenario, &load, &[]);
        assert!(
            ours[0]
                .detail
                .as_deref()
                .is_none_or(|d| !d.contains("cannot be judged"))
        );
    }

    #[test]
    fn a_kind_the_overlay_does_not_map_is_an_error() {
        let scenario = load_str(SCENARIO, Path::new("s.yaml")).unwrap();
        assert_eq!(
            overlay("target: gw 1\nkinds: { refused: [-1] }\n")
                .apply(&scenario)
                .unwrap_err(),
            "s.yaml:15: check \"errors (line 15)\" selects kind unavailable, which the code overlay for gw 1 does not map"
        );
    }
}
