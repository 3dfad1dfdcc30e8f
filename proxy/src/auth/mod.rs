//! Identity and access: who a request comes from ([`Authenticator`]: a
//! static bearer token or a JWT), what that caller may use ([`Policy`]:
//! roles → allow/deny rules per backend and name), and how often
//! ([`CallerLimits`]). The front door asks these; nothing here knows HTTP
//! beyond the header values it is handed and the ones it gives back.
//!
//! CONTRACT SKELETON — the bodies are filled in by the auth work; the
//! signatures are what the front door and the gateway call.

#![allow(dead_code, unused_variables)]

use std::sync::Arc;

use serde_json::Value;

use crate::config::AuthConfig;
use crate::platform::Platform;

mod keys;
mod limits;
mod policy;

// What the front door and the gateway name.
#[allow(unused_imports)]
pub(crate) use limits::CallerLimits;
#[allow(unused_imports)]
pub(crate) use policy::Policy;

/// Who made a request, as its credentials say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The token's `subject` (bearer) or the JWT's subject claim.
    pub subject: String,
    /// Its roles: a bearer token's `scopes`, or the JWT's roles claim.
    pub roles: Vec<String>,
}

/// Why a request was not authenticated: answered 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer ...` header at all.
    Missing,
    /// A credential that does not pass, and why (logged, and sent as
    /// `error_description`; it never repeats the token).
    Invalid(String),
}

/// Checks credentials against the configured method.
pub(crate) struct Authenticator {
    config: AuthConfig,
    platform: Platform,
}

impl Authenticator {
    /// From the config; a JWKS is fetched when first needed.
    pub(crate) fn new(config: &AuthConfig, platform: &Platform) -> Arc<Self> {
        unimplemented!()
    }

    /// The caller the value of an `Authorization` header proves, if any.
    pub(crate) async fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        unimplemented!()
    }

    /// The `WWW-Authenticate` value of a 401: `Bearer
    /// resource_metadata="<url>"`, plus `error="invalid_token"` and an
    /// `error_description` for an invalid one.
    pub(crate) fn challenge(&self, error: &AuthError) -> String {
        unimplemented!()
    }

    /// The `WWW-Authenticate` value of a 403: `Bearer
    /// error="insufficient_scope", scope="<scope>", resource_metadata="<url>"`.
    pub(crate) fn insufficient_scope(&self, scope: Option<&str>) -> String {
        unimplemented!()
    }

    /// The RFC 9728 protected-resource metadata document.
    pub(crate) fn metadata(&self) -> Value {
        unimplemented!()
    }

    /// The paths the metadata is served at: `/.well-known/oauth-protected-resource`,
    /// and that followed by the resource URL's path (RFC 9728 §3.1).
    pub(crate) fn metadata_paths(&self) -> Vec<String> {
        unimplemented!()
    }
}

/// What kind of item a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    /// A tool (`tools/list`, `tools/call`).
    Tool,
    /// A resource or resource template (by URI or URI template).
    Resource,
    /// A prompt.
    Prompt,
}

/// One item a caller wants to see or use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    /// Its kind.
    pub kind: ItemKind,
    /// The (primary) backend that serves it.
    pub backend: &'a str,
    /// Its name as the client sees it without the `backend/` prefix, or
    /// its URI.
    pub name: &'a str,
}
