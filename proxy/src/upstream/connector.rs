//! The connections under the streamable-HTTP client, opened through the
//! platform's [`Dialer`].
//!
//! `http/posting.rs` sends its messages with hyper-util's pooled client,
//! which asks a connector for every new connection (and keeps idle ones for
//! reuse). This is that connector. It exists so that no byte to an HTTP backend
//! bypasses the seam in [`crate::platform`]: in production the dialer opens
//! TCP, in a simulation it opens the simulated network's streams, and the
//! client above cannot tell the difference. The JWT verifier fetches its
//! JWK Set with the same client (`auth/jwks.rs`), for the same reason.
//!
//! `https://` connections get TLS here, on top of the dialed stream: rustls
//! with the operating system's certificate verifier (rustls-platform-verifier), offering `h2` and `http/1.1`
//! (what the proxy's HTTP client has always offered); a server that picks
//! `h2` is spoken to in HTTP/2. The TLS settings are built on the first
//! `https://` connection, so plain-HTTP backends never need system roots.
//!
//! Dialing and the TLS handshake together are bounded by the connect
//! timeout, on tokio's clock.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig};

use crate::platform::{BoxFuture, BoxStream, Dialer};

/// The HTTP client of one backend connection.
pub(crate) type HttpClient = Client<DialConnector, Full<Bytes>>;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled HTTP/1.1 and HTTP/2 client whose connections come from
/// `dialer`, each within `connect_timeout`. Its timers are tokio's, so idle
/// connections expire on the same clock as everything else (hyper-util
/// would read the wall clock without a pool timer).
pub(crate) fn client(dialer: Arc<dyn Dialer>, connect_timeout: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(DialConnector::new(dialer, connect_timeout))
}

/// Opens the client's connections with a [`Dialer`], adding TLS for
/// `https://`. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DialConnector {
    dialer: Arc<dyn Dialer>,
    connect_timeout: Duration,
    /// Built on the first `https://` connection; an error is kept and
    /// reported for every `https://` connection.
    tls: Arc<OnceLock<Result<TlsConnector, String>>>,
}

impl DialConnector {
    /// Connections from `dialer`, each dialed (and TLS set up) within
    /// `connect_timeout`.
    pub(super) fn new(dialer: Arc<dyn Dialer>, connect_timeout: Duration) -> Self {
        Self {
            dialer,
            connect_timeout,
            tls: Arc::new(OnceLock::new()),
        }
    }

    /// The same, with `tls` for `https://` instead of the platform's
    /// verifier (tests trust their own certificate this way).
    #[cfg(test)]
    pub(super) fn with_tls(
        dialer: Arc<dyn Dialer>,
        connect_timeout: Duration,
        tls: ClientConfig,
    ) -> Self {
        let connector = Self::new(dialer, connect_timeout);
        let _ = connector
            .tls
            .set(Ok(TlsConnector::from(Arc::new(with_alpn(tls)))));
        connector
    }

    fn tls(&self) -> io::Result<TlsConnector> {
        self.tls
            .get_or_init(|| {
                platform_tls()
                    .map(|config| TlsConnector::from(Arc::new(config)))
                    .map_err(|error| format!("cannot set up TLS: {error}"))
            })
            .clone()
            .map_err(io::Error::other)
    }
}

impl tower_service::Service<Uri> for DialConnector {
    type Response = Dialed;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Dialed>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = Target::of(&uri);
        let connector = self.clone();
        Box::pin(async move {
            let target = target?;
            let tls = if target.tls {
                Some(connector.tls()?)
            } else {
                None
            };
            let connecting = async {
                let stream = connector.dialer.dial(&target.host, target.port).await?;
                match tls {
                    None => Ok(Dialed::new(stream, false)),
                    Some(tls) => {
                        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                            .map_err(|error| {
                                io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
                            })?;
                        let stream = tls.connect(name, stream).await?;
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        Ok(Dialed::new(Box::new(stream), h2))
                    }
                }
            };
            match tokio::time::timeout(connector.connect_timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting timed out after {:?}", connector.connect_timeout),
                )),
            }
        })
    }
}

/// Where a URI's connection goes.
struct Target {
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    fn of(uri: &Uri) -> io::Result<Self> {
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unsupported URL scheme `{}`", other.unwrap_or_default()),
                ));
            }
        };
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL has no host"))?;
        // An IPv6 literal comes bracketed; the dialer wants the address.
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { host, port, tls })
    }
}

/// TLS with the platform's roots (the crypto provider the process
/// installed, else aws-lc-rs), TLS 1.2 and 1.3.
fn platform_tls() -> Result<ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(with_alpn(config))
}

