//! Operations endpoints: liveness, readiness, backend status, metrics,
//! the proxy's status and reloads.
//!
//! They live on the same listener as `/mcp` and answer without waiting on
//! any backend, so they stay fast while backends misbehave (a reload starts
//! and stops backends, and does not wait for them to connect).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::App;
use crate::backend::State as BackendState;
use crate::config::RoleKind;
use crate::reload::ReloadError;

/// `GET /livez`: the process is up and serving HTTP.
pub(super) async fn livez() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 when every primary can serve — it is connected, or
/// it has listed once (clients know its names) and one of its failovers is
/// connected — else 503 with the reasons. Canaries and mirrors do not
/// count: a call falls back from a canary to its primary, and a mirror's
/// copies are fire and forget.
pub(super) async fn readyz(State(app): State<Arc<App>>) -> Response {
    let statuses = app.live.current().statuses();
    let standby_up = |primary: &str| {
        statuses.iter().any(|s| {
            s.role == RoleKind::Failover
                && s.serves.as_deref() == Some(primary)
                && s.state == BackendState::Connected
        })
    };
    let mut not_ready = Map::new();
    for status in statuses.iter().filter(|s| s.role == RoleKind::Primary) {
        let served =
            status.state == BackendState::Connected || (status.listed && standby_up(&status.name));
        if !served {
            let reason = status
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected yet".to_owned());
            not_ready.insert(
                status.name.clone(),
                json!({ "state": status.state, "reason": reason }),
            );
        }
    }
    if not_ready.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        let body = json!({ "status": "not ready", "backends": not_ready });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `GET /admin/backends`: state, last error, restarts and in-flight calls
/// per backend; sessions open; with `audit:`, audit lines dropped.
pub(super) async fn backends(State(app): State<Arc<App>>) -> Json<Value> {
    let backends: Vec<Value> = app
        .live
        .current()
        .statuses()
        .into_iter()
        .map(|status| serde_json::to_value(status).unwrap_or(Value::Null))
        .collect();
    let mut body = json!({ "backends": backends, "sessions": app.sessions.count() });
    if let Some(audit) = &app.audit {
        // Lines the audit log dropped because its writer fell behind.
        body["audit_dropped"] = json!(audit.dropped());
    }
    Json(body)
}

/// `GET /admin/metrics`: Prometheus text exposition.
pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let statuses = app.live.current().statuses();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        app.live
            .current()
            .metrics()
            .render(&statuses, &app.sessions.counts()),
    )
        .into_response()
}

/// `GET /admin/status`: the proxy's version, sessions open, and its
/// reloads: the file, counts, the last one (its changes, or why it was
/// rejected), and changed keys waiting for a restart.
pub(super) async fn status(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sessions": app.sessions.count(),
        "reload": app.live.history(),
    }))
}

/// `POST /admin/reload`: read the config file again and apply it. 200 with
/// the changes; 422 with the error when the file is invalid (nothing
/// changed); 409 when the proxy was not started from a file; 503 while it
/// shuts down.
pub(super) async fn reload(State(app): State<Arc<App>>) -> Response {
    match app.live.reload_source().await {
        Ok(changes) => Json(json!({ "result": "applied", "changes": changes })).into_response(),
        Err(error) => {
            let status = match error {
                ReloadError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReloadError::NoSource => StatusCode::CONFLICT,
                ReloadError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            };
            let body = json!({ "result": "rejected", "error": error.to_string() });
            (status, Json(body)).into_response()
        }
    }
}
