//! Putting one message on the wire: the [`Poster`] holds what every HTTP
//! message of a session carries (URL, configured headers, credentials,
//! session id, protocol version) and sends POST, GET and DELETE through
//! hyper-util's pooled client, following redirects and re-sending what an
//! HTTP/2 server refused unprocessed. When no response comes, the
//! [`TransportError`] says whether the message provably never left and
//! whether the server is gone: the connection decides on those two facts.
//! Also the quiet POSTs nobody waits for (cancellations, replies to server
//! requests).

use std::borrow::Cow;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap,
    HeaderName, HeaderValue, LOCATION, PROXY_AUTHORIZATION, REFERER, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use super::super::Outbound;
use super::super::connector::HttpClient;
use super::{MAX_REDIRECTS, Response};

/// The session header the server issues on the `initialize` response.
pub(super) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// The negotiated protocol revision, sent on every request after `initialize`.
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// Resuming the GET stream where it broke off.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// How often a message the server refused unprocessed at the HTTP/2 level
/// (GOAWAY without error, REFUSED_STREAM) is sent again.
const NACK_RETRIES: usize = 2;

/// Bound on the POSTs nobody waits for: cancellations, replies to server
/// requests.
const SIDE_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a message got no response: a transport failure.
#[derive(Debug)]
pub(super) struct TransportError {
    /// No connection could be made: the message provably never left.
    pub(super) never_sent: bool,
    /// The server refused the connection or cannot be reached at all: it
    /// is gone (a connect timeout or a failed TLS handshake is not proof).
    pub(super) server_gone: bool,
    /// What happened, with its causes (never the URL, which may carry
    /// credentials).
    pub(super) description: String,
}

impl TransportError {
    /// The client could not deliver the message or read the response head.
    fn sending(error: &hyper_util::client::legacy::Error) -> Self {
        Self {
            never_sent: error.is_connect(),
            server_gone: error.is_connect() && is_refused_or_unreachable(error),
            description: chain(error),
        }
    }

    /// The response body broke off.
    pub(super) fn reading(error: &hyper::Error) -> Self {
        Self {
            never_sent: false,
            server_gone: false,
            description: chain(error),
        }
    }

    /// A redirect that is not followed.
    fn redirect(why: String) -> Self {
        Self {
            never_sent: false,
            server_gone: false,
            description: format!("following a redirect failed: {why}"),
        }
    }
}

/// The fixed parts of every HTTP message to one session.
pub(super) struct Poster {
    pub(super) backend: String,
    client: HttpClient,
    /// The configured URL, without credentials or fragment.
    url: Url,
    /// The same, as hyper takes it.
    uri: Uri,
    /// Configured headers, content type, accept, and (after initialize)
    /// session id and protocol version.
    post_headers: HeaderMap,
    /// The same for the GET stream and DELETE.
    get_headers: HeaderMap,
    /// Whether the server issued a session id.
    pub(super) has_session: bool,
}

impl Poster {
    pub(super) fn new(
        backend: &str,
        client: HttpClient,
        url: Url,
        uri: Uri,
        configured: HeaderMap,
    ) -> Self {
        let mut post_headers = configured.clone();
        post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        post_headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        let mut get_headers = configured;
        get_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        Self {
            backend: backend.to_owned(),
            client,
            url,
            uri,
            post_headers,
            get_headers,
            has_session: false,
        }
    }

    /// The same, for the session `initialize` set up.
    pub(super) fn for_session(&self, session: Option<HeaderValue>, version: &str) -> Self {
        let mut post_headers = self.post_headers.clone();
        let mut get_headers = self.get_headers.clone();
        if let Ok(version) = HeaderValue::from_str(version) {
            post_headers.insert(PROTOCOL_VERSION_HEADER, version.clone());
            get_headers.insert(PROTOCOL_VERSION_HEADER, version);
        }
        let has_session = session.is_some();
        if let Some(session) = session {
            post_headers.insert(SESSION_ID, session.clone());
            get_headers.insert(SESSION_ID, session);
        }
        Self {
            backend: self.backend.clone(),
            client: self.client.clone(),
            url: self.url.clone(),
            uri: self.uri.clone(),
            post_headers,
            get_headers,
            has_session,
        }
    }

    pub(super) async fn post(&self, message: &Value) -> Result<Response, TransportError> {
        self.post_as(message, Outbound::default()).await
    }

