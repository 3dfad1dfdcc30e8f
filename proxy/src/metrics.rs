//! Prometheus metrics served at `/admin/metrics`.
//!
//! Requests forwarded to backends are counted by backend, method and outcome,
//! and timed in a latency histogram by backend and method; each backend's
//! resilience counters (retries, hedges, timeouts, refusals, breaker
//! openings and closings, ejections, mirror copies, cache hits and
//! misses, coalesced calls) are read from its status at each scrape. The label values
//! come from the config (backend names) and a fixed set of outcomes and
//! forwarded methods, so the number of series stays bounded.
//!
//! The bounds on clients ([`crate::session`]) are read from the session
//! store's counts the same way: live sessions and requests in flight, the
//! refusals of each bound, sessions expired as idle and progress
//! notifications dropped from full queues.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::backend::Status;
use crate::session::Counts;

/// How a forwarded request ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A result (for `tools/call`: without `isError`).
    Ok,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// The backend answered with a JSON-RPC error.
    Error,
    /// The backend was not connected; the proxy failed the call fast.
    Unavailable,
    /// The connection failed while the call was in flight, or the answer was invalid.
    Transport,
    /// The backend did not answer within the configured timeout.
    Timeout,
    /// The proxy refused to send the call (rate limit, concurrency).
    Refused,
    /// The client cancelled, or the proxy cancelled it while shutting down.
    Cancelled,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Error => "error",
            Outcome::Unavailable => "unavailable",
            Outcome::Transport => "transport",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    backend: String,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    backend: String,
    method: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BoundLabels {
    bound: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// The proxy's metrics: request counts, latency and reloads recorded here,
/// plus the backends' own resilience counters, read when rendered.
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            reloads: Family::default(),
        }
    }
}

/// A per-backend counter read from the backend's status: name, help, reader.
type StatusCounter = (&'static str, &'static str, fn(&Status) -> u64);

/// The per-backend resilience counters.
const RESILIENCE_COUNTERS: [StatusCounter; 13] = [
    ("mcp_proxy_retries", "Retries made, by backend", |s| {
        s.retries
    }),
    (
        "mcp_proxy_hedges",
        "Hedged attempts started, by backend",
        |s| s.hedges,
    ),
    (
        "mcp_proxy_timeouts",
        "Attempts or calls that ran out of their timeout, by backend",
        |s| s.timeouts,
    ),
    (
        "mcp_proxy_refusals",
        "Calls the proxy refused to send (rate limit, concurrency, open breaker), by backend",
        |s| s.refusals,
    ),
    (
        "mcp_proxy_breaker_opened",
        "Times the circuit breaker opened, by backend",
        |s| s.breaker_opened,
    ),
    (
        "mcp_proxy_breaker_closed",
        "Times the circuit breaker closed again after its half-open probes, by backend",
        |s| s.breaker_closed,
    ),
    (
        "mcp_proxy_ejections",
        "Endpoints ejected from the pool by outlier detection, by backend",
        |s| s.ejections,
    ),
    (
        "mcp_proxy_mirrored",
        "Copies of calls sent to a mirror, by mirror backend",
        |s| s.mirrored,
    ),
    (
        "mcp_proxy_mirror_dropped",
        "Copies dropped because the mirror had mirror_max_in_flight in flight, by mirror backend",
        |s| s.mirror_dropped,
    ),
    (
        "mcp_proxy_mirror_skipped",
        "Calls not copied to a mirror because they are not safe to repeat, by mirror backend",
        |s| s.mirror_skipped,
    ),
    (
        "mcp_proxy_cache_hits",
        "Calls answered from the response cache, by backend",
        |s| s.cache_hits,
    ),
    (
        "mcp_proxy_cache_misses",
        "Cacheable calls the response cache could not answer, by backend",
        |s| s.cache_misses,
    ),
    (
        "mcp_proxy_coalesced",
        "Calls that joined an identical call in flight, by backend",
        |s| s.coalesced,
    ),
];

