//! The task that keeps one endpoint of a backend connected.
//!
//! Loop: connect (spawn the child or reach the server, then `initialize`),
//! list what it offers, serve until the connection dies, then start again.
//! Every transition is logged with the backend's name (the task runs in a
//! `backend{name=..}` span), because "which backend flapped, when, and
//! why" is the first thing an operator asks.
//!
//! When a connection ends, calls wait for the restart (see
//! `Pool::until_ready`). A healthy connection (it answered a call, or
//! lasted [`HEALTHY_AFTER`]) restarts at once, the endpoint `connecting`;
//! one that died before answering restarts after a capped exponential
//! backoff, so a child that dies right after starting does not spin — the
//! endpoint is `unavailable` meanwhile, and only calls that would wait
//! past the restart's time wait for it. After a failed attempt the
//! endpoint is `unavailable` and calls fail fast; attempts go on after the
//! backoff.

use std::sync::{Arc, PoisonError};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::listing::{self, ListKind, Listing};
use super::pool::Endpoint;
use super::{Backend, BackendEvent, State};
use crate::backoff::{Backoff, HEALTHY_AFTER};
use crate::call::{Method, Safety, ToolSafety};
use crate::upstream::{Connection, Outbound, UpstreamError};

/// Keep endpoint number `endpoint` of `backend` connected until `shutdown`
/// is cancelled.
pub(super) async fn run(
    backend: Arc<Backend>,
    endpoint: usize,
    events: mpsc::UnboundedSender<BackendEvent>,
    shutdown: CancellationToken,
) {
    let this = &backend.pool.endpoints()[endpoint];
    let reconnect = backend.config.reconnect;
    let mut backoff = Backoff::new(reconnect.initial, reconnect.max);
    let mut ever_connected = false;
    // The first attempt, and the one after a connection ended, is a start
    // calls wait for; after a failed attempt the endpoint is known down.
    let mut restarting = true;
    loop {
        if restarting {
            this.set_state(State::Connecting, None);
        }
        let (event_sink, mut upstream_events) = mpsc::unbounded_channel();
        let connected = tokio::select! {
            biased;
            result = connect_and_list(&backend, this, event_sink) => result,
            () = shutdown.cancelled() => break,
        };
        let failure = match connected {
            Ok((connection, listing)) => {
                let connected_at = Instant::now();
                let answered_before = this.answered();
                if ever_connected {
                    this.count_restart();
                    match backend.config.transport_kind() {
                        "stdio" => {
                            tracing::info!("backend respawned and re-initialized")
                        }
                        _ => {
                            tracing::info!("backend reconnected with a new session")
                        }
                    }
                } else {
                    tracing::info!(tools = listing.lists.tools.len(), "backend connected");
                }
                ever_connected = true;
                backend.warn_if_nothing_to_hedge(&listing);
                backend.publish_listing(this, listing, ListKind::ALL.to_vec(), &events);
                *this
                    .connection
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
                this.set_state(State::Connected, None);
                // Renewed once the connection is in place, so a subscribe
                // that arrives meanwhile reaches this endpoint either way;
                // shutdown and a dead connection end the wait, as in serve.
                tokio::select! {
                    biased;
                    () = resubscribe(&backend, &connection) => {}
                    () = shutdown.cancelled() => {}
                    () = connection.closed() => {}
                }

                let stopping = serve(
                    &backend,
                    this,
                    &connection,
                    &mut upstream_events,
                    &events,
                    &shutdown,
                )
                .await;
                *this
                    .connection
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                backend.forget_listing(this, &events);
                if stopping {
                    connection.shutdown().await;
                    break;
                }
                restarting = true;
                let reason = connection
                    .close_reason()
                    .unwrap_or_else(|| "connection closed".to_owned());
                let failure = match backend.config.transport_kind() {
                    "stdio" => format!("process ended: {reason}"),
                    _ => format!("connection lost: {reason}"),
                };
                // Only a connection that served counts as recovery: a child
                // that dies right after starting keeps backing off.
                if this.answered() > answered_before || connected_at.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                    tracing::warn!(error = %failure, "backend connection ended; restarting at once");
                    backend.record_failure(this, &failure);
                    this.set_state(State::Connecting, Some(failure));
                    continue;
                }
                failure
            }
            Err(error) => {
                restarting = false;
                error.to_string()
            }
        };
        let delay = backoff.next_delay();
        backend.record_failure(this, &failure);
        if restarting {
            tracing::warn!(
                error = %failure,
                retry_in = ?delay,
                "backend connection ended before it answered; restarting after a backoff"
            );
            this.set_restarting(Instant::now() + delay, failure);
        } else {
            tracing::warn!(
                error = %failure,
                retry_in = ?delay,
                "backend marked unavailable; retrying in the background"
            );
            this.set_state(State::Unavailable, Some(failure));
        }
        tokio::select! {
            biased;
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
    this.set_state(State::Stopped, None);
    tracing::debug!("backend supervisor stopped");
}

/// Connect, initialize and fetch every list the backend offers.
async fn connect_and_list(
    backend: &Backend,
    endpoint: &Endpoint,
    event_sink: mpsc::UnboundedSender<Value>,
) -> Result<(Connection, Listing), UpstreamError> {
    let (connection, init) =
        Connection::connect(&endpoint.transport, &backend.settings, event_sink).await?;
    let mut listing = Listing::from_initialize(&init);
    let offered: Vec<ListKind> = ListKind::ALL
        .into_iter()
        .filter(|&kind| listing.offers(kind))
        .collect();
    if let Err(error) = fetch_lists(backend, &connection, &mut listing, &offered).await {
        connection.shutdown().await;
        return Err(error);
    }
    Ok((connection, listing))
}

/// A new session with the backend knows no subscriptions: renew the ones
/// clients hold, all at once and within one `init_timeout`. A failure is
/// logged; the URIs stay recorded for the next connection.
async fn resubscribe(backend: &Backend, connection: &Connection) {
    let uris: Vec<String> = backend
        .subscriptions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    if uris.is_empty() {
        return;
    }
    let renewals = uris.iter().map(|uri| async move {
        let params = Some(serde_json::json!({ "uri": uri }));
        let renewed = connection
            .request("resources/subscribe", params, None, Outbound::default())
            .await;
        if let Err(error) = renewed {
            tracing::warn!(uri, %error, "renewing a resource subscription failed");
        }
    });
    let all = futures_util::future::join_all(renewals);
    if tokio::time::timeout(backend.config.init_timeout, all)
        .await
        .is_err()
    {
        tracing::warn!(
            count = uris.len(),
            "renewing resource subscriptions timed out"
        );
    }
}

/// Fetch the given kinds into `listing`, each within the backend's
/// `init_timeout`. A JSON-RPC error means the server advertises a capability
/// without implementing every list of it (templates, typically): that list
/// is empty. Any other failure (transport, timeout) is returned.
async fn fetch_lists(
    backend: &Backend,
    connection: &Connection,
    listing: &mut Listing,
    kinds: &[ListKind],
) -> Result<(), UpstreamError> {
    let within = backend.config.init_timeout;
    for &kind in kinds {
        let items = match tokio::time::timeout(within, listing::fetch(connection, kind)).await {
            Ok(Ok(items)) => items,
            Ok(Err(UpstreamError::JsonRpc(error))) => {
                tracing::debug!(kind = kind.method(), error = %error.message, "list not available");
                Vec::new()
            }
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(UpstreamError::ListTimeout(kind.method(), within)),
        };
        *listing.lists.items_mut(kind) = items;
    }
    Ok(())
}

/// Serve a live connection: relay its events and re-list on `list_changed`.
/// Returns true when the proxy is stopping, false when the connection died.
async fn serve(
    backend: &Backend,
    endpoint: &Endpoint,
    connection: &Connection,
    upstream_events: &mut mpsc::UnboundedReceiver<Value>,
    events: &mpsc::UnboundedSender<BackendEvent>,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => return true,
            () = connection.closed() => return false,
            Some(message) = upstream_events.recv() => message,
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(kinds) = ListKind::from_list_changed(method) else {
            let _ = events.send(BackendEvent::Notification {
                backend: backend.id(),
                message,
            });
            continue;
        };
        // Re-listing waits on the backend: keep watching for shutdown and
        // for the connection dying meanwhile.
        tokio::select! {
            biased;
            () = relist(backend, endpoint, connection, kinds, events) => {}
            () = shutdown.cancelled() => return true,
            () = connection.closed() => return false,
        }
    }
}

