//! The `issuer` section (a token issuer and its keys) and
//! `workload.identities` (who the clients are, and the bearer token or JWT
//! each sends), with the rules that tie them together: a JWT needs the
//! issuer, a key named must be the issuer's, the issuer is no fake.

use std::time::Duration;

use mcp_proxy::config::ConfigError;

use super::super::model::*;
use super::super::raw::*;
use super::{KeyPath, Validator};

/// The one signing algorithm the harness mints with.
const ALGORITHM: &str = "EdDSA";
/// Most keys of one issuer: a rotation plan, not a key store.
const MAX_KEYS: usize = 64;

impl Validator<'_> {
    /// The `issuer:` section, if any.
    pub(super) fn issuer(
        &self,
        raw: Option<RawIssuer>,
        path: &KeyPath,
        fakes: &[FakeSpec],
    ) -> Result<Option<Issuer>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        if !is_name(&raw.name) {
            return Err(self.error(
                &path.key("name"),
                "must be letters, digits, `-` and `_` (it names a simulated host)",
            ));
        }
        if fakes.iter().any(|f| f.name == raw.name) {
            return Err(self.error(
                &path.key("name"),
                format!("{:?} is a fake's name; the issuer needs its own", raw.name),
            ));
        }
        if let Some(algorithm) = &raw.algorithm
            && algorithm != ALGORITHM
        {
            return Err(self.error(
                &path.key("algorithm"),
                format!("the harness mints with {ALGORITHM} only"),
            ));
        }
        if raw.audience.trim().is_empty() {
            return Err(self.error(&path.key("audience"), "must not be empty"));
        }
        if raw.keys.is_empty() || raw.keys.len() > MAX_KEYS {
            return Err(self.error(&path.key("keys"), format!("needs 1 to {MAX_KEYS} key ids")));
        }
        for (i, kid) in raw.keys.iter().enumerate() {
            if kid.is_empty() {
                return Err(self.error(&path.key("keys").index(i), "must not be empty"));
            }
            if raw.keys[..i].contains(kid) {
                return Err(self.error(&path.key("keys").index(i), "is listed twice"));
            }
        }
        let iss = raw
            .iss
            .unwrap_or_else(|| format!("https://{}.test", raw.name));
        if iss.trim().is_empty() {
            return Err(self.error(&path.key("iss"), "must not be empty"));
        }
        Ok(Some(Issuer {
            name: raw.name,
            iss,
            audience: raw.audience,
            keys: raw.keys,
            port: raw.port.unwrap_or(0),
        }))
    }

    /// `workload.identities`, numbering their clients from 0 in file order.
    pub(super) fn identities(
        &self,
        raw: Vec<RawIdentity>,
        path: &KeyPath,
        issuer: Option<&Issuer>,
    ) -> Result<Vec<Identity>, ConfigError> {
        let mut identities: Vec<Identity> = Vec::new();
        let mut next = 0;
        for (i, raw) in raw.into_iter().enumerate() {
            let p = path.index(i);
            if raw.name.is_empty() {
                return Err(self.error(&p.key("name"), "must not be empty"));
            }
            if identities.iter().any(|x| x.name == raw.name) {
                return Err(self.error(&p.key("name"), "is used twice"));
            }
            let clients = raw.clients.unwrap_or(1);
            if clients == 0 {
                return Err(self.error(&p.key("clients"), "must be at least 1"));
            }
            let auth = self.client_auth(raw.auth, &p.key("auth"), issuer)?;
            let start = next;
            next += clients;
            identities.push(Identity {
                name: raw.name,
                clients: start..next,
                auth,
            });
        }
        Ok(identities)
    }

    fn client_auth(
        &self,
        raw: RawAuth,
        path: &KeyPath,
        issuer: Option<&Issuer>,
    ) -> Result<ClientAuth, ConfigError> {
        match (raw.bearer, raw.jwt) {
            (Some(token), None) => {
                if !is_header_token(&token) {
                    return Err(self.error(
                        &path.key("bearer"),
                        "must be non-empty visible ASCII (it is sent in a header)",
                    ));
                }
                Ok(ClientAuth::Bearer(token))
            }
            (None, Some(jwt)) => {
                let p = path.key("jwt");
                let Some(issuer) = issuer else {
                    return Err(self.error(
                        &p,
                        "a JWT is minted from the scenario's issuer: add an `issuer:` section",
                    ));
                };
                let lifetime = jwt.lifetime.0;
                if lifetime < Duration::from_secs(1) {
                    return Err(self.error(
                        &p.key("lifetime"),
                        "must be at least 1s (JWT times are whole seconds)",
                    ));
                }
                if let Some(key) = &jwt.key
                    && !issuer.keys.contains(key)
                {
                    return Err(self.error(
                        &p.key("key"),
                        format!("issuer {:?} has no key {key:?}", issuer.name),
                    ));
                }
                Ok(ClientAuth::Jwt(JwtSpec {
                    claims: jwt.claims.unwrap_or_default(),
                    lifetime: Duration::from_secs(lifetime.as_secs()),
                    renew: jwt.renew,
                    key: jwt.key,
                }))
            }
            (Some(_), Some(_)) => {
                Err(self.error(&path.key("jwt"), "choose bearer or jwt, not both"))
            }
            (None, None) => Err(self.error(path, "needs bearer or jwt")),
        }
    }
}

/// A name that can be part of a host name.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `token` can follow `Bearer ` in a header.
fn is_header_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}
