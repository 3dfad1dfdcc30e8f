//! The journal: every request a fake backend receives, in order.
//!
//! Checks read journals to learn what reached the backends (how many calls,
//! which endpoint, which outcome was scripted). HTTP fakes run inside the
//! harness and append to a shared in-memory [`Journal`]; stdio fakes are child
//! processes of the proxy and append JSON lines to a file named on their
//! command line, which the harness reads back with [`read_file`].

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request a fake received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Time since scenario start, in microseconds.
    #[serde(rename = "at_us", with = "crate::clock::micros")]
    pub at: Duration,
    /// The fake's name.
    pub fake: String,
    /// Which endpoint: `http://127.0.0.1:PORT/mcp`, or `stdio:PID`.
    pub endpoint: String,
    /// The JSON-RPC method (`tools/call`, `initialize`, ...); `(response)`
    /// for a JSON-RPC response; `(unparseable)` when the request held no
    /// message to read; the HTTP method (`GET`, `DELETE`, ...) of an HTTP
    /// request that carries no JSON-RPC message.
    pub method: String,
    /// For `tools/call`: the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// For `tools/call`: the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The JSON-RPC id as received (`None` for notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The `harness_call` argument the load generator adds to every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<u64>,
    /// The W3C `traceparent` the request carried: its HTTP header, else
    /// its `params._meta.traceparent` (how a stdio backend receives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What the fake did with the request:
    /// - a `tools/call` it ran: the scripted outcome's label (`success`,
    ///   `tool_error`, `jsonrpc_error`, `http_status`, `reset`, `hang`,
    ///   `malformed`, `exit`), or `jsonrpc_error` for an unknown tool;
    /// - `ok`: any other message it answered or accepted as MCP says (an
    ///   HTTP `GET` stream or `DELETE` included);
    /// - `outage`: received while down (an HTTP connection still open when
    ///   the outage began): reset, or the stdio fake exited;
    /// - `parse_error`: not JSON, or an over-long stdio line; answered with a
    ///   JSON-RPC parse error (method `(unparseable)`);
    /// - `invalid_request`: JSON but not a JSON-RPC message; answered with a
    ///   JSON-RPC invalid-request error (method `(unparseable)`);
    /// - HTTP only, refused before the server saw it: `missing_session`
    ///   (400), `unknown_session` (404: never issued, deleted, or forgotten in
    ///   an outage), `too_large` (413, method `(unparseable)`), `not_found`
    ///   (a path other than `/mcp`) and `method_not_allowed` (405), the last
    ///   two with the HTTP method as `method`.
    ///
    /// So a refused `tools/call` is journalled under its method, as it did
    /// reach the fake; only this label tells it from one that ran.
    pub outcome: String,
}

impl JournalEntry {
    /// The `harness_call` number in a call's arguments, if any.
    pub fn call_number(arguments: Option<&Value>) -> Option<u64> {
        arguments?.get("harness_call")?.as_u64()
    }
}

/// Where entries go: memory (in-process fakes), or a file (stdio fakes).
#[derive(Clone)]
pub struct Journal {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    Memory(Arc<Mutex<Vec<JournalEntry>>>),
    // Nothing kept in memory: a stdio fake may serve for hours, and the
    // harness reads the file anyway.
    File(Arc<Mutex<File>>),
    // Nothing kept at all: a fake serving a benchmark, where no check reads
    // the journal and keeping millions of entries would weigh on the run.
    Discard,
}

impl Default for Journal {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Journal {
    /// An in-memory journal.
    pub fn in_memory() -> Self {
        Self {
            sink: Sink::Memory(Arc::default()),
        }
    }

    /// A journal that keeps nothing (a benchmark's backend).
    pub fn discard() -> Self {
        Self {
            sink: Sink::Discard,
        }
    }

    /// A journal that appends each entry as one JSON line to `path` (created
    /// if missing; several processes may append to one file). It keeps no
    /// entries in memory: read them back with [`read_file`].
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            sink: Sink::File(Arc::new(Mutex::new(file))),
        })
    }

    /// Records one entry. A file journal writes and flushes it at once, so
    /// an entry survives the fake exiting right after.
    pub fn record(&self, entry: JournalEntry) {
        match &self.sink {
            Sink::Memory(entries) => entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry),
            Sink::File(file) => {
                let mut line = serde_json::to_string(&entry).unwrap_or_default();
                line.push('\n');
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                // One write call per line: with O_APPEND, lines of several
                // processes never interleave.
                let _ = file.write_all(line.as_bytes());
                let _ = file.flush();
            }
            Sink::Discard => {}
        }
    }

    /// A copy of the entries recorded so far by an in-memory journal; always
    /// empty for a file journal (use [`read_file`]) and a discarding one.
    pub fn snapshot(&self) -> Vec<JournalEntry> {
        match &self.sink {
            Sink::Memory(entries) => entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            Sink::File(_) | Sink::Discard => Vec::new(),
        }
    }
}

/// Reads a file journal. A line that does not parse (the last one, cut
/// short when a fake was killed mid-write) is skipped; a missing file is an
/// empty journal (the fake never started).
pub fn read_file(path: &Path) -> std::io::Result<Vec<JournalEntry>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line?) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> JournalEntry {
        JournalEntry {
            at: Duration::from_micros(1500 + n),
            fake: "files".into(),
            endpoint: "stdio:42".into(),
            method: "tools/call".into(),
            tool: Some("read".into()),
            arguments: Some(serde_json::json!({"harness_call": n})),
            id: Some(serde_json::json!(n)),
            call: Some(n),
            traceparent: None,
            outcome: "success".into(),
        }
    }

    #[test]
    fn a_file_journal_reads_back_what_two_writers_appended() {
        let dir = std::env::temp_dir().join(format!("journal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let a = Journal::to_file(&path).unwrap();
        let b = Journal::to_file(&path).unwrap();
        a.record(entry(1));
        b.record(entry(2));
        a.record(entry(3));
        // A torn last line (a fake killed mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"at_us\":1,\"fa")
            .unwrap();
        let read = read_file(&path).unwrap();
        assert_eq!(read, vec![entry(1), entry(2), entry(3)]);
        // Kept only in the file, not in memory as well.
        assert!(a.snapshot().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_in_memory_journal_keeps_every_entry_in_order() {
        let journal = Journal::in_memory();
        let clone = journal.clone();
        journal.record(entry(1));
        clone.record(entry(2));
        assert_eq!(journal.snapshot(), vec![entry(1), entry(2)]);
    }

    #[test]
    fn a_missing_file_is_an_empty_journal() {
        let path = std::env::temp_dir().join("no-such-journal-file.jsonl");
        assert!(read_file(&path).unwrap().is_empty());
    }
}