impl Metrics {
    /// Record one forwarded request.
    pub(crate) fn record(
        &self,
        backend: &str,
        method: &'static str,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                backend: backend.to_owned(),
                method,
                outcome: outcome.label(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                backend: backend.to_owned(),
                method,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Record a config reload: `applied` or `rejected`.
    pub(crate) fn record_reload(&self, result: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The Prometheus text exposition, with `backends`' resilience counters
    /// and the bounds' `counts`.
    pub(crate) fn render(&self, backends: &[Status], counts: &Counts) -> String {
        // A registry per scrape: the recorded families are shared handles,
        // and the resilience counters are read from the backends now.
        let mut registry = Registry::default();
        registry.register(
            "mcp_proxy_requests",
            "Requests forwarded to backends, by backend, method and outcome",
            self.requests.clone(),
        );
        registry.register(
            "mcp_proxy_request_duration_seconds",
            "Time from receiving a forwarded request to answering it, by backend and method",
            self.latency.clone(),
        );
        for (name, help, value) in RESILIENCE_COUNTERS {
            let family = Family::<BackendLabels, Counter>::default();
            for status in backends {
                family
                    .get_or_create(&BackendLabels {
                        backend: status.name.clone(),
                    })
                    .inc_by(value(status));
            }
            registry.register(name, help, family);
        }
        registry.register(
            "mcp_proxy_reloads",
            "Config reloads, by result (applied, or rejected as invalid)",
            self.reloads.clone(),
        );
        register_bounds(&mut registry, counts);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// The bounds on clients: gauges of what is held, counters of what was
/// refused, expired or dropped.
fn register_bounds(registry: &mut Registry, counts: &Counts) {
    for (name, help, value) in [
        (
            "mcp_proxy_sessions",
            "Client sessions open",
            counts.sessions,
        ),
        (
            "mcp_proxy_requests_in_flight",
            "Client requests in flight, over all sessions",
            counts.in_flight,
        ),
    ] {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, gauge);
    }
    let refusals = Family::<BoundLabels, Counter>::default();
    for (bound, value) in [
        ("max_sessions", counts.refused_sessions),
        ("max_in_flight", counts.refused_proxy_in_flight),
        (
            "max_in_flight_per_session",
            counts.refused_session_in_flight,
        ),
    ] {
        refusals.get_or_create(&BoundLabels { bound }).inc_by(value);
    }
    registry.register(
        "mcp_proxy_bound_refusals",
        "Sessions or requests refused because a proxy bound was reached, by bound (its config key)",
        refusals,
    );
    for (name, help, value) in [
        (
            "mcp_proxy_sessions_expired",
            "Client sessions ended after session_idle_timeout without activity",
            counts.expired,
        ),
        (
            "mcp_proxy_progress_dropped",
            "Progress notifications dropped because their request's progress_queue was full",
            counts.progress_dropped,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let metrics = Metrics::default();
        metrics.record(
            "search",
            "tools/call",
            Outcome::Ok,
            Duration::from_millis(3),
        );
        metrics.record(
            "search",
            "tools/call",
            Outcome::Ok,
            Duration::from_millis(5),
        );
        metrics.record("search", "tools/call", Outcome::Unavailable, Duration::ZERO);
        let text = metrics.render(&[], &Counts::default());
        assert!(
            text.contains(
                r#"mcp_proxy_requests_total{backend="search",method="tools/call",outcome="ok"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"outcome="unavailable"} 1"#), "{text}");
        assert!(text.contains(r#"mcp_proxy_request_duration_seconds_count{backend="search",method="tools/call"} 3"#), "{text}");
    }

    #[test]
    fn renders_each_backends_resilience_counters() {
        let status = Status {
            name: "search".into(),
            transport: "http",
            role: crate::config::RoleKind::Primary,
            serves: None,
            state: crate::backend::State::Connected,
            listed: true,
            last_error: None,
            restarts: 0,
            in_flight: 0,
            pid: None,
            tools: 0,
            resources: 0,
            resource_templates: 0,
            prompts: 0,
            hedges: 4,
            retries: 7,
            timeouts: 2,
            refusals: 3,
            breaker: None,
            breaker_opened: 1,
            breaker_closed: 6,
            ejections: 5,
            cache_hits: 10,
            cache_misses: 11,
            coalesced: 12,
            mirrored: 8,
            mirror_dropped: 9,
            mirror_skipped: 13,
            endpoints: Vec::new(),
        };
        let text = Metrics::default().render(&[status], &Counts::default());
        for line in [
            r#"mcp_proxy_retries_total{backend="search"} 7"#,
            r#"mcp_proxy_hedges_total{backend="search"} 4"#,
            r#"mcp_proxy_timeouts_total{backend="search"} 2"#,
            r#"mcp_proxy_refusals_total{backend="search"} 3"#,
            r#"mcp_proxy_breaker_opened_total{backend="search"} 1"#,
            r#"mcp_proxy_ejections_total{backend="search"} 5"#,
            r#"mcp_proxy_breaker_closed_total{backend="search"} 6"#,
            r#"mcp_proxy_mirrored_total{backend="search"} 8"#,
            r#"mcp_proxy_cache_hits_total{backend="search"} 10"#,
            r#"mcp_proxy_cache_misses_total{backend="search"} 11"#,
            r#"mcp_proxy_coalesced_total{backend="search"} 12"#,
            r#"mcp_proxy_mirror_dropped_total{backend="search"} 9"#,
            r#"mcp_proxy_mirror_skipped_total{backend="search"} 13"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn renders_the_bounds_counts() {
        let counts = Counts {
            sessions: 3,
            in_flight: 4,
            refused_sessions: 5,
            refused_session_in_flight: 6,
            refused_proxy_in_flight: 7,
            expired: 8,
            progress_dropped: 9,
        };
        let text = Metrics::default().render(&[], &counts);
        for line in [
            "mcp_proxy_sessions 3",
            "mcp_proxy_requests_in_flight 4",
            r#"mcp_proxy_bound_refusals_total{bound="max_sessions"} 5"#,
            r#"mcp_proxy_bound_refusals_total{bound="max_in_flight_per_session"} 6"#,
            r#"mcp_proxy_bound_refusals_total{bound="max_in_flight"} 7"#,
            "mcp_proxy_sessions_expired_total 8",
            "mcp_proxy_progress_dropped_total 9",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
