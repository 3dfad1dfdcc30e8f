//! The MCP server both faces share: one JSON-RPC message in, one [`Reply`]
//! out, every request journalled. What a face refuses before the server
//! sees it (unparseable input, HTTP session errors) it journals through
//! [`Server::record`].
//!
//! The faces own framing and transport (HTTP sessions, stdio lines); this
//! module owns what an MCP server says. Scripted outcomes that are transport
//! actions (reset, hang, malformed frame, HTTP status, exit) come back as
//! [`Reply`] variants for the face to carry out. An outcome the face cannot
//! perform (an exit over HTTP, a status over stdio; validation rejects both)
//! is answered with a JSON-RPC internal error instead of being dropped.
//!
//! A successful call is answered with its own arguments as JSON text (the
//! *echo*), `harness_call` included, so whoever gets the answer can tell
//! which call it belongs to: [`echoed_call`] reads the number back.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

use super::FakeConfig;
use super::script::Script;
use crate::clock::ScenarioClock;
use crate::journal::{Journal, JournalEntry};
use crate::scenario::{Outcome, ToolSpec};

/// The protocol version answered when the client asks for one we do not know.
const LATEST_VERSION: &str = "2025-11-25";
const KNOWN_VERSIONS: [&str; 3] = [LATEST_VERSION, "2025-06-18", "2025-03-26"];

/// The body of a malformed answer: a JSON-RPC response cut short.
pub(crate) const MALFORMED: &[u8] = br#"{"jsonrpc":"2.0","id":"#;

/// The journal's method for input that held no message to read.
pub(crate) const UNPARSEABLE: &str = "(unparseable)";
/// The journal's method for a JSON-RPC response (which has none).
const RESPONSE: &str = "(response)";

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// Which face a server speaks through: decides how outages and the
/// transport-only outcomes come out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    /// Streamable HTTP: an outage resets the connection.
    Http,
    /// stdio: an outage exits the process.
    Stdio,
}

/// What the face does with one message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// Send this JSON-RPC message.
    Json(Value),
    /// Nothing to answer (a notification or a response).
    Nothing,
    /// Never answer.
    Hang,
    /// http: reset the connection.
    Reset,
    /// Send an invalid frame ([`MALFORMED`]).
    Malformed,
    /// http: answer with this status and no body.
    HttpStatus {
        /// The status code.
        status: u16,
        /// Sent as `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// stdio: close the output and end with this exit code.
    Exit(i32),
}

/// One parsed JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// Has an id: wants an answer.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// No id.
    Notification { method: String, params: Value },
    /// A response to something the server sent (it sends nothing, so these
    /// are ignored).
    Response { id: Value },
}

/// Input that is not a JSON-RPC message (boxed where returned: it is large
/// and rare).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    /// The id, if the input was an object carrying one.
    pub(crate) id: Option<Value>,
    /// The JSON-RPC error response to send back.
    pub(crate) answer: Value,
    /// The journal's outcome label: `parse_error` or `invalid_request`.
    pub(crate) outcome: &'static str,
}

impl Invalid {
    fn new(id: Option<Value>, code: i64, message: &str) -> Box<Invalid> {
        Box::new(Invalid {
            answer: error_response(id.as_ref().unwrap_or(&Value::Null), code, message),
            id,
            outcome: if code == PARSE_ERROR {
                "parse_error"
            } else {
                "invalid_request"
            },
        })
    }

    /// A stdio line longer than `limit` bytes, discarded unread.
    pub(crate) fn line_too_long(limit: usize) -> Box<Invalid> {
        Invalid::new(
            None,
            PARSE_ERROR,
            &format!("parse error: line longer than {limit} bytes"),
        )
    }
}

impl Message {
    /// Parses one message.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Message, Box<Invalid>> {
        let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
            return Err(Invalid::new(None, PARSE_ERROR, "parse error"));
        };
        let Value::Object(mut object) = value else {
            return Err(Invalid::new(
                None,
                INVALID_REQUEST,
                "expected one JSON-RPC message object",
            ));
        };
        let params = object.remove("params").unwrap_or(Value::Null);
        match (object.remove("method"), object.remove("id")) {
            (Some(Value::String(method)), Some(id)) => Ok(Message::Request { id, method, params }),
            (Some(Value::String(method)), None) => Ok(Message::Notification { method, params }),
            (None, Some(id)) if object.contains_key("result") || object.contains_key("error") => {
                Ok(Message::Response { id })
            }
            (_, id) => Err(Invalid::new(
                id,
                INVALID_REQUEST,
                "not a JSON-RPC request, notification or response",
            )),
        }
    }

    /// What the journal records of it: method, id and params.
    pub(crate) fn parts(&self) -> (&str, Option<&Value>, &Value) {
        match self {
            Message::Request { id, method, params } => (method, Some(id), params),
            Message::Notification { method, params } => (method, None, params),
            Message::Response { id } => (RESPONSE, Some(id), &Value::Null),
        }
    }

    /// Whether this is an `initialize` request (which opens an HTTP session).
    pub(crate) fn is_initialize(&self) -> bool {
        matches!(self, Message::Request { method, .. } if method == "initialize")
    }
}

