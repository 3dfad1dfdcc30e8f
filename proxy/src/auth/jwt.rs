//! JWTs (`auth.jwt`): header, key, signature, then claims, in that order,
//! each refused with its own reason.
//!
//! - The header's `alg` must be in `algorithms` (`none` never is), and the
//!   key must be of that algorithm's family (`keys.rs`).
//! - The key is chosen by `kid`: static keys (`keys`, `secret`) first, then
//!   the JWK Set (`jwks.rs`), which is refetched for a `kid` it lacks. Keys
//!   without a `kid` are tried for tokens without one; the secret, the one
//!   HMAC key, for any `HS*` token.
//! - The signature is checked by `jsonwebtoken` (aws-lc-rs), with every
//!   claim check of its own turned off: `exp` and `nbf` would be judged by
//!   the system clock, and here they are judged by the platform's
//!   [`WallClock`], so simulated runs replay token lifetimes.
//! - Claims: `exp` required, `nbf` if present (both with `leeway`), `iss`
//!   when configured, `aud` (string or array) naming one of `audiences`,
//!   the subject claim a string, the roles claim an array of strings or a
//!   space-separated string.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::credentials::MAX_TOKEN_BYTES;
use super::jwks::Jwks;
use super::keys::{KeyKind, VerifyKey, parse_algorithm};
use super::{AuthError, Caller};
use crate::config::{JwtAuth, StaticKey};
use crate::platform::{Platform, WallClock};

/// Verifies JWTs as `auth.jwt` says.
pub(super) struct JwtVerifier {
    issuer: Option<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_seconds: f64,
    static_keys: Vec<VerifyKey>,
    jwks: Option<Arc<Jwks>>,
    roles_claim: String,
    subject_claim: String,
    clock: Arc<dyn WallClock>,
}

