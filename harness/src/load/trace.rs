//! The trace context the load client sends with each call: a
//! `traceparent` header whose trace id names the call, so that a check can
//! match what the fakes received to the client call it belongs to, and see
//! whether every attempt of one call stayed in that call's trace.
//!
//! The ids are derived from the `harness_call` number (which a seed makes
//! the same in every run): the trace id's high 64 bits spell `harness!`,
//! its low 64 bits are the number; the client's span id is a hash of it.

use mcp_proxy::trace::{SpanId, TraceContext, TraceId};

/// "harness!" in ASCII: the high half of every trace id the load client sends.
const MARK: u64 = 0x6861_726e_6573_7321;

/// The `traceparent` sent with call `call` (sampled).
pub fn traceparent(call: u64) -> String {
    let context = TraceContext {
        trace_id: TraceId::new((u128::from(MARK) << 64) | u128::from(call))
            .expect("the mark makes it non-zero"),
        parent_id: SpanId::new(client_span(call)).expect("made non-zero"),
        sampled: true,
        state: None,
    };
    context.traceparent()
}

/// The call a trace id names, if the load client made it.
pub fn call_of(trace_id: TraceId) -> Option<u64> {
    let id = trace_id.get();
    ((id >> 64) as u64 == MARK).then_some(id as u64)
}

/// The client's own span of call `call`: never zero.
fn client_span(call: u64) -> u64 {
    // splitmix64's finalizer: neighbouring calls get unrelated ids.
    let mut z = call.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calls_trace_names_the_call_and_reads_back() {
        for call in [0, 1, 2, 77, u64::MAX] {
            let sent = TraceContext::parse(&traceparent(call), None).unwrap();
            assert_eq!(call_of(sent.trace_id), Some(call));
            assert!(sent.sampled);
        }
        assert_ne!(traceparent(1), traceparent(2));
        let foreign = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        )
        .unwrap();
        assert_eq!(call_of(foreign.trace_id), None);
    }
}
