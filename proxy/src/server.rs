//! Starting and stopping the proxy.
//!
//! [`start`] binds TCP and calls [`start_on`], which serves on any platform
//! [`Listener`] with a [`Platform`]'s dialer, spawner and session ids: it
//! starts one supervisor per backend (a
//! backend that is down does not stop the proxy: it is retried in the
//! background) and serves the HTTP app. [`RunningProxy::shutdown`] is the
//! graceful stop: refuse new requests, let in-flight calls drain for up to
//! `shutdown_timeout`, cancel what is left, then stop every backend (stdio
//! children: close stdin, SIGTERM, SIGKILL).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::{Authenticator, CallerLimits};
use crate::backend::Status;
use crate::config::Config;
use crate::front::{self, AdminAccess, App, ClientAddr};
use crate::platform::{self, BoxStream, Listener, Platform};
use crate::reload::{Live, ReloadError, ReloadReport};
use crate::session::{Limits, SessionStore};

/// How long cancelled calls get to send their answers before the HTTP server is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// How long to pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key or setting of `auth:` cannot be used (a PEM that does not
    /// parse, an algorithm that cannot be verified, ...).
    #[error("auth: {0}")]
    Auth(String),
    /// The audit log's file cannot be opened.
    #[error("audit: cannot open the log: {0}")]
    Audit(String),
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// True when every in-flight call finished within `shutdown_timeout`.
    pub drained: bool,
}

/// A proxy that is serving.
pub struct RunningProxy {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown_timeout: Duration,
    server: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
}

/// Bind the configured address on TCP, start the backends' supervisors,
/// and serve, on the operating system's platform.
pub async fn start(config: Config) -> Result<RunningProxy, StartError> {
    let addr = config.proxy.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    start_on(config, platform::TcpListener(listener), Platform::os())
}

/// Start the backends' supervisors and serve on `listener`, with
/// `platform`'s dialer, spawner and session ids (`config.proxy.listen` is
/// not used: the listener is already bound).
pub fn start_on(
    config: Config,
    listener: impl Listener,
    platform: Platform,
) -> Result<RunningProxy, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.proxy.listen,
        source,
    })?;

    let sessions = Arc::new(SessionStore::new(
        Arc::clone(&platform.session_ids),
        limits(&config),
    ));
    let live = Live::start(config.clone(), Arc::clone(&sessions), platform.clone());

    let app = Arc::new(App {
        live,
        sessions: Arc::clone(&sessions),
        calls: TaskTracker::new(),
        draining: CancellationToken::new(),
        cancel_calls: CancellationToken::new(),
        allowed_origins: config.proxy.allowed_origins.clone(),
        max_body_size: config.proxy.max_body_size,
        auth: config
            .auth
            .as_ref()
            .map(|auth| Authenticator::new(auth, &platform))
            .transpose()
            .map_err(|problems| StartError::Auth(problems.join("; ")))?,
        caller_limits: config
            .auth
            .as_ref()
            .and_then(|auth| auth.rate_limit)
            .map(|limit| (CallerLimits::new(limit), limit)),
        admin_access: AdminAccess::from_config(&config),
        forwards_credentials: config.backends.iter().any(|backend| backend.forward_auth),
        audit: config
            .audit
            .as_ref()
            .map(AuditLog::start)
            .transpose()
            .map_err(|source| StartError::Audit(source.to_string()))?,
        tracer: crate::trace::start(config.proxy.tracing.as_ref(), &platform),
    });
    warn_about_forwarded_tokens(&config);
    if config.auth.is_none() && !addr.ip().is_loopback() && config.admin.token.is_none() {
        tracing::warn!(%addr, "allow_unauthenticated: anyone who reaches this address can use every backend and /admin/*");
    }
    let admin_server = match config.admin.listen {
        Some(admin_addr) => Some(serve_admin(admin_addr, &app)?),
        None => None,
    };
    let housekeeping = tokio::spawn(expire_sessions(sessions));
    let router = front::router(Arc::clone(&app), admin_server.is_none());
    let draining = app.draining.clone();
    let server = tokio::spawn(async move {
        let listener = ServeListener(Box::new(listener));
        // Each request knows its client's address (the audit log's `client`).
        let service = router.into_make_service_with_connect_info::<ClientAddr>();
        let serve =
            axum::serve(listener, service).with_graceful_shutdown(draining.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(%error, "HTTP server failed");
        }
        if let Some(admin_server) = admin_server {
            admin_server.abort();
        }
    });
    tracing::info!(%addr, backends = config.backends.len(), "mcp-proxy listening on http://{addr}/mcp");
    Ok(RunningProxy {
        addr,
        app,
        shutdown_timeout: config.proxy.shutdown_timeout,
        server,
        housekeeping,
    })
}