/// The MCP server of one fake.
pub(crate) struct Server {
    name: String,
    face: Face,
    tools: Vec<ToolSpec>,
    script: Mutex<Script>,
    clock: ScenarioClock,
    journal: Journal,
}

impl Server {
    /// A server for `cfg`, speaking through `face`.
    pub(crate) fn new(cfg: &FakeConfig, face: Face) -> Self {
        Self {
            name: cfg.spec.name.clone(),
            face,
            tools: cfg.spec.tools.clone(),
            script: Mutex::new(Script::new(
                &cfg.spec,
                &cfg.faults,
                cfg.seed,
                cfg.generation,
            )),
            clock: cfg.clock,
            journal: cfg.journal.clone(),
        }
    }

    /// The clock of the scenario.
    pub(crate) fn clock(&self) -> ScenarioClock {
        self.clock
    }

    /// How long this process takes to start (see [`Script::startup`]).
    pub(crate) fn startup(&self) -> Duration {
        self.script().startup()
    }

    /// The exit code of the outage in force at `now`, if any.
    pub(crate) fn outage_at(&self, now: Duration) -> Option<i32> {
        self.script().outage_at(now)
    }

    /// When the outage state may next change after `now`.
    pub(crate) fn next_outage_change(&self, now: Duration) -> Option<Duration> {
        self.script().next_outage_change(now)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A journal entry, stamped now, for a request received on `endpoint`
    /// (the tool and arguments taken from `params` of a `tools/call`; the
    /// `traceparent` from the HTTP header the face read, else from
    /// `params._meta`).
    fn entry(
        &self,
        endpoint: &str,
        method: &str,
        id: Option<&Value>,
        params: &Value,
        outcome: &str,
        header_traceparent: Option<&str>,
    ) -> JournalEntry {
        let traceparent = header_traceparent
            .or_else(|| params.pointer("/_meta/traceparent").and_then(Value::as_str))
            .map(str::to_owned);
        let mut entry = JournalEntry {
            at: self.clock.elapsed(),
            fake: self.name.clone(),
            endpoint: endpoint.to_owned(),
            method: method.to_owned(),
            tool: None,
            arguments: None,
            id: id.cloned(),
            call: None,
            traceparent,
            outcome: outcome.to_owned(),
        };
        if method == "tools/call" {
            entry.tool = params
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned);
            entry.arguments = params.get("arguments").cloned();
            entry.call = JournalEntry::call_number(entry.arguments.as_ref());
        }
        entry
    }

    /// Journals a request the face dealt with itself, without [`handle`]:
    /// `method` is the JSON-RPC method, [`UNPARSEABLE`] or an HTTP method,
    /// and `outcome` says what the face did.
    ///
    /// [`handle`]: Server::handle
    pub(crate) fn record(
        &self,
        endpoint: &str,
        method: &str,
        id: Option<&Value>,
        params: &Value,
        outcome: &str,
    ) {
        self.journal
            .record(self.entry(endpoint, method, id, params, outcome, None));
    }

