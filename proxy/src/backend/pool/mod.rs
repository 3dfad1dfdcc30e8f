//! A backend's replica pool: the endpoints that serve the same MCP server,
//! which of them takes each attempt, and which are out for failing.
//!
//! Each [`Endpoint`] has its own connection, kept up by its own supervisor
//! task, and its own health. [`Pool::pick`] chooses among the endpoints
//! that are connected and not ejected ([`balance`]), preferring one the
//! call has not tried yet, so a retry or a hedge goes elsewhere when it
//! can. Every attempt's verdict goes to the [`outlier`] detector.
//!
//! One circuit breaker per backend sits above the pool (see
//! `resilience::breaker`): the breaker answers "is this service failing",
//! outlier detection "is this replica failing". Per-endpoint breakers would
//! duplicate ejection with different rules.
//!
//! A single-endpoint backend is a pool of one: picking is trivial and
//! ejecting it refuses its calls for the ejection's length.
//!
//! When no endpoint is connected, [`Pool::until_ready`] tells a restart in
//! progress (worth waiting for) from a known outage (fail fast): see
//! [`Readiness`].

pub(crate) mod balance;
pub(crate) mod outlier;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::State;
use super::listing::Listing;
use super::resilience::Verdict;
use crate::config::{BackendConfig, TransportConfig};
use crate::upstream::{Connection, Outbound, ProgressSink, UpstreamError};
use balance::{Balancer, Candidate};
use outlier::Detector;
pub(crate) use outlier::EjectionStatus;

/// One replica of a backend.
pub(crate) struct Endpoint {
    /// How to reach it.
    pub(crate) transport: TransportConfig,
    /// How logs and `/admin/backends` name it (no credentials).
    pub(crate) label: String,
    /// The live connection, while there is one.
    pub(crate) connection: RwLock<Option<Connection>>,
    /// What it listed on this connection (`None` while it has none).
    listing: Mutex<Option<Arc<Listing>>>,
    /// Set by the supervisor.
    health: Mutex<EndpointHealth>,
    /// Wakes the calls waiting for a restart when `health` changes. A
    /// `Notify` rather than a `watch` channel: a watch wakes its receivers
    /// in an order drawn from tokio's random generator, and simulated runs
    /// must replay.
    health_changed: Notify,
    in_flight: AtomicU64,
    /// Requests answered (a result, or the server's own JSON-RPC error),
    /// since start: a connection that answered any has proved healthy.
    answered: AtomicU64,
}

/// Whether an endpoint can take a call now, soon, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Connected: calls go out.
    Ready,
    /// A start or restart is under way, or begins before the caller would
    /// stop waiting (the first attempt at start-up, or the first after a
    /// connection ended): calls wait for it.
    Coming,
    /// An attempt has failed since the last connection, or the proxy is
    /// stopping: the endpoint is known down and calls fail fast.
    Down,
}

/// An endpoint's connection state, as its supervisor last set it.
#[derive(Debug, Clone)]
pub(crate) struct EndpointHealth {
    pub(crate) state: State,
    pub(crate) last_error: Option<String>,
    pub(crate) restarts: u64,
    /// While `unavailable` after a connection ended: when the restart
    /// begins (after the reconnect backoff).
    pub(crate) restart_at: Option<Instant>,
}

/// The endpoints of one backend, their balancer and outlier detector.
pub(crate) struct Pool {
    endpoints: Vec<Endpoint>,
    balancer: Balancer,
    outliers: Option<Detector>,
}

/// Where the next attempt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// This endpoint (an index into [`Pool::endpoints`]).
    Endpoint(usize),
    /// No endpoint is connected.
    NotConnected,
    /// Every connected endpoint is ejected.
    AllEjected,
}

impl Pool {
    /// `seed` is the backend's own (the proxy's seed mixed with its name).
    pub(crate) fn new(config: &BackendConfig, seed: u64) -> Self {
        let endpoints = config
            .endpoints
            .iter()
            .map(|transport| Endpoint {
                label: transport.label(),
                transport: transport.clone(),
                connection: RwLock::new(None),
                listing: Mutex::new(None),
                health: Mutex::new(EndpointHealth {
                    state: State::Connecting,
                    last_error: None,
                    restarts: 0,
                    restart_at: None,
                }),
                health_changed: Notify::new(),
                in_flight: AtomicU64::new(0),
                answered: AtomicU64::new(0),
            })
            .collect::<Vec<_>>();
        let outliers = config
            .outlier_detection
            .map(|policy| Detector::new(policy, endpoints.len()));
        Self {
            balancer: Balancer::new(config.load_balancing, StdRng::seed_from_u64(seed)),
            endpoints,
            outliers,
        }
    }

