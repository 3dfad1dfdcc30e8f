//! Prometheus metrics served at `/admin/metrics`.
//!
//! Requests forwarded to backends are counted by backend, method and outcome,
//! and timed in a latency histogram by backend and method. The label values
//! come from the config (backend names) and a fixed set of outcomes and
//! forwarded methods, so the number of series stays bounded.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a forwarded request ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
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
    fn label(self) -> &'static str {
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
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    backend: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The proxy's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "mcp_proxy_requests",
            "Requests forwarded to backends, by backend, method and outcome",
            requests.clone(),
        );
        registry.register(
            "mcp_proxy_request_duration_seconds",
            "Time from receiving a forwarded request to answering it, by backend and method",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }
}

impl Metrics {
    /// Record one forwarded request.
    pub fn record(&self, backend: &str, method: &str, outcome: Outcome, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                backend: backend.to_owned(),
                method: method.to_owned(),
                outcome: outcome.label().to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                backend: backend.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
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
        let text = metrics.render();
        assert!(
            text.contains(
                r#"mcp_proxy_requests_total{backend="search",method="tools/call",outcome="ok"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"outcome="unavailable"} 1"#), "{text}");
        assert!(text.contains(r#"mcp_proxy_request_duration_seconds_count{backend="search",method="tools/call"} 3"#), "{text}");
    }
}
