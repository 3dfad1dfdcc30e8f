//! What the front door writes to the audit log (`audit:`; the log itself,
//! its queue and writer, are [`crate::audit`]): one entry per request —
//! begun when the request is read (who, from where, which session, what
//! it addresses, the arguments' digest) and finished with its answer (the
//! outcome, the code, the latency) — and one per request refused 401.

use std::time::SystemTime;

use serde_json::Value;
use tokio::time::Instant;

use super::{App, ClientAddr};
use crate::audit::AuditEntry;
use crate::error_codes::{BACKEND_LIMITED, FORBIDDEN, REQUEST_CANCELLED};
use crate::session::Session;

/// An entry waiting for its request's answer.
pub(super) struct Pending {
    entry: AuditEntry,
    started: Instant,
}

/// The entry of a request, if the proxy keeps an audit log.
pub(super) fn begin(
    app: &App,
    client: ClientAddr,
    session: Option<&Session>,
    method: &str,
    params: Option<&Value>,
) -> Option<Pending> {
    let log = app.audit.as_ref()?;
    let mut entry = AuditEntry::new(SystemTime::now(), method, "ok");
    entry.client = Some(client.0);
    if let Some(session) = session {
        entry.session = Some(session.id().to_owned());
        entry.subject = session.caller().map(|caller| caller.subject.clone());
    }
    let (backend, target) = app.live.current().addressed(method, params);
    entry.backend = backend;
    entry.target = target;
    let arguments = params.and_then(|params| params.get("arguments"));
    Some(Pending {
        entry: entry.with_arguments(arguments, log.include_arguments()),
        started: Instant::now(),
    })
}

impl Pending {
    /// Record the entry with what `answer` (a JSON-RPC response) says.
    pub(super) fn finish(mut self, app: &App, answer: &Value) {
        let Some(log) = app.audit.as_ref() else {
            return;
        };
        let code = answer.pointer("/error/code").and_then(Value::as_i64);
        self.entry.code = code;
        self.entry.outcome = match code {
            None if answer.pointer("/result/isError") == Some(&Value::Bool(true)) => "tool_error",
            None => "ok",
            Some(FORBIDDEN) => "denied",
            Some(BACKEND_LIMITED) => "limited",
            Some(REQUEST_CANCELLED) => "cancelled",
            Some(_) => "error",
        };
        self.entry.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        log.record(self.entry);
    }
}

/// Record a request refused for want of a valid credential; `request` is
/// its HTTP method and path (its body was not read).
pub(super) fn unauthenticated(app: &App, client: ClientAddr, request: &str, code: i64) {
    let Some(log) = app.audit.as_ref() else {
        return;
    };
    let mut entry = AuditEntry::new(SystemTime::now(), request, "unauthenticated");
    entry.client = Some(client.0);
    entry.code = Some(code);
    log.record(entry);
}
