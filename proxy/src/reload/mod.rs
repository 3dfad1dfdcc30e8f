//! Hot reload: the gateway in force, and putting the next config's in its
//! place without a restart.
//!
//! A reload validates the new config whole ([`crate::config::load`]); an
//! invalid one is rejected and changes nothing. A valid one is applied as a
//! diff ([`plan`]): kept backends carry on as they are, rebuilt and added
//! ones start connecting, and a new [`Gateway`] over them — with the new
//! traffic weights, shaping and authorization — replaces the old one in
//! one swap. A request is served to its end by the gateway it started on,
//! so every call sees one config; the backends the new config dropped or
//! replaced are stopped once no request holds the old gateway and no call
//! runs on them (bounded by their calls' longest timeout). Sessions are the proxy's, not a gateway's:
//! they live through any number of reloads, and hear `list_changed` for
//! each kind whose items changed. Settings only a restart can change
//! (`proxy.listen`, ...) keep their running values and are reported.

mod fleet;
mod plan;
mod status;
mod watch;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendEvent, ListKind};
use crate::config::{self, Config, ConfigError};
use crate::gateway::{self, Gateway, Parts};
use crate::platform::Platform;
use crate::session::SessionStore;
use crate::shaping::Shaper;
use fleet::Fleet;
use plan::{Fate, Plan};
pub(crate) use status::History;
pub use status::{ReloadError, ReloadReport};
pub use watch::ConfigWatch;

/// How often a retired gateway is looked at for requests still using it.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// How long past its calls' longest timeout a retired backend waits for
/// them (a call's answer may be on its way when the timeout fires).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The gateway in force, the config it was built from, and what a reload
/// needs to build the next one.
pub(crate) struct Live {
    gateway: RwLock<Arc<Gateway>>,
    /// The config in force (with the running values of what needs a restart).
    running: Mutex<Config>,
    platform: Platform,
    sessions: Arc<SessionStore>,
    fleet: Arc<Fleet>,
    /// Cancelled at shutdown: no reload is applied any more.
    closing: CancellationToken,
    history: Mutex<History>,
    /// The file `reload_source` reads again.
    source: Mutex<Option<PathBuf>>,
    /// One reload at a time, in the order asked.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// Cancelled when the latest retirement has stopped its backends; the
    /// next waits for it (its gateway's requests may use older backends).
    last_retirement: Mutex<Option<CancellationToken>>,
}

impl Live {
    /// The gateway over `config`'s backends, their supervisors started.
    pub(crate) fn start(
        config: Config,
        sessions: Arc<SessionStore>,
        platform: Platform,
    ) -> Arc<Self> {
        let gateway = Arc::new(Gateway::new(&config, Arc::clone(&sessions), &platform));
        let (events, receiver) = mpsc::unbounded_channel();
        let fleet = Arc::new(Fleet::new(events));
        for backend in gateway.backends() {
            fleet.start(backend);
        }
        let live = Arc::new(Self {
            gateway: RwLock::new(gateway),
            running: Mutex::new(config),
            platform,
            sessions,
            fleet,
            closing: CancellationToken::new(),
            history: Mutex::default(),
            source: Mutex::default(),
            one_at_a_time: tokio::sync::Mutex::default(),
            last_retirement: Mutex::default(),
        });
        tokio::spawn(hear_backends(Arc::downgrade(&live), receiver));
        live
    }

