//! JSON-RPC 2.0 framing as the proxy needs it: classify a message, build
//! responses and errors, and name the standard error codes (the proxy's
//! own are in `error_codes`).
//!
//! Messages are kept as `serde_json::Value` end to end so that every field a
//! client or backend sends (`_meta`, unknown extensions, error `data`) passes
//! through unchanged; only the fields the proxy routes on are read.

use serde_json::{Map, Value, json};

/// Invalid JSON was received.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// MCP: the requested resource does not exist.
pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;

pub(crate) use crate::error_codes::{
    BACKEND_LIMITED, BACKEND_TIMEOUT, BACKEND_TRANSPORT, BACKEND_UNAVAILABLE, REQUEST_CANCELLED,
    SHUTTING_DOWN,
};

/// A JSON-RPC error object, kept whole so it can be relayed unchanged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// The human-readable message.
    pub message: String,
    /// Optional structured data, relayed byte for byte in meaning.
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with no data.
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attach structured data.
    pub(crate) fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Read an error object from a JSON-RPC `error` member. A malformed one
    /// (missing code or message) becomes an internal error that says so.
    pub(crate) fn from_value(value: &Value) -> Self {
        let code = value.get("code").and_then(Value::as_i64);
        let message = value.get("message").and_then(Value::as_str);
        match (code, message) {
            (Some(code), Some(message)) => Self {
                code,
                message: message.to_owned(),
                data: value.get("data").cloned(),
            },
            _ => Self::new(
                INTERNAL_ERROR,
                format!("malformed error object from backend: {value}"),
            ),
        }
    }

    /// The `error` member as JSON.
    pub(crate) fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("code".into(), self.code.into());
        map.insert("message".into(), Value::String(self.message.clone()));
        if let Some(data) = &self.data {
            map.insert("data".into(), data.clone());
        }
        Value::Object(map)
    }
}

/// What kind of JSON-RPC message a value is, by the members it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`, no `method`.
    Response,
    /// Anything else.
    Invalid,
}

/// Classify a message.
pub(crate) fn kind(message: &Value) -> Kind {
    let Some(object) = message.as_object() else {
        return Kind::Invalid;
    };
    let has_method = object.get("method").is_some_and(Value::is_string);
    let id = object.get("id");
    let has_id = id.is_some_and(is_valid_id);
    match (has_method, has_id) {
        (true, true) => Kind::Request,
        (true, false) if id.is_none() => Kind::Notification,
        (false, true) if object.contains_key("result") || object.contains_key("error") => {
            Kind::Response
        }
        _ => Kind::Invalid,
    }
}

/// JSON-RPC ids are strings or integers (MCP forbids null).
pub(crate) fn is_valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// A success response.
pub(crate) fn response(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response.
pub(crate) fn error_response(id: Value, error: &ErrorObject) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_value() })
}

/// A notification.
pub(crate) fn notification(method: &str, params: Option<Value>) -> Value {
    match params {
        Some(params) => json!({ "jsonrpc": "2.0", "method": method, "params": params }),
        None => json!({ "jsonrpc": "2.0", "method": method }),
    }
}

/// A request.
pub(crate) fn request(id: Value, method: &str, params: Option<Value>) -> Value {
    match params {
        Some(params) => json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
        None => json!({ "jsonrpc": "2.0", "id": id, "method": method }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Kind::Request
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":"a","method":"ping"})),
            Kind::Request
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","method":"x"})),
            Kind::Notification
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Kind::Response
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":null,"method":"x"})),
            Kind::Invalid
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1.5,"method":"x"})),
            Kind::Invalid
        );
        assert_eq!(kind(&json!([1])), Kind::Invalid);
    }

    #[test]
    fn error_objects_round_trip_with_data() {
        let value = json!({"code": -32602, "message": "bad", "data": {"field": "x"}});
        let error = ErrorObject::from_value(&value);
        assert_eq!(error.code, -32602);
        assert_eq!(error.to_value(), value);
    }

    #[test]
    fn malformed_error_objects_become_internal_errors() {
        let error = ErrorObject::from_value(&json!({"message": "no code"}));
        assert_eq!(error.code, INTERNAL_ERROR);
    }
}
