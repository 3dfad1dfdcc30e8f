//! The `auth` section: who may use the proxy (static bearer tokens or
//! signed JWTs) and what the protected-resource metadata tells clients; and
//! the rule that ties it to `proxy.listen`: a proxy other hosts can reach
//! needs `auth:`, unless `proxy.allow_unauthenticated` says that is meant.
//!
//! The checks here are the ones a typo or a weak setting would slip past
//! until a client is refused, or worse accepted: short or repeated tokens,
//! an algorithm allow-list that includes `none`, an HMAC secret beside
//! public-key algorithms (algorithm confusion), a scope no role defines.

use std::collections::HashMap;
use std::time::Duration;

use super::super::raw::{RawAuth, RawBearerToken, RawJwt, RawJwtKey};
use super::super::source::Seg;
use super::super::{
    AuthConfig, AuthMethod, Authorization, BearerToken, ConfigError, JwtAuth, JwtKeys,
    ProxySettings, StaticKey,
};
use super::transport::check_url;
use super::{Validator, child, key};

/// The shortest bearer token accepted, in bytes: shorter ones can be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// The JWS algorithms a token may be signed with (RFC 7518, RFC 8037).
const ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// `jwt.algorithms` when not given.
const DEFAULT_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];

const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(300);
const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

fn is_hmac(algorithm: &str) -> bool {
    algorithm.starts_with("HS")
}

