//! JWT authentication end to end, configured as an operator writes it:
//! the proxy fetches its keys from a real JWKS server on 127.0.0.1, takes a
//! token whose roles claim names its role, and refuses expired tokens,
//! tokens for another audience and tokens signed by a key it does not
//! trust; a key rotation is picked up by the unknown `kid`, and while the
//! JWKS is down the keys it already has keep working.
//!
//! The keys are Ed25519 test keys (`tests/fixtures/jwt/`, made with
//! `openssl genpkey -algorithm ed25519`); the tokens are minted here with
//! the `jsonwebtoken` crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::proxy;
use crate::support::{RawClient, TestBackend};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://issuer.example.com";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The public JWK of an Ed25519 key: its SPKI PEM ends with the 32 bytes
/// of the public key.
fn jwk(kid: &str) -> Value {
    let pem = fixture(&format!("{kid}.public.pem"));
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body is base64");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A token signed by `kid` with these claims over the standard ones.
fn token(kid: &str, claims: Value) -> String {
    signed(kid, kid, claims)
}

/// A token signed by the key `key` whose header names `kid`.
fn signed(key: &str, kid: &str, claims: Value) -> String {
    let mut all = json!({
        "iss": ISSUER, "aud": RESOURCE, "sub": "jay", "roles": ["reader"],
        "iat": now(), "exp": now() + 300,
    });
    for (key, value) in claims.as_object().cloned().unwrap_or_default() {
        all[key] = value;
    }
    let key = EncodingKey::from_ed_pem(fixture(&format!("{key}.private.pem")).as_bytes())
        .expect("an Ed25519 private key");
    let header = Header {
        kid: Some(kid.to_owned()),
        ..Header::new(Algorithm::EdDSA)
    };
    jsonwebtoken::encode(&header, &all, &key).expect("a token encodes")
}

/// A JWKS server: publishes the keys it is told, counts fetches, and can
/// be made to fail (503) as an identity provider in an outage.
struct Jwks {
    url: String,
    published: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    server: tokio::task::JoinHandle<()>,
}

impl Jwks {
    async fn start(kids: &[&str]) -> Self {
        let published = Arc::new(std::sync::Mutex::new(
            kids.iter().map(|kid| jwk(kid)).collect::<Vec<_>>(),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (keys, count, outage) = (published.clone(), fetches.clone(), down.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (keys, count, outage) = (keys.clone(), count.clone(), outage.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    if outage.load(Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
                    }
                    let keys = keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    (StatusCode::OK, axum::Json(json!({ "keys": keys })))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            published,
            fetches,
            down,
            server,
        }
    }

    fn publish(&self, kids: &[&str]) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) =
            kids.iter().map(|kid| jwk(kid)).collect();
    }
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What a request with `token` gets: the HTTP status and the challenge.
async fn initialize_with(
    proxy: &mcp_proxy::server::RunningProxy,
    token: &str,
) -> (StatusCode, String) {
    let client = RawClient::new(proxy.url());
    client.set_bearer(Some(token));
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": { "name": "jwt-test", "version": "0" } },
    });
    let answer = client
        .post_raw(body.to_string(), &client.standard_headers())
        .await;
    let challenge = answer
        .header("www-authenticate")
        .unwrap_or_default()
        .to_owned();
    (answer.status, challenge)
}

#[tokio::test]
async fn jwts_are_checked_against_the_jwks_through_rotation_and_outage() {
    let backend = TestBackend::start_named("alpha").await;
    let jwks = Jwks::start(&["k1"]).await;
    let text = format!(
        "\
proxy:
  listen: 127.0.0.1:0
auth:
  resource: {RESOURCE}
  jwt:
    issuer: {ISSUER}
    algorithms: [EdDSA]
    leeway: 5s
    jwks_url: {}
    jwks_ttl: 1h
    jwks_min_refetch: 2s
    roles_claim: roles
authorization:
  default: deny
  roles:
    reader:
      - allow: {{ backend: alpha, tools: [echo] }}
backends:
  - name: alpha
    transport: http
    url: {}
",
        jwks.url,
        backend.url()
    );
    let proxy = proxy::start_yaml(&text).await;

    let client = RawClient::new(proxy.url());
    client.set_bearer(Some(&token("k1", json!({}))));
    client.initialize().await;
    let listed = client.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["alpha/echo"],
        "the roles claim gave the reader role"
    );
    let echo = client
        .call_tool("alpha/echo", json!({ "message": "signed" }))
        .await;
    assert_eq!(echo["result"]["content"][0]["text"], "signed", "{echo}");
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "the keys were fetched once"
    );

    for (why, bad) in [
        (
            "expired",
            token("k1", json!({ "exp": now() - 60, "iat": now() - 120 })),
        ),
        (
            "another audience",
            token("k1", json!({ "aud": "https://other.example.com/mcp" })),
        ),
        (
            "another issuer",
            token("k1", json!({ "iss": "https://evil.example.com" })),
        ),
    ] {
        let (status, challenge) = initialize_with(&proxy, &bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{why}: {challenge}"
        );
    }

    // k2 is not published yet: its kid is unknown even after a refetch.
    let (status, _) = initialize_with(&proxy, &token("k2", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an untrusted key");
    // The identity provider rotates: k2 is published, and the next token
    // signed by it is taken after one more fetch (once the refetch pause
    // of 2 s has passed).
    jwks.publish(&["k1", "k2"]);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (status, _) = initialize_with(&proxy, &token("k2", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "the rotated key is trusted");

    // The JWKS goes down: the keys already fetched keep working.
    jwks.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    for kid in ["k1", "k2"] {
        let (status, _) = initialize_with(&proxy, &token(kid, json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{kid} while the JWKS is down");
    }
    // An unknown kid meanwhile asks the JWKS again (and is refused).
    let fetches = jwks.fetches.load(Ordering::SeqCst);
    let (status, _) = initialize_with(&proxy, &signed("k1", "k9", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), fetches + 1);
    // ... but not more than once per jwks_min_refetch.
    let (status, _) = initialize_with(&proxy, &signed("k1", "k8", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), fetches + 1);
    proxy.shutdown().await;
}