    /// The gateway in force: a request keeps it to its end.
    pub(crate) fn current(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The file [`Live::reload_source`] reads.
    pub(crate) fn set_source(&self, path: PathBuf) {
        lock(&self.history).config = Some(path.display().to_string());
        *lock(&self.source) = Some(path);
    }

    /// Read the config file again and apply it (SIGHUP, `POST /admin/reload`,
    /// `--watch`).
    pub(crate) async fn reload_source(&self) -> Result<ReloadReport, ReloadError> {
        let Some(path) = lock(&self.source).clone() else {
            return Err(ReloadError::NoSource);
        };
        // Read under the lock: reloads apply the file in the order they
        // read it, so the last one applied is the newest.
        let one = self.one_at_a_time.lock().await;
        self.reload_locked(config::load(&path), one)
    }

    /// Apply a config that was loaded, or record why it could not be.
    pub(crate) async fn reload_with(
        &self,
        loaded: Result<Config, ConfigError>,
    ) -> Result<ReloadReport, ReloadError> {
        let one = self.one_at_a_time.lock().await;
        self.reload_locked(loaded, one)
    }

    fn reload_locked(
        &self,
        loaded: Result<Config, ConfigError>,
        _one: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<ReloadReport, ReloadError> {
        if self.closing.is_cancelled() {
            return Err(ReloadError::ShuttingDown);
        }
        match loaded {
            Ok(config) => Ok(self.apply(config)),
            Err(error) => {
                let error = ReloadError::Invalid(error);
                tracing::error!(%error, "reload rejected; the running config stays");
                lock(&self.history).rejected(self.platform.clock.unix_seconds(), &error);
                self.current().metrics().record_reload("rejected");
                Err(error)
            }
        }
    }

    /// Apply a valid config as a diff of the running one (one reload at a
    /// time: the caller holds `one_at_a_time`).
    fn apply(&self, next: Config) -> ReloadReport {
        let running = lock(&self.running).clone();
        let plan = Plan::new(&running, &next);
        let next = Plan::applicable(&running, next);
        let previous = self.current();
        let old = previous.backends();

        let mut report = ReloadReport {
            restart_needed: plan.restart_needed.iter().map(|&k| k.to_owned()).collect(),
            ..ReloadReport::default()
        };
        let mut parts = Parts {
            backends: Vec::with_capacity(next.backends.len()),
            shapers: Vec::with_capacity(next.backends.len()),
            metrics: Arc::clone(previous.metrics()),
            recent: Arc::clone(previous.recent()),
            subscribers: Arc::clone(previous.subscribers()),
        };
        let mut starting: Vec<Arc<Backend>> = Vec::new();
        let mut leaving: Vec<Arc<Backend>> = Vec::new();
        for (backend, &fate) in next.backends.iter().zip(&plan.fates) {
            let name = backend.name.clone();
            let (kept, shaper) = match fate {
                Fate::Kept {
                    old: index,
                    same_shaping,
                } => {
                    report.kept.push(name);
                    let shaper = same_shaping.then(|| Arc::clone(previous.shaper(index)));
                    (Arc::clone(&old[index]), shaper)
                }
                Fate::Rebuilt { old: index } => {
                    report.rebuilt.push(name);
                    let fresh = gateway::new_backend(&next, backend, &self.platform);
                    fresh.inherit(&old[index]);
                    leaving.push(Arc::clone(&old[index]));
                    starting.push(Arc::clone(&fresh));
                    (fresh, None)
                }
                Fate::Added => {
                    report.added.push(name);
                    let fresh = gateway::new_backend(&next, backend, &self.platform);
                    starting.push(Arc::clone(&fresh));
                    (fresh, None)
                }
            };
            parts.backends.push(kept);
            parts
                .shapers
                .push(shaper.unwrap_or_else(|| Arc::new(Shaper::new(&backend.shaping))));
        }
        for &index in &plan.removed {
            report.removed.push(old[index].name().to_owned());
            leaving.push(Arc::clone(&old[index]));
        }

        let gateway = Arc::new(Gateway::assemble(&next, Arc::clone(&self.sessions), parts));
        for backend in &starting {
            self.fleet.start(backend);
        }
        *self.gateway.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&gateway);
        // Listings that changed before the swap were heard by the previous
        // gateway: build this one's catalog again now that it hears them.
        gateway.refresh_catalog();
        // New access rules, or the admin tools coming or going, change what
        // callers see without changing the catalog: then every kind is
        // announced.
        let everything = running.authorization != next.authorization
            || running.proxy.admin_tools != next.proxy.admin_tools;
        gateway.announce_changes(&previous.catalog(), &ListKind::ALL, everything);
        *lock(&self.running) = next;
        self.retire(previous, leaving);

        tracing::info!(
            kept = ?report.kept,
            rebuilt = ?report.rebuilt,
            added = ?report.added,
            removed = ?report.removed,
            "config reloaded"
        );
        if !report.restart_needed.is_empty() {
            tracing::warn!(keys = ?report.restart_needed, "these changes need a restart; they keep their running values");
        }
        lock(&self.history).applied(self.platform.clock.unix_seconds(), &report);
        gateway.metrics().record_reload("applied");
        report
    }

    /// What reloads did, for `/admin/status`.
    pub(crate) fn history(&self) -> History {
        lock(&self.history).clone()
    }

    /// Stop every backend's supervisor (shutdown, after the drain): no
    /// reload is applied from now on, retirements stop waiting, and this
    /// returns once the backends they were stopping have stopped too.
    pub(crate) async fn stop_backends(&self) {
        self.closing.cancel();
        self.fleet.stop_all().await;
        let last = lock(&self.last_retirement).clone();
        if let Some(last) = last {
            last.cancelled().await;
        }
    }

    /// Once no request holds `previous` and no call runs on `leaving`
    /// (or the longest of their calls' timeouts passed), and the
    /// retirements before this one are done, stop `leaving`.
    fn retire(&self, previous: Arc<Gateway>, leaving: Vec<Arc<Backend>>) {
        let done = CancellationToken::new();
        let before = lock(&self.last_retirement).replace(done.clone());
        let fleet = Arc::clone(&self.fleet);
        let closing = self.closing.clone();
        let limit = leaving
            .iter()
            .filter_map(|backend| backend.longest_call())
            .max()
            .unwrap_or(Duration::ZERO)
            + DRAIN_GRACE;
        tokio::spawn(async move {
            // A retirement that ends early (a panic) still lets the next go.
            let _done = done.drop_guard();
            if let Some(before) = before {
                before.cancelled().await;
            }
            let deadline = Instant::now() + limit;
            // Requests hold the gateway they started on (this task holds
            // the last other reference); a call can also outlive its
            // request on a backend (a mirror copy, a shared call).
            let busy = |previous: &Arc<Gateway>| {
                Arc::strong_count(previous) > 1 || leaving.iter().any(|b| b.in_flight() > 0)
            };
            while busy(&previous) && Instant::now() < deadline && !closing.is_cancelled() {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            drop(previous);
            if !leaving.is_empty() {
                let names: Vec<&str> = leaving.iter().map(|b| b.name()).collect();
                tracing::info!(backends = ?names, "stopping backends a reload removed or replaced");
            }
            fleet.stop(&leaving).await;
        });
    }
}

/// Hand each backend event to the gateway in force, while the proxy lives.
async fn hear_backends(live: Weak<Live>, mut events: mpsc::UnboundedReceiver<BackendEvent>) {
    while let Some(event) = events.recv().await {
        let Some(live) = live.upgrade() else { break };
        live.current().apply(event);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
