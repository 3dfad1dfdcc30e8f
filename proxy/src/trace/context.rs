//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) as text: the
//! `traceparent` and `tracestate` values, parsed and formatted.
//!
//! Parsing is strict where the recommendation is (lowercase hex, all-zero
//! ids invalid, version `ff` invalid, exactly 55 characters for version
//! `00`) and forward-compatible where it asks to be: a higher version is
//! read by its first four fields when what follows them starts with `-`.
//! Anything else is `None`, never an error: a client's bad header starts a
//! new trace, it does not fail its call. What the proxy writes is always
//! version `00` with the sampled flag alone.

use std::fmt;

/// A trace id: 16 bytes, not all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

/// A span id (the `parent-id` of a `traceparent`): 8 bytes, not all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl TraceId {
    /// The id, unless it is all zero (invalid).
    pub fn new(value: u128) -> Option<Self> {
        (value != 0).then_some(Self(value))
    }

    /// The id's 16 bytes as one number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl SpanId {
    /// The id, unless it is all zero (invalid).
    pub fn new(value: u64) -> Option<Self> {
        (value != 0).then_some(Self(value))
    }

    /// The id's 8 bytes as one number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The `sampled` bit of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// The longest `tracestate` kept (the recommendation's 32 members of at
/// most 256 characters each fit in about 8 KiB; a proxy may cut it, and
/// a header that long is more likely abuse than tracing).
const MAX_TRACESTATE: usize = 512;

/// One hop's trace context: the trace, the span of whoever sent it (the
/// `parent-id` the receiver's span hangs under), whether that sender
/// sampled the trace, and the vendors' `tracestate`, passed on as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace all spans of the call belong to.
    pub trace_id: TraceId,
    /// The sender's span.
    pub parent_id: SpanId,
    /// Whether the sender may have recorded its span (`trace-flags` bit 0).
    pub sampled: bool,
    /// The `tracestate` value, if any and well-formed.
    pub state: Option<String>,
}

impl TraceContext {
    /// Reads a `traceparent` value, with its `tracestate` if there is one.
    /// An invalid `traceparent` is `None`; an invalid `tracestate` alone is
    /// dropped (the recommendation lets a receiver discard it), keeping the
    /// trace.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let (trace_id, parent_id, flags) = parse_traceparent(traceparent)?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & SAMPLED != 0,
            state: tracestate.and_then(valid_tracestate).map(str::to_owned),
        })
    }

    /// The `traceparent` value: version `00`, the sampled flag alone.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

/// `version-traceid-parentid-flags`, by the recommendation's rules.
fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    // Every valid value is ASCII, and slicing below is then safe.
    if !value.is_ascii() {
        return None;
    }
    let bytes = value.as_bytes();
    // Version 00 is exactly 55 characters; a later version at least that,
    // and anything after the four known fields must start with '-'.
    if bytes.len() < 55 {
        return None;
    }
    let version = hex(&value[0..2])? as u8;
    match version {
        0xff => return None,
        0x00 if bytes.len() != 55 => return None,
        _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
        _ => {}
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::new(hex(&value[3..35])?)?;
    let parent_id = SpanId::new(u64::try_from(hex(&value[36..52])?).ok()?)?;
    let flags = hex(&value[53..55])? as u8;
    Some((trace_id, parent_id, flags))
}

/// Lowercase hex digits only (no sign, no `0x`, no uppercase), at most 32.
fn hex(digits: &str) -> Option<u128> {
    if digits.is_empty()
        || digits.len() > 32
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

/// A `tracestate` worth passing on: not empty after trimming, not longer
/// than [`MAX_TRACESTATE`], printable ASCII (so it is a valid header value
/// and a valid JSON string as it is). Members are not parsed: the proxy
/// adds none of its own and passes the list on unchanged.
fn valid_tracestate(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    (!value.is_empty() && value.len() <= MAX_TRACESTATE && printable).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example_reads_and_writes_back() {
        let context = TraceContext::parse(EXAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(
            context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(context.sampled);
        assert_eq!(context.state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.traceparent(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_none() {
        let invalid = [
            "",
            "00",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // All-zero trace id, then all-zero parent id.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff, and a version 00 with something after it.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            // Wrong separators, short fields, non-hex.
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // A later version whose extra part does not start with '-'.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Non-ASCII where a field is (must not panic on a char boundary).
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ];
        for value in invalid {
            assert_eq!(TraceContext::parse(value, None), None, "{value:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_known_fields_and_written_as_00() {
        let value = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-adds";
        let context = TraceContext::parse(value, None).unwrap();
        assert!(context.sampled);
        // Other flag bits are not passed on: the proxy writes version 00.
        assert_eq!(context.traceparent(), EXAMPLE);
    }

    #[test]
    fn an_unsampled_trace_stays_unsampled() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let context = TraceContext::parse(value, None).unwrap();
        assert!(!context.sampled);
        assert_eq!(context.traceparent(), value);
    }

    #[test]
    fn a_bad_tracestate_is_dropped_and_the_trace_kept() {
        for state in ["", "  ", "a=1\nb=2", "ü=1", &"k=v,".repeat(200)] {
            let context = TraceContext::parse(EXAMPLE, Some(state)).unwrap();
            assert_eq!(context.state, None, "{state:?}");
        }
        let context = TraceContext::parse(EXAMPLE, Some(" a=1,b=2 ")).unwrap();
        assert_eq!(context.state.as_deref(), Some("a=1,b=2"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(value in "\\PC{0,80}", state in proptest::option::of("\\PC{0,40}")) {
            let _ = TraceContext::parse(&value, state.as_deref());
        }

        #[test]
        fn near_misses_never_panic(value in "[0-9a-fA-F-]{50,60}") {
            let _ = TraceContext::parse(&value, None);
        }

        #[test]
        fn what_is_written_reads_back_the_same(
            trace in 1..=u128::MAX,
            parent in 1..=u64::MAX,
            sampled: bool,
            state in proptest::option::of("[a-z0-9]{1,8}=[!-~&&[^,=]]{1,16}"),
        ) {
            let context = TraceContext {
                trace_id: TraceId::new(trace).unwrap(),
                parent_id: SpanId::new(parent).unwrap(),
                sampled,
                state,
            };
            let written = context.traceparent();
            prop_assert_eq!(written.len(), 55);
            let read = TraceContext::parse(&written, context.state.as_deref()).unwrap();
            prop_assert_eq!(read, context);
        }
    }
}
