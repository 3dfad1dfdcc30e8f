//! The `initialize` exchange, as both transports run it.
//!
//! The proxy is the backend's client: it asks for [`PROTOCOL_VERSION`],
//! declares the client capabilities it can pass on to its own clients
//! ([`client_capabilities`]), and accepts whichever revision the backend
//! picks as long as the proxy understands it.
//!
//! A backend has one set of capabilities for all the proxy's clients, so
//! the proxy declares all it can pass on; each request is then passed on
//! only to a client that declared what it needs (`session/asks.rs`), and
//! refused with `-32601` otherwise, as that client would have answered.
//! Roots are declared without `listChanged`: a client's change of roots is
//! its own, and the backend is shared.

use serde_json::{Value, json};

use super::{ConnectSettings, PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, UpstreamError};

/// The client capabilities the proxy declares to every backend.
pub(super) fn client_capabilities() -> Value {
    json!({
        "sampling": { "context": {}, "tools": {} },
        "elicitation": { "form": {}, "url": {} },
        "roots": {},
    })
}

/// The `params` of the proxy's `initialize` request.
pub(super) fn initialize_params(settings: &ConnectSettings) -> Value {
    json!({
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": client_capabilities(),
        "clientInfo": { "name": settings.client_name, "version": settings.client_version },
    })
}

/// Check the backend's `initialize` result; returns the negotiated protocol
/// revision.
pub(super) fn negotiated_version(result: &Value) -> Result<String, UpstreamError> {
    let Some(version) = result.get("protocolVersion") else {
        return Err(UpstreamError::Protocol(
            "initialize result has no protocolVersion".into(),
        ));
    };
    match version.as_str() {
        Some(version) if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) => Ok(version.to_owned()),
        _ => Err(UpstreamError::Protocol(format!(
            "backend chose protocol version {version}, which mcp-proxy does not support \
             (it supports {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ))),
    }
}

/// A connection that dies during the handshake never came up: the caller
/// sees a connect failure, not a lost request.
pub(super) fn as_connect_failure(error: UpstreamError) -> UpstreamError {
    match error {
        UpstreamError::Lost(reason) => {
            UpstreamError::Connect(format!("connection lost during initialize: {reason}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn builds_params_and_checks_versions() {
        let settings = ConnectSettings {
            platform: crate::platform::Platform::os(),
            backend: "b".into(),
            client_name: "mcp-proxy".into(),
            client_version: "1.2.3".into(),
            init_timeout: Duration::from_secs(1),
        };
        let params = initialize_params(&settings);
        assert_eq!(params["protocolVersion"], json!(PROTOCOL_VERSION));
        assert_eq!(
            params["clientInfo"],
            json!({"name": "mcp-proxy", "version": "1.2.3"})
        );
        assert_eq!(params["capabilities"], client_capabilities());
        for capability in ["sampling", "elicitation", "roots"] {
            assert!(
                params["capabilities"][capability].is_object(),
                "{capability}"
            );
        }

        assert_eq!(
            negotiated_version(&json!({"protocolVersion": "2025-03-26"})).unwrap(),
            "2025-03-26"
        );
        assert!(matches!(
            negotiated_version(&json!({"protocolVersion": "1999-01-01"})),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            negotiated_version(&json!({"protocolVersion": 5})),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            negotiated_version(&json!({})),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            negotiated_version(&json!(null)),
            Err(UpstreamError::Protocol(_))
        ));
    }

    #[test]
    fn lost_during_the_handshake_is_a_connect_failure() {
        assert!(matches!(
            as_connect_failure(UpstreamError::Lost("x".into())),
            UpstreamError::Connect(_)
        ));
        let timeout = UpstreamError::InitTimeout(Duration::from_secs(1));
        assert_eq!(as_connect_failure(timeout.clone()), timeout);
    }
}
