//! The [`Authenticator`] as the front door uses it: headers in, callers or
//! reasons out; JWTs signed with the fixed test keys in `testdata/`; JWK
//! Sets served over the platform's dialer (in memory, on tokio's paused
//! clock) and once over real TCP.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::config::{BearerToken, JwtAuth, JwtKeys, StaticKey};
use crate::platform::{BoxFuture, BoxStream, Dialer, WallClock};

const RSA: &str = include_str!("testdata/rsa.pem");
const RSA_PUB: &str = include_str!("testdata/rsa.pub.pem");
const RSA2: &str = include_str!("testdata/rsa2.pem");
const EC256: &str = include_str!("testdata/ec256.pem");
const EC256_PUB: &str = include_str!("testdata/ec256.pub.pem");
const EC384: &str = include_str!("testdata/ec384.pem");
const EC384_PUB: &str = include_str!("testdata/ec384.pub.pem");
const ED: &str = include_str!("testdata/ed25519.pem");
const ED_PUB: &str = include_str!("testdata/ed25519.pub.pem");

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://issuer.example.com";
const JWKS_URL: &str = "http://issuer.test/jwks.json";
/// The test clock's time of day: 2027-01-15.
const NOW: u64 = 1_800_000_000;

/// A wall clock that says what the test sets.
struct FixedClock(AtomicU64);

impl WallClock for FixedClock {
    fn unix_seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn platform(dialer: Arc<dyn Dialer>, clock: Arc<FixedClock>) -> Platform {
    Platform {
        dialer,
        clock,
        ..Platform::os()
    }
}

fn jwt_config(algorithms: &[&str], keys: JwtKeys) -> AuthConfig {
    AuthConfig {
        method: AuthMethod::Jwt(Box::new(JwtAuth {
            issuer: Some(ISSUER.into()),
            audiences: vec![RESOURCE.into()],
            algorithms: algorithms.iter().map(|a| (*a).into()).collect(),
            leeway: Duration::from_secs(60),
            keys,
            roles_claim: "scope".into(),
            subject_claim: "sub".into(),
        })),
        resource: RESOURCE.into(),
        authorization_servers: vec![ISSUER.into()],
        scopes_supported: vec!["reader".into()],
        rate_limit: None,
    }
}

fn static_keys() -> JwtKeys {
    JwtKeys {
        static_keys: vec![
            StaticKey::Pem {
                pem: RSA_PUB.into(),
                kid: Some("rsa".into()),
            },
            StaticKey::Pem {
                pem: EC256_PUB.into(),
                kid: None,
            },
            StaticKey::Jwk(jwk(EC384_PUB, Algorithm::ES384, Some("p384"))),
            StaticKey::Pem {
                pem: ED_PUB.into(),
                kid: Some("ed".into()),
            },
        ],
        ..JwtKeys::default()
    }
}

/// The public JWK of a public PEM, with `kid`.
fn jwk(public_pem: &str, alg: Algorithm, kid: Option<&str>) -> Value {
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => DecodingKey::from_rsa_pem(public_pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(public_pem.as_bytes()),
        _ => DecodingKey::from_ed_pem(public_pem.as_bytes()),
    }
    .unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_decoding_key(&key, None).unwrap()).unwrap();
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

/// A token signed with `private_pem` (or, for `HS*`, that text as secret).
fn sign(alg: Algorithm, private_pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(private_pem.as_bytes())
        }
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
    }
    .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "alice",
        "scope": "reader writer",
        "exp": NOW + 300,
        "iat": NOW,
    })
}

