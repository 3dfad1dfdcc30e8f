//! Scenario time: every timestamp of a run (journal entries, call records,
//! fault phases) is a [`Duration`] since the scenario started.
//!
//! Time is read from `tokio::time`, so tests can run a fake or the load
//! generator on a paused clock. A stdio fake is a separate process: it gets
//! the scenario's start as Unix milliseconds and converts it once, at start
//! up, into its own tokio-based clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// The start of a scenario, and the time since.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioClock {
    start: Instant,
}

impl ScenarioClock {
    /// A clock whose scenario starts now.
    pub fn start_now() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// A clock for a scenario that started at `unix_ms` (Unix time in ms),
    /// read by a child process; a start in the future counts as now.
    pub fn from_unix_ms(unix_ms: u64) -> Self {
        let started = UNIX_EPOCH + Duration::from_millis(unix_ms);
        let elapsed = SystemTime::now()
            .duration_since(started)
            .unwrap_or(Duration::ZERO);
        let now = Instant::now();
        Self {
            start: now.checked_sub(elapsed).unwrap_or(now),
        }
    }

    /// The scenario's start as Unix milliseconds, to hand to a child process.
    pub fn unix_ms(&self) -> u64 {
        let since_start = self.elapsed();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        now.saturating_sub(since_start).as_millis() as u64
    }

    /// Time since the scenario started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant at `offset` from the start.
    pub fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }
}

/// A duration in whole microseconds, as reports write them (saturating).
pub(crate) fn whole_micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Serde for a [`Duration`] as whole microseconds (journals, JSON reports).
pub(crate) mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::whole_micros(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

/// The time of day in simulation: a fixed date ([`SIM_EPOCH_UNIX`]) plus
/// the virtual time since the clock was made, so the lifetimes of the JWTs
/// a scenario mints replay with its seed. The proxy in simulation judges
/// `exp` and `nbf` by it, and the harness mints by it.
#[derive(Debug, Clone, Copy)]
pub struct SimWallClock {
    start: Instant,
}

/// 2026-01-01T00:00:00Z: the Unix time at which every simulated run starts.
pub const SIM_EPOCH_UNIX: u64 = 1_767_225_600;

impl SimWallClock {
    /// A clock that reads [`SIM_EPOCH_UNIX`] now.
    pub fn started_now() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl mcp_proxy::platform::WallClock for SimWallClock {
    fn unix_seconds(&self) -> u64 {
        SIM_EPOCH_UNIX + self.start.elapsed().as_secs()
    }
}
