//! Identity and access: who a request comes from ([`Authenticator`]: a
//! static bearer token or a JWT), what that caller may use ([`Policy`]:
//! roles → allow/deny rules per backend and name), and how often
//! ([`CallerLimits`]). The front door asks these; nothing here knows HTTP
//! beyond the header values it is handed and the ones it gives back.
//!
//! One concern per module:
//!
//! - `credentials`: the `Authorization` header's `Bearer <token68>` syntax;
//! - `bearer`: static tokens, compared in constant time;
//! - `keys`: verification keys (PEM, JWK, secret) and the algorithms each
//!   may verify, so a key is never used with another family's algorithm;
//! - `jwks`: the JWK Set fetched from `jwks_url` over the platform's dialer,
//!   cached, refetched on rotation at a bounded rate;
//! - `jwt`: a JWT's header, signature and claims, judged on the platform's
//!   wall clock;
//! - `metadata`: RFC 9728 protected-resource metadata and the
//!   `WWW-Authenticate` values that point to it;
//! - `policy`: the `authorization:` rules;
//! - `limits`: the per-caller rate limit.
//!
//! Every failure to authenticate is an [`AuthError`], never a panic: the
//! header is whatever a client sent.

mod bearer;
mod credentials;
mod jwks;
mod jwt;
mod keys;
mod limits;
mod metadata;
mod policy;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

use crate::config::{AuthConfig, AuthMethod};
use crate::platform::Platform;

pub(crate) use bearer::same_secret;
pub(crate) use limits::CallerLimits;
pub(crate) use policy::Policy;

/// The token of an `Authorization: Bearer <token>` header value, if it is
/// one (the same reading as for MCP callers).
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    credentials::bearer_token(Some(header)).ok()
}

/// Who made a request, as its credentials say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The token's `subject` (bearer) or the JWT's subject claim.
    pub subject: String,
    /// Its roles: a bearer token's `scopes`, or the JWT's roles claim;
    /// sorted, each once (see [`Caller::new`]).
    pub roles: Vec<String>,
}

impl Caller {
    /// A caller with its roles sorted and each once, so that two callers
    /// with the same roles are equal however their tokens listed them.
    pub(crate) fn new(subject: String, mut roles: Vec<String>) -> Self {
        roles.sort_unstable();
        roles.dedup();
        Self { subject, roles }
    }
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

impl AuthError {
    /// An [`AuthError::Invalid`] saying `reason`.
    fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid(reason.into())
    }
}

/// How the configured method checks a token.
enum Method {
    Bearer(bearer::BearerTokens),
    Jwt(jwt::JwtVerifier),
}

/// Checks credentials against the configured method.
pub(crate) struct Authenticator {
    method: Method,
    metadata: metadata::ResourceMetadata,
}

impl Authenticator {
    /// From the config, or the problems that make part of it unusable (a
    /// key that does not parse, an algorithm this build cannot verify): the
    /// proxy does not start with a key it cannot use. A JWKS is fetched
    /// when first needed (and, inside a tokio runtime, once at once in the
    /// background).
    pub(crate) fn new(config: &AuthConfig, platform: &Platform) -> Result<Arc<Self>, Vec<String>> {
        let (authenticator, problems) = Self::build(config, platform);
        if problems.is_empty() {
            authenticator.prefetch();
            Ok(authenticator)
        } else {
            Err(problems)
        }
    }

    fn build(config: &AuthConfig, platform: &Platform) -> (Arc<Self>, Vec<String>) {
        let mut problems = Vec::new();
        let method = match &config.method {
            AuthMethod::Bearer(tokens) => Method::Bearer(bearer::BearerTokens::new(tokens)),
            AuthMethod::Jwt(jwt) => {
                let (verifier, jwt_problems) = jwt::JwtVerifier::new(jwt, platform);
                problems.extend(jwt_problems);
                Method::Jwt(verifier)
            }
        };
        let authenticator = Arc::new(Self {
            method,
            metadata: metadata::ResourceMetadata::new(config),
        });
        (authenticator, problems)
    }

    /// Start fetching the JWK Set, if there is one, so the first request
    /// does not wait for it.
    fn prefetch(&self) {
        if let Method::Jwt(verifier) = &self.method {
            verifier.prefetch();
        }
    }

    /// The caller the value of an `Authorization` header proves, if any.
    pub(crate) async fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = credentials::bearer_token(header)?;
        match &self.method {
            Method::Bearer(tokens) => tokens.check(token),
            Method::Jwt(verifier) => verifier.verify(token).await,
        }
    }

    /// The `WWW-Authenticate` value of a 401: `Bearer
    /// resource_metadata="<url>"`, plus `error="invalid_token"` and an
    /// `error_description` for an invalid one.
    pub(crate) fn challenge(&self, error: &AuthError) -> String {
        self.metadata.challenge(error)
    }

    /// The `WWW-Authenticate` value of a 403: `Bearer
    /// error="insufficient_scope", scope="<scope>", resource_metadata="<url>"`.
    pub(crate) fn insufficient_scope(&self, scope: Option<&str>) -> String {
        self.metadata.insufficient_scope(scope)
    }

    /// The RFC 9728 protected-resource metadata document.
    pub(crate) fn metadata(&self) -> Value {
        self.metadata.document()
    }

    /// The paths the metadata is served at: `/.well-known/oauth-protected-resource`,
    /// and that followed by the resource URL's path (RFC 9728 §3.1).
    pub(crate) fn metadata_paths(&self) -> Vec<String> {
        self.metadata.paths()
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
