//! Verification keys, and which algorithms each may verify.
//!
//! A key is parsed once (from a PEM, a JWK, or the HMAC secret) into a
//! [`VerifyKey`] that knows its [`KeyKind`]. The verifier only ever pairs a
//! token's `alg` with a key whose kind can verify it (an RSA key: `RS*` and
//! `PS*`; EC P-256: `ES256`; P-384: `ES384`; Ed25519: `EdDSA`; the secret:
//! `HS*`). So a public key can never be used as an HMAC secret (the
//! classic `alg` confusion), and a JWK's own `alg`, when it names one,
//! narrows it further.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// What a key is, as far as choosing algorithms goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    /// An RSA public key.
    Rsa,
    /// An EC public key on P-256.
    EcP256,
    /// An EC public key on P-384.
    EcP384,
    /// An Ed25519 public key.
    Ed25519,
    /// The HMAC secret.
    Hmac,
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg`.
    pub(super) fn can_verify(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::EcP256 => alg == ES256,
            Self::EcP384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
            Self::Hmac => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    /// Its name, for reasons and logs.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
            Self::Hmac => "HMAC secret",
        }
    }
}

/// One key a JWT's signature may be checked with.
#[derive(Clone)]
pub(super) struct VerifyKey {
    /// The `kid` it answers to; `None`: tried for tokens without a `kid`.
    pub kid: Option<String>,
    /// Its kind.
    pub kind: KeyKind,
    /// The one algorithm it is for, when its JWK says so.
    pub alg: Option<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Whether this key may verify `alg`.
    pub(super) fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.can_verify(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// A public key in PEM: RSA, EC (P-256 or P-384) or Ed25519.
    pub(super) fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, String> {
        let bytes = pem.as_bytes();
        let (kind, key) = if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            (KeyKind::Rsa, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            // The PEM's content is the curve point: 0x04 || x || y.
            let kind = match key.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => KeyKind::EcP256,
                Ok(97) => KeyKind::EcP384,
                _ => return Err("EC key on a curve other than P-256 or P-384".into()),
            };
            (kind, key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
            (KeyKind::Ed25519, key)
        } else {
            return Err("not a PEM public key (RSA, EC P-256/P-384 or Ed25519)".into());
        };
        Ok(Self {
            kid,
            kind,
            alg: None,
            key,
        })
    }

    /// The HMAC secret (`HS*` only).
    pub(super) fn from_secret(secret: &str) -> Result<Self, String> {
        let key = DecodingKey::from_secret(secret.as_bytes())
            .map_err(|error| format!("unusable secret: {error}"))?;
        Ok(Self {
            kid: None,
            kind: KeyKind::Hmac,
            alg: None,
            key,
        })
    }

    /// A public JWK (RFC 7517): `kty` RSA, EC (P-256, P-384) or OKP
    /// (Ed25519). Symmetric (`oct`) keys are refused: the secret is
    /// configured as `secret`, never taken from a key set.
    pub(super) fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let Some(fields) = jwk.as_object() else {
            return Err("a JWK is not a JSON object".into());
        };
        let text = |name: &str| -> Result<&str, String> {
            fields
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("JWK has no string `{name}`"))
        };
        let optional = |name: &str| -> Result<Option<&str>, String> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(value)) => Ok(Some(value)),
                Some(_) => Err(format!("JWK `{name}` is not a string")),
            }
        };
        let kid = optional("kid")?.map(str::to_owned);
        let named = |reason: String| match &kid {
            Some(kid) => format!("key {kid}: {reason}"),
            None => reason,
        };
        if let Some(usage) = optional("use").map_err(&named)?
            && usage != "sig"
        {
            return Err(named(format!("use is {usage:?}, not \"sig\"")));
        }
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            URL_SAFE_NO_PAD
                .decode(text(name)?)
                .map_err(|_| format!("JWK `{name}` is not base64url"))
        };
        let (kind, key) = match text("kty").map_err(&named)? {
            "RSA" => {
                let n = bytes("n").map_err(&named)?;
                let e = bytes("e").map_err(&named)?;
                let bits = rsa_bits(&n);
                if bits < 2048 {
                    return Err(named(format!("RSA key of {bits} bits (2048 at least)")));
                }
                if e.iter().all(|&b| b == 0) {
                    return Err(named("RSA exponent is zero".into()));
                }
                (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            "EC" => {
                let (kind, size) = match text("crv").map_err(&named)? {
                    "P-256" => (KeyKind::EcP256, 32),
                    "P-384" => (KeyKind::EcP384, 48),
                    other => return Err(named(format!("unsupported EC curve {other:?}"))),
                };
                let x = bytes("x").map_err(&named)?;
                let y = bytes("y").map_err(&named)?;
                if x.len() != size || y.len() != size {
                    return Err(named("EC coordinates of the wrong length".into()));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (kind, DecodingKey::from_ec_der(&point))
            }
            "OKP" => {
                let crv = text("crv").map_err(&named)?;
                if crv != "Ed25519" {
                    return Err(named(format!("unsupported OKP curve {crv:?}")));
                }
                let x = bytes("x").map_err(&named)?;
                if x.len() != 32 {
                    return Err(named("Ed25519 key of the wrong length".into()));
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
            }
            "oct" => return Err(named("symmetric keys are not taken from a JWK".into())),
            other => return Err(named(format!("unsupported key type {other:?}"))),
        };
        let alg = match optional("alg").map_err(&named)? {
            None => None,
            Some(name) => {
                let alg = parse_algorithm(name)
                    .ok_or_else(|| named(format!("unsupported algorithm {name:?}")))?;
                if !kind.can_verify(alg) {
                    return Err(named(format!(
                        "alg {name} does not fit a {} key",
                        kind.name()
                    )));
                }
                Some(alg)
            }
        };
        Ok(Self {
            kid,
            kind,
            alg,
            key,
        })
    }
}

/// The algorithm named `name` (`RS256`, `ES256`, `EdDSA`, ...); `None` for
/// `none` and for names this build cannot verify.
pub(super) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

/// The bit length of an RSA modulus given big-endian.
fn rsa_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(first) => &modulus[first..],
        None => &[],
    };
    match significant.first() {
        Some(&top) => significant.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RSA_PUB: &str = include_str!("testdata/rsa.pub.pem");
    const EC256_PUB: &str = include_str!("testdata/ec256.pub.pem");
    const EC384_PUB: &str = include_str!("testdata/ec384.pub.pem");
    const ED_PUB: &str = include_str!("testdata/ed25519.pub.pem");

    #[test]
    fn pem_keys_know_their_kind_and_verify_only_their_family() {
        let kind = |pem| VerifyKey::from_pem(pem, None).map(|k| k.kind);
        assert_eq!(kind(RSA_PUB), Ok(KeyKind::Rsa));
        assert_eq!(kind(EC256_PUB), Ok(KeyKind::EcP256));
        assert_eq!(kind(EC384_PUB), Ok(KeyKind::EcP384));
        assert_eq!(kind(ED_PUB), Ok(KeyKind::Ed25519));
        assert!(kind("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
        assert!(kind("not a pem").is_err());

        use Algorithm::*;
        let all = [
            HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ];
        let verifiable = |kind: KeyKind| {
            all.iter()
                .filter(|alg| kind.can_verify(**alg))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            verifiable(KeyKind::Rsa),
            [RS256, RS384, RS512, PS256, PS384, PS512]
        );
        assert_eq!(verifiable(KeyKind::EcP256), [ES256]);
        assert_eq!(verifiable(KeyKind::EcP384), [ES384]);
        assert_eq!(verifiable(KeyKind::Ed25519), [EdDSA]);
        assert_eq!(verifiable(KeyKind::Hmac), [HS256, HS384, HS512]);
        assert_eq!(parse_algorithm("none"), None);
        assert_eq!(parse_algorithm("RS256"), Some(RS256));
    }

    #[test]
    fn jwks_of_each_type_parse_and_bad_ones_say_why() {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let n = {
            let mut n = vec![0xC0u8; 256];
            n[255] = 1;
            n
        };
        let rsa = VerifyKey::from_jwk(
            &json!({"kty": "RSA", "kid": "r", "n": b64(&n), "e": "AQAB", "alg": "PS256", "use": "sig"}),
        )
        .unwrap();
        assert_eq!(
            (rsa.kid.as_deref(), rsa.kind, rsa.alg),
            (Some("r"), KeyKind::Rsa, Some(Algorithm::PS256))
        );
        assert!(rsa.accepts(Algorithm::PS256));
        assert!(!rsa.accepts(Algorithm::RS256));

        let ec = VerifyKey::from_jwk(
            &json!({"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48])}),
        )
        .unwrap();
        assert_eq!((ec.kid, ec.kind), (None, KeyKind::EcP384));
        let ed = VerifyKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[3; 32])}))
            .unwrap();
        assert_eq!(ed.kind, KeyKind::Ed25519);

        let error = |jwk: Value| VerifyKey::from_jwk(&jwk).unwrap_err();
        assert!(error(json!({"kty": "oct", "k": "c2VjcmV0"})).contains("symmetric"));
        assert!(
            error(json!({"kty": "RSA", "n": b64(&[0xFF; 128]), "e": "AQAB"})).contains("1024 bits")
        );
        assert!(
            error(json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})).contains("P-521")
        );
        assert!(
            error(json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[1; 32])}))
                .contains("length")
        );
        assert!(error(json!({"kty": "OKP", "crv": "Ed448", "x": "AA"})).contains("Ed448"));
        assert!(error(json!({"kty": "OKP", "crv": "Ed25519", "x": "!!"})).contains("base64url"));
        assert!(
            error(json!({"kty": "RSA", "kid": "k9", "n": b64(&n), "e": "AQAB", "use": "enc"}))
                .starts_with("key k9:")
        );
        assert!(
            error(json!({"kty": "RSA", "n": b64(&n), "e": "AQAB", "alg": "ES256"}))
                .contains("does not fit")
        );
        assert!(
            error(json!({"kty": "RSA", "n": b64(&n), "e": "AQAB", "alg": "none"}))
                .contains("unsupported algorithm")
        );
        assert!(error(json!({"kty": 5})).contains("kty"));
        assert!(error(json!({"kty": "RSA", "kid": 5})).contains("kid"));
        assert!(error(json!("RSA")).contains("object"));
    }

    #[test]
    fn rsa_bit_lengths_ignore_leading_zeros() {
        assert_eq!(rsa_bits(&[0, 0, 1]), 1);
        assert_eq!(rsa_bits(&[0x80, 0]), 16);
        assert_eq!(rsa_bits(&[0, 0]), 0);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