/// Offer HTTP/2 first, then HTTP/1.1.
fn with_alpn(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A dialed connection (with TLS, for `https://`), as hyper reads and
/// writes it.
pub(crate) struct Dialed {
    io: TokioIo<BoxStream>,
    /// TLS agreed on HTTP/2.
    h2: bool,
}

impl Dialed {
    fn new(stream: BoxStream, h2: bool) -> Self {
        Self {
            io: TokioIo::new(stream),
            h2,
        }
    }
}

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Dialed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Dialed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use http_body_util::BodyExt;
    use hyper::body::Incoming;
    use hyper::server::conn::{http1, http2};
    use hyper::service::service_fn;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::platform::TcpDialer;

    /// Dials TCP and remembers every `host:port` it was asked for.
    #[derive(Default)]
    struct CountingDialer(Mutex<Vec<(String, u16)>>);

    impl CountingDialer {
        fn dials(&self) -> Vec<(String, u16)> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Dialer for CountingDialer {
        fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxStream>> {
            self.0.lock().unwrap().push((host.to_owned(), port));
            TcpDialer.dial(host, port)
        }
    }

    /// A dialer whose connections never come.
    struct HangingDialer;

    impl Dialer for HangingDialer {
        fn dial(&self, _: &str, _: u16) -> BoxFuture<'static, io::Result<BoxStream>> {
            Box::pin(std::future::pending())
        }
    }

    /// Serve HTTP on 127.0.0.1 (behind `tls`, if given), answering every
    /// request with `VERSION METHOD PATH`; returns the port.
    async fn serve(tls: Option<TlsAcceptor>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(|request: http::Request<Incoming>| async move {
                        let text = format!(
                            "{:?} {} {}",
                            request.version(),
                            request.method(),
                            request.uri().path()
                        );
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                    });
                    let Some(tls) = tls else {
                        let io = TokioIo::new(socket);
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                        return;
                    };
                    let Ok(stream) = tls.accept(socket).await else {
                        return;
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    }
                });
            }
        });
        port
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A self-signed certificate for `localhost` and its key.
    fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        (certified.cert.der().clone(), key.into())
    }

    /// TLS for a test server offering `alpn`.
    fn acceptor(
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        alpn: &[&[u8]],
    ) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    /// A client config that trusts only `certificate`.
    fn trusting(certificate: CertificateDer<'static>) -> ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate).unwrap();
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// GET `url`; the response's version and body.
    async fn get(client: &HttpClient, url: &str) -> (http::Version, String) {
        let request = http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let version = response.version();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (version, String::from_utf8_lossy(&body).into_owned())
    }

    /// Let the client put a finished connection back in its pool.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn connections_come_from_the_dialer_and_are_reused() {
        let port = serve(None).await;
        let dialer = Arc::new(CountingDialer::default());
        let client = client(dialer.clone(), Duration::from_secs(5));
        let url = format!("http://127.0.0.1:{port}/first");
        assert_eq!(get(&client, &url).await.1, "HTTP/1.1 GET /first");
        settle().await;
        let url = format!("http://127.0.0.1:{port}/second");
        assert_eq!(get(&client, &url).await.1, "HTTP/1.1 GET /second");
        assert_eq!(dialer.dials(), [("127.0.0.1".to_owned(), port)]);
    }

    #[tokio::test]
    async fn https_runs_over_the_dialed_stream_in_http2_when_the_server_agrees() {
        let (certificate, key) = certificate();
        let port = serve(Some(acceptor(
            certificate.clone(),
            key,
            &[b"h2", b"http/1.1"],
        )))
        .await;
        let dialer = Arc::new(CountingDialer::default());
        let connector = DialConnector::with_tls(
            dialer.clone(),
            Duration::from_secs(5),
            trusting(certificate),
        );
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .build(connector);
        let url = format!("https://localhost:{port}/a");
        assert_eq!(get(&client, &url).await.1, "HTTP/2.0 GET /a");
        let url = format!("https://localhost:{port}/b");
        assert_eq!(get(&client, &url).await.1, "HTTP/2.0 GET /b");
        assert_eq!(dialer.dials(), [("localhost".to_owned(), port)]);
    }

    #[tokio::test]
    async fn https_speaks_http1_to_a_server_that_offers_only_that() {
        let (certificate, key) = certificate();
        let port = serve(Some(acceptor(certificate.clone(), key, &[b"http/1.1"]))).await;
        let dialer = Arc::new(CountingDialer::default());
        let connector = DialConnector::with_tls(
            dialer.clone(),
            Duration::from_secs(5),
            trusting(certificate),
        );
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let url = format!("https://localhost:{port}/one");
        let (version, body) = get(&client, &url).await;
        assert_eq!(version, http::Version::HTTP_11);
        assert_eq!(body, "HTTP/1.1 GET /one");
        assert_eq!(dialer.dials().len(), 1);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_connect_error() {
        let (certificate, key) = certificate();
        let port = serve(Some(acceptor(certificate, key, &[b"http/1.1"]))).await;
        let dialer = Arc::new(CountingDialer::default());
        // The platform's roots do not include a certificate made up here.
        let client = client(dialer.clone(), Duration::from_secs(5));
        let request = http::Request::get(format!("https://localhost:{port}/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let error = client.request(request).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        assert_eq!(dialer.dials().len(), 1, "the TLS attempt was dialed");
        // "invalid peer certificate: UnknownIssuer" (or, on a machine
        // without system roots, "cannot set up TLS: No CA certificates ...").
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("certificate"), "{cause}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dial_that_never_completes_times_out_on_tokio_time() {
        let client = client(Arc::new(HangingDialer), Duration::from_secs(5));
        let request = http::Request::get("http://backend.example:8080/mcp")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = tokio::time::Instant::now();
        let error = client.request(request).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(cause, "connecting timed out after 5s");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn targets_name_host_port_and_whether_tls() {
        let target = |uri: &str| Target::of(&uri.parse().unwrap());
        let plain = target("http://backend:8080/mcp").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("backend", 8080, false)
        );
        let default = target("http://backend/mcp").unwrap();
        assert_eq!(default.port, 80);
        let tls = target("https://backend/mcp").unwrap();
        assert_eq!((tls.port, tls.tls), (443, true));
        let v6 = target("http://[::1]:9000/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        let error = target("ftp://backend/").err().unwrap();
        assert_eq!(error.to_string(), "unsupported URL scheme `ftp`");
    }
}