/// `/admin/*` on a listener of its own (`admin.listen`), until the main
/// server stops.
fn serve_admin(addr: SocketAddr, app: &Arc<App>) -> Result<JoinHandle<()>, StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
    let bound = listener.local_addr().unwrap_or(addr);
    let router = front::admin_router(Arc::clone(app)).with_state(Arc::clone(app));
    let draining = app.draining.clone();
    tracing::info!(addr = %bound, "admin API listening on http://{bound}/admin/");
    Ok(tokio::spawn(async move {
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(draining.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(%error, "admin HTTP server failed");
        }
    }))
}

/// `forward_auth` hands clients' tokens to a backend, which the MCP
/// specification advises against (the backend can replay them anywhere
/// they are valid): allowed, but said at every start.
fn warn_about_forwarded_tokens(config: &Config) {
    for backend in config.backends.iter().filter(|b| b.forward_auth) {
        tracing::warn!(
            backend = %backend.name,
            "forward_auth: clients' Authorization headers are passed to this backend (token passthrough, which the MCP specification advises against)"
        );
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, ServeListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ServeListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A platform [`Listener`] as axum serves it.
struct ServeListener(Box<dyn Listener>);

impl axum::serve::Listener for ServeListener {
    type Io = BoxStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    // Out of descriptors, or a connection that died in the
                    // backlog: pause briefly rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The bounds on clients the config sets. A request in flight holds its
/// session as long as the longest call may take by its `timeout.overall`.
fn limits(config: &Config) -> Limits {
    let proxy = &config.proxy;
    let call_limit = config
        .backends
        .iter()
        .filter_map(|backend| backend.timeout.overall)
        .max()
        .unwrap_or(proxy.default_call_timeout);
    Limits {
        max_sessions: proxy.max_sessions,
        max_in_flight: proxy.max_in_flight,
        max_in_flight_per_session: proxy.max_in_flight_per_session,
        progress_queue: proxy.progress_queue,
        idle_timeout: proxy.session_idle_timeout,
        call_limit,
    }
}

async fn expire_sessions(sessions: Arc<SessionStore>) {
    let idle = sessions.limits().idle_timeout;
    let period = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let expired = sessions.expire_idle();
        if expired > 0 {
            tracing::debug!(expired, "idle client sessions expired");
        }
    }
}

impl RunningProxy {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The status of every backend, in config order.
    pub fn backend_status(&self) -> Vec<Status> {
        self.app.live.current().statuses()
    }

    /// Read the config file set by [`RunningProxy::set_config_file`] again
    /// and apply it as a diff (what SIGHUP, `--watch` and
    /// `POST /admin/reload` do). An invalid file is rejected: the running
    /// config stays, and the error (`file:line: key: message`) is logged
    /// and shown in `/admin/status`.
    pub async fn reload_config_file(&self) -> Result<ReloadReport, ReloadError> {
        self.app.live.reload_source().await
    }

    /// The file [`RunningProxy::reload_config_file`] reads.
    pub fn set_config_file(&self, path: std::path::PathBuf) {
        self.app.live.set_source(path);
    }

    /// Apply `loaded` as [`RunningProxy::reload_config_file`] applies the
    /// file: a config applied as a diff, or an error recorded as a rejected
    /// reload (for callers that load configs themselves, like the harness).
    pub async fn reload(
        &self,
        loaded: Result<Config, crate::config::ConfigError>,
    ) -> Result<ReloadReport, ReloadError> {
        self.app.live.reload_with(loaded).await
    }

    /// The gateway and sessions it serves with, for the benchmarks'
    /// facade (`crate::internals`).
    #[cfg(feature = "bench-internals")]
    pub(crate) fn app(&self) -> &App {
        &self.app
    }

    /// Stop gracefully: refuse new requests, drain in-flight calls up to
    /// `shutdown_timeout`, cancel the rest, stop every backend.
    pub async fn shutdown(self) -> ShutdownReport {
        tracing::info!(timeout = ?self.shutdown_timeout, in_flight = self.app.calls.len(), "shutting down: draining in-flight calls");
        self.app.draining.cancel();
        self.app.sessions.close_streams();
        self.app.calls.close();
        let drained = tokio::time::timeout(self.shutdown_timeout, self.app.calls.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                remaining = self.app.calls.len(),
                "drain time over; cancelling in-flight calls"
            );
            self.app.cancel_calls.cancel();
            let _ = tokio::time::timeout(CANCEL_GRACE, self.app.calls.wait()).await;
        }
        let mut server = self.server;
        if tokio::time::timeout(CANCEL_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        self.housekeeping.abort();
        self.app.live.stop_backends().await;
        tracing::info!(drained, "mcp-proxy stopped");
        ShutdownReport { drained }
    }
}