fn with(claims: Value, changes: Value) -> Value {
    let mut claims = claims;
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn reason<T: std::fmt::Debug>(outcome: Result<T, AuthError>) -> String {
    match outcome {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// An authenticator with the static test keys, on a clock at [`NOW`].
fn static_authenticator(
    algorithms: &[&str],
    keys: JwtKeys,
) -> (Arc<Authenticator>, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock(AtomicU64::new(NOW)));
    let dialer: Arc<dyn Dialer> = Arc::new(crate::platform::TcpDialer);
    let auth = Authenticator::new(
        &jwt_config(algorithms, keys),
        &platform(dialer, Arc::clone(&clock)),
    )
    .unwrap_or_else(|problems| panic!("{problems:?}"));
    (auth, clock)
}

#[tokio::test]
async fn bearer_tokens_authenticate_through_the_header() {
    let config = AuthConfig {
        method: AuthMethod::Bearer(vec![BearerToken {
            token: "reader-token-0123456789".into(),
            subject: "ci-bot".into(),
            scopes: vec!["reader".into()],
        }]),
        ..jwt_config(&[], JwtKeys::default())
    };
    let auth = Authenticator::new(&config, &Platform::os()).expect("a usable config");
    assert_eq!(
        auth.authenticate(Some("bearer reader-token-0123456789"))
            .await,
        Ok(Caller {
            subject: "ci-bot".into(),
            roles: vec!["reader".into()]
        })
    );
    assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
    assert_eq!(
        reason(
            auth.authenticate(Some("Bearer reader-token-012345678"))
                .await
        ),
        "unknown token"
    );
    assert!(
        reason(
            auth.authenticate(Some("Basic reader-token-0123456789"))
                .await
        )
        .contains("Basic")
    );
    assert_eq!(auth.metadata_paths().len(), 2);
    assert_eq!(auth.metadata()["resource"], RESOURCE);
    assert!(
        auth.challenge(&AuthError::Missing)
            .starts_with("Bearer resource_metadata=")
    );
    assert!(
        auth.insufficient_scope(Some("writer"))
            .contains("scope=\"writer\"")
    );
}

#[tokio::test]
async fn each_key_family_verifies_its_own_algorithms() {
    let (auth, _) = static_authenticator(
        &["RS256", "PS384", "ES256", "ES384", "EdDSA"],
        static_keys(),
    );
    let expected = Ok(Caller {
        subject: "alice".into(),
        roles: vec!["reader".into(), "writer".into()],
    });
    for (alg, key, kid) in [
        (Algorithm::RS256, RSA, Some("rsa")),
        (Algorithm::PS384, RSA, Some("rsa")),
        (Algorithm::ES256, EC256, None),
        (Algorithm::ES384, EC384, Some("p384")),
        (Algorithm::EdDSA, ED, Some("ed")),
    ] {
        let token = sign(alg, key, kid, &claims());
        assert_eq!(
            auth.authenticate(Some(&bearer(&token))).await,
            expected,
            "{alg:?}"
        );
    }
    let check = async |alg, key, kid| {
        reason(
            auth.authenticate(Some(&bearer(&sign(alg, key, kid, &claims()))))
                .await,
        )
    };
    for (alg, key, kid, why) in [
        // Allowed algorithm, wrong key family for the kid named.
        (
            Algorithm::ES256,
            EC256,
            Some("rsa"),
            "key rsa (RSA) cannot verify ES256",
        ),
        (
            Algorithm::EdDSA,
            ED,
            None,
            "key without kid (EC P-256) cannot verify EdDSA",
        ),
        // Not on the allow-list.
        (
            Algorithm::RS384,
            RSA,
            Some("rsa"),
            "algorithm RS384 not allowed",
        ),
        // A kid no key has.
        (Algorithm::RS256, RSA, Some("k9"), "unknown key id k9"),
        // Without a kid, only keys without one are tried.
        (
            Algorithm::RS256,
            RSA,
            None,
            "key without kid (EC P-256) cannot verify RS256",
        ),
        // The right kid, signed by another key.
        (
            Algorithm::RS256,
            RSA2,
            Some("rsa"),
            "signature does not verify",
        ),
    ] {
        assert_eq!(check(alg, key, kid).await, why);
    }
}

#[tokio::test]
async fn claims_are_judged_on_the_platform_clock_with_leeway() {
    let (auth, clock) = static_authenticator(&["RS256"], static_keys());
    let check = async |claims: Value| {
        auth.authenticate(Some(&bearer(&sign(
            Algorithm::RS256,
            RSA,
            Some("rsa"),
            &claims,
        ))))
        .await
    };
    let at = |exp: u64| with(claims(), json!({ "exp": exp }));
    assert!(check(at(NOW - 59)).await.is_ok(), "within the leeway");
    assert_eq!(reason(check(at(NOW - 60)).await), "token expired");
    assert_eq!(
        reason(check(with(claims(), json!({"exp": null}))).await),
        "token has no exp"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"exp": "soon"}))).await),
        "exp is not a number"
    );
    assert!(
        check(with(claims(), json!({"nbf": NOW + 60})))
            .await
            .is_ok()
    );
    assert_eq!(
        reason(check(with(claims(), json!({"nbf": NOW + 61}))).await),
        "token not yet valid"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"nbf": "later"}))).await),
        "nbf is not a number"
    );
    // The same token, judged later by the clock the platform gives.
    let token = bearer(&sign(Algorithm::RS256, RSA, Some("rsa"), &at(NOW + 10)));
    assert!(auth.authenticate(Some(&token)).await.is_ok());
    clock.0.store(NOW + 70, Ordering::SeqCst);
    assert_eq!(
        reason(auth.authenticate(Some(&token)).await),
        "token expired"
    );
    clock.0.store(NOW, Ordering::SeqCst);

    assert_eq!(
        reason(check(with(claims(), json!({"iss": "https://evil.example.com"}))).await),
        "issuer not accepted"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"iss": null}))).await),
        "token has no iss"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"iss": [ISSUER]}))).await),
        "issuer not accepted"
    );
    assert!(
        check(with(claims(), json!({"aud": ["other", RESOURCE]})))
            .await
            .is_ok()
    );
    assert_eq!(
        reason(check(with(claims(), json!({"aud": ["other"]}))).await),
        "audience not accepted"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"aud": "https://mcp.example.com"}))).await),
        "audience not accepted"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"aud": 5}))).await),
        "audience not accepted"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"aud": null}))).await),
        "token has no aud"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"sub": 7}))).await),
        "claim sub is not a non-empty string"
    );
    assert_eq!(
        reason(check(with(claims(), json!({"sub": null}))).await),
        "claim sub is not a non-empty string"
    );
    let roles = async |scope: Value| {
        check(with(claims(), json!({ "scope": scope })))
            .await
            .map(|c| c.roles)
    };
    assert_eq!(
        roles(json!(["a", "b c"])).await,
        Ok(vec!["a".to_owned(), "b c".to_owned()])
    );
    assert_eq!(
        roles(json!("  a  b ")).await,
        Ok(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(roles(Value::Null).await, Ok(vec![]));
    assert!(reason(roles(json!(["a", 1])).await).contains("not a string"));
    assert!(reason(roles(json!({"a": 1})).await).contains("neither"));
}

#[tokio::test]
async fn a_public_key_is_never_an_hmac_secret() {
    let keys = static_keys();
    // HS256 allowed, but no secret: an HS256 token signed with the RSA
    // public key's PEM (the classic confusion) finds no key.
    let (auth, _) = static_authenticator(&["RS256", "HS256"], keys.clone());
    let forged = bearer(&sign(Algorithm::HS256, RSA_PUB, Some("rsa"), &claims()));
    assert_eq!(
        reason(auth.authenticate(Some(&forged)).await),
        "no secret configured for HS256"
    );
    // With a secret: only the secret verifies HS*.
    let (auth, _) = static_authenticator(
        &["RS256", "HS256"],
        JwtKeys {
            secret: Some("the-shared-secret-0123456789".into()),
            ..keys
        },
    );
    assert_eq!(
        reason(auth.authenticate(Some(&forged)).await),
        "signature does not verify"
    );
    let genuine = sign(
        Algorithm::HS256,
        "the-shared-secret-0123456789",
        Some("any"),
        &claims(),
    );
    assert!(auth.authenticate(Some(&bearer(&genuine))).await.is_ok());
    // Not allowed at all.
    let (auth, _) = static_authenticator(&["RS256"], static_keys());
    assert_eq!(
        reason(auth.authenticate(Some(&forged)).await),
        "algorithm HS256 not allowed"
    );
}

/// A compact JWS from raw parts.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

#[tokio::test]
async fn unsigned_and_malformed_tokens_say_why() {
    let (auth, _) = static_authenticator(&["RS256"], static_keys());
    let check = async |token: &str| reason(auth.authenticate(Some(&bearer(token))).await);
    assert_eq!(
        check(&raw_token(&json!({"alg": "none"}), &claims(), "")).await,
        "algorithm none not allowed"
    );
    assert_eq!(
        check(&raw_token(&json!({"alg": "None"}), &claims(), "x")).await,
        "algorithm none not allowed"
    );
    assert_eq!(
        check(&raw_token(&json!({"alg": "XS256"}), &claims(), "x")).await,
        "algorithm XS256 not supported"
    );
    assert_eq!(
        check(&raw_token(&json!({"typ": "JWT"}), &claims(), "x")).await,
        "malformed token header: no alg"
    );
    assert_eq!(
        check(&raw_token(
            &json!({"alg": "RS256", "kid": 1}),
            &claims(),
            "x"
        ))
        .await,
        "malformed token header: kid is not a string"
    );
    assert_eq!(
        check(&raw_token(
            &json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"]}),
            &claims(),
            "x"
        ))
        .await,
        "malformed token: unsupported crit or b64 header"
    );
    assert_eq!(
        check("a.b").await,
        "malformed token: not three dot-separated parts"
    );
    assert_eq!(
        check("a.b.c.d").await,
        "malformed token: not three dot-separated parts"
    );
    assert_eq!(
        check("a+b.b.c").await,
        "malformed token header: not base64url"
    );
    assert_eq!(
        check("YQ.b.c").await,
        "malformed token header: not a JSON object"
    );
    let valid = sign(Algorithm::RS256, RSA, Some("rsa"), &claims());
    let (head, _) = valid.rsplit_once('.').unwrap();
    assert_eq!(
        check(&format!("{head}.")).await,
        "signature does not verify"
    );
    assert_eq!(
        check(&format!("{head}.a+b")).await,
        "malformed token: bad base64url or JSON"
    );
}

fn hostile_runtime() -> (tokio::runtime::Runtime, Arc<Authenticator>, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (auth, _) = runtime.block_on(async {
        static_authenticator(
            &["RS256", "ES256", "HS256"],
            JwtKeys {
                secret: Some("the-shared-secret-0123456789".into()),
                ..static_keys()
            },
        )
    });
    let valid = sign(Algorithm::RS256, RSA, Some("rsa"), &claims());
    (runtime, auth, valid)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_headers_never_panic_and_never_pass(
        text in ".{0,300}",
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cut in 0usize..2000,
        at in 0usize..2000,
        replacement in prop::sample::select(b"AZaz09-_.=+/~ ".to_vec()),
        repeat in 1usize..5000,
    ) {
        let (runtime, auth, valid) = hostile_runtime();
        let authenticate = |header: &str| runtime.block_on(auth.authenticate(Some(header)));
        prop_assert!(authenticate(&valid).is_err(), "no scheme");
        prop_assert!(authenticate(&bearer(&valid)).is_ok());
        prop_assert!(authenticate(&text).is_err());
        prop_assert!(authenticate(&bearer(&text)).is_err());
        prop_assert!(authenticate(&bearer(&String::from_utf8_lossy(&bytes))).is_err());
        // Every strict prefix of the valid token.
        let cut = cut % valid.len();
        prop_assert!(authenticate(&bearer(&valid[..cut])).is_err());
        // One character changed.
        let at = at % valid.len();
        let mut changed = valid.clone().into_bytes();
        changed[at] = replacement;
        let changed = String::from_utf8(changed).unwrap();
        if changed != valid {
            prop_assert!(authenticate(&bearer(&changed)).is_err(), "{}", changed);
        }
        // Huge, and made of parts.
        let huge = format!("{}.{}.{}", "e".repeat(repeat), "e".repeat(repeat), "e".repeat(repeat));
        prop_assert!(authenticate(&bearer(&huge)).is_err());
        prop_assert!(authenticate(&bearer(&valid.repeat(repeat.clamp(2, 40)))).is_err());
    }

    #[test]
    fn forged_tokens_are_invalid(
        alg in prop::sample::select(vec!["none", "NONE", "HS256", "HS384", "RS256", "RS512", "ES256", "EdDSA", "PS256", ""]),
        kid in prop::option::of(prop::sample::select(vec!["rsa", "ed", "p384", "zzz", ""])),
        signature in "[A-Za-z0-9_-]{0,400}",
    ) {
        let (runtime, auth, _) = hostile_runtime();
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = raw_token(&header, &claims(), &signature);
        let outcome = runtime.block_on(auth.authenticate(Some(&bearer(&token))));
        prop_assert!(matches!(outcome, Err(AuthError::Invalid(_))), "{:?}", outcome);
        // Signed, but with the wrong key or as an HMAC of a public key.
        for forged in [
            sign(Algorithm::RS256, RSA2, Some("rsa"), &claims()),
            sign(Algorithm::HS256, RSA_PUB, Some("rsa"), &claims()),
            sign(Algorithm::HS256, RSA_PUB, None, &claims()),
            sign(Algorithm::ES384, EC384, Some("p384"), &claims()),
            sign(Algorithm::EdDSA, ED, Some("ed"), &claims()),
        ] {
            let outcome = runtime.block_on(auth.authenticate(Some(&bearer(&forged))));
            prop_assert!(matches!(outcome, Err(AuthError::Invalid(_))), "{:?}", outcome);
        }
    }
}

// ---- JWK Sets over the dialer ----

/// What the in-memory issuer answers.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Body(String),
    /// This status, no body.
    Status(u16),
    /// Refuse the connection (and drop pooled ones).
    Refuse,
    /// Never answer.
    Hang,
}

