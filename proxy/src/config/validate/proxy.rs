//! The `proxy` section: the gateway's own settings (name, listen address,
//! separator, limits, session and shutdown timeouts, allowed origins), each
//! defaulted when left out.

use std::time::Duration;

use super::super::ConfigError;
use super::super::ProxySettings;
use super::super::TracingSettings;
use super::super::duration::ConfigDuration;
use super::super::raw::{RawProxy, RawTracing};
use super::super::source::Seg;
use super::{Validator, child, key};

impl Validator<'_> {
    pub(super) fn proxy(&self, raw: Option<RawProxy>) -> Result<ProxySettings, ConfigError> {
        let defaults = ProxySettings::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        let path = [key("proxy")];
        let name = raw.name.unwrap_or(defaults.name);
        if name.is_empty() {
            return Err(self.error(&child(&path, "name"), "must not be empty"));
        }
        let separator = raw.separator.unwrap_or(defaults.separator);
        if separator.is_empty() {
            return Err(self.error(&child(&path, "separator"), "must not be empty"));
        }
        let max_body_size = raw.max_body_size.map_or(defaults.max_body_size, |s| s.0);
        if max_body_size == 0 {
            return Err(self.error(&child(&path, "max_body_size"), "must be greater than zero"));
        }
        let positive = |value: Option<ConfigDuration>, k: &str, default: Duration| match value {
            Some(d) if d.0.is_zero() => {
                Err(self.error(&child(&path, k), "must be greater than zero"))
            }
            value => Ok(value.map_or(default, |d| d.0)),
        };
        let session_idle_timeout = positive(
            raw.session_idle_timeout,
            "session_idle_timeout",
            defaults.session_idle_timeout,
        )?;
        let default_call_timeout = positive(
            raw.default_call_timeout,
            "default_call_timeout",
            defaults.default_call_timeout,
        )?;
        let at_least_one = |value: Option<usize>, k: &str, default: usize| match value {
            Some(0) => Err(self.error(&child(&path, k), "must be at least 1")),
            value => Ok(value.unwrap_or(default)),
        };
        let max_sessions = at_least_one(raw.max_sessions, "max_sessions", defaults.max_sessions)?;
        let max_in_flight =
            at_least_one(raw.max_in_flight, "max_in_flight", defaults.max_in_flight)?;
        let max_in_flight_per_session = at_least_one(
            raw.max_in_flight_per_session,
            "max_in_flight_per_session",
            defaults.max_in_flight_per_session,
        )?;
        let progress_queue = at_least_one(
            raw.progress_queue,
            "progress_queue",
            defaults.progress_queue,
        )?;
        let allowed_origins = raw.allowed_origins.unwrap_or(defaults.allowed_origins);
        for (i, origin) in allowed_origins.iter().enumerate() {
            let mut p = child(&path, "allowed_origins");
            p.push(Seg::Index(i));
            check_origin(origin).map_err(|m| self.error(&p, m))?;
        }
        let tracing = raw
            .tracing
            .map(|tracing| self.tracing(tracing, &name))
            .transpose()?;
        Ok(ProxySettings {
            tracing,
            allow_unauthenticated: raw
                .allow_unauthenticated
                .unwrap_or(defaults.allow_unauthenticated),
            name,
            listen: raw.listen.map_or(defaults.listen, |l| l.0),
            separator,
            // Zero is allowed: it means "do not wait for in-flight calls".
            shutdown_timeout: raw
                .shutdown_timeout
                .map_or(defaults.shutdown_timeout, |d| d.0),
            max_body_size,
            allowed_origins,
            session_idle_timeout,
            default_call_timeout,
            max_sessions,
            max_in_flight,
            max_in_flight_per_session,
            progress_queue,
            seed: raw.seed.unwrap_or(defaults.seed),
            admin_tools: raw.admin_tools.unwrap_or(defaults.admin_tools),
        })
    }
}

impl Validator<'_> {
    /// `proxy.tracing`: an OTLP/HTTP base URL, and the service's name.
    fn tracing(&self, raw: RawTracing, proxy_name: &str) -> Result<TracingSettings, ConfigError> {
        let path = [key("proxy"), key("tracing")];
        let Some(endpoint) = raw.otlp_endpoint else {
            return Err(self.error(
                &path,
                "missing `otlp_endpoint` (the OTLP/HTTP collector, e.g. http://127.0.0.1:4318)",
            ));
        };
        check_otlp_endpoint(&endpoint)
            .map_err(|m| self.error(&child(&path, "otlp_endpoint"), m))?;
        let service_name = raw.service_name.unwrap_or_else(|| proxy_name.to_owned());
        if service_name.is_empty() {
            return Err(self.error(&child(&path, "service_name"), "must not be empty"));
        }
        Ok(TracingSettings {
            otlp_endpoint: endpoint,
            service_name,
        })
    }
}

/// A collector's base URL: http or https, a host, no query or fragment
/// (`/v1/traces` is appended to its path).
fn check_otlp_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https:// (OTLP over HTTP)".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must hold no credentials (it is printed and logged)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment (`/v1/traces` is appended)".into());
    }
    Ok(())
}

/// Exactly what a browser sends in `Origin`, so that comparing strings works.
fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| format!("invalid origin {origin:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid origin {origin:?}: it must start with http:// or https://"
        ));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err(format!(
            "invalid origin {origin:?}: an origin is scheme://host[:port] with no path or trailing \
             slash; write {canonical:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(check_origin("https://app.example.com").is_ok());
        assert!(check_origin("http://localhost:3000").is_ok());
        assert_eq!(
            check_origin("https://app.example.com/").unwrap_err(),
            "invalid origin \"https://app.example.com/\": an origin is scheme://host[:port] with no \
             path or trailing slash; write \"https://app.example.com\""
        );
        assert!(check_origin("https://App.example.com:443").is_err());
        assert!(check_origin("file:///x").is_err());
        assert!(check_origin("*").is_err());
    }
}