    pub(crate) fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint for the next attempt of a call that already tried
    /// `tried`: a connected, not ejected one, untried if there is such.
    pub(crate) fn pick(&self, tried: &[usize]) -> Pick {
        let mut connected = false;
        let mut usable: Vec<Candidate> = Vec::with_capacity(self.endpoints.len());
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if !endpoint.is_connected() {
                continue;
            }
            connected = true;
            if self.outliers.as_ref().is_some_and(|d| d.is_ejected(index)) {
                continue;
            }
            usable.push(Candidate {
                endpoint: index,
                in_flight: endpoint.in_flight.load(Ordering::Relaxed),
            });
        }
        if usable.is_empty() {
            return if connected {
                Pick::AllEjected
            } else {
                Pick::NotConnected
            };
        }
        if usable.iter().any(|c| !tried.contains(&c.endpoint)) {
            usable.retain(|c| !tried.contains(&c.endpoint));
        }
        Pick::Endpoint(self.balancer.choose(&usable))
    }

    /// The outlier epoch of `endpoint` for an attempt sent now (0 without
    /// outlier detection).
    pub(crate) fn epoch(&self, endpoint: usize) -> u64 {
        self.outliers.as_ref().map_or(0, |d| d.epoch(endpoint))
    }

    /// Tells the outlier detector how an attempt on `endpoint`, sent in
    /// `epoch`, went.
    pub(crate) fn report(&self, backend: &str, endpoint: usize, epoch: u64, verdict: Verdict) {
        let Some(detector) = &self.outliers else {
            return;
        };
        if let Some(length) = detector.record(endpoint, epoch, verdict) {
            tracing::warn!(
                backend,
                endpoint = %self.endpoints[endpoint].label,
                ejected_for = ?length,
                "endpoint ejected from the pool after consecutive failures"
            );
        }
    }

    /// The listing the backend shows: that of the first endpoint, in config
    /// order, that has one — so replicas that list differently do not take
    /// turns, and the choice moves only when that endpoint goes or returns.
    pub(crate) fn preferred_listing(&self) -> Option<(usize, Arc<Listing>)> {
        self.endpoints
            .iter()
            .enumerate()
            .find_map(|(i, e)| lock(&e.listing).clone().map(|l| (i, l)))
    }

    /// Ejections since start (0 without outlier detection).
    pub(crate) fn ejections(&self) -> u64 {
        self.outliers.as_ref().map_or(0, Detector::ejections)
    }

    /// An endpoint's ejection state, with outlier detection on.
    pub(crate) fn ejection(&self, endpoint: usize) -> Option<EjectionStatus> {
        self.outliers.as_ref().map(|d| d.status(endpoint))
    }

    /// Waits, at most `within`, until an endpoint is connected, as long as
    /// one is [`Readiness::Coming`]. Returns whether one is connected; at
    /// once when none is coming (a known outage fails fast).
    pub(crate) async fn until_ready(&self, within: Duration) -> bool {
        // Every try asks: the usual answer costs no registration.
        if self.endpoints.iter().any(Endpoint::is_connected) {
            return true;
        }
        let deadline = Instant::now() + within;
        loop {
            // Registered before looking, so no change between the look and
            // the wait is missed.
            let mut changes: Vec<_> = self
                .endpoints
                .iter()
                .map(|e| Box::pin(e.health_changed.notified()))
                .collect();
            for change in &mut changes {
                change.as_mut().enable();
            }
            let readiness: Vec<Readiness> = self
                .endpoints
                .iter()
                .map(|e| e.readiness(deadline))
                .collect();
            if readiness.contains(&Readiness::Ready) {
                return true;
            }
            if !readiness.contains(&Readiness::Coming) {
                return false;
            }
            tokio::select! {
                biased;
                _ = futures_util::future::select_all(changes) => {}
                () = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// The backend's state from its endpoints': connected when any is.
    pub(crate) fn state(&self) -> State {
        let states: Vec<State> = self.endpoints.iter().map(|e| e.health().state).collect();
        if states.contains(&State::Connected) {
            State::Connected
        } else if states.iter().all(|&s| s == State::Stopped) {
            State::Stopped
        } else if states.contains(&State::Unavailable) {
            State::Unavailable
        } else {
            State::Connecting
        }
    }
}

impl Endpoint {
    /// Whether it has a connection that is still alive.
    pub(crate) fn is_connected(&self) -> bool {
        read(&self.connection)
            .as_ref()
            .is_some_and(|connection| !connection.is_closed())
    }

    /// Whether it can take a call now, or soon enough for a caller who
    /// waits until `deadline`.
    pub(crate) fn readiness(&self, deadline: Instant) -> Readiness {
        if self.is_connected() {
            return Readiness::Ready;
        }
        let health = lock(&self.health);
        match health.state {
            // Connected: a connection that just died, which its supervisor
            // is about to restart.
            State::Connecting | State::Connected => Readiness::Coming,
            // Between a connection's end and its restart after a backoff.
            State::Unavailable if health.restart_at.is_some_and(|at| at <= deadline) => {
                Readiness::Coming
            }
            State::Unavailable | State::Stopped => Readiness::Down,
        }
    }

    /// Requests it answered, since start.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// What it listed on its current connection.
    pub(crate) fn listing(&self) -> Option<Arc<Listing>> {
        lock(&self.listing).clone()
    }

    /// Records (or, with `None`, forgets) what it listed.
    pub(crate) fn set_listing(&self, listing: Option<Arc<Listing>>) {
        *lock(&self.listing) = listing;
    }

    pub(crate) fn health(&self) -> EndpointHealth {
        lock(&self.health).clone()
    }

    pub(crate) fn set_state(&self, state: State, error: Option<String>) {
        self.change_health(|health| {
            health.state = state;
            health.restart_at = None;
            if error.is_some() {
                health.last_error = error;
            }
        });
    }

    /// Its connection ended; the restart begins at `at`, after a backoff.
    /// Unavailable until then, but worth waiting for by a call that would
    /// wait that long.
    pub(crate) fn set_restarting(&self, at: Instant, error: String) {
        self.change_health(|health| {
            health.state = State::Unavailable;
            health.restart_at = Some(at);
            health.last_error = Some(error);
        });
    }

    pub(crate) fn count_restart(&self) {
        lock(&self.health).restarts += 1;
    }

    fn change_health(&self, change: impl FnOnce(&mut EndpointHealth)) {
        change(&mut lock(&self.health));
        self.health_changed.notify_waiters();
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        read(&self.connection).as_ref().and_then(Connection::pid)
    }

    /// Sends one request on the live connection; `None` when there is none.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressSink>,
        outbound: Outbound<'_>,
    ) -> Option<Result<Value, UpstreamError>> {
        let connection = read(&self.connection).clone()?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight);
        let answer = connection.request(method, params, progress, outbound).await;
        if matches!(answer, Ok(_) | Err(UpstreamError::JsonRpc(_))) {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        Some(answer)
    }
}

/// Counts a call as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pool_of_two() -> Pool {
        let endpoint = |port: u16| TransportConfig::Http {
            url: format!("http://127.0.0.1:{port}/mcp"),
            headers: BTreeMap::new(),
        };
        let config = BackendConfig {
            endpoints: vec![endpoint(1), endpoint(2)],
            ..BackendConfig::new("b", endpoint(1))
        };
        Pool::new(&config, 0)
    }

    #[test]
    fn the_first_endpoint_with_a_listing_is_the_one_shown() {
        let pool = pool_of_two();
        assert!(pool.preferred_listing().is_none());
        let [first, second] = pool.endpoints() else {
            panic!("two endpoints")
        };
        second.set_listing(Some(Arc::new(Listing::default())));
        assert_eq!(pool.preferred_listing().map(|(i, _)| i), Some(1));
        first.set_listing(Some(Arc::new(Listing::default())));
        assert_eq!(pool.preferred_listing().map(|(i, _)| i), Some(0));
        // A later relist of the second does not take over.
        second.set_listing(Some(Arc::new(Listing::default())));
        assert_eq!(pool.preferred_listing().map(|(i, _)| i), Some(0));
        first.set_listing(None);
        assert_eq!(pool.preferred_listing().map(|(i, _)| i), Some(1));
    }

    #[test]
    fn nothing_connected_is_not_connected_and_states_aggregate() {
        let pool = pool_of_two();
        assert_eq!(pool.pick(&[]), Pick::NotConnected);
        assert_eq!(pool.state(), State::Connecting);
        pool.endpoints()[0].set_state(State::Unavailable, Some("refused".into()));
        assert_eq!(pool.state(), State::Unavailable);
        pool.endpoints()[1].set_state(State::Connected, None);
        assert_eq!(pool.state(), State::Connected);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_wait_for_a_restart_that_begins_in_time_and_not_for_a_known_outage() {
        let pool = pool_of_two();
        let [first, second] = pool.endpoints() else {
            panic!("two endpoints")
        };
        second.set_state(State::Unavailable, Some("refused".into()));
        let soon = || Instant::now() + Duration::from_secs(2);
        // Starting up: worth waiting for, until the wait runs out.
        assert_eq!(first.readiness(soon()), Readiness::Coming);
        assert!(!pool.until_ready(Duration::from_secs(2)).await);
        // A restart after a backoff longer than the caller waits: fail now.
        first.set_restarting(Instant::now() + Duration::from_secs(5), "ended".into());
        assert_eq!(first.readiness(soon()), Readiness::Down);
        let before = Instant::now();
        assert!(!pool.until_ready(Duration::from_secs(2)).await);
        assert_eq!(Instant::now(), before, "no wait for a restart out of reach");
        first.set_restarting(Instant::now() + Duration::from_secs(1), "ended".into());
        assert_eq!(first.readiness(soon()), Readiness::Coming);
        // A known outage: fail at once.
        first.set_state(State::Unavailable, Some("refused".into()));
        assert!(!pool.until_ready(Duration::from_secs(2)).await);
        assert_eq!(Instant::now(), before);
    }
}