    /// Handles one message received on `endpoint` (with the `traceparent`
    /// header of the HTTP request that carried it, if any): journals it,
    /// waits the scripted latency of a call, and says what to answer.
    pub(crate) async fn handle(
        &self,
        endpoint: &str,
        message: Message,
        traceparent: Option<&str>,
    ) -> Reply {
        let (method, id, params) = message.parts();
        let mut entry = self.entry(endpoint, method, id, params, "ok", traceparent);
        if let Some(code) = self.outage_at(entry.at) {
            entry.outcome = "outage".to_owned();
            self.journal.record(entry);
            return match self.face {
                Face::Http => Reply::Reset,
                Face::Stdio => Reply::Exit(code),
            };
        }

        let (id, params) = match message {
            // Notifications (initialized, cancelled, ...) need no answer,
            // and the server never asked anything a response could answer.
            Message::Response { .. } | Message::Notification { .. } => {
                self.journal.record(entry);
                return Reply::Nothing;
            }
            Message::Request { id, params, .. } => (id, params),
        };
        let result = match entry.method.as_str() {
            "initialize" => self.initialize(&params),
            "ping" => json!({}),
            "tools/list" => self.list_tools(),
            "tools/call" => return self.call_tool(entry, id).await,
            _ => {
                self.journal.record(entry);
                return Reply::Json(error_response(&id, METHOD_NOT_FOUND, "method not found"));
            }
        };
        self.journal.record(entry);
        Reply::Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    fn initialize(&self, params: &Value) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| KNOWN_VERSIONS.contains(v))
            .unwrap_or(LATEST_VERSION);
        json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": self.name, "version": env!("CARGO_PKG_VERSION")},
        })
    }

    fn list_tools(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                let mut listed = json!({
                    "name": tool.name,
                    "description": format!("Scripted tool {} of fake {}", tool.name, self.name),
                    "inputSchema": {"type": "object"},
                });
                let mut annotations = serde_json::Map::new();
                if let Some(read_only) = tool.read_only {
                    annotations.insert("readOnlyHint".into(), read_only.into());
                }
                if let Some(idempotent) = tool.idempotent {
                    annotations.insert("idempotentHint".into(), idempotent.into());
                }
                if !annotations.is_empty() {
                    listed["annotations"] = Value::Object(annotations);
                }
                listed
            })
            .collect();
        json!({ "tools": tools })
    }

    async fn call_tool(&self, mut entry: JournalEntry, id: Value) -> Reply {
        let decision = entry
            .tool
            .as_deref()
            .and_then(|tool| self.script().decide(tool, entry.at));
        let Some(decision) = decision else {
            let message = match &entry.tool {
                Some(tool) => format!("unknown tool: {tool}"),
                None => "tools/call without a tool name".to_owned(),
            };
            // What the fake did: answer with a JSON-RPC error.
            entry.outcome = "jsonrpc_error".to_owned();
            self.journal.record(entry);
            return Reply::Json(error_response(&id, INVALID_PARAMS, &message));
        };
        entry.outcome = decision.outcome.label().to_owned();
        let arguments = entry.arguments.clone();
        self.journal.record(entry);

        // No sleep for no latency: tokio rounds a timer up to its next
        // millisecond tick, so even a zero sleep would add ~1 ms to every
        // answer (and hide the proxy's own cost in a benchmark).
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        match decision.outcome {
            Outcome::Success => {
                let echo = arguments.unwrap_or_else(|| json!({}));
                Reply::Json(echo_result(&id, &echo))
            }
            Outcome::ToolError { message } => Reply::Json(tool_result(&id, &message, true)),
            Outcome::JsonRpcError { code, message } => {
                Reply::Json(error_response(&id, code, &message))
            }
            Outcome::HttpStatus {
                status,
                retry_after,
            } => match self.face {
                Face::Http => Reply::HttpStatus {
                    status,
                    retry_after,
                },
                Face::Stdio => Reply::Json(error_response(
                    &id,
                    INTERNAL_ERROR,
                    &format!("scripted HTTP status {status} on a stdio fake"),
                )),
            },
            Outcome::Reset => match self.face {
                Face::Http => Reply::Reset,
                Face::Stdio => Reply::Exit(1),
            },
            Outcome::Hang => Reply::Hang,
            Outcome::Malformed => Reply::Malformed,
            Outcome::Exit { code } => match self.face {
                Face::Http => Reply::Json(error_response(
                    &id,
                    INTERNAL_ERROR,
                    &format!("scripted exit {code} on an http fake"),
                )),
                Face::Stdio => Reply::Exit(code),
            },
        }
    }
}

/// A success: one text item holding `arguments` as JSON.
fn echo_result(id: &Value, arguments: &Value) -> Value {
    tool_result(id, &arguments.to_string(), false)
}

/// The `harness_call` number a fake's successful `result` echoes (see
/// [`echo_result`]); `None` if it echoes none.
pub(crate) fn echoed_call(result: &Value) -> Option<u64> {
    let text = result.get("content")?.get(0)?.get("text")?.as_str()?;
    let arguments: Value = serde_json::from_str(text).ok()?;
    JournalEntry::call_number(Some(&arguments))
}

fn tool_result(id: &Value, text: &str, is_error: bool) -> Value {
    let mut result = json!({"content": [{"type": "text", "text": text}]});
    if is_error {
        result["isError"] = Value::Bool(true);
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error response.
pub(crate) fn error_response(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}
