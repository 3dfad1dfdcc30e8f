//! The issuer's keys: one Ed25519 key per key id, derived from the run's
//! seed, and the rotation plan that says which key signs and which are
//! published at each moment of the scenario.
//!
//! At the start the first key of `issuer.keys` is published and signs.
//! Each `rotate_key: { to, keep_old }` fault, at its `at` (in time order,
//! file order for ties), publishes `to`, makes it the signing key, and —
//! with `keep_old: false` — takes the key that signed before it out of the
//! JWKS. The client minting a token and the JWKS server answering a fetch
//! each read the plan at their own moment; they share no state, so they
//! can run on different (simulated) hosts.

use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::{Map, Value, json};

use crate::scenario::{FaultAction, Issuer, Scenario, Trigger};

/// Keeps the issuer's key draws apart from other users of the seed.
const STREAM: u64 = 0x6973_7375_6572_6b00; // "issuerk\0"

/// One key of the issuer.
struct Key {
    kid: String,
    /// PKCS#8 DER of the private key, as jsonwebtoken signs with it.
    private_der: Vec<u8>,
    /// The raw 32-byte public key (the JWK's `x`).
    public: Vec<u8>,
}

/// One `rotate_key` fault.
#[derive(Debug, Clone)]
struct Rotation {
    at: Duration,
    to: String,
    keep_old: bool,
}

/// The issuer's keys and rotation plan for one run.
pub struct IssuerKeys {
    issuer: Issuer,
    keys: Vec<Key>,
    rotations: Vec<Rotation>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("issuer", &self.issuer.name)
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("rotations", &self.rotations)
            .finish()
    }
}

impl IssuerKeys {
    /// The keys of `scenario`'s issuer for a run with `seed`; `None` when
    /// the scenario has no issuer. `Err` only if the crypto library refuses
    /// a derived key, which it does not for 32 seed bytes.
    pub fn of(scenario: &Scenario, seed: u64) -> Result<Option<IssuerKeys>, String> {
        let Some(issuer) = &scenario.issuer else {
            return Ok(None);
        };
        let mut rotations: Vec<Rotation> = scenario
            .faults
            .iter()
            .filter(|f| f.fake == issuer.name)
            .filter_map(|f| match (&f.trigger, &f.action) {
                (Trigger::Time { at, .. }, FaultAction::RotateKey { to, keep_old }) => {
                    Some(Rotation {
                        at: *at,
                        to: to.clone(),
                        keep_old: *keep_old,
                    })
                }
                _ => None,
            })
            .collect();
        // Stable: rotations at the same moment apply in file order.
        rotations.sort_by_key(|r| r.at);
        Self::new(issuer.clone(), rotations, seed).map(Some)
    }

