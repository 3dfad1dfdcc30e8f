//! Where the load client's connections come from: a [`Dialer`], the
//! proxy's network seam, instead of the operating system's TCP directly.
//!
//! The load client is hyper-util's pooled HTTP/1 client. Its stock connector
//! dials TCP itself; [`DialConnector`] hands dialing to the dialer it is
//! given, so a run can put the load on a simulated network (one virtual
//! clock, replayable) as well as on real sockets ([`mcp_proxy::platform::TcpDialer`],
//! the default, which also turns Nagle off). The proxy crate has no public
//! connector of this kind to reuse, hence this small one.
//!
//! A connector never consults proxy settings of the environment, so an
//! `HTTP_PROXY` variable cannot divert the load.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mcp_proxy::platform::{BoxFuture, BoxStream, Dialer};

/// The port of an `http` URL that names none.
const HTTP_PORT: u16 = 80;

/// Opens the pool's connections with a [`Dialer`].
#[derive(Clone)]
pub(crate) struct DialConnector {
    dialer: Arc<dyn Dialer>,
}

impl DialConnector {
    /// Connections from `dialer`.
    pub(crate) fn new(dialer: Arc<dyn Dialer>) -> Self {
        Self { dialer }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// The URL names no host to dial.
    #[error("the URL {0} names no host")]
    NoHost(Uri),
    /// The dialer failed.
    #[error("cannot connect to {target}")]
    Dial {
        /// `host:port`.
        target: String,
        /// The dialer's error.
        #[source]
        source: io::Error,
    },
}

impl tower_service::Service<Uri> for DialConnector {
    type Response = Dialed;
    type Error = DialError;
    type Future = BoxFuture<'static, Result<Dialed, DialError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let Some(host) = uri.host().map(str::to_owned) else {
            return Box::pin(std::future::ready(Err(DialError::NoHost(uri))));
        };
        let port = uri.port_u16().unwrap_or(HTTP_PORT);
        let dialing = self.dialer.dial(&host, port);
        Box::pin(async move {
            match dialing.await {
                Ok(stream) => Ok(Dialed(TokioIo::new(stream))),
                Err(source) => Err(DialError::Dial {
                    target: format!("{host}:{port}"),
                    source,
                }),
            }
        })
    }
}

/// A dialed connection, as hyper reads and writes it.
pub(crate) struct Dialed(TokioIo<BoxStream>);

impl Connection for Dialed {
    /// Nothing to tell the pool: no ALPN (plain HTTP/1), no proxy.
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
