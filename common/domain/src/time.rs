//! Time as the domain sees it: UTC instants, formatted as ISO 8601 / RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Instant = DateTime<Utc>;

/// A source of "now", injectable so handlers and verifiers are testable.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Utc::now()
    }
}

/// A clock frozen at one instant (tests, `dispatchctl webhook verify --at`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Instant);

impl Clock for FixedClock {
    fn now(&self) -> Instant {
        self.0
    }
}

/// ISO 8601 UTC with millisecond precision and a `Z` suffix, e.g. `2026-11-26T01:02:03.456Z`.
pub fn iso8601(t: Instant) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_iso8601(s: &str) -> Option<Instant> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}
