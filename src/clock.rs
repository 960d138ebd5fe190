//! The clock, as a seam: the reconciler reads the time from a [`Clock`] it is given, so tests and
//! benchmarks drive refresh rounds and timestamps without waiting. Instants are Unix seconds;
//! [`Clock::date`] gives the same instant as the calendar time that SOPS metadata and events
//! carry.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use sops::scalar::DateTime;

/// Unix time in seconds. The reconciler reads token times from one of these.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;

    /// The same instant as a calendar time (UTC).
    fn date(&self) -> DateTime {
        DateTime::from_unix(self.now())
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    }
}

/// A clock that moves only when told to (tests and benchmarks drive refresh rounds with it).
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn at(now: i64) -> FakeClock {
        FakeClock(AtomicI64::new(now))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_clock_moves_only_when_told() {
        let c = FakeClock::at(1_700_000_000);
        assert_eq!(c.now(), 1_700_000_000);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.now(), 1_700_000_090);
        assert_eq!(c.date(), DateTime::from_unix(1_700_000_090));
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
