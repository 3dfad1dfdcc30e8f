//! Who may use `/admin/*` (backend states with child pids, last errors and
//! endpoint URLs; metrics; the status; `POST /admin/reload`, which applies
//! the config file). A browser page must not read or trigger them through
//! DNS rebinding, so they get the same `Origin` check as `/mcp`; and once the
//! proxy has `auth:`, MCP callers' tokens do not open them: they need
//! `admin.token`, or are served only on `admin.listen`, or not at all.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{App, origin};
use crate::auth;
use crate::config::Config;

/// The rule `/admin/*` answers by.
#[derive(Debug, Clone)]
pub(crate) enum AdminAccess {
    /// Anyone who passes the Origin check: no `auth:` and no
    /// `admin.token`, or a listener of its own (`admin.listen`) with no token.
    Open,
    /// `Authorization: Bearer <admin.token>`.
    Token(String),
    /// Nobody: `auth:` with neither `admin.token` nor `admin.listen`.
    Closed,
}

impl AdminAccess {
    /// The rule the config sets.
    pub(crate) fn from_config(config: &Config) -> Self {
        match (&config.admin.token, config.admin.listen, &config.auth) {
            (Some(token), _, _) => AdminAccess::Token(token.clone()),
            (None, Some(_), _) | (None, None, None) => AdminAccess::Open,
            (None, None, Some(_)) => AdminAccess::Closed,
        }
    }
}

/// The guard in front of every `/admin/*` route.
pub(super) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(value) = headers.get(header::ORIGIN) {
        let allowed = value
            .to_str()
            .is_ok_and(|origin| origin::is_allowed(origin, &app.allowed_origins));
        if !allowed {
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
    }
    match &app.admin_access {
        AdminAccess::Open => next.run(request).await,
        AdminAccess::Closed => (
            StatusCode::FORBIDDEN,
            "the admin API is off on this listener: with auth: it needs admin.token or admin.listen\n",
        )
            .into_response(),
        AdminAccess::Token(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(auth::bearer_token);
            if presented.is_some_and(|presented| auth::same_secret(presented, token)) {
                next.run(request).await
            } else {
                let mut response =
                    (StatusCode::UNAUTHORIZED, "admin token required\n").into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"mcp-proxy admin\""),
                );
                response
            }
        }
    }
}
