//! What the proxy takes from the machine it runs on, behind seams.
//!
//! Everything else the proxy does is decided in its own code, on
//! `tokio::time` and seeded generators. Four things come from outside:
//!
//! - the **listener** its clients connect to ([`Listener`]),
//! - the **dialer** that opens connections to HTTP backends ([`Dialer`]),
//! - the **spawner** that starts stdio backends ([`Spawner`]),
//! - the **session ids** it hands to clients ([`SessionIds`]),
//! - the **trace and span ids** of the spans it opens ([`TraceIds`]),
//! - the **wall clock** JWTs' `exp` and `nbf` are judged by ([`WallClock`]).
//!
//! (Wall-clock timestamps shown in `/admin/backends` are display only.)
//!
//! In production these are the operating system's: TCP sockets, child
//! processes in their own process group, random ids ([`Platform::os`]).
//! `mcp-harness run --sim` hands in simulated ones (a simulated network,
//! in-process fakes on pipes, ids from the run's seed), so the very
//! same proxy code runs in virtual time. These are seams, not forks: no
//! logic of the proxy knows which platform it runs on.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future, as the seams return them (they must be object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream both ways: a TCP connection, or a simulated one.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// Accepts the connections of the proxy's clients.
pub trait Listener: Send + 'static {
    /// The next connection and its peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;
    /// The address it listens on.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Opens connections to HTTP backends.
pub trait Dialer: Send + Sync + 'static {
    /// A connection to `host:port`.
    fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// What a stdio backend is started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// Whose it is, for logs (the backend's name).
    pub name: String,
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its environment.
    pub env: BTreeMap<String, String>,
    /// Its working directory, if not the proxy's.
    pub cwd: Option<PathBuf>,
    /// Give it the proxy's whole environment; when false, only a few
    /// variables a program needs to run (`PATH`, `HOME`, locale...) pass,
    /// so the proxy's own secrets do not leak into every backend.
    pub inherit_env: bool,
}

/// Starts stdio backends.
pub trait Spawner: Send + Sync + 'static {
    /// Start `command` with its standard streams piped.
    fn spawn(&self, command: &ChildCommand) -> io::Result<SpawnedChild>;
}

/// A started stdio backend: its three pipes, the end of its life, and how
/// to stop it.
pub struct SpawnedChild {
    /// Its standard input.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// Its standard output.
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// Its standard error.
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    /// Resolves once it has ended, saying how (`process exited with status
    /// 1`). Dropping it before then kills the child.
    pub exit: BoxFuture<'static, io::Result<String>>,
    /// Stops it and whatever it started.
    pub signals: Arc<dyn ChildSignals>,
}

/// How a stdio backend (and whatever it started) is stopped.
pub trait ChildSignals: Send + Sync + std::fmt::Debug + 'static {
    /// Its process id, when it has one.
    fn id(&self) -> Option<u32>;
    /// Ask it to stop (SIGTERM to its process group). Returns whether
    /// something received it.
    fn terminate(&self) -> bool;
    /// Make it stop (SIGKILL to its process group), unless it was swept.
    fn kill(&self) -> bool;
    /// It has been reaped: kill whatever it left behind, then never signal
    /// again.
    fn sweep(&self);
}

/// Names the client sessions.
pub trait SessionIds: Send + Sync + 'static {
    /// A new session id (visible ASCII, unique in this process).
    fn next(&self) -> String;
}

/// Random session ids (UUID v4): what a client cannot guess.
#[derive(Debug, Default)]
pub struct RandomSessionIds;

