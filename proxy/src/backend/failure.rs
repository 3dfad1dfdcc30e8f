//! Why a call through a backend failed, and every decision that follows
//! from it, side by side: what the client is told, what the metrics count,
//! what the breaker and the outlier detector judge, what retry repeats and
//! what failover takes elsewhere.
//!
//! | failure                        | never sent | breaker, outlier | retry            | failover | client code |
//! |--------------------------------|------------|------------------|------------------|----------|-------------|
//! | `Unavailable` (not connected)  | yes        | failed           | `unavailable`    | yes      | -32010      |
//! | `Upstream(Connect)`            | yes        | failed           | `transport`      | yes      | -32010      |
//! | `Upstream(Lost, ...)`          | no         | failed           | safe, `transport`| safe     | -32011      |
//! | `Timeout` of one try (`per_try`) | no       | failed           | safe, `timeout`  | safe     | -32013      |
//! | `Timeout` of the call (`overall`) | no      | not judged       | no (the call is over) | safe | -32013   |
//! | `Upstream(JsonRpc)` -32603, -32000..-32099 | no | failed       | safe, `codes`    | no       | the backend's |
//! | `Upstream(JsonRpc)` other      | no         | healthy          | safe, `codes`    | no       | the backend's |
//! | `Refused(BreakerOpen, Ejected)`| yes        | not judged       | no               | yes      | -32014      |
//! | `Refused(RateLimit, Concurrency)` | yes     | not judged       | no               | no       | -32014      |
//!
//! A call whose `timeout.overall` runs out while it still waits for a
//! concurrency slot is `Refused(Concurrency)` instead. "safe": only when
//! the call is safe to repeat ([`crate::call::Safety`]),
//! since it may have run. A backend's JSON-RPC error is its answer: it
//! never fails over, and only an internal or server error counts against
//! its health. The proxy's own refusals judge nothing: asking again at
//! once changes nothing, and its limits are decisions about load, not
//! health — but an open breaker or every endpoint ejected says the backend
//! is unhealthy, which another backend may make up for.

use serde_json::{Value, json};

use super::Refusal;
use super::resilience::Verdict;
use crate::config::RetryOn;
use crate::jsonrpc::{self, ErrorObject};
use crate::metrics::Outcome;
use crate::upstream::UpstreamError;

/// Why a call through a backend failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum CallError {
    /// There is no live connection; the call was not sent.
    #[error("backend \"{backend}\" is unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: String,
        /// Why (the last connection error, or "starting").
        reason: String,
    },
    /// The backend did not answer in time (`timeout.per_try` or `overall`).
    #[error("backend \"{backend}\" did not answer within {after:?}")]
    Timeout {
        /// Backend name.
        backend: String,
        /// The limit that ran out.
        after: std::time::Duration,
    },
    /// The proxy refused to send the call, to protect the backend
    /// (`rate_limit`, `concurrency`, `circuit_breaker`, every connected
    /// endpoint ejected): a local rejection.
    #[error("backend \"{backend}\": call refused by the proxy ({})", .reason.as_str())]
    Refused {
        /// Backend name.
        backend: String,
        /// Which limit.
        reason: Refusal,
    },
    /// The upstream request failed.
    #[error("backend \"{backend}\": {error}")]
    Upstream {
        /// Backend name.
        backend: String,
        /// What went wrong.
        error: UpstreamError,
    },
}

impl CallError {
    /// The same failure, told as `backend`'s: a canary's or standby's
    /// failure reaches the client as the primary's it addressed.
    pub(crate) fn told_as(mut self, name: &str) -> Self {
        match &mut self {
            CallError::Unavailable { backend, .. }
            | CallError::Timeout { backend, .. }
            | CallError::Refused { backend, .. }
            | CallError::Upstream { backend, .. } => *backend = name.to_owned(),
        }
        self
    }

