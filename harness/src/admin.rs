//! The admin API of a proxy of ours, as the harness uses it: `POST
//! /admin/reload` for a scenario's reload faults with `--proxy-bin`
//! ([`post_reload`]), and the proxy's own view of its backends, sampled
//! while the load runs: its
//! `GET /admin/backends` read every [`SAMPLE_INTERVAL`] of scenario time, so
//! the report can show a breaker opening or an endpoint ejected beside what
//! the clients saw.
//!
//! Only for a proxy of ours (in-process, `--proxy-bin`, `--sim`): another
//! gateway's admin, if it has one, speaks another shape. Samples are taken at
//! fixed scenario times and labelled with them, never with when the answer
//! came, so a simulated run samples identically on every replay. A sample
//! that fails or is late is skipped: sampling never fails a run, and it
//! stops when the load does.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use mcp_proxy::platform::Dialer;
use serde::Deserialize;

use crate::clock::{ScenarioClock, whole_micros};
use crate::load::client::{HttpClient, http_client};
use crate::report::timeline::{BackendSample, BackendState};

/// How often `/admin/backends` is read; a read gets as long to answer.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// The largest admin answer read (a proxy with very many backends aside,
/// a few kilobytes).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Reads one proxy's `/admin/backends`.
#[derive(Debug, Clone)]
pub struct BackendSampler {
    http: HttpClient,
    url: Uri,
    /// `Authorization` for a proxy whose admin needs `admin.token`.
    authorization: Option<hyper::header::HeaderValue>,
}

/// The part of `/admin/backends` a sample keeps.
#[derive(Deserialize)]
struct AdminBackends {
    backends: Vec<BackendState>,
}

impl BackendSampler {
    /// A sampler of the proxy whose MCP endpoint is `mcp_url` (its admin is
    /// on the same host and port), dialing through `dialer`; `None` if the
    /// URL has no host to aim at. With `token` (the proxy's
    /// `admin.token`), each read carries it.
    pub fn new(mcp_url: &str, dialer: Arc<dyn Dialer>, token: Option<&str>) -> Option<Self> {
        let parts = mcp_url.parse::<Uri>().ok()?.into_parts();
        let url = Uri::builder()
            .scheme(parts.scheme?)
            .authority(parts.authority?)
            .path_and_query("/admin/backends")
            .build()
            .ok()?;
        Some(Self {
            http: http_client(dialer),
            url,
            authorization: token.and_then(|token| format!("Bearer {token}").parse().ok()),
        })
    }

    /// Runs `work` (the load) while sampling at each multiple of
    /// [`SAMPLE_INTERVAL`] of `clock` from now up to `until`; returns what
    /// `work` returned and the samples taken before it ended.
    pub async fn sample_while<F: Future>(
        &self,
        clock: ScenarioClock,
        until: Duration,
        work: F,
    ) -> (F::Output, Vec<BackendSample>) {
        let mut samples = Vec::new();
        let mut work = std::pin::pin!(work);
        let ended_first = {
            let sampling = self.sample_until(clock, until, &mut samples);
            tokio::select! {
                biased;
                output = work.as_mut() => Some(output),
                // Sampling ends with the load period; the load may still be
                // in its grace period.
                () = sampling => None,
            }
        };
        let output = match ended_first {
            Some(output) => output,
            None => work.await,
        };
        (output, samples)
    }

    async fn sample_until(
        &self,
        clock: ScenarioClock,
        until: Duration,
        samples: &mut Vec<BackendSample>,
    ) {
        let interval = whole_micros(SAMPLE_INTERVAL);
        let mut tick = whole_micros(clock.elapsed()).div_ceil(interval);
        loop {
            let at = Duration::from_micros(tick.saturating_mul(interval));
            if at > until {
                return;
            }
            tokio::time::sleep_until(clock.at(at)).await;
            if let Ok(Some(backends)) = tokio::time::timeout(SAMPLE_INTERVAL, self.read()).await {
                samples.push(BackendSample {
                    at_us: whole_micros(at),
                    backends,
                });
            }
            tick += 1;
        }
    }

    /// One read of `/admin/backends`; `None` if it failed in any way.
    async fn read(&self) -> Option<Vec<BackendState>> {
        let mut request = Request::new(Full::default());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = self.url.clone();
        if let Some(authorization) = &self.authorization {
            request
                .headers_mut()
                .insert(hyper::header::AUTHORIZATION, authorization.clone());
        }
        let response = self.http.request(request).await.ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .ok()?
            .to_bytes();
        let answer: AdminBackends = serde_json::from_slice(&body).ok()?;
        Some(answer.backends)
    }
}

/// How long a `POST /admin/reload` may take.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST /admin/reload` to the proxy whose MCP endpoint is `mcp_url`, with
/// its `admin.token` if it has one: `Ok` with the changed keys it keeps
/// until a restart when it applied the config file, `Err` with its answer
/// (or why there was none) otherwise.
pub async fn post_reload(
    mcp_url: &str,
    dialer: Arc<dyn Dialer>,
    token: Option<&str>,
) -> Result<Vec<String>, String> {
    let parts = mcp_url
        .parse::<Uri>()
        .map_err(|error| error.to_string())?
        .into_parts();
    let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
        return Err(format!("no host in {mcp_url}"));
    };
    let url = Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query("/admin/reload")
        .build()
        .map_err(|error| error.to_string())?;
    let mut request = Request::new(Full::default());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url;
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "admin.token is not a header value".to_owned())?;
        request
            .headers_mut()
            .insert(hyper::header::AUTHORIZATION, value);
    }
    let exchange = async {
        let response = http_client(dialer)
            .request(request)
            .await
            .map_err(|error| format!("POST /admin/reload: {error}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|error| format!("POST /admin/reload: reading the answer: {error}"))?
            .to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if status == StatusCode::OK {
            let kept = answer["changes"]["restart_needed"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|key| key.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok(kept)
        } else {
            let error = answer["error"].as_str().unwrap_or("no error given");
            Err(format!("{status}: {error}"))
        }
    };
    tokio::time::timeout(RELOAD_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {RELOAD_TIMEOUT:?}")))
}