impl Validator<'_> {
    /// `auth:`; `authorization` (already validated) names the roles scopes may use.
    pub(super) fn auth(
        &self,
        raw: RawAuth,
        authorization: Option<&Authorization>,
    ) -> Result<AuthConfig, ConfigError> {
        let path = [key("auth")];
        let Some(resource) = raw.resource else {
            return Err(self.error(
                &path,
                "missing key \"resource\": the public URL of the MCP endpoint as clients reach \
                 it, e.g. https://mcp.example.com/mcp",
            ));
        };
        check_url(&resource).map_err(|m| self.error(&child(&path, "resource"), m))?;
        let authorization_servers = raw.authorization_servers.unwrap_or_default();
        for (i, server) in authorization_servers.iter().enumerate() {
            let mut p = child(&path, "authorization_servers");
            p.push(Seg::Index(i));
            check_url(server).map_err(|m| self.error(&p, m))?;
        }
        let scopes_supported = match raw.scopes_supported {
            Some(scopes) => scopes,
            None => authorization
                .map(|a| a.roles.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let rate_limit = raw
            .rate_limit
            .as_ref()
            .map(|r| self.rate_limit(r, &child(&path, "rate_limit")))
            .transpose()?;
        let method = match (raw.bearer, raw.jwt) {
            (Some(_), Some(_)) => {
                return Err(self.key_error(
                    &path,
                    "jwt",
                    "\"bearer\" and \"jwt\" are exclusive: keep one",
                ));
            }
            (None, None) => {
                return Err(self.error(
                    &path,
                    "one of \"bearer\" (static tokens) or \"jwt\" (signed tokens) is required",
                ));
            }
            (Some(bearer), None) => AuthMethod::Bearer(self.bearer_tokens(
                &bearer.tokens,
                &child(&path, "bearer"),
                authorization,
            )?),
            (None, Some(jwt)) => {
                AuthMethod::Jwt(Box::new(self.jwt(jwt, &child(&path, "jwt"), &resource)?))
            }
        };
        Ok(AuthConfig {
            method,
            resource,
            authorization_servers,
            scopes_supported,
            rate_limit,
        })
    }

    fn bearer_tokens(
        &self,
        raw: &[RawBearerToken],
        path: &[Seg],
        authorization: Option<&Authorization>,
    ) -> Result<Vec<BearerToken>, ConfigError> {
        let tokens_path = child(path, "tokens");
        if raw.is_empty() {
            return Err(self.error(&tokens_path, "at least one token is required"));
        }
        let mut first_index: HashMap<String, usize> = HashMap::new();
        let mut tokens = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let mut p = tokens_path.clone();
            p.push(Seg::Index(i));
            let token = self
                .secret(
                    &p,
                    ("token", entry.token.as_ref()),
                    ("token_file", entry.token_file.as_ref()),
                )?
                .ok_or_else(|| self.error(&p, "missing key \"token\" (or \"token_file\")"))?;
            let token_key = if entry.token.is_some() {
                "token"
            } else {
                "token_file"
            };
            // Messages never echo a token.
            if token.len() < MIN_TOKEN_LEN {
                return Err(self.error(
                    &child(&p, token_key),
                    format!(
                        "a token must be at least {MIN_TOKEN_LEN} bytes (this one has {})",
                        token.len()
                    ),
                ));
            }
            if let Some(&first) = first_index.get(&token) {
                return Err(self.error(
                    &child(&p, token_key),
                    format!("the same token as tokens[{first}]: each caller needs its own"),
                ));
            }
            first_index.insert(token.clone(), i);
            let subject = entry
                .subject
                .clone()
                .unwrap_or_else(|| format!("token-{}", i + 1));
            if subject.is_empty() {
                return Err(self.error(&child(&p, "subject"), "must not be empty"));
            }
            let scopes = entry.scopes.clone().unwrap_or_default();
            if let Some(authorization) = authorization {
                for (j, scope) in scopes.iter().enumerate() {
                    if !authorization.roles.contains_key(scope) {
                        let mut sp = child(&p, "scopes");
                        sp.push(Seg::Index(j));
                        let known: Vec<&str> =
                            authorization.roles.keys().map(String::as_str).collect();
                        return Err(self.error(
                            &sp,
                            format!(
                                "unknown role {scope:?}: authorization.roles defines {}",
                                if known.is_empty() {
                                    "none".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
            tokens.push(BearerToken {
                token,
                subject,
                scopes,
            });
        }
        Ok(tokens)
    }

    fn jwt(&self, raw: RawJwt, path: &[Seg], resource: &str) -> Result<JwtAuth, ConfigError> {
        if let Some(issuer) = &raw.issuer
            && issuer.is_empty()
        {
            return Err(self.error(&child(path, "issuer"), "must not be empty"));
        }
        let audiences = raw.audiences.unwrap_or_else(|| vec![resource.to_owned()]);
        if audiences.is_empty() {
            return Err(self.error(
                &child(path, "audiences"),
                "must name at least one audience (leave it out for auth.resource)",
            ));
        }
        let algorithms = match raw.algorithms {
            Some(algorithms) => algorithms,
            None => DEFAULT_ALGORITHMS.map(str::to_owned).to_vec(),
        };
        self.algorithms(&algorithms, &child(path, "algorithms"))?;
        let secret = self.secret(
            path,
            ("secret", raw.secret.as_ref()),
            ("secret_file", raw.secret_file.as_ref()),
        )?;
        let hmac = algorithms.iter().position(|a| is_hmac(a));
        match (hmac, &secret) {
            (Some(i), None) => {
                let mut p = child(path, "algorithms");
                p.push(Seg::Index(i));
                return Err(self.error(
                    &p,
                    format!(
                        "{} is verified with a shared secret: set \"secret\" (or \"secret_file\")",
                        algorithms[i]
                    ),
                ));
            }
            (None, Some(_)) => {
                let k = if raw.secret.is_some() {
                    "secret"
                } else {
                    "secret_file"
                };
                return Err(self.key_error(
                    path,
                    k,
                    "a secret is used by HS256, HS384 and HS512 only, and none of them is in \
                     \"algorithms\"",
                ));
            }
            _ => {}
        }
        if let Some(url) = &raw.jwks_url {
            check_url(url).map_err(|m| self.error(&child(path, "jwks_url"), m))?;
        }
        let positive = |value: Option<super::super::duration::ConfigDuration>,
                        k: &str,
                        default: Duration| match value {
            Some(d) if d.0.is_zero() => {
                Err(self.error(&child(path, k), "must be greater than zero"))
            }
            value => Ok(value.map_or(default, |d| d.0)),
        };
        let jwks_ttl = positive(raw.jwks_ttl, "jwks_ttl", DEFAULT_JWKS_TTL)?;
        let jwks_min_refetch = raw
            .jwks_min_refetch
            .map_or(DEFAULT_JWKS_MIN_REFETCH, |d| d.0);
        let static_keys = raw
            .keys
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut p = child(path, "keys");
                p.push(Seg::Index(i));
                self.static_key(k, &p)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.jwks_url.is_none() && static_keys.is_empty() && secret.is_none() {
            return Err(self.error(
                path,
                "no verification key: set \"jwks_url\", \"keys\" or \"secret\"",
            ));
        }
        let claim = |value: Option<String>, k: &str, default: &str| match value {
            Some(v) if v.is_empty() => Err(self.error(&child(path, k), "must not be empty")),
            value => Ok(value.unwrap_or_else(|| default.to_owned())),
        };
        Ok(JwtAuth {
            issuer: raw.issuer,
            audiences,
            algorithms,
            leeway: raw.leeway.map_or(DEFAULT_LEEWAY, |d| d.0),
            keys: JwtKeys {
                jwks_url: raw.jwks_url,
                jwks_ttl,
                jwks_min_refetch,
                static_keys,
                secret,
            },
            roles_claim: claim(raw.roles_claim, "roles_claim", "scope")?,
            subject_claim: claim(raw.subject_claim, "subject_claim", "sub")?,
        })
    }

    fn algorithms(&self, algorithms: &[String], path: &[Seg]) -> Result<(), ConfigError> {
        if algorithms.is_empty() {
            return Err(self.error(path, "must name at least one algorithm"));
        }
        for (i, algorithm) in algorithms.iter().enumerate() {
            let mut p = path.to_vec();
            p.push(Seg::Index(i));
            if algorithm.eq_ignore_ascii_case("none") {
                return Err(self.error(
                    &p,
                    "\"none\" is never allowed: an unsigned token proves nothing, anyone can \
                     write one",
                ));
            }
            if !ALGORITHMS.contains(&algorithm.as_str()) {
                return Err(self.error(
                    &p,
                    format!(
                        "unknown algorithm {algorithm:?}; expected one of {}",
                        ALGORITHMS.join(", ")
                    ),
                ));
            }
            if algorithms[..i].contains(algorithm) {
                return Err(self.error(&p, format!("{algorithm} is listed twice")));
            }
        }
        Ok(())
    }

    fn static_key(&self, raw: &RawJwtKey, path: &[Seg]) -> Result<StaticKey, ConfigError> {
        let given: Vec<&str> = [
            raw.pem_file.is_some().then_some("pem_file"),
            raw.pem.is_some().then_some("pem"),
            raw.jwk.is_some().then_some("jwk"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let [_, second, ..] = given.as_slice() {
            return Err(self.key_error(
                path,
                second,
                format!("give one of {}, not several", given.join(", ")),
            ));
        }
        if let Some(jwk) = &raw.jwk {
            if raw.kid.is_some() {
                return Err(self.key_error(
                    path,
                    "kid",
                    "a JWK names its own \"kid\": put it inside \"jwk\"",
                ));
            }
            let p = child(path, "jwk");
            match jwk.get("kty").and_then(|k| k.as_str()) {
                None => return Err(self.error(&p, "a JWK needs a \"kty\" (RSA, EC or OKP)")),
                Some("oct") => {
                    return Err(self.error(
                        &p,
                        "a symmetric key (kty \"oct\") belongs in \"secret\", with an HS algorithm",
                    ));
                }
                Some(_) => {}
            }
            if jwk.contains_key("d") {
                return Err(self.error(
                    &p,
                    "this JWK holds a private key (\"d\"): give the public key only",
                ));
            }
            return Ok(StaticKey::Jwk(serde_json::Value::Object(jwk.clone())));
        }
        if let Some(kid) = &raw.kid
            && kid.is_empty()
        {
            return Err(self.error(&child(path, "kid"), "must not be empty"));
        }
        let (k, pem) = match (&raw.pem, &raw.pem_file) {
            (Some(pem), _) => ("pem", pem.clone()),
            (None, Some(name)) => {
                let file = self.base_dir.join(name);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    self.error(
                        &child(path, "pem_file"),
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                ("pem_file", text)
            }
            (None, None) => {
                return Err(self.error(path, "one of \"pem_file\", \"pem\" or \"jwk\" is required"));
            }
        };
        if !pem.contains("-----BEGIN ") {
            return Err(self.error(
                &child(path, k),
                "not a PEM key (no \"-----BEGIN ...-----\" line)",
            ));
        }
        if pem.contains("PRIVATE KEY-----") {
            return Err(self.error(
                &child(path, k),
                "this PEM holds a private key: give the public key only",
            ));
        }
        Ok(StaticKey::Pem {
            pem,
            kid: raw.kid.clone(),
        })
    }

    /// A proxy that other hosts can reach needs `auth:`, or
    /// `proxy.allow_unauthenticated: true` saying the open door is meant.
    pub(super) fn exposure(
        &self,
        proxy: &ProxySettings,
        has_auth: bool,
    ) -> Result<(), ConfigError> {
        if has_auth || proxy.allow_unauthenticated || proxy.listen.ip().is_loopback() {
            return Ok(());
        }
        Err(self.error(
            &[key("proxy"), key("listen")],
            format!(
                "{} is reachable from other hosts, and with no \"auth:\" section anyone who \
                 reaches it may call every backend; add \"auth:\", or set \
                 \"proxy.allow_unauthenticated: true\" if that is meant (e.g. behind an \
                 authenticating reverse proxy)",
                proxy.listen
            ),
        ))
    }
}