    /// The JSON-RPC error the client receives. A backend's own JSON-RPC error
    /// passes unchanged; the proxy's errors name the backend in the message and
    /// in `data.backend`.
    pub(crate) fn to_error_object(&self) -> ErrorObject {
        match self {
            CallError::Upstream {
                error: UpstreamError::JsonRpc(error),
                ..
            } => error.clone(),
            CallError::Unavailable { backend, reason } => {
                ErrorObject::new(jsonrpc::BACKEND_UNAVAILABLE, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": reason }))
            }
            CallError::Refused { backend, reason } => {
                ErrorObject::new(jsonrpc::BACKEND_LIMITED, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": reason.as_str() }))
            }
            CallError::Timeout { backend, after } => {
                ErrorObject::new(jsonrpc::BACKEND_TIMEOUT, self.to_string()).with_data(
                    json!({ "backend": backend, "timeout_ms": after.as_millis() as u64 }),
                )
            }
            CallError::Upstream { backend, error } => {
                let code = match error {
                    UpstreamError::Connect(_) => jsonrpc::BACKEND_UNAVAILABLE,
                    _ => jsonrpc::BACKEND_TRANSPORT,
                };
                ErrorObject::new(code, self.to_string())
                    .with_data(json!({ "backend": backend, "reason": error.to_string() }))
            }
        }
    }

    /// Whether it provably never ran at the backend (not connected,
    /// connection refused, refused by the proxy), so it may run again or
    /// elsewhere whether or not it is safe to repeat.
    pub(crate) fn never_sent(&self) -> bool {
        matches!(
            self,
            CallError::Unavailable { .. }
                | CallError::Refused { .. }
                | CallError::Upstream {
                    error: UpstreamError::Connect(_),
                    ..
                }
        )
    }

    /// What the breaker and the outlier detector hear of it: a backend's
    /// JSON-RPC error other than an internal or server error is a healthy
    /// answer; the proxy's own refusals judge nothing.
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        match self {
            CallError::Upstream {
                error: UpstreamError::JsonRpc(e),
                ..
            } if !(e.code == jsonrpc::INTERNAL_ERROR || (-32099..=-32000).contains(&e.code)) => {
                Some(Verdict::Healthy)
            }
            CallError::Refused { .. } => None,
            _ => Some(Verdict::Failed),
        }
    }

    /// Whether a retry policy retrying `on` repeats it, given whether the
    /// call is safe to repeat.
    pub(crate) fn is_retried(&self, on: &RetryOn, safe: bool) -> bool {
        match self {
            // Never sent: repeating cannot run it twice.
            CallError::Unavailable { .. } => on.unavailable,
            CallError::Upstream {
                error: UpstreamError::Connect(_),
                ..
            } => on.transport,
            // May have reached the backend.
            CallError::Upstream {
                error: UpstreamError::JsonRpc(e),
                ..
            } => safe && on.codes.contains(&e.code),
            CallError::Upstream { .. } => safe && on.transport,
            CallError::Timeout { .. } => safe && on.timeout,
            // The proxy's own decision: asking again at once changes nothing.
            CallError::Refused { .. } => false,
        }
    }

    /// Whether it is about the backend's health, so another backend may
    /// serve the call: it could not be reached or did not answer
    /// (transport, timeout, not connected), its breaker is open, or every
    /// endpoint is ejected. (Whether the call may go once it may have run
    /// is [`CallError::never_sent`] and the call's safety.)
    pub(crate) fn fails_over(&self) -> bool {
        match self {
            CallError::Unavailable { .. } | CallError::Timeout { .. } => true,
            CallError::Refused { reason, .. } => {
                matches!(reason, Refusal::BreakerOpen | Refusal::Ejected)
            }
            CallError::Upstream {
                error: UpstreamError::JsonRpc(_),
                ..
            } => false,
            CallError::Upstream { .. } => true,
        }
    }

    /// How the metrics label it.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            CallError::Unavailable { .. } => Outcome::Unavailable,
            CallError::Upstream {
                error: UpstreamError::JsonRpc(_),
                ..
            } => Outcome::Error,
            CallError::Upstream { .. } => Outcome::Transport,
            CallError::Timeout { .. } => Outcome::Timeout,
            CallError::Refused { .. } => Outcome::Refused,
        }
    }
}

/// How the metrics (and a trace's spans) label a call's or an attempt's
/// end: a tool's error result apart from its other answers.
pub(crate) fn outcome_of(result: &Result<Value, CallError>) -> Outcome {
    match result {
        Ok(value) if value.get("isError").and_then(Value::as_bool) == Some(true) => {
            Outcome::ToolError
        }
        Ok(_) => Outcome::Ok,
        Err(error) => error.outcome(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_health_failures_fail_over() {
        let backend = || "p".to_owned();
        let health = [
            CallError::Unavailable {
                backend: backend(),
                reason: "down".into(),
            },
            CallError::Timeout {
                backend: backend(),
                after: Duration::from_secs(1),
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::BreakerOpen,
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::Ejected,
            },
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::Lost("reset".into()),
            },
        ];
        for error in &health {
            assert!(error.fails_over(), "{error}");
        }
        let answers = [
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::JsonRpc(ErrorObject::new(-32602, "bad params")),
            },
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::JsonRpc(ErrorObject::new(-32603, "internal")),
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::RateLimit,
            },
            CallError::Refused {
                backend: backend(),
                reason: Refusal::Concurrency,
            },
        ];
        for error in &answers {
            assert!(!error.fails_over(), "{error}");
        }
        let [unavailable, timeout, breaker, ejected, lost] = &health;
        for sent in [timeout, lost] {
            assert!(!sent.never_sent(), "{sent}");
        }
        for unsent in [unavailable, breaker, ejected] {
            assert!(unsent.never_sent(), "{unsent}");
        }
        assert!(
            CallError::Upstream {
                backend: backend(),
                error: UpstreamError::Connect("refused".into()),
            }
            .never_sent()
        );
    }
}