impl SessionIds for RandomSessionIds {
    fn next(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Session ids drawn from a seeded generator: the same seed gives the same
/// ids in the same order. For simulation only — they can be guessed.
#[derive(Debug)]
pub struct SeededSessionIds(Mutex<StdRng>);

impl SeededSessionIds {
    /// Ids from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl SessionIds for SeededSessionIds {
    fn next(&self) -> String {
        format!("{:032x}", draw(&self.0))
    }
}

fn draw(rng: &Mutex<StdRng>) -> u128 {
    rng.lock().unwrap_or_else(PoisonError::into_inner).random()
}

/// Numbers for trace ids (all 128 bits) and span ids (the low 64); a
/// zero is drawn again.
pub trait TraceIds: Send + Sync + 'static {
    /// The next number.
    fn next(&self) -> u128;
}

/// Random trace and span ids, as W3C Trace Context asks (unique across
/// processes).
#[derive(Debug, Default)]
pub struct RandomTraceIds;

impl TraceIds for RandomTraceIds {
    fn next(&self) -> u128 {
        rand::random()
    }
}

/// Trace and span ids from a seeded generator: a simulated run opens the
/// same spans with the same ids every time.
#[derive(Debug)]
pub struct SeededTraceIds(Mutex<StdRng>);

impl SeededTraceIds {
    /// Ids from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl TraceIds for SeededTraceIds {
    fn next(&self) -> u128 {
        draw(&self.0)
    }
}

/// The time of day, in seconds since the Unix epoch: what a JWT's `exp`,
/// `nbf` and `iat` are compared with. In simulation, a fixed epoch plus the
/// virtual time elapsed, so token lifetimes replay with the run.
pub trait WallClock: Send + Sync + 'static {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn unix_seconds(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn unix_seconds(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }
}

/// The seams a proxy runs with (its listener is handed to
/// [`crate::server::start_on`] separately).
#[derive(Clone)]
pub struct Platform {
    /// Opens connections to HTTP backends.
    pub dialer: Arc<dyn Dialer>,
    /// Starts stdio backends.
    pub spawner: Arc<dyn Spawner>,
    /// Names client sessions.
    pub session_ids: Arc<dyn SessionIds>,
    /// Numbers the spans of traces.
    pub trace_ids: Arc<dyn TraceIds>,
    /// Tells the time of day, for token lifetimes.
    pub clock: Arc<dyn WallClock>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}

impl Platform {
    /// The operating system's: TCP, child processes, random session ids.
    pub fn os() -> Self {
        Self {
            dialer: Arc::new(TcpDialer),
            spawner: Arc::new(crate::upstream::ProcessSpawner),
            session_ids: Arc::new(RandomSessionIds),
            trace_ids: Arc::new(RandomTraceIds),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::os()
    }
}

/// Dials TCP, with Nagle off (answers and event frames are small) and TCP
/// keepalive on, so a backend host that vanishes without a reset (a GET
/// event stream can be silent for long) is noticed: probes after 15 s idle,
/// every 15 s, 3 of them; on Linux, unacknowledged data gives up after 30 s.
#[derive(Debug, Default)]
pub struct TcpDialer;

/// Idle time before the first keepalive probe, and between probes.
const TCP_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);
/// Unanswered probes before the connection is dropped.
#[cfg(any(target_os = "linux", target_os = "macos"))]
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged.
#[cfg(target_os = "linux")]
const TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Dialer for TcpDialer {
    fn dial(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<BoxStream>> {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            keep_alive(&stream);
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// Keepalive as [`TcpDialer`] describes it; a socket that refuses it is
/// used anyway.
fn keep_alive(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    let keepalive = keepalive
        .with_interval(TCP_KEEPALIVE)
        .with_retries(TCP_KEEPALIVE_RETRIES);
    if let Err(error) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "cannot set TCP keepalive");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT)) {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
    }
}

/// Listens on TCP.
#[derive(Debug)]
pub struct TcpListener(pub tokio::net::TcpListener);

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            Ok((Box::new(stream) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_session_ids_repeat_with_their_seed_and_differ_across_seeds() {
        let take = |seed| {
            let ids = SeededSessionIds::new(seed);
            (0..3).map(|_| ids.next()).collect::<Vec<_>>()
        };
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
        let ids = take(7);
        assert_ne!(ids[0], ids[1]);
        assert!(ids.iter().all(|id| id.len() == 32));
    }

    #[tokio::test]
    async fn dialed_tcp_connections_keep_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        keep_alive(&stream);
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE);
        #[cfg(target_os = "linux")]
        assert_eq!(socket.tcp_user_timeout().unwrap(), Some(TCP_USER_TIMEOUT));
        // And the dialer connects to a host and port.
        assert!(TcpDialer.dial("127.0.0.1", address.port()).await.is_ok());
    }

    #[test]
    fn random_session_ids_differ() {
        assert_ne!(RandomSessionIds.next(), RandomSessionIds.next());
    }
}
