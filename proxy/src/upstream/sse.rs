//! An incremental parser for `text/event-stream` bodies.
//!
//! Streamable-HTTP backends may answer a POST, and always answer the GET
//! stream, with Server-Sent Events whose `data` is a JSON-RPC message. The
//! body arrives in chunks that split lines and events anywhere, so the
//! parser keeps the unfinished line and event between calls to
//! [`SseParser::feed`]. It follows the WHATWG rules: lines end in CRLF, LF
//! or CR; `data:` lines of one event are joined with `\n`; lines starting
//! with `:` are comments; a blank line dispatches the event; an event cut
//! off by the end of the stream is discarded.
//!
//! A line longer than [`MAX_EVENT_BYTES`] is not buffered whole: the event
//! it belongs to is dropped, so a broken backend cannot make the proxy
//! allocate without bound.

/// The largest event (all its data lines together) the parser keeps.
pub(super) const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    /// The `event:` field, if the event had one (absent means `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream so far (`id:` persists).
    pub id: Option<String>,
}

impl SseEvent {
    /// Whether this event carries a JSON-RPC message (type `message`).
    pub(super) fn is_message(&self) -> bool {
        matches!(self.event.as_deref(), None | Some("message"))
    }
}

/// Parses one event stream. See the module docs.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    /// The current, unfinished line.
    line: Vec<u8>,
    /// The current line is too long and is being skipped.
    skipping_line: bool,
    /// A CR ended the last line; an LF right after it belongs to it.
    after_cr: bool,
    /// Some of the body has been read (a leading BOM is skipped).
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    /// The current event lost data to the size cap and will be dropped.
    oversized: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The last event id seen (for `Last-Event-ID` when reconnecting).
    pub(super) fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feed the next chunk of the body; returns the events it completed.
    pub(super) fn feed(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.started {
            // The BOM may itself be split across chunks; only handle the
            // common case of it arriving whole.
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                chunk = rest;
            }
            if !chunk.is_empty() {
                self.started = true;
            }
        }
        while !chunk.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match chunk
                .iter()
                .position(|&byte| byte == b'\n' || byte == b'\r')
            {
                Some(end) => {
                    self.push_to_line(&chunk[..end]);
                    self.after_cr = chunk[end] == b'\r';
                    chunk = &chunk[end + 1..];
                    if let Some(event) = self.end_line() {
                        events.push(event);
                    }
                }
                None => {
                    self.push_to_line(chunk);
                    chunk = &[];
                }
            }
        }
        events
    }

    fn push_to_line(&mut self, bytes: &[u8]) {
        if self.skipping_line {
            return;
        }
        if self.line.len() + self.data.len() + bytes.len() > MAX_EVENT_BYTES {
            self.skipping_line = true;
            self.oversized = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self) -> Option<SseEvent> {
        if self.skipping_line {
            self.skipping_line = false;
            return None;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            // `retry` and unknown fields are ignored.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let data = std::mem::take(&mut self.data);
        let event = self.event.take();
        let has_data = std::mem::replace(&mut self.has_data, false);
        if std::mem::replace(&mut self.oversized, false) {
            tracing::warn!(
                limit = MAX_EVENT_BYTES,
                "event stream sent an over-long event; dropped"
            );
            return None;
        }
        if !has_data {
            return None;
        }
        Some(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
    }

    fn data(event: &SseEvent) -> &str {
        &event.data
    }

    #[test]
    fn parses_simple_events() {
        let events = parse_all(&[b"data: {\"a\":1}\n\ndata: two\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(data(&events[0]), "{\"a\":1}");
        assert_eq!(events[0].event, None);
        assert!(events[0].is_message());
        assert_eq!(data(&events[1]), "two");
    }

    #[test]
    fn joins_multi_line_data_and_reads_fields() {
        let events =
            parse_all(&[b": comment\nevent: message\nid: 7\ndata: a\ndata:b\ndata\nretry: 10\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("message".into()),
                data: "a\nb\n".into(),
                id: Some("7".into())
            }]
        );
    }

    #[test]
    fn ids_persist_and_other_event_types_are_marked() {
        let events = parse_all(&[b"id: 1\nevent: endpoint\ndata: /x\n\ndata: y\n\n"]);
        assert!(!events[0].is_message());
        assert_eq!(events[1].id.as_deref(), Some("1"));
        assert_eq!(events[1].event, None);
    }

    #[test]
    fn handles_crlf_and_cr_line_ends_even_when_split() {
        let events = parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\rdata: c\r\n\r\n"]);
        let texts: Vec<&str> = events.iter().map(data).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    #[test]
    fn is_incremental_over_arbitrary_splits() {
        let body = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1}\r\n\r\n: ping\n\ndata: z\n\n";
        let whole = parse_all(&[body]);
        for split in 0..body.len() {
            let (left, right) = body.split_at(split);
            assert_eq!(parse_all(&[left, right]), whole, "split at {split}");
        }
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse_all(&bytewise), whole);
        assert_eq!(data(&whole[0]), "{\"jsonrpc\":\"2.0\",\n\"id\":1}");
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn events_without_data_and_unfinished_events_are_not_dispatched() {
        assert!(parse_all(&[b"id: 5\n\nevent: x\n\n: only a comment\n\ndata: cut off"]).is_empty());
        // An empty `data:` line is still data.
        let events = parse_all(&[b"data:\n\n"]);
        assert_eq!(data(&events[0]), "");
    }

    #[test]
    fn skips_a_byte_order_mark_and_invalid_utf8_is_replaced() {
        let events = parse_all(&[b"\xEF\xBB\xBFdata: a\n\ndata: \xff\n\n"]);
        assert_eq!(data(&events[0]), "a");
        assert_eq!(data(&events[1]), "\u{fffd}");
    }

    #[test]
    fn drops_an_over_long_event_and_recovers() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: ").is_empty());
        let block = vec![b'x'; 1024 * 1024];
        for _ in 0..=(MAX_EVENT_BYTES / block.len()) {
            assert!(parser.feed(&block).is_empty());
        }
        assert!(parser.line.is_empty());
        assert!(parser.feed(b"\ndata: more\n\n").is_empty());
        let events = parser.feed(b"data: next\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(data(&events[0]), "next");
    }
}