/// An issuer serving its JWK Set over in-memory connections.
struct Issuer {
    answer: Mutex<Answer>,
    fetches: AtomicUsize,
}

impl Issuer {
    fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            fetches: AtomicUsize::new(0),
        })
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

struct IssuerDialer(Arc<Issuer>);

impl Dialer for IssuerDialer {
    fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxStream>> {
        let issuer = Arc::clone(&self.0);
        let right = host == "issuer.test" && port == 80;
        Box::pin(async move {
            if !right || matches!(*issuer.answer.lock().unwrap(), Answer::Refuse) {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let issuer = Arc::clone(&issuer);
                        async move {
                            assert_eq!(request.uri().path(), "/jwks.json");
                            issuer.fetches.fetch_add(1, Ordering::SeqCst);
                            let answer = issuer.answer.lock().unwrap().clone();
                            match answer {
                                Answer::Body(body) => {
                                    Ok(http::Response::new(Full::new(Bytes::from(body))))
                                }
                                Answer::Status(status) => {
                                    let mut response = http::Response::new(Full::new(Bytes::new()));
                                    *response.status_mut() =
                                        http::StatusCode::from_u16(status).unwrap();
                                    Ok(response)
                                }
                                Answer::Refuse => {
                                    Err(io::Error::from(io::ErrorKind::ConnectionReset))
                                }
                                Answer::Hang => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    Err(io::Error::from(io::ErrorKind::TimedOut))
                                }
                            }
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(server), service)
                    .await;
            });
            Ok(Box::new(client) as BoxStream)
        })
    }
}

