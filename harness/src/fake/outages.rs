//! An HTTP server that follows an outage timeline: what the HTTP fake and
//! the issuer's JWKS server (`crate::identity::jwks`) share.
//!
//! While up, it accepts connections and serves each with hyper's HTTP/1
//! driver; when an outage starts it stops listening (so connecting is
//! refused, the strongest outage a client can see) and resets every open
//! connection; when it ends, it listens again on the same port. What a
//! server does with requests, and what it forgets at an outage, is the
//! [`Site`]'s.
//!
//! Outages are scheduled on the scenario clock with `sleep_until`, so they
//! follow a paused tokio clock (and a simulation's virtual one) too.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::net::{FakeListener, FakeStream, HeldPort};
use crate::clock::ScenarioClock;

/// How long to wait before trying again to listen after an outage (the
/// port lost meanwhile and taken) or to accept (out of descriptors).
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A response body of a served site.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What holds a server's port.
pub(crate) enum Port {
    /// Listening: connections are accepted.
    Up(Box<dyn FakeListener>),
    /// Down: connecting is refused, and the port stays the server's.
    Down(Box<dyn HeldPort>),
}

/// A server's timeline and request handling.
pub(crate) trait Site: Send + Sync + 'static {
    /// Scenario time.
    fn clock(&self) -> ScenarioClock;

    /// Whether an outage holds at `now`.
    fn down_at(&self, now: Duration) -> bool;

    /// The first instant after `now` at which an outage starts or ends.
    fn next_change(&self, now: Duration) -> Option<Duration>;

    /// Called as an outage starts, once the port is closed.
    fn went_down(&self);

    /// Answers one request; `reset` cancelled aborts its connection.
    fn respond(
        self: Arc<Self>,
        request: Request<Incoming>,
        reset: CancellationToken,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// Runs `site` on `port` until `stop`, then waits for its connections to end.
pub(crate) async fn supervise<S: Site>(site: Arc<S>, port: Port, stop: CancellationToken) {
    let connections = TaskTracker::new();
    follow_outages(&site, port, &stop, &connections).await;
    // The port is closed, and `stop` cancelled every connection's token:
    // they are being reset.
    connections.close();
    connections.wait().await;
}

/// Serves while up, goes down and comes back as the outage timeline says,
/// until `stop`.
async fn follow_outages<S: Site>(
    site: &Arc<S>,
    mut port: Port,
    stop: &CancellationToken,
    connections: &TaskTracker,
) {
    let clock = site.clock();
    // Resets the connections accepted since the server last came up.
    let mut up = stop.child_token();
    let mut now = clock.elapsed();
    loop {
        let down = site.down_at(now);
        port = match (down, port) {
            (true, Port::Up(listener)) => {
                up.cancel();
                up = stop.child_token();
                let held = listener.close();
                site.went_down();
                Port::Down(held)
            }
            (false, Port::Down(held)) => match listen_again(held, stop).await {
                Some(listener) => Port::Up(listener),
                None => return,
            },
            (_, unchanged) => unchanged,
        };
        let next = site.next_change(now);
        loop {
            // Stopping wins over the timeline, and the timeline over a
            // connection waiting to be accepted: one that arrives as an
            // outage starts is refused.
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = sleep_until(clock, next) => break,
                stream = next_connection(&mut port) => {
                    connections.spawn(serve_connection(
                        stream,
                        Arc::clone(site),
                        up.child_token(),
                    ));
                }
            }
        }
        now = clock.elapsed().max(next.unwrap_or_default());
    }
}

async fn sleep_until(clock: ScenarioClock, at: Option<Duration>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock.at(at)).await,
        None => std::future::pending().await,
    }
}

/// Listens on `held` again after an outage, retrying while it cannot
/// (`None` if stopped meanwhile).
async fn listen_again(
    mut held: Box<dyn HeldPort>,
    stop: &CancellationToken,
) -> Option<Box<dyn FakeListener>> {
    let addr = held.local_addr();
    let mut reported = false;
    loop {
        let listening = tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            listening = held.listen() => listening,
        };
        match listening {
            Ok(listener) => return Some(listener),
            Err((e, back)) => {
                if !reported {
                    eprintln!(
                        "fake at {addr}: cannot listen again after an outage ({e}); retrying"
                    );
                    reported = true;
                }
                held = back;
            }
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

/// The next connection while the server is up; never while it is down.
async fn next_connection(port: &mut Port) -> Box<dyn FakeStream> {
    let Port::Up(listener) = port else {
        return std::future::pending().await;
    };
    loop {
        match listener.accept().await {
            Ok(stream) => return stream,
            // Out of descriptors and the like: pause rather than spin.
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Serves one connection until it closes or `reset` is cancelled (a
/// scripted reset, an outage, shutdown), which aborts it.
async fn serve_connection<S: Site>(
    stream: Box<dyn FakeStream>,
    site: Arc<S>,
    reset: CancellationToken,
) {
    let service = {
        let reset = reset.clone();
        service_fn(move |request| {
            let answer = Arc::clone(&site).respond(request, reset.clone());
            async move { Ok::<_, Infallible>(answer.await) }
        })
    };
    let mut connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    // A reset wins over a connection that ends at the same moment.
    tokio::select! {
        biased;
        () = reset.cancelled() => connection.into_parts().io.into_inner().abort(),
        _ = &mut connection => {}
    }
}