impl JwtVerifier {
    /// From `auth.jwt`, and what of it cannot be used (left out).
    pub(super) fn new(config: &JwtAuth, platform: &Platform) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            match parse_algorithm(name) {
                Some(alg) => algorithms.push(alg),
                None => problems.push(format!("algorithm {name:?} cannot be verified")),
            }
        }
        let mut static_keys = Vec::new();
        for (position, key) in config.keys.static_keys.iter().enumerate() {
            let parsed = match key {
                StaticKey::Pem { pem, kid } => VerifyKey::from_pem(pem, kid.clone()),
                StaticKey::Jwk(jwk) => VerifyKey::from_jwk(jwk),
            };
            match parsed {
                Ok(key) => static_keys.push(key),
                Err(reason) => problems.push(format!("jwt.keys[{position}]: {reason}")),
            }
        }
        if let Some(secret) = &config.keys.secret {
            match VerifyKey::from_secret(secret) {
                Ok(key) => static_keys.push(key),
                Err(reason) => problems.push(format!("jwt.secret: {reason}")),
            }
        }
        let jwks = config.keys.jwks_url.as_deref().and_then(|url| {
            Jwks::new(
                url,
                config.keys.jwks_ttl,
                config.keys.jwks_min_refetch,
                Arc::clone(&platform.dialer),
            )
            .map(Arc::new)
            .map_err(|reason| problems.push(reason))
            .ok()
        });
        let verifier = Self {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            algorithms,
            leeway_seconds: config.leeway.as_secs_f64(),
            static_keys,
            jwks,
            roles_claim: config.roles_claim.clone(),
            subject_claim: config.subject_claim.clone(),
            clock: Arc::clone(&platform.clock),
        };
        (verifier, problems)
    }

    /// Fetch the JWK Set in the background now (inside a tokio runtime),
    /// so the first token need not wait for it.
    pub(super) fn prefetch(&self) {
        let Some(jwks) = &self.jwks else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let jwks = Arc::clone(jwks);
        runtime.spawn(async move {
            // A failure is logged by the fetch and retried when a token needs it.
            let _ = jwks.keys(None).await;
        });
    }

    /// The caller `token` proves.
    pub(super) async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = Header::of(token)?;
        let alg = self.algorithm(&header.alg)?;
        let keys = self.keys_for(alg, header.kid.as_deref()).await?;
        let claims = Self::signed_claims(token, alg, &keys)?;
        self.judge(&claims)
    }

    /// The allowed algorithm a header's `alg` names.
    fn algorithm(&self, name: &str) -> Result<Algorithm, AuthError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(AuthError::invalid("algorithm none not allowed"));
        }
        let shown = shown(name);
        let alg = parse_algorithm(name)
            .ok_or_else(|| AuthError::invalid(format!("algorithm {shown} not supported")))?;
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::invalid(format!("algorithm {shown} not allowed")));
        }
        Ok(alg)
    }

    /// The keys that may verify an `alg` token naming `kid`.
    async fn keys_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<VerifyKey>, AuthError> {
        let hmac = alg.family() == jsonwebtoken::AlgorithmFamily::Hmac;
        let answers = |key: &VerifyKey| {
            if hmac {
                // The secret is the one HMAC key: whatever `kid` the token names.
                key.kind == KeyKind::Hmac
            } else {
                key.kind != KeyKind::Hmac && key.kid.as_deref() == kid
            }
        };
        let mut named: Vec<VerifyKey> = self
            .static_keys
            .iter()
            .filter(|k| answers(k))
            .cloned()
            .collect();
        let mut jwks_error = None;
        if let Some(jwks) = &self.jwks
            && !hmac
            && !named.iter().any(|key| key.accepts(alg))
        {
            match jwks.keys(kid).await {
                Ok(keys) => named.extend(keys.iter().filter(|k| answers(k)).cloned()),
                Err(error) => jwks_error = Some(error),
            }
        }
        let fitting: Vec<VerifyKey> = named
            .iter()
            .filter(|key| key.accepts(alg))
            .cloned()
            .collect();
        if !fitting.is_empty() {
            return Ok(fitting);
        }
        let alg_name = format!("{alg:?}");
        Err(AuthError::Invalid(match (named.first(), jwks_error, kid) {
            (Some(key), _, _) => format!(
                "key {} ({}) cannot verify {alg_name}",
                key.kid
                    .as_deref()
                    .map_or_else(|| "without kid".to_owned(), shown),
                key.kind.name()
            ),
            (None, _, _) if hmac => format!("no secret configured for {alg_name}"),
            (None, Some(error), _) => error,
            (None, None, Some(kid)) => format!("unknown key id {}", shown(kid)),
            (None, None, None) => "token has no kid and no key without one is configured".into(),
        }))
    }

    /// The claims of `token`, once one of `keys` verifies its signature.
    fn signed_claims(
        token: &str,
        alg: Algorithm,
        keys: &[VerifyKey],
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = Validation::new(alg);
        // Claims are judged in `judge`, on the platform's clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        for key in keys {
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    return match data.claims {
                        Value::Object(claims) => Ok(claims),
                        _ => Err(AuthError::invalid(
                            "malformed token: claims are not a JSON object",
                        )),
                    };
                }
                Err(error) => match error.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidEddsaKey
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::InvalidKeyFormat => {}
                    ErrorKind::InvalidToken => {
                        return Err(AuthError::invalid(
                            "malformed token: unsupported crit or b64 header",
                        ));
                    }
                    ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                        return Err(AuthError::invalid("malformed token: bad base64url or JSON"));
                    }
                    _ => return Err(AuthError::invalid(format!("malformed token: {error}"))),
                },
            }
        }
        Err(AuthError::invalid("signature does not verify"))
    }

    /// The caller verified claims name, if they are current and meant for us.
    fn judge(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let now = self.clock.unix_seconds() as f64;
        let exp = match claims.get("exp") {
            None | Some(Value::Null) => return Err(AuthError::invalid("token has no exp")),
            Some(value) => value
                .as_f64()
                .ok_or_else(|| AuthError::invalid("exp is not a number"))?,
        };
        if now >= exp + self.leeway_seconds {
            return Err(AuthError::invalid("token expired"));
        }
        match claims.get("nbf") {
            None | Some(Value::Null) => {}
            Some(value) => {
                let nbf = value
                    .as_f64()
                    .ok_or_else(|| AuthError::invalid("nbf is not a number"))?;
                if now + self.leeway_seconds < nbf {
                    return Err(AuthError::invalid("token not yet valid"));
                }
            }
        }
        if let Some(issuer) = &self.issuer {
            match claims.get("iss") {
                None => return Err(AuthError::invalid("token has no iss")),
                Some(Value::String(iss)) if iss == issuer => {}
                Some(_) => return Err(AuthError::invalid("issuer not accepted")),
            }
        }
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|aud| self.audiences.iter().any(|a| a == aud))
        };
        match claims.get("aud") {
            None => return Err(AuthError::invalid("token has no aud")),
            Some(Value::Array(auds)) if auds.iter().any(accepted) => {}
            Some(aud @ Value::String(_)) if accepted(aud) => {}
            Some(_) => return Err(AuthError::invalid("audience not accepted")),
        }
        let subject = match claims.get(&self.subject_claim) {
            Some(Value::String(subject)) if !subject.is_empty() => subject.clone(),
            _ => {
                return Err(AuthError::invalid(format!(
                    "claim {} is not a non-empty string",
                    self.subject_claim
                )));
            }
        };
        let roles = match claims.get(&self.roles_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(roles)) => roles.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(roles)) => roles
                .iter()
                .map(|role| role.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AuthError::invalid(format!(
                        "claim {} has a role that is not a string",
                        self.roles_claim
                    ))
                })?,
            Some(_) => {
                return Err(AuthError::invalid(format!(
                    "claim {} is neither a string nor an array of strings",
                    self.roles_claim
                )));
            }
        };
        Ok(Caller::new(subject, roles))
    }
}

/// What a JWT's header says about how to verify it.
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Header {
    /// The header of a compact JWS `header.payload.signature`.
    fn of(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::invalid(
                "malformed token: not three dot-separated parts",
            ));
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::invalid("malformed token header: not base64url"))?;
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(AuthError::invalid(
                "malformed token header: not a JSON object",
            ));
        };
        let alg = match fields.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err(AuthError::invalid("malformed token header: no alg")),
        };
        let kid = match fields.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => {
                return Err(AuthError::invalid(
                    "malformed token header: kid is not a string",
                ));
            }
        };
        Ok(Self { alg, kid })
    }
}

/// A client-chosen name (`alg`, `kid`) as a reason shows it: short, printable.
fn shown(name: &str) -> String {
    let mut text: String = name
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if name.chars().count() > 40 {
        text.push_str("...");
    }
    text
}
