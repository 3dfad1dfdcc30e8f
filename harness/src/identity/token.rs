//! What a client sends as `Authorization: Bearer ...`: a fixed token, or a
//! JWT minted from the issuer's keys.
//!
//! A JWT carries `iss` (the issuer's), `aud` (the issuer's `audience`),
//! `sub` (the identity's name), `iat` (now) and `exp` (now + `lifetime`),
//! then the identity's `claims` over them (so a scenario can send a wrong
//! audience, say). It is minted on first use. With `renew`, a fresh one is
//! minted once the current one has reached its last tenth of life (at
//! least its last second): a token is never sent expired. Without, the
//! first token is sent for the whole run, expired or not — how a scenario
//! shows the proxy's 401.

use std::sync::{Arc, Mutex, PoisonError};

use hyper::header::HeaderValue;
use mcp_proxy::platform::WallClock;
use serde_json::{Map, Value};

use super::IssuerKeys;
use crate::clock::ScenarioClock;
use crate::scenario::{ClientAuth, Identity, JwtSpec, Workload};

/// The bearer token of one client (or of every client of one identity:
/// clones share the current token).
#[derive(Clone)]
pub struct Credentials {
    source: Arc<Source>,
}

enum Source {
    Bearer(String),
    Jwt(Minter),
}

struct Minter {
    keys: Arc<IssuerKeys>,
    spec: JwtSpec,
    subject: String,
    /// Scenario time: which key signs.
    scenario: ScenarioClock,
    /// Wall time: `iat` and `exp`.
    wall: Arc<dyn WallClock>,
    current: Mutex<Option<Minted>>,
}

#[derive(Clone)]
struct Minted {
    token: String,
    /// When to mint the next one (with `renew`), in Unix seconds.
    renew_at: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        match &*self.source {
            Source::Bearer(_) => f.write_str("Credentials(bearer)"),
            Source::Jwt(m) => write!(f, "Credentials(jwt for {})", m.subject),
        }
    }
}

impl Credentials {
    /// The credentials of `identity`'s clients: JWTs need the issuer's
    /// `keys` (scenario validation makes sure there are some).
    pub fn of(
        identity: &Identity,
        keys: Option<&Arc<IssuerKeys>>,
        scenario: ScenarioClock,
        wall: Arc<dyn WallClock>,
    ) -> Result<Credentials, String> {
        let source = match &identity.auth {
            ClientAuth::Bearer(token) => Source::Bearer(token.clone()),
            ClientAuth::Jwt(spec) => Source::Jwt(Minter {
                keys: Arc::clone(keys.ok_or_else(|| {
                    format!(
                        "identity {}: a JWT needs the scenario's issuer",
                        identity.name
                    )
                })?),
                spec: spec.clone(),
                subject: identity.name.clone(),
                scenario,
                wall,
                current: Mutex::new(None),
            }),
        };
        Ok(Credentials {
            source: Arc::new(source),
        })
    }

    /// The token to send now (minting or renewing a JWT as needed).
    pub fn token(&self) -> Result<String, String> {
        match &*self.source {
            Source::Bearer(token) => Ok(token.clone()),
            Source::Jwt(minter) => minter.token(),
        }
    }

    /// `Bearer TOKEN`, as a header value.
    pub fn header(&self) -> Result<HeaderValue, String> {
        HeaderValue::try_from(format!("Bearer {}", self.token()?))
            .map_err(|e| format!("the token is no header value: {e}"))
    }
}

/// The credentials of every client of a workload: each client its own
/// (its own JWT, minted and renewed on its own); none for a client no
/// identity covers.
#[derive(Debug, Clone, Default)]
pub struct Callers {
    clients: Vec<Option<Credentials>>,
    /// The first client of each identity, in file order.
    firsts: Vec<usize>,
}

impl Callers {
    /// Anonymous clients.
    pub fn anonymous() -> Callers {
        Callers::default()
    }

    /// The clients of `workload`, with their identities' credentials.
    pub fn of(
        workload: &Workload,
        keys: Option<&Arc<IssuerKeys>>,
        scenario: ScenarioClock,
        wall: &Arc<dyn WallClock>,
    ) -> Result<Callers, String> {
        let mut callers = Callers::default();
        for client in 0..workload.clients {
            let credentials = match workload.identity_of(client) {
                Some(identity) => {
                    if identity.clients.start == client {
                        callers.firsts.push(client);
                    }
                    Some(Credentials::of(identity, keys, scenario, Arc::clone(wall))?)
                }
                None => None,
            };
            callers.clients.push(credentials);
        }
        Ok(callers)
    }

    /// Client `client`'s credentials, if it has any.
    pub fn credentials(&self, client: usize) -> Option<Credentials> {
        self.clients.get(client).cloned().flatten()
    }

    /// The first client of each identity (none: anonymous clients only).
    pub fn first_of_each_identity(&self) -> &[usize] {
        &self.firsts
    }
}

