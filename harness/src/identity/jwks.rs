//! The issuer's fake JWKS server: `GET /jwks.json` answers the JWK Set of
//! the keys published at that moment ([`IssuerKeys::jwks_at`]); any other
//! path is 404, any other method 405.
//!
//! It follows the issuer's `outage` faults as an HTTP fake does (the same
//! `fake::outages` machinery): connecting is refused while one holds, and
//! open connections are reset as it starts. It listens on a
//! [`FakeNetwork`]: 127.0.0.1 in a real run, its own simulated host in
//! simulation.
//!
//! Every request is journalled under the issuer's name (as `fake`), with
//! its HTTP method, its URL as `endpoint`, and the outcome `ok`,
//! `not_found` or `method_not_allowed`, so a `count` check can count the
//! proxy's JWKS fetches.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::IssuerKeys;
use crate::clock::ScenarioClock;
use crate::fake::net::{FakeNetwork, LoopbackNetwork};
use crate::fake::outages::{Body, Port, Site, supervise};
use crate::fake::script::next_edge;
use crate::journal::{Journal, JournalEntry};
use crate::scenario::{FaultAction, Scenario, Trigger};

/// The path the JWK Set is served at.
pub const JWKS_PATH: &str = "/jwks.json";

/// A running JWKS server. Stops on [`JwksServer::shutdown`] or when dropped.
pub struct JwksServer {
    url: String,
    stop: CancellationToken,
    supervisor: JoinHandle<()>,
}

/// What the server serves, and when it is down.
struct Jwks {
    keys: Arc<IssuerKeys>,
    /// The triggers of the issuer's outages.
    outages: Vec<Trigger>,
    clock: ScenarioClock,
    journal: Journal,
    url: String,
}

impl JwksServer {
    /// Starts the server of `keys`' issuer on 127.0.0.1 (its `port`, or a
    /// free one); see [`JwksServer::start_on`].
    pub async fn start(
        keys: Arc<IssuerKeys>,
        scenario: &Scenario,
        clock: ScenarioClock,
        journal: Journal,
    ) -> io::Result<JwksServer> {
        let port = keys.issuer().port;
        Self::start_on(keys, scenario, clock, journal, &LoopbackNetwork, port).await
    }

    /// Takes `port` on `network` (0: a free one) and starts serving; a
    /// server started inside an outage holds the port without listening
    /// until it ends.
    pub async fn start_on(
        keys: Arc<IssuerKeys>,
        scenario: &Scenario,
        clock: ScenarioClock,
        journal: Journal,
        network: &dyn FakeNetwork,
        port: u16,
    ) -> io::Result<JwksServer> {
        let held = network.bind(port).await?;
        let url = format!(
            "http://{}:{}{JWKS_PATH}",
            network.host(),
            held.local_addr().port()
        );
        let outages = scenario
            .faults
            .iter()
            .filter(|f| f.fake == keys.name() && matches!(f.action, FaultAction::Outage { .. }))
            .map(|f| f.trigger.clone())
            .collect();
        let site = Arc::new(Jwks {
            keys,
            outages,
            clock,
            journal,
            url: url.clone(),
        });
        let port = if site.down_at(clock.elapsed()) {
            Port::Down(held)
        } else {
            Port::Up(held.listen().await.map_err(|(e, _)| e)?)
        };
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(site, port, stop.clone()));
        Ok(JwksServer {
            url,
            stop,
            supervisor,
        })
    }

    /// The JWK Set's URL, `http://HOST:PORT/jwks.json`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Stops accepting, resets open connections, and waits for the end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.supervisor).await;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Jwks {
    fn record(&self, method: &Method, outcome: &str) {
        self.journal.record(JournalEntry {
            at: self.clock.elapsed(),
            fake: self.keys.name().to_owned(),
            endpoint: self.url.clone(),
            method: method.as_str().to_owned(),
            tool: None,
            arguments: None,
            id: None,
            call: None,
            traceparent: None,
            outcome: outcome.to_owned(),
        });
    }

    fn answer(&self, method: &Method, path: &str) -> Response<Body> {
        if path != JWKS_PATH {
            self.record(method, "not_found");
            return empty(StatusCode::NOT_FOUND);
        }
        if method != Method::GET {
            self.record(method, "method_not_allowed");
            let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        self.record(method, "ok");
        let body = self.keys.jwks_at(self.clock.elapsed()).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl Site for Jwks {
    fn clock(&self) -> ScenarioClock {
        self.clock
    }

    fn down_at(&self, now: Duration) -> bool {
        self.outages.iter().any(|t| t.holds_at(now))
    }

    fn next_change(&self, now: Duration) -> Option<Duration> {
        self.outages.iter().filter_map(|t| next_edge(t, now)).min()
    }

    fn went_down(&self) {}

    fn respond(
        self: Arc<Self>,
        request: Request<Incoming>,
        _reset: CancellationToken,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let response = self.answer(request.method(), request.uri().path());
        std::future::ready(response)
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SCENARIO: &str = "name: t\ndescription: d\nduration: 10s\n\
        fakes: [{ name: f, transport: http, tools: [{ name: a }] }]\n\
        issuer: { name: idp, audience: 'https://mcp.test/mcp', keys: [k1, k2] }\n\
        faults:\n\
        - { issuer: idp, at: 2s, rotate_key: { to: k2, keep_old: false } }\n\
        - { issuer: idp, at: 4s, for: 2s, outage: true }\n\
        workload: { closed: { concurrency: 1 }, calls: [{ tool: a }] }\nexpect: []\n";

    async fn start(journal: Journal) -> JwksServer {
        let scenario = crate::scenario::load_str(SCENARIO, Path::new("t.yaml")).unwrap();
        let keys = Arc::new(IssuerKeys::of(&scenario, 5).unwrap().unwrap());
        JwksServer::start(keys, &scenario, ScenarioClock::start_now(), journal)
            .await
            .unwrap()
    }

    async fn kids(client: &reqwest::Client, url: &str) -> Result<Vec<String>, reqwest::Error> {
        let body = client.get(url).send().await?.bytes().await?;
        let set: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(set["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect())
    }

    /// Real sockets, real time: the timeline is seconds long, so this test
    /// sleeps through it (about 6 s).
    #[tokio::test]
    async fn serves_the_published_keys_rotates_and_refuses_connections_in_an_outage() {
        let journal = Journal::in_memory();
        let server = start(journal.clone()).await;
        let url = server.url();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/jwks.json"));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        assert_eq!(kids(&client, &url).await.unwrap(), ["k1"]);
        let other = url.replace("/jwks.json", "/other");
        assert_eq!(client.get(&other).send().await.unwrap().status(), 404);
        assert_eq!(client.post(&url).send().await.unwrap().status(), 405);

        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(kids(&client, &url).await.unwrap(), ["k2"]);

        tokio::time::sleep(Duration::from_millis(2_000)).await;
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        let down = kids(&fresh, &url).await.unwrap_err();
        assert!(down.is_connect(), "{down:?}");

        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert_eq!(kids(&fresh, &url).await.unwrap(), ["k2"]);
        server.shutdown().await;

        let outcomes: Vec<(String, String)> = journal
            .snapshot()
            .into_iter()
            .map(|e| {
                assert_eq!(e.fake, "idp");
                (e.method, e.outcome)
            })
            .collect();
        let expected = [
            ("GET", "ok"),
            ("GET", "not_found"),
            ("POST", "method_not_allowed"),
            ("GET", "ok"),
            ("GET", "ok"),
        ]
        .map(|(m, o)| (m.to_string(), o.to_string()));
        assert_eq!(outcomes, expected);
    }
}
