//! Event time and its coarsening into timely timestamps.
//!
//! Data carries capture time in milliseconds since the Unix epoch. The
//! dataflow's timestamps are that time divided into ticks (10–100 ms
//! typically): progress tracking then moves in steps of a tick, which keeps
//! its bookkeeping small while windows still close within a tick of their
//! end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A timely timestamp: event time divided by the tick.
pub type Tick = u64;

/// Converts between event time and ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickClock {
    tick_ms: u64,
}

impl TickClock {
    /// A clock of `tick_ms` milliseconds per tick (at least 1).
    pub fn new(tick_ms: u64) -> TickClock {
        TickClock { tick_ms: tick_ms.max(1) }
    }

    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The tick holding `ms`; times before the epoch share tick 0.
    pub fn tick_of(&self, ms: Millis) -> Tick {
        u64::try_from(ms).unwrap_or(0) / self.tick_ms
    }

    /// The first ms of `tick`.
    pub fn start_of(&self, tick: Tick) -> Millis {
        tick.saturating_mul(self.tick_ms).min(Millis::MAX as u64) as Millis
    }

    /// The first tick at or after `ms`: a window ending at `ms` (exclusive)
    /// is complete once the frontier reaches this tick.
    pub fn tick_at_or_after(&self, ms: Millis) -> Tick {
        u64::try_from(ms).unwrap_or(0).div_ceil(self.tick_ms)
    }
}

/// The current wall-clock time in ms since the epoch.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// `2026-01-01T00:00:00.000Z`: RFC 3339, UTC, milliseconds.
pub fn format_rfc3339_ms(ms: Millis) -> String {
    let time = if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    };
    humantime::format_rfc3339_millis(time).to_string()
}

/// Parses an RFC 3339 UTC timestamp into ms since the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Result<Millis, String> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| format!("bad timestamp `{text}`: {e}"))?;
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => Ok(d.as_millis() as Millis),
        Err(e) => Ok(-(e.duration().as_millis() as Millis)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_down_and_window_ends_round_up() {
        let clock = TickClock::new(50);
        assert_eq!(clock.tick_of(1_049), 20);
        assert_eq!(clock.tick_at_or_after(1_000), 20);
        assert_eq!(clock.tick_at_or_after(1_001), 21);
        assert_eq!(clock.tick_of(-5), 0);
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_767_225_600_123;
        assert_eq!(format_rfc3339_ms(ms), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_rfc3339_ms("2026-01-01T00:00:00.123Z"), Ok(ms));
    }
}
