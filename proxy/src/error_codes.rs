//! The JSON-RPC error codes the proxy answers clients with for failures of
//! its own (ARCHITECTURE.md, "Errors the client sees"). Public, so that a
//! program judging the proxy (the harness's failure kinds) reads them from
//! here rather than copying them; a backend's own error codes are relayed
//! unchanged and are not listed here.

/// The backend is not connected (down, starting, or reconnecting).
pub const BACKEND_UNAVAILABLE: i64 = -32010;
/// The connection to the backend failed while the call was in flight;
/// The call may or may not have reached the backend.
pub const BACKEND_TRANSPORT: i64 = -32011;
/// The backend did not answer within the configured `timeout`
/// (`per_try` or `overall`); the call was cancelled at the backend.
pub const BACKEND_TIMEOUT: i64 = -32013;
/// The proxy refused to send the call, to protect the backend
/// (`rate_limit`, or no `concurrency` slot within `timeout.overall`, ...)
/// Or itself (`max_sessions`, `max_in_flight`, `max_in_flight_per_session`);
/// `data.reason` says which.
pub const BACKEND_LIMITED: i64 = -32014;
/// The client cancelled the request.
pub const REQUEST_CANCELLED: i64 = -32800;
/// The proxy is shutting down and cancelled the request.
pub const SHUTTING_DOWN: i64 = -32012;
/// The request carried no credential, or one that does not pass (`auth:`);
/// sent with HTTP 401 and a `WWW-Authenticate` challenge.
pub const UNAUTHENTICATED: i64 = -32015;
/// The caller's roles do not allow the tool, resource or prompt
/// (`authorization:`); sent with HTTP 403 and `error="insufficient_scope"`.
pub const FORBIDDEN: i64 = -32016;