async fn relist(
    backend: &Backend,
    endpoint: &Endpoint,
    connection: &Connection,
    kinds: &[ListKind],
    events: &mpsc::UnboundedSender<BackendEvent>,
) {
    let mut listing = endpoint.listing().map(|l| (*l).clone()).unwrap_or_default();
    if let Err(error) = fetch_lists(backend, connection, &mut listing, kinds).await {
        tracing::warn!(kinds = ?kinds, %error, "re-listing failed; keeping the previous lists");
        return;
    }
    tracing::info!(kinds = ?kinds, "backend lists changed; re-listed");
    backend.publish_listing(endpoint, listing, kinds.to_vec(), events);
}

impl Backend {
    /// Keeps `failure` of `endpoint` as the backend's last error, naming
    /// the endpoint when there are several.
    fn record_failure(&self, endpoint: &Endpoint, failure: &str) {
        let error = if self.pool.endpoints().len() > 1 {
            format!("{}: {failure}", endpoint.label)
        } else {
            failure.to_owned()
        };
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// Hedging races only calls that are safe to repeat, which for tools is
    /// known only once the server lists them: say so when none is.
    fn warn_if_nothing_to_hedge(&self, listing: &Listing) {
        if self.config.hedging.is_none() {
            return;
        }
        let tools = &listing.lists.tools;
        let any_safe = tools.iter().any(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            Safety::of(Method::ToolsCall, name, tools, &self.config.safe_to_repeat).repeatable
        });
        if !tools.is_empty() && !any_safe {
            tracing::warn!(
                "hedging is configured but no tool is safe to repeat (readOnlyHint, \
                 idempotentHint or safe_to_repeat.tools): tools/call will not be hedged"
            );
        }
    }

