//! Why the load could not get going: a target that is not a plain HTTP URL,
//! a call mix nothing can be drawn from, or a request of the harness's own
//! (`initialize`, `notifications/initialized`, `tools/list`) that failed.
//! A failed `tools/call` is not one of these: it is a recorded
//! [`CallOutcome`](super::CallOutcome).

use rand::distr::weighted;
use serde_json::Value;

use super::client::MAX_TOOL_PAGES;

/// Why a load target, a call mix or an MCP session could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The target does not parse as a URL.
    #[error("{url:?} is not a URL: {reason}")]
    NotAUrl {
        /// The target as given.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The target is a URL, but not `http://` with a host.
    #[error("{url:?} is not an http:// URL with a host (the load speaks plain HTTP)")]
    NotPlainHttp {
        /// The target as given.
        url: String,
    },
    /// No entry of the call mix has a positive weight.
    #[error("workload: the call mix cannot be drawn from: {0}")]
    CallMix(weighted::Error),
    /// A harness request got no usable answer: the connection failed, or
    /// the answer could not be read.
    #[error("{step}: {message}")]
    Transport {
        /// The request: `initialize`, `notifications/initialized`, `tools/list`.
        step: &'static str,
        /// What went wrong, with its causes.
        message: String,
    },
    /// A harness request was answered with a JSON-RPC error.
    #[error("{step}: JSON-RPC error {error}")]
    Rpc {
        /// The request.
        step: &'static str,
        /// The response's `error` member.
        error: Value,
    },
    /// A harness request was answered with a non-2xx status and no JSON-RPC error.
    #[error("{step}: HTTP {status}")]
    HttpStatus {
        /// The request.
        step: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// A harness request's result is not a JSON object.
    #[error("{step}: the result is not an object")]
    ResultNotAnObject {
        /// The request.
        step: &'static str,
    },
    /// The session id the server gave cannot be sent back as a header.
    #[error("initialize: Mcp-Session-Id is not visible ASCII")]
    SessionIdNotAscii,
    /// The `initialize` result names no protocol version.
    #[error("initialize: the result has no protocolVersion")]
    NoProtocolVersion,
    /// The server chose a protocol version the harness does not speak.
    #[error(
        "initialize: the server chose protocol version {0:?}, which the harness does not speak"
    )]
    UnknownProtocolVersion(String),
    /// `notifications/initialized` was not answered with 202 Accepted.
    #[error("notifications/initialized: expected 202, got {0}")]
    InitializedNotAccepted(u16),
    /// The `tools/list` result has no `tools` array.
    #[error("tools/list: the result has no tools array")]
    NoToolsArray,
    /// A listed tool has no name.
    #[error("tools/list: a tool has no name")]
    ToolWithoutName,
    /// The server sent the same cursor twice in a row.
    #[error("tools/list: the server repeats cursor {0:?}")]
    RepeatedCursor(String),
    /// `nextCursor` is neither a string nor absent.
    #[error("tools/list: nextCursor is not a string")]
    CursorNotAString,
    /// The listing did not end within the page limit.
    #[error("tools/list: more than {MAX_TOOL_PAGES} pages; giving up")]
    TooManyPages,
    /// A session did not open before the run ended.
    #[error("no answer before the end of the run")]
    NoAnswerBeforeEnd,
}