    /// POST `message` with what `outbound` adds: the client's credential
    /// as its `Authorization` header (`forward_auth`), over the configured
    /// one if any, and the attempt's `traceparent` and `tracestate`.
    pub(super) async fn post_as(
        &self,
        message: &Value,
        outbound: Outbound<'_>,
    ) -> Result<Response, TransportError> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        if outbound.credential.is_none() && outbound.trace.is_none() {
            return self.exchange(Method::POST, &self.post_headers, body).await;
        }
        let mut headers = self.post_headers.clone();
        if let Some(credential) = outbound.credential {
            headers.insert(AUTHORIZATION, credential.clone());
        }
        if let Some(context) = outbound.trace {
            headers.extend(crate::trace::headers(context));
        }
        self.exchange(Method::POST, &headers, body).await
    }

    /// Open the GET event stream, resuming after `last_event_id`.
    pub(super) async fn get(
        &self,
        last_event_id: Option<&HeaderValue>,
    ) -> Result<Response, TransportError> {
        let mut headers = self.get_headers.clone();
        if let Some(id) = last_event_id {
            headers.insert(LAST_EVENT_ID, id.clone());
        }
        self.exchange(Method::GET, &headers, Bytes::new()).await
    }

    pub(super) async fn delete(&self) -> Result<Response, TransportError> {
        self.exchange(Method::DELETE, &self.get_headers, Bytes::new())
            .await
    }

    /// Send one message to the configured URL and return the response
    /// head, following redirects (see the module docs).
    async fn exchange(
        &self,
        mut method: Method,
        headers: &HeaderMap,
        mut body: Bytes,
    ) -> Result<Response, TransportError> {
        // The first hop sends the configured URL and headers as they are;
        // only a redirect makes copies of its own.
        let mut headers = Cow::Borrowed(headers);
        let mut url = Cow::Borrowed(&self.url);
        let mut uri = Cow::Borrowed(&self.uri);
        let mut hop_headers: Option<HeaderMap> = None;
        let mut redirects = 0;
        loop {
            let this_hop = hop_headers.as_ref().unwrap_or(&headers);
            let response = self.send(&method, &uri, this_hop, &body).await?;
            match response.status() {
                StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => {
                    // User agents may turn a POST into a GET (RFC 9110 15.4.2, 15.4.3).
                    if method == Method::POST {
                        method = Method::GET;
                        body = Bytes::new();
                        drop_payload_headers(headers.to_mut());
                    }
                }
                StatusCode::SEE_OTHER => {
                    if method != Method::HEAD {
                        method = Method::GET;
                    }
                    body = Bytes::new();
                    drop_payload_headers(headers.to_mut());
                }
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {}
                _ => return Ok(response),
            }
            // A redirect without a usable location is the answer.
            let Some((next_url, next_uri)) = response
                .headers()
                .get(LOCATION)
                .and_then(|location| std::str::from_utf8(location.as_bytes()).ok())
                .and_then(|location| url.join(location).ok())
                .and_then(|next| {
                    let uri = next.as_str().parse::<Uri>().ok()?;
                    Some((next, uri))
                })
            else {
                return Ok(response);
            };
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(TransportError::redirect(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            if !matches!(next_url.scheme(), "http" | "https") {
                return Err(TransportError::redirect(format!(
                    "redirected to an unsupported URL scheme `{}`",
                    next_url.scheme()
                )));
            }
            let mut next_headers = headers.clone().into_owned();
            if !same_origin(&next_url, &self.url) {
                for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                    next_headers.remove(name);
                }
                next_headers.remove("cookie2");
            }
            if let Some(referer) = referer(&next_url, &url) {
                next_headers.insert(REFERER, referer);
            }
            hop_headers = Some(next_headers);
            url = Cow::Owned(next_url);
            uri = Cow::Owned(next_uri);
        }
    }

    /// One request to `uri`; a message the server refused unprocessed at
    /// the HTTP/2 level is sent again, up to [`NACK_RETRIES`] times.
    async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, TransportError> {
        let mut retries = 0;
        loop {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            match self.client.request(request).await {
                Ok(response) => return Ok(response),
                Err(error) if retries < NACK_RETRIES && is_protocol_nack(&error) => retries += 1,
                Err(error) => return Err(TransportError::sending(&error)),
            }
        }
    }

    /// POST a message nobody waits for, with a short bound; failures are
    /// only logged.
    pub(super) async fn post_quietly(&self, message: Value) {
        match tokio::time::timeout(SIDE_MESSAGE_TIMEOUT, self.post(&message)).await {
            Ok(Ok(response)) if response.status().is_success() => {}
            Ok(Ok(response)) => {
                let status = response.status();
                tracing::debug!(backend = %self.backend, %status, "side message refused")
            }
            Ok(Err(error)) => {
                let error = error.description;
                tracing::debug!(backend = %self.backend, error, "side message not delivered")
            }
            Err(_) => tracing::debug!(backend = %self.backend, "side message timed out"),
        }
    }
}

/// POST the cancellations of abandoned requests, each in its own task so a
/// slow server delays no one.
pub(super) async fn deliver_cancellations(
    poster: Arc<Poster>,
    mut cancelled: mpsc::UnboundedReceiver<Value>,
) {
    while let Some(message) = cancelled.recv().await {
        let poster = Arc::clone(&poster);
        tokio::spawn(async move { poster.post_quietly(message).await });
    }
}

/// A message turned into a bodiless GET loses what described its body.
fn drop_payload_headers(headers: &mut HeaderMap) {
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The `Referer` of a hop to `next` from `previous`: the previous URL
/// without credentials or fragment, never from `https` to `http`.
fn referer(next: &Url, previous: &Url) -> Option<HeaderValue> {
    if next.scheme() == "http" && previous.scheme() == "https" {
        return None;
    }
    let mut referer = previous.clone();
    let _ = referer.set_username("");
    let _ = referer.set_password(None);
    referer.set_fragment(None);
    HeaderValue::from_str(referer.as_str()).ok()
}

/// Whether a failure to connect says the server is not there: refused, or
/// no route to it.
pub(super) fn is_refused_or_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether the server refused a message at the HTTP/2 level without
/// processing it (a graceful GOAWAY, or REFUSED_STREAM): safe to send again.
fn is_protocol_nack(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(error) = cause.downcast_ref::<h2::Error>() {
            let go_away = error.is_go_away() && error.reason() == Some(h2::Reason::NO_ERROR);
            let refused = error.is_reset() && error.reason() == Some(h2::Reason::REFUSED_STREAM);
            return error.is_remote() && (go_away || refused);
        }
        source = cause.source();
    }
    false
}

/// An error with all its causes: the outer message rarely says what
/// actually happened ("connection refused" is a few sources down). Neither
/// hyper's errors nor the dialer's carry the URL, so no credentials leak.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