fn jwks_body(keys: &[Value]) -> Answer {
    Answer::Body(json!({ "keys": keys }).to_string())
}

fn rsa_jwk(kid: &str) -> Value {
    jwk(RSA_PUB, Algorithm::RS256, Some(kid))
}

/// An authenticator whose keys come from `issuer` only (TTL 5 min, refetch
/// at most every 10 s).
fn jwks_authenticator(issuer: &Arc<Issuer>) -> Arc<Authenticator> {
    let keys = JwtKeys {
        jwks_url: Some(JWKS_URL.into()),
        jwks_ttl: Duration::from_secs(300),
        jwks_min_refetch: Duration::from_secs(10),
        ..JwtKeys::default()
    };
    let clock = Arc::new(FixedClock(AtomicU64::new(NOW)));
    Authenticator::new(
        &jwt_config(&["RS256", "ES256"], keys),
        &platform(Arc::new(IssuerDialer(Arc::clone(issuer))), clock),
    )
    .unwrap_or_else(|problems| panic!("{problems:?}"))
}

fn rs256(kid: &str) -> String {
    bearer(&sign(Algorithm::RS256, RSA, Some(kid), &claims()))
}

#[tokio::test(start_paused = true)]
async fn the_set_is_fetched_once_and_cached_for_its_ttl() {
    let issuer = Issuer::new(jwks_body(&[rsa_jwk("k1")]));
    let auth = jwks_authenticator(&issuer);
    let outcomes = futures_util::future::join_all((0..5).map(|_| async {
        let token = rs256("k1");
        auth.authenticate(Some(&token)).await
    }))
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        issuer.fetches(),
        1,
        "the prefetch and the first requests share one fetch"
    );
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    assert_eq!(issuer.fetches(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    assert_eq!(issuer.fetches(), 2, "fetched again after the TTL");
}

#[tokio::test(start_paused = true)]
async fn a_new_kid_refetches_at_most_once_per_min_refetch() {
    let issuer = Issuer::new(jwks_body(&[rsa_jwk("k1")]));
    let auth = jwks_authenticator(&issuer);
    assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    assert_eq!(issuer.fetches(), 1);
    // The issuer rotates to k2.
    issuer.set(jwks_body(&[rsa_jwk("k1"), rsa_jwk("k2")]));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(auth.authenticate(Some(&rs256("k2"))).await.is_ok());
    assert_eq!(issuer.fetches(), 2, "the unknown kid fetched the set again");
    // Made-up kids: refused without a fetch until min_refetch has passed.
    for _ in 0..20 {
        assert_eq!(
            reason(auth.authenticate(Some(&rs256("k3"))).await),
            "unknown key id k3"
        );
    }
    assert_eq!(issuer.fetches(), 2);
    tokio::time::advance(Duration::from_secs(10)).await;
    // Many requests with unknown kids at once share one fetch.
    let auth = &auth;
    let outcomes = futures_util::future::join_all((0..10).map(|n| async move {
        let token = rs256(&format!("x{n}"));
        auth.authenticate(Some(&token)).await
    }))
    .await;
    assert!(outcomes.iter().all(Result::is_err));
    assert_eq!(issuer.fetches(), 3);
    // Known kids never wait for a fetch.
    assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    assert_eq!(issuer.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_issuer_keeps_the_last_good_keys() {
    let issuer = Issuer::new(jwks_body(&[rsa_jwk("k1")]));
    let auth = jwks_authenticator(&issuer);
    assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    for (n, answer) in [
        Answer::Refuse,
        Answer::Status(503),
        Answer::Body("<html>".into()),
        Answer::Hang,
    ]
    .into_iter()
    .enumerate()
    {
        issuer.set(answer);
        // Past the TTL: every request tries, at most once per 10 s.
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(
            auth.authenticate(Some(&rs256("k1"))).await.is_ok(),
            "answer {n}"
        );
        assert_eq!(
            reason(auth.authenticate(Some(&rs256("k2"))).await),
            "unknown key id k2"
        );
    }
    // Back: the set is fetched again.
    issuer.set(jwks_body(&[rsa_jwk("k2")]));
    tokio::time::advance(Duration::from_secs(301)).await;
    assert!(auth.authenticate(Some(&rs256("k2"))).await.is_ok());
    assert_eq!(
        reason(auth.authenticate(Some(&rs256("k1"))).await),
        "unknown key id k1"
    );
}

#[tokio::test(start_paused = true)]
async fn before_a_good_fetch_tokens_fail_saying_why() {
    for (answer, why) in [
        (Answer::Refuse, "keys not available: request failed"),
        (Answer::Status(500), "keys not available: answered 500"),
        (
            Answer::Body("{\"keys\": 1}".into()),
            "keys not available: not a JWK Set",
        ),
        (Answer::Body("[".into()), "keys not available: not JSON"),
        (
            jwks_body(&[json!({"kty": "oct", "k": "AAAA"})]),
            "keys not available: none of its 1 keys",
        ),
        (Answer::Hang, "keys not available: no answer within 5s"),
    ] {
        let issuer = Issuer::new(answer);
        let auth = jwks_authenticator(&issuer);
        let got = reason(auth.authenticate(Some(&rs256("k1"))).await);
        assert!(got.starts_with(why), "{got}");
        assert!(issuer.fetches() <= 1);
        // It recovers once the issuer does, after min_refetch.
        issuer.set(jwks_body(&[rsa_jwk("k1")]));
        assert!(auth.authenticate(Some(&rs256("k1"))).await.is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_jwks_key_of_the_wrong_family_is_refused() {
    let issuer = Issuer::new(jwks_body(&[
        jwk(EC256_PUB, Algorithm::ES256, Some("k1")),
        {
            let mut key = rsa_jwk("ps");
            key["alg"] = json!("PS256");
            key
        },
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "skipped"}),
    ]));
    let auth = jwks_authenticator(&issuer);
    assert_eq!(
        reason(auth.authenticate(Some(&rs256("k1"))).await),
        "key k1 (EC P-256) cannot verify RS256"
    );
    assert!(
        auth.authenticate(Some(&bearer(&sign(
            Algorithm::ES256,
            EC256,
            Some("k1"),
            &claims()
        ))))
        .await
        .is_ok()
    );
    // The JWK's own alg narrows its family.
    assert_eq!(
        reason(auth.authenticate(Some(&rs256("ps"))).await),
        "key ps (RSA) cannot verify RS256"
    );
    // A key that could not be used was skipped (and is unknown).
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        reason(auth.authenticate(Some(&rs256("skipped"))).await),
        "unknown key id skipped"
    );
}

#[tokio::test]
async fn the_set_is_fetched_over_real_tcp() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [rsa_jwk("k1")] })))
        .expect(1)
        .mount(&server)
        .await;
    let keys = JwtKeys {
        jwks_url: Some(format!("{}/jwks.json", server.uri())),
        jwks_ttl: Duration::from_secs(300),
        jwks_min_refetch: Duration::from_secs(10),
        ..JwtKeys::default()
    };
    let clock = Arc::new(FixedClock(AtomicU64::new(NOW)));
    let auth = Authenticator::new(
        &jwt_config(&["RS256"], keys),
        &platform(Arc::new(crate::platform::TcpDialer), clock),
    )
    .expect("a usable config");
    for _ in 0..3 {
        assert!(auth.authenticate(Some(&rs256("k1"))).await.is_ok());
    }
    // Dropping the server checks it was asked exactly once.
}

#[test]
fn an_unusable_config_is_refused_with_its_problems() {
    let keys = JwtKeys {
        static_keys: vec![StaticKey::Pem {
            pem: "garbage".into(),
            kid: None,
        }],
        jwks_url: Some("ftp://x/".into()),
        secret: Some(String::new()),
        ..JwtKeys::default()
    };
    let problems = match Authenticator::new(
        &jwt_config(&["RS256", "none", "RS999"], keys),
        &Platform::os(),
    ) {
        Ok(_) => panic!("accepted"),
        Err(problems) => problems,
    };
    assert_eq!(problems.len(), 5, "{problems:?}");
}