    fn new(issuer: Issuer, rotations: Vec<Rotation>, seed: u64) -> Result<IssuerKeys, String> {
        let mut rng = StdRng::seed_from_u64(seed ^ STREAM);
        let mut keys = Vec::new();
        for kid in &issuer.keys {
            let mut seed_bytes = [0u8; 32];
            rng.fill_bytes(&mut seed_bytes);
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed_bytes)
                .map_err(|e| format!("key {kid}: {e}"))?;
            let private_der = pair
                .to_pkcs8()
                .map_err(|e| format!("key {kid}: {e}"))?
                .as_ref()
                .to_vec();
            keys.push(Key {
                kid: kid.clone(),
                private_der,
                public: pair.public_key().as_ref().to_vec(),
            });
        }
        Ok(IssuerKeys {
            issuer,
            keys,
            rotations,
        })
    }

    /// The issuer's name.
    pub fn name(&self) -> &str {
        &self.issuer.name
    }

    /// The issuer as the scenario declares it.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The signing key and the published keys at scenario time `t`.
    fn state_at(&self, t: Duration) -> (String, Vec<String>) {
        let first = self.issuer.keys.first().cloned().unwrap_or_default();
        let mut signing = first.clone();
        let mut published = vec![first];
        for rotation in self.rotations.iter().take_while(|r| r.at <= t) {
            if !published.contains(&rotation.to) {
                published.push(rotation.to.clone());
            }
            if !rotation.keep_old && signing != rotation.to {
                published.retain(|kid| kid != &signing);
            }
            signing = rotation.to.clone();
        }
        (signing, published)
    }

    /// The key id that signs tokens minted at scenario time `t`.
    pub fn signing_at(&self, t: Duration) -> String {
        self.state_at(t).0
    }

    /// The key ids the JWKS publishes at scenario time `t`, oldest first.
    pub fn published_at(&self, t: Duration) -> Vec<String> {
        self.state_at(t).1
    }

    /// The JWK Set the JWKS server answers with at scenario time `t`.
    pub fn jwks_at(&self, t: Duration) -> Value {
        let keys: Vec<Value> = self
            .published_at(t)
            .iter()
            .filter_map(|kid| self.key(kid))
            .map(|key| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(&key.public),
                    "kid": key.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    fn key(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// A JWT with `claims`, signed with key `kid` (EdDSA, `kid` in its
    /// header).
    pub fn sign(&self, kid: &str, claims: &Map<String, Value>) -> Result<String, String> {
        let key = self
            .key(kid)
            .ok_or_else(|| format!("issuer {} has no key {kid:?}", self.issuer.name))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.private_der))
            .map_err(|e| format!("signing with key {kid}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn issuer() -> Issuer {
        Issuer {
            name: "idp".into(),
            iss: "https://idp.test".into(),
            audience: "https://mcp.test/mcp".into(),
            keys: vec!["k1".into(), "k2".into(), "k3".into()],
            port: 0,
        }
    }

    fn rotation(at_s: u64, to: &str, keep_old: bool) -> Rotation {
        Rotation {
            at: Duration::from_secs(at_s),
            to: to.into(),
            keep_old,
        }
    }

    pub(crate) fn keys(seed: u64) -> IssuerKeys {
        IssuerKeys::new(
            issuer(),
            vec![rotation(10, "k2", true), rotation(20, "k3", false)],
            seed,
        )
        .unwrap()
    }

    #[test]
    fn rotations_publish_the_new_key_and_keep_or_drop_the_old() {
        let keys = keys(1);
        let at = |s| Duration::from_secs(s);
        assert_eq!(keys.signing_at(at(0)), "k1");
        assert_eq!(keys.published_at(at(9)), ["k1"]);
        assert_eq!(keys.signing_at(at(10)), "k2");
        assert_eq!(keys.published_at(at(10)), ["k1", "k2"]);
        // keep_old: false drops k2 (the key that signed before), not k1.
        assert_eq!(keys.signing_at(at(25)), "k3");
        assert_eq!(keys.published_at(at(25)), ["k1", "k3"]);
    }

    #[test]
    fn keys_come_from_the_seed() {
        let jwks = |seed| keys(seed).jwks_at(Duration::ZERO);
        assert_eq!(jwks(7), jwks(7));
        assert_ne!(jwks(7), jwks(8));
        let set = jwks(7);
        assert_eq!(set["keys"][0]["kid"], "k1");
        assert_eq!(set["keys"][0]["crv"], "Ed25519");
        assert_eq!(set["keys"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_jwk_and_no_other() {
        let keys = keys(3);
        let claims = Map::from_iter([
            ("sub".to_string(), Value::from("reader")),
            ("exp".to_string(), Value::from(4_000_000_000u64)),
        ]);
        let token = keys.sign("k2", &claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::EdDSA, Some("k2"))
        );
        let set: JwkSet = serde_json::from_value(keys.jwks_at(Duration::from_secs(10))).unwrap();
        let jwk = set.find("k2").expect("k2 is published at 10s");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_aud = false;
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "reader");
        // k1's key does not verify a token k2 signed.
        let k1 = set.find("k1").unwrap();
        assert!(
            jsonwebtoken::decode::<Map<String, Value>>(
                &token,
                &DecodingKey::from_jwk(k1).unwrap(),
                &validation
            )
            .is_err()
        );
        assert!(keys.sign("k9", &claims).is_err());
    }
}