    /// Records what `endpoint` listed; it becomes the backend's listing
    /// when the endpoint is the preferred one (see `Pool::preferred_listing`).
    fn publish_listing(
        &self,
        endpoint: &Endpoint,
        listing: Listing,
        kinds: Vec<ListKind>,
        events: &mpsc::UnboundedSender<BackendEvent>,
    ) {
        endpoint.set_listing(Some(Arc::new(listing)));
        self.show_preferred_listing(kinds, events);
    }

    /// `endpoint` lost its connection: its listing no longer counts. When
    /// it was the one shown, the next endpoint's takes over; with none
    /// left, the last one stays, so names are stable while the backend is down.
    fn forget_listing(&self, endpoint: &Endpoint, events: &mpsc::UnboundedSender<BackendEvent>) {
        endpoint.set_listing(None);
        self.show_preferred_listing(ListKind::ALL.to_vec(), events);
    }

    fn show_preferred_listing(
        &self,
        kinds: Vec<ListKind>,
        events: &mpsc::UnboundedSender<BackendEvent>,
    ) {
        let Some((_, preferred)) = self.pool.preferred_listing() else {
            return;
        };
        {
            let mut shown = self.listing.write().unwrap_or_else(PoisonError::into_inner);
            if Arc::ptr_eq(&shown, &preferred) {
                return;
            }
            let safety = ToolSafety::new(&preferred.lists.tools, &self.config.safe_to_repeat);
            *self
                .tool_safety
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(safety);
            *shown = preferred;
        }
        self.listed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = events.send(BackendEvent::ListingChanged { kinds });
    }
}