impl Minter {
    fn token(&self) -> Result<String, String> {
        let now = self.wall.unix_seconds();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(minted) if !self.spec.renew || now < minted.renew_at => {
                return Ok(minted.token.clone());
            }
            _ => {}
        }
        let minted = self.mint(now)?;
        *current = Some(minted.clone());
        Ok(minted.token)
    }

    fn mint(&self, now: u64) -> Result<Minted, String> {
        let lifetime = self.spec.lifetime.as_secs();
        let exp = now.saturating_add(lifetime);
        let issuer = self.keys.issuer();
        let mut claims = Map::from_iter([
            ("iss".to_string(), Value::from(issuer.iss.clone())),
            ("aud".to_string(), Value::from(issuer.audience.clone())),
            ("sub".to_string(), Value::from(self.subject.clone())),
            ("iat".to_string(), Value::from(now)),
            ("exp".to_string(), Value::from(exp)),
        ]);
        for (name, value) in &self.spec.claims {
            claims.insert(name.clone(), value.clone());
        }
        let kid = match &self.spec.key {
            Some(kid) => kid.clone(),
            None => self.keys.signing_at(self.scenario.elapsed()),
        };
        // The last tenth of its life, and at least the last second.
        let margin = (lifetime / 10).max(1);
        Ok(Minted {
            token: self.keys.sign(&kid, &claims)?,
            renew_at: exp.saturating_sub(margin),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    /// A wall clock a test sets.
    #[derive(Default)]
    struct Manual(AtomicU64);

    impl WallClock for Manual {
        fn unix_seconds(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn keys() -> Arc<IssuerKeys> {
        let scenario = crate::scenario::load_str(
            "name: t\ndescription: d\nduration: 10s\n\
             fakes: [{ name: f, transport: http, tools: [{ name: a }] }]\n\
             issuer: { name: idp, audience: 'https://mcp.test/mcp', keys: [k1, k2] }\n\
             faults: [{ issuer: idp, at: 5s, rotate_key: { to: k2, keep_old: true } }]\n\
             workload: { closed: { concurrency: 1 }, calls: [{ tool: a }] }\nexpect: []\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        Arc::new(IssuerKeys::of(&scenario, 1).unwrap().unwrap())
    }

    fn identity(renew: bool) -> Identity {
        Identity {
            name: "reader".into(),
            clients: 0..1,
            auth: ClientAuth::Jwt(JwtSpec {
                claims: Map::from_iter([("roles".to_string(), Value::from(vec!["reader"]))]),
                lifetime: Duration::from_secs(30),
                renew,
                key: None,
            }),
        }
    }

    /// Keys, a wall clock at 1,000 s, and the reader's credentials.
    fn minting(renew: bool) -> (Arc<IssuerKeys>, Arc<Manual>, Credentials) {
        let keys = keys();
        let wall = Arc::new(Manual(AtomicU64::new(1_000)));
        let credentials = Credentials::of(
            &identity(renew),
            Some(&keys),
            ScenarioClock::start_now(),
            wall.clone(),
        )
        .unwrap();
        (keys, wall, credentials)
    }

    fn claims(token: &str, keys: &IssuerKeys) -> Map<String, Value> {
        let set: JwkSet = serde_json::from_value(keys.jwks_at(Duration::from_secs(60))).unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["https://mcp.test/mcp"]);
        validation.validate_exp = false;
        jsonwebtoken::decode(
            token,
            &DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap(),
            &validation,
        )
        .unwrap()
        .claims
    }

    #[tokio::test(start_paused = true)]
    async fn a_jwt_carries_the_standard_claims_and_the_identitys() {
        let keys = keys();
        let wall = Arc::new(Manual(AtomicU64::new(1_000)));
        let credentials = Credentials::of(
            &identity(true),
            Some(&keys),
            ScenarioClock::start_now(),
            wall,
        )
        .unwrap();
        let token = credentials.token().unwrap();
        let claims = claims(&token, &keys);
        assert_eq!(claims["iss"], "https://idp.test");
        assert_eq!(claims["aud"], "https://mcp.test/mcp");
        assert_eq!(claims["sub"], "reader");
        assert_eq!(
            (claims["iat"].as_u64(), claims["exp"].as_u64()),
            (Some(1_000), Some(1_030))
        );
        assert_eq!(claims["roles"], serde_json::json!(["reader"]));
        assert!(
            credentials
                .header()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer ey")
        );
        assert_eq!(format!("{credentials:?}"), "Credentials(jwt for reader)");
    }

    #[tokio::test(start_paused = true)]
    async fn renew_mints_before_expiry_and_signs_with_the_rotated_key() {
        let (keys, wall, credentials) = minting(true);
        let first = credentials.token().unwrap();
        wall.0.store(1_026, Ordering::Relaxed);
        assert_eq!(
            credentials.token().unwrap(),
            first,
            "not yet in its last tenth"
        );
        // At 27s of 30 it is renewed; by then (scenario time 6s) k2 signs.
        tokio::time::advance(Duration::from_secs(6)).await;
        wall.0.store(1_027, Ordering::Relaxed);
        let second = credentials.token().unwrap();
        assert_ne!(second, first);
        assert_eq!(claims(&second, &keys)["exp"].as_u64(), Some(1_057));
        assert_eq!(
            jsonwebtoken::decode_header(&second).unwrap().kid.as_deref(),
            Some("k2")
        );
        assert_eq!(
            jsonwebtoken::decode_header(&first).unwrap().kid.as_deref(),
            Some("k1")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_renew_the_expired_token_is_sent_again() {
        let (_, wall, credentials) = minting(false);
        let first = credentials.token().unwrap();
        wall.0.store(5_000, Ordering::Relaxed);
        assert_eq!(credentials.token().unwrap(), first);
    }

    #[test]
    fn a_bearer_token_is_sent_as_it_is_and_a_jwt_needs_keys() {
        let bearer = Identity {
            name: "ci".into(),
            clients: 0..1,
            auth: ClientAuth::Bearer("s3cret".into()),
        };
        let wall: Arc<dyn WallClock> = Arc::new(Manual::default());
        let clock = ScenarioClock::start_now();
        let credentials = Credentials::of(&bearer, None, clock, wall.clone()).unwrap();
        assert_eq!(credentials.header().unwrap(), "Bearer s3cret");
        assert_eq!(format!("{credentials:?}"), "Credentials(bearer)");
        assert!(Credentials::of(&identity(true), None, clock, wall).is_err());
    }
}
