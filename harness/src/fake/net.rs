//! Where HTTP fakes listen: a seam, like the proxy's own
//! (`mcp_proxy::platform`), so that the same fake runs on the operating
//! system's sockets or on a simulated network.
//!
//! A fake's faults need three things of its network, beyond accepting
//! connections:
//!
//! - **a port held across outages** ([`HeldPort`]): while down, connecting
//!   is refused, and the fake comes back on the same port;
//! - **stop and start listening** ([`FakeListener::close`],
//!   [`HeldPort::listen`]);
//! - **abort one connection** ([`FakeStream::abort`]) as a crashed server
//!   would: a `reset` outcome, and every open connection at an outage.
//!
//! [`LoopbackNetwork`] is the operating system's TCP on 127.0.0.1. There a
//! port is held by a socket that is bound but does not listen (so nothing
//! else, an outgoing connection given it as its ephemeral port say, can
//! take it), and an abort is a close with `SO_LINGER` 0, which sends an RST.
//! A simulated network has no such worries: holding a port is remembering
//! it, and an abort is dropping the connection.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mcp_proxy::platform::{BoxFuture, Stream};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Where HTTP fakes listen.
pub trait FakeNetwork: Send + Sync + 'static {
    /// The host clients reach this network's fakes at, as URLs write it
    /// (`127.0.0.1`, or a simulated host's name).
    fn host(&self) -> String;

    /// Takes `port` for a fake (0: a free one, the fake's from then on),
    /// without listening yet.
    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn HeldPort>>>;
}

/// A fake's port while it does not listen: connecting is refused, and the
/// port stays the fake's.
pub trait HeldPort: Send + 'static {
    /// The port's address.
    fn local_addr(&self) -> SocketAddr;

    /// Listens on the port. If it cannot, the port comes back with the
    /// error, to try again later.
    fn listen(self: Box<Self>) -> BoxFuture<'static, Listening>;
}

/// What [`HeldPort::listen`] gives: the listener, or why not and the port.
pub type Listening = Result<Box<dyn FakeListener>, (io::Error, Box<dyn HeldPort>)>;

/// A fake's port while it listens.
pub trait FakeListener: Send + 'static {
    /// The next connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Box<dyn FakeStream>>>;

    /// Stops listening, keeping the port: connecting is refused from now
    /// on (connections not yet accepted included). Connections already
    /// accepted are left alone.
    fn close(self: Box<Self>) -> Box<dyn HeldPort>;
}

/// A connection a fake accepted.
pub trait FakeStream: Stream {
    /// Ends the connection at once, as a crashed server would: what was not
    /// yet sent is dropped, and the peer sees the connection reset rather
    /// than closed.
    fn abort(self: Box<Self>);
}

/// The operating system's TCP on 127.0.0.1.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopbackNetwork;

/// Connections a listener queues before the fake accepts them.
const BACKLOG: u32 = 1024;

impl FakeNetwork for LoopbackNetwork {
    fn host(&self) -> String {
        Ipv4Addr::LOCALHOST.to_string()
    }

    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn HeldPort>>> {
        let bound = reusable_socket().and_then(|socket| {
            socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
            let addr = socket.local_addr()?;
            Ok(Box::new(LoopbackPort::Reserved(addr, socket)) as Box<dyn HeldPort>)
        });
        Box::pin(std::future::ready(bound))
    }
}

/// A socket that can bind the fake's port while connections of an earlier
/// listener on it linger.
fn reusable_socket() -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// A held loopback port.
enum LoopbackPort {
    /// Bound without listening: connecting is refused, and the port is ours.
    Reserved(SocketAddr, TcpSocket),
    /// The port could not be held: bound anew when the fake listens again,
    /// once it is free.
    Lost(SocketAddr),
}

impl HeldPort for LoopbackPort {
    fn local_addr(&self) -> SocketAddr {
        match self {
            LoopbackPort::Reserved(addr, _) | LoopbackPort::Lost(addr) => *addr,
        }
    }

    fn listen(self: Box<Self>) -> BoxFuture<'static, Listening> {
        let addr = self.local_addr();
        let listening = match *self {
            LoopbackPort::Reserved(_, socket) => socket.listen(BACKLOG),
            LoopbackPort::Lost(_) => reusable_socket().and_then(|socket| {
                socket.bind(addr)?;
                socket.listen(BACKLOG)
            }),
        };
        let listening = match listening {
            Ok(listener) => {
                Ok(Box::new(LoopbackListener { addr, listener }) as Box<dyn FakeListener>)
            }
            Err(e) => Err((e, Box::new(LoopbackPort::Lost(addr)) as Box<dyn HeldPort>)),
        };
        Box::pin(std::future::ready(listening))
    }
}

/// A listening loopback port.
struct LoopbackListener {
    addr: SocketAddr,
    listener: TcpListener,
}

impl FakeListener for LoopbackListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Box<dyn FakeStream>>> {
        Box::pin(async move {
            let (stream, _) = self.listener.accept().await?;
            Ok(Box::new(stream) as Box<dyn FakeStream>)
        })
    }

    /// A listening socket cannot stop listening, so it is closed and the
    /// port bound again at once: the new socket is made first, leaving the
    /// port free only between two calls.
    fn close(self: Box<Self>) -> Box<dyn HeldPort> {
        let LoopbackListener { addr, listener } = *self;
        let socket = reusable_socket();
        drop(listener);
        match socket.and_then(|socket| socket.bind(addr).map(|()| socket)) {
            Ok(socket) => Box::new(LoopbackPort::Reserved(addr, socket)),
            Err(e) => {
                eprintln!("fake at {addr}: cannot hold the port during an outage ({e})");
                Box::new(LoopbackPort::Lost(addr))
            }
        }
    }
}

impl FakeStream for TcpStream {
    fn abort(self: Box<Self>) {
        // Zero linger turns the close into an RST.
        let _ = self.set_zero_linger();
    }
}
