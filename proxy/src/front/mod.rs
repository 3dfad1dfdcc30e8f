//! The HTTP front door: the streamable-HTTP MCP endpoint at `/mcp`, the
//! operations endpoints, and with `auth:` the protected-resource metadata,
//! as axum [`Router`]s.
//!
//! `router()` builds the app from shared state, so tests can drive it
//! without a socket and the server can serve it on one; `/admin/*` is
//! [`admin_router`], merged into it or served on `admin.listen` ([`admin`]
//! guards it).

mod admin;
mod auditing;
pub(crate) use admin::AdminAccess;
mod identity;
mod mcp;
mod ops;
pub(crate) mod origin;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::{Authenticator, CallerLimits};
use crate::config::RateLimit;
use crate::reload::Live;
use crate::session::SessionStore;

/// The address of the client a request came from (its connection's peer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::SocketAddr);

/// What every handler shares.
pub(crate) struct App {
    /// The gateway in force, which routes requests to backends, and its
    /// reloads.
    pub live: Arc<Live>,
    /// Client sessions.
    pub sessions: Arc<SessionStore>,
    /// Forwarded calls, so shutdown can wait for them to drain.
    pub calls: TaskTracker,
    /// Cancelled when shutdown begins: new requests are refused.
    pub draining: CancellationToken,
    /// Cancelled when the drain time is over: calls still running are cancelled.
    pub cancel_calls: CancellationToken,
    /// Origins allowed besides localhost ones.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_size: usize,
    /// `auth:`: checks every `/mcp` request's credential. `None`: no auth.
    pub auth: Option<Arc<Authenticator>>,
    /// `auth.rate_limit`: each caller's bucket, and the limit it enforces.
    pub caller_limits: Option<(CallerLimits, RateLimit)>,
    /// Who may use `/admin/*` (see [`admin`]).
    pub admin_access: admin::AdminAccess,
    /// Some backend has `forward_auth`: sessions keep their requests'
    /// `Authorization` headers for it.
    pub forwards_credentials: bool,
    /// `audit:`: one line per request (see [`auditing`]).
    pub audit: Option<AuditLog>,
    /// Opens each request's span, under the client's trace context.
    pub tracer: Arc<crate::trace::Tracer>,
}

/// The app of the main listener: `/mcp`, `/livez`, `/readyz`, the
/// protected-resource metadata with `auth:`, and `/admin/*` unless it has
/// a listener of its own.
pub(crate) fn router(app: Arc<App>, with_admin: bool) -> Router {
    let body_limit = app.max_body_size;
    let mut router = Router::new()
        .route(
            "/mcp",
            get(mcp::get_stream).post(mcp::post).delete(mcp::delete),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .route("/livez", get(ops::livez))
        .route("/readyz", get(ops::readyz));
    for path in app.auth.iter().flat_map(|auth| auth.metadata_paths()) {
        router = router.route(&path, get(identity::metadata));
    }
    if with_admin {
        router = router.merge(admin_router(Arc::clone(&app)));
    }
    router.with_state(app)
}

/// `/admin/*`, behind its guard.
pub(crate) fn admin_router(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/admin/backends", get(ops::backends))
        .route("/admin/metrics", get(ops::metrics))
        .route("/admin/status", get(ops::status))
        .route("/admin/reload", post(ops::reload))
        .route_layer(middleware::from_fn_with_state(app, admin::guard))
}
