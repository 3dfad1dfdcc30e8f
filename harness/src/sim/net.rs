//! The simulated network: turmoil's TCP behind the proxy's platform seams.
//!
//! Inside a simulation every host's sockets are turmoil's: connections
//! between hosts cross turmoil's network (its seeded latency, partitions
//! and holds apply), and a host name resolves through turmoil's DNS. These
//! adapters let the proxy and the harness, which only know
//! [`Dialer`] and [`Listener`], and the HTTP fakes, which know
//! [`FakeNetwork`], use them unchanged.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mcp_proxy::platform::{BoxFuture, BoxStream, Dialer, Listener};

use crate::fake::net::{FakeListener, FakeNetwork, FakeStream, HeldPort, Listening};

/// Dials turmoil TCP from the current simulated host.
#[derive(Debug, Default)]
pub struct SimDialer;

impl Dialer for SimDialer {
    fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxStream>> {
        let target = (host.to_owned(), port);
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(target).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// A turmoil TCP listener on the current simulated host.
pub struct SimListener(turmoil::net::TcpListener);

impl SimListener {
    /// Listens on `port` of every address of the current host.
    pub async fn bind(port: u16) -> io::Result<Self> {
        turmoil::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .map(Self)
    }
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The port a simulated fake takes when its scenario names none.
pub const HTTP_PORT: u16 = 80;

/// Where a simulated HTTP fake listens: its own host, named `host`.
///
/// Holding a port while down is remembering it (no one else on the host
/// wants it), and aborting a connection is dropping it: the peer sees it
/// closed, or reset if it had sent something still unread.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    host: String,
}

impl SimNetwork {
    /// The network of the simulated host `host`.
    pub fn new(host: impl Into<String>) -> Self {
        Self { host: host.into() }
    }
}

impl FakeNetwork for SimNetwork {
    fn host(&self) -> String {
        self.host.clone()
    }

    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn HeldPort>>> {
        // Each fake is alone on its host: "any port" may as well be 80.
        let port = if port == 0 { HTTP_PORT } else { port };
        Box::pin(std::future::ready(Ok(
            Box::new(SimPort(port)) as Box<dyn HeldPort>
        )))
    }
}

/// A simulated port while nothing listens on it: connecting is refused.
struct SimPort(u16);

impl HeldPort for SimPort {
    fn local_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.0))
    }

    fn listen(self: Box<Self>) -> BoxFuture<'static, Listening> {
        let port = self.0;
        Box::pin(async move {
            match turmoil::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
                Ok(listener) => {
                    Ok(Box::new(SimFakeListener { port, listener }) as Box<dyn FakeListener>)
                }
                Err(e) => Err((e, self as Box<dyn HeldPort>)),
            }
        })
    }
}

/// A simulated port a fake listens on.
struct SimFakeListener {
    port: u16,
    listener: turmoil::net::TcpListener,
}

impl FakeListener for SimFakeListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Box<dyn FakeStream>>> {
        Box::pin(async move {
            let (stream, _) = self.listener.accept().await?;
            Ok(Box::new(stream) as Box<dyn FakeStream>)
        })
    }

    fn close(self: Box<Self>) -> Box<dyn HeldPort> {
        Box::new(SimPort(self.port))
    }
}

impl FakeStream for turmoil::net::TcpStream {
    fn abort(self: Box<Self>) {
        drop(self);
    }
}
