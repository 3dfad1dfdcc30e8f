//! The fake MCP backend: one MCP server whose tools behave as a scenario
//! scripts them, with two faces, HTTP and stdio.
//!
//! A scenario breaks its backends on cue; the fake is the backend that obeys.
//! Each tool answers after a latency drawn from its distribution with an
//! outcome drawn from its mix, and the fault timeline swaps either while a
//! trigger holds. Every request the fake receives goes to the journal, so
//! checks can compare what the clients saw with what reached the backends.
//!
//! - [`script`]: the decisions (latency, outcome, outages), seeded and
//!   face-independent
//! - `protocol`: the JSON-RPC server both faces share, and the echo of a
//!   successful call that tells which call an answer belongs to
//! - [`http`]: Streamable HTTP; resets, HTTP statuses, outages that refuse
//!   connections and forget sessions
//! - [`net`]: the network the HTTP face listens on, a seam: the operating
//!   system's loopback, or a simulated network
//! - [`stdio`]: newline-delimited JSON over any reader/writer pair; exits
//!   are returned, not performed, so tests run it in-process

pub mod http;
pub mod net;
pub(crate) mod outages;
mod protocol;
pub mod script;
pub mod stdio;

pub use http::HttpFake;
pub(crate) use protocol::echoed_call;
pub use script::{Decision, Script};
pub use stdio::StdioEnd;

use crate::clock::ScenarioClock;
use crate::journal::Journal;
use crate::scenario::{FakeSpec, Fault};

/// Everything one fake instance needs.
#[derive(Clone)]
pub struct FakeConfig {
    /// The fake's declaration: name, transport, tools.
    pub spec: FakeSpec,
    /// Faults of the scenario; only those naming this fake apply.
    pub faults: Vec<Fault>,
    /// The scenario seed.
    pub seed: u64,
    /// Distinguishes successive processes of one stdio fake (a respawned
    /// fake must not replay its predecessor's random choices). 0 for the
    /// first, or for an HTTP fake.
    pub generation: u64,
    /// Scenario time: journal timestamps and the fault timeline.
    pub clock: ScenarioClock,
    /// Where received requests are recorded.
    pub journal: Journal,
}

impl FakeConfig {
    /// A fake no fault touches: the first of its name, on scenario time
    /// from now, journalling nothing (the backend of a benchmark or of a
    /// test of the load engine).
    pub fn unscripted(spec: FakeSpec, seed: u64) -> Self {
        Self {
            spec,
            faults: Vec::new(),
            seed,
            generation: 0,
            clock: ScenarioClock::start_now(),
            journal: Journal::discard(),
        }
    }
}

#[cfg(test)]
mod tests;
