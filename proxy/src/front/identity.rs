//! The front door's side of `auth:`, as the MCP authorization spec asks of
//! a resource server: every `/mcp` request names its caller with
//! `Authorization: Bearer`, or is answered 401 with a `WWW-Authenticate`
//! challenge that points at the RFC 9728 metadata; a request for an item
//! the caller's roles do not allow is answered 403 `insufficient_scope`
//! naming the scope that would; the metadata itself is served open.
//!
//! Checking a credential is [`crate::auth`]'s; deciding what a caller may
//! use is the gateway's ([`crate::gateway`]'s access rules); here the
//! answers become HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{App, ClientAddr, auditing};
use crate::auth::{AuthError, Caller};
use crate::error_codes::{FORBIDDEN, UNAUTHENTICATED};
use crate::jsonrpc::{self, ErrorObject};

/// The caller a request's credential proves: `Ok(None)` without `auth:`,
/// else the caller, or the 401 to answer.
/// A refusal is audited as `request` (the HTTP method and path) from `client`.
pub(super) async fn caller_of(
    app: &App,
    headers: &HeaderMap,
    client: ClientAddr,
    request: &str,
) -> Result<Option<Arc<Caller>>, Response> {
    let Some(auth) = &app.auth else {
        return Ok(None);
    };
    // A header that is not visible ASCII is no credential at all.
    let header = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    match auth.authenticate(header).await {
        Ok(caller) => Ok(Some(Arc::new(caller))),
        Err(error) => {
            let message = match &error {
                AuthError::Missing => {
                    "authentication required: send Authorization: Bearer <token>".to_owned()
                }
                AuthError::Invalid(why) => format!("invalid token: {why}"),
            };
            tracing::debug!(%message, "request refused: 401");
            auditing::unauthenticated(app, client, request, UNAUTHENTICATED);
            let body =
                jsonrpc::error_response(Value::Null, &ErrorObject::new(UNAUTHENTICATED, message));
            let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&auth.challenge(&error)) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            Err(response)
        }
    }
}

/// The HTTP answer to a request whose JSON-RPC answer is `answer`: 200,
/// or 403 with an `insufficient_scope` challenge when the gateway refused
/// the caller the item (`-32016`).
pub(super) fn answer_response(app: &App, answer: Value) -> Response {
    let forbidden = answer
        .pointer("/error/code")
        .and_then(Value::as_i64)
        .is_some_and(|code| code == FORBIDDEN);
    let Some(auth) = app.auth.as_ref().filter(|_| forbidden) else {
        return Json(answer).into_response();
    };
    let scope = answer
        .pointer("/error/data/scope")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut response = (StatusCode::FORBIDDEN, Json(answer)).into_response();
    if let Ok(value) = HeaderValue::from_str(&auth.insufficient_scope(scope.as_deref())) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET /.well-known/oauth-protected-resource[/<path>]`: the RFC 9728
/// metadata MCP clients follow from a 401 to find where to get a token.
pub(super) async fn metadata(State(app): State<Arc<App>>) -> Response {
    match &app.auth {
        Some(auth) => Json(auth.metadata()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
