//! The JWK Set at `jwt.jwks_url`: fetched, cached, refetched on rotation.
//!
//! Fetched over the proxy's own HTTP client, whose connections come from
//! the platform's dialer (`upstream/connector.rs`), so a simulation serves
//! it like any backend. Everything is timed on tokio's clock.
//!
//! - The set is kept for `jwks_ttl`; a request that needs it after that
//!   fetches it again.
//! - A token naming a `kid` the set lacks (a rotated issuer key) fetches it
//!   again at once, but fetches start at most once per `jwks_min_refetch`,
//!   so tokens with made-up `kid`s cannot turn the proxy into a load
//!   generator against the issuer.
//! - Requests that need a fetch at the same time share it: they queue on
//!   one lock, the first fetches, the rest find its result.
//! - A fetch that fails (refused, not 200, not a JWK Set, over 5 s) keeps
//!   the last good set and logs a warning; before any good fetch, tokens
//!   that need the set fail with `keys not available: <why>`.
//! - A key the proxy cannot use is skipped with a warning; a set with no
//!   usable key at all counts as a failed fetch.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::Value;
use tokio::time::Instant;

use super::keys::VerifyKey;
use crate::platform::Dialer;
use crate::upstream::connector::{self, HttpClient};
use crate::upstream::http::error_chain;

/// How long one fetch (connecting, TLS, the answer and its body) may take.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest JWK Set read (a set of a few keys is a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The keys of one `jwks_url`.
pub(super) struct Jwks {
    url: String,
    uri: http::Uri,
    ttl: Duration,
    min_refetch: Duration,
    client: HttpClient,
    /// The last good set; read without waiting.
    current: Mutex<Current>,
    /// Held by the one fetch under way; when the last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Current {
    keys: Option<Arc<[VerifyKey]>>,
    /// When `keys` were fetched.
    fetched: Option<Instant>,
    /// Why the last fetch failed, if it did.
    error: Option<String>,
}

impl Jwks {
    /// The set at `url`, fetched through `dialer`.
    pub(super) fn new(
        url: &str,
        ttl: Duration,
        min_refetch: Duration,
        dialer: Arc<dyn Dialer>,
    ) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|error| format!("jwks_url {url:?} is not a URL: {error}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!("jwks_url {url:?} is not an http(s) URL"));
        }
        Ok(Self {
            url: url.to_owned(),
            uri,
            ttl,
            min_refetch,
            client: connector::client(dialer, FETCH_TIMEOUT),
            current: Mutex::new(Current::default()),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// The keys to check a token naming `kid` with: the cached set while
    /// it is fresh and (for a `kid`) names it; else a new fetch, when one
    /// may start; else the last good set.
    pub(super) async fn keys(&self, kid: Option<&str>) -> Result<Arc<[VerifyKey]>, String> {
        if let Some(keys) = self.satisfying(kid) {
            return Ok(keys);
        }
        let mut last_start = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(keys) = self.satisfying(kid) {
            return Ok(keys);
        }
        let now = Instant::now();
        if last_start.is_none_or(|start| now.duration_since(start) >= self.min_refetch) {
            *last_start = Some(now);
            let outcome = self.fetch().await;
            let mut current = self.lock();
            match outcome {
                Ok(keys) => {
                    tracing::debug!(url = %self.url, keys = keys.len(), "auth: JWK Set fetched");
                    current.keys = Some(keys.into());
                    current.fetched = Some(Instant::now());
                    current.error = None;
                }
                Err(error) => {
                    if current.keys.is_some() {
                        tracing::warn!(url = %self.url, %error, "auth: cannot fetch the JWK Set; keeping the last good one");
                    } else {
                        tracing::warn!(url = %self.url, %error, "auth: cannot fetch the JWK Set");
                    }
                    current.error = Some(error);
                }
            }
        }
        drop(last_start);
        let current = self.lock();
        match &current.keys {
            Some(keys) => Ok(Arc::clone(keys)),
            None => Err(format!(
                "keys not available: {}",
                current
                    .error
                    .as_deref()
                    .unwrap_or("JWK Set not fetched yet")
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached set, if it is fresh and names `kid` (when there is one).
    fn satisfying(&self, kid: Option<&str>) -> Option<Arc<[VerifyKey]>> {
        let current = self.lock();
        let keys = current.keys.as_ref()?;
        let fresh = current
            .fetched
            .is_some_and(|fetched| fetched.elapsed() < self.ttl);
        let known = kid.is_none_or(|kid| keys.iter().any(|key| key.kid.as_deref() == Some(kid)));
        (fresh && known).then(|| Arc::clone(keys))
    }

    /// One GET of the set, bounded by [`FETCH_TIMEOUT`].
    async fn fetch(&self) -> Result<Vec<VerifyKey>, String> {
        let request = http::Request::get(self.uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|error| format!("cannot build the request: {error}"))?;
        let fetching = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| format!("request failed: {}", error_chain(&error)))?;
            let status = response.status();
            if status != http::StatusCode::OK {
                return Err(format!("answered {status}"));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|error| format!("reading the answer failed: {error}"))?
                .to_bytes();
            parse(&body)
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetching)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {FETCH_TIMEOUT:?}")))
    }
}

/// The usable keys of a JWK Set document (`{"keys": [...]}`); the others
/// are logged and skipped.
fn parse(body: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        return Err("not a JWK Set (no `keys` array)".into());
    };
    let mut keys = Vec::new();
    for entry in entries {
        match VerifyKey::from_jwk(entry) {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(%reason, "auth: JWK Set key skipped"),
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "none of its {} keys is usable (RSA, EC P-256/P-384, Ed25519)",
            entries.len()
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_keeps_its_usable_keys_and_refuses_when_none_is() {
        let ed = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e"}"#;
        let keys =
            parse(format!(r#"{{"keys":[{ed},{{"kty":"oct","k":"AA"}},7]}}"#).as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("e"));
        assert!(
            parse(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#)
                .unwrap_err()
                .contains("none of its 1")
        );
        assert!(parse(br#"{"keys":[]}"#).is_err());
        assert!(parse(br#"{"key":[]}"#).unwrap_err().contains("no `keys`"));
        assert!(parse(b"<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn only_http_urls_are_taken() {
        let dialer: Arc<dyn Dialer> = Arc::new(crate::platform::TcpDialer);
        let new = |url| {
            Jwks::new(
                url,
                Duration::from_secs(1),
                Duration::from_secs(1),
                Arc::clone(&dialer),
            )
        };
        assert!(new("https://issuer.example.com/jwks.json").is_ok());
        assert!(new("http://127.0.0.1:9/keys").is_ok());
        assert!(new("ftp://issuer.example.com/jwks.json").is_err());
        assert!(new("/jwks.json").is_err());
        assert!(new("not a url").is_err());
    }
}
