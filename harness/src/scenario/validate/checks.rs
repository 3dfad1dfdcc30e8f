//! The `expect` section: one check per entry (threshold, errors, count,
//! ratio, timing or status), the calls each selects (by tool, window,
//! outcome, identity), and the fakes (or issuer) it names.

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::timeline::Phases;
use super::{KeyPath, Validator};

/// Default `ratio.min_calls`.
const DEFAULT_RATIO_MIN_CALLS: u64 = 30;

impl Validator<'_> {
    pub(super) fn check(
        &self,
        raw: RawCheck,
        path: &KeyPath,
        fakes: &[FakeSpec],
        issuer: Option<&Issuer>,
        identities: &[Identity],
        phases: &Phases,
    ) -> Result<CheckSpec, ConfigError> {
        let identity =
            |name: Option<String>, p: &KeyPath| -> Result<Option<IdentityRef>, ConfigError> {
                let Some(name) = name else {
                    return Ok(None);
                };
                match identities.iter().find(|i| i.name == name) {
                    Some(i) => Ok(Some(IdentityRef {
                        name,
                        clients: i.clients.clone(),
                    })),
                    None => Err(self.error(
                        &p.key("identity"),
                        format!("no identity named {name:?} in workload.identities"),
                    )),
                }
            };
        let line = self.tree.line_near(&path.0);
        let mut kinds = Vec::new();
        if let Some(t) = raw.threshold {
            let p = path.key("threshold");
            let code = self.code_selector(t.code, t.kind, &p)?;
            if code.is_some() && matches!(t.outcome, Some(RawOutcomeFilter::Success)) {
                let key = if t.kind.is_some() { "kind" } else { "code" };
                return Err(self.error(&p.key(key), "selects errors: not with outcome: success"));
            }
            let mut select = self.selector(t.calls, t.window, t.outcome, &p, phases)?;
            select.code = code;
            select.identity = identity(t.identity, &p)?;
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
            if t.min_calls == Some(0) {
                // Nothing selected would pass, while nothing was measured.
                return Err(self.error(&p.key("min_calls"), "must be at least 1"));
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
            let mut select = self.selector(e.calls, e.window, None, &p, phases)?;
            select.identity = identity(e.identity, &p)?;
            if let Some(r) = e.min_rate
                && !(0.0..=1.0).contains(&r)
            {
                return Err(self.error(&p.key("min_rate"), "must be between 0 and 1"));
            }
            let code = self.code_selector(e.code, e.kind, &p)?;
            if code.is_none() && e.message_contains.is_none() && e.min_rate.is_none() {
                return Err(self.error(&p, "needs code, kind, message_contains or min_rate"));
            }
            kinds.push((
                "errors",
                CheckKind::Errors(ErrorsCheck {
                    select,
                    code,
                    message_contains: e.message_contains,
                    message_ignored: false,
                    min_rate: e.min_rate,
                }),
            ));
        }
        if let Some(c) = raw.count {
            let p = path.key("count");
            if issuer.is_none_or(|i| i.name != c.fake) {
                self.fake_ref(fakes, &c.fake, &p.key("fake"))?;
            }
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
                        identity: identity(c.identity, &p)?,
                    },
                    min: c.min,
                    max: c.max,
                    per_call,
                    traced: c.traced.unwrap_or(false),
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
            let first = p.key("first");
            let code = self.code_selector(t.first.code, t.first.kind, &first)?;
            if code.is_some() && matches!(t.first.outcome, RawOutcomeFilter::Success) {
                let key = if t.first.kind.is_some() {
                    "kind"
                } else {
                    "code"
                };
                return Err(
                    self.error(&first.key(key), "selects errors: not with outcome: success")
                );
            }
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
                    code,
                    faster_than: t.first.faster_than.map(|d| d.0),
                    within: t.within.0,
                }),
            ));
        }
        if let Some(st) = raw.status {
            let p = path.key("status");
            if !(100..=599).contains(&st.code) {
                return Err(self.error(&p.key("code"), "must be an HTTP status, 100 to 599"));
            }
            if st.min.is_none() && st.max.is_none() {
                return Err(self.error(&p, "needs min or max"));
            }
            if let (Some(min), Some(max)) = (st.min, st.max)
                && min > max
            {
                return Err(self.error(&p.key("max"), "must be ≥ min"));
            }
            if st.request.as_deref().is_some_and(str::is_empty) {
                return Err(self.error(&p.key("request"), "must not be empty"));
            }
            kinds.push((
                "status",
                CheckKind::Status(StatusCheck {
                    code: st.code,
                    identity: identity(st.identity, &p)?,
                    request: st.request,
                    window: self.window(st.window, &p.key("window"), phases)?,
                    min: st.min,
                    max: st.max,
                }),
            ));
        }
        let (label, kind) = match kinds.len() {
            1 => kinds.remove(0),
            0 => {
                return Err(self.error(
                    path,
                    "needs one of threshold, errors, count, ratio, timing, status",
                ));
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

    /// `code: N` or `kind: K` (not both) of the entry at `path`.
    fn code_selector(
        &self,
        code: Option<i64>,
        kind: Option<FailureKind>,
        path: &KeyPath,
    ) -> Result<Option<CodeSelector>, ConfigError> {
        match (code, kind) {
            (Some(_), Some(_)) => Err(self.error(
                &path.key("kind"),
                "not with code: select errors by a code or by a kind, not both",
            )),
            (Some(code), None) => Ok(Some(CodeSelector::code(code))),
            (None, Some(kind)) => Ok(Some(CodeSelector::kind(kind))),
            (None, None) => Ok(None),
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
            identity: None,
        })
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
