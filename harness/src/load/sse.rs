//! Server-sent events, as far as MCP's streamable HTTP uses them: the server
//! answers a POST with an event stream whose `data` fields each carry one
//! JSON-RPC message. This parser is incremental (it is fed the body chunk by
//! chunk as it arrives) because the answer to a call may come long after the
//! stream opened, after progress notifications.
//!
//! Only `data` matters here: `event`, `id` and `retry` are read and dropped,
//! comments (`:` lines) are skipped, and an event without data (the priming
//! event a 2025-11-25 server may send first) yields nothing. Lines end with
//! `\n` or `\r\n`; a bare `\r` as line end is not supported.

/// The largest event (or unterminated line) accepted; a server that sends
/// more without ending the event is treated as broken, not buffered forever.
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

/// Splits an event stream into the data of its events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The current, not yet terminated line.
    line: Vec<u8>,
    /// The data lines of the current event, each followed by `\n`.
    data: String,
}

impl SseParser {
    /// Feeds the next chunk of the body; returns the data of every event
    /// that the chunk completed, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, String> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.take_line(&line, &mut events)?;
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "event stream line longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        Ok(events)
    }

    fn take_line(&mut self, line: &[u8], events: &mut Vec<String>) -> Result<(), String> {
        if line.is_empty() {
            let mut data = std::mem::take(&mut self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            if !data.is_empty() {
                events.push(data);
            }
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(());
        }
        let line =
            std::str::from_utf8(line).map_err(|_| "event stream line is not UTF-8".to_string())?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            if self.data.len() + value.len() > MAX_EVENT_BYTES {
                return Err(format!("event larger than {MAX_EVENT_BYTES} bytes"));
            }
            self.data.push_str(value);
            self.data.push('\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        chunks
            .iter()
            .flat_map(|chunk| parser.feed(chunk).expect("valid stream"))
            .collect()
    }

    #[test]
    fn events_are_split_on_blank_lines_whatever_the_chunking() {
        let stream =
            b"id: 1\ndata: {\"a\":1}\n\n: comment\nevent: message\ndata: {\"b\":2}\r\n\r\n";
        let whole = parse_all(&[stream]);
        assert_eq!(whole, vec![r#"{"a":1}"#, r#"{"b":2}"#]);
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytewise), whole);
    }

    #[test]
    fn data_lines_join_with_newlines_and_empty_events_yield_nothing() {
        let events = parse_all(&[b"id: prime\ndata:\n\ndata: {\"a\":\ndata:1}\n\n"]);
        assert_eq!(events, vec!["{\"a\":\n1}"]);
    }

    #[test]
    fn an_unterminated_event_is_not_delivered() {
        assert!(parse_all(&[b"data: {}\n"]).is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut failed = false;
        for _ in 0..=(MAX_EVENT_BYTES >> 20) {
            if parser.feed(&chunk).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
