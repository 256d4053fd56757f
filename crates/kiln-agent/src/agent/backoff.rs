//! Capped exponential backoff, and the "log a failure once per streak" rule that goes with it.

use std::fmt::Display;
use std::time::Duration;

/// The first retry delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Capped exponential backoff: `initial`, `2·initial`, `4·initial`, … up to `max`, then `max`
/// forever, until [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Records a success: the next failure waits `initial` again. Returns how many failures
    /// the streak that just ended had.
    pub fn reset(&mut self) -> u32 {
        self.next = self.initial.min(self.max);
        std::mem::take(&mut self.failures)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

impl Default for Backoff {
    /// 100 ms → 5 s.
    fn default() -> Self {
        Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX)
    }
}

/// A [`Backoff`] that logs the first failure of each streak as a warning (later ones at debug
/// level) and the end of a streak once.
#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    what: &'static str,
    backoff: Backoff,
}

impl Retrier {
    pub(crate) fn new(what: &'static str) -> Self {
        Retrier {
            what,
            backoff: Backoff::default(),
        }
    }

    /// Logs the failure (once per streak) and returns the delay before the next try.
    pub(crate) fn failed(&mut self, error: &dyn Display) -> Duration {
        let delay = self.backoff.next_delay();
        if self.backoff.failures() == 1 {
            tracing::warn!("{} failed: {error}; retrying", self.what);
        } else {
            tracing::debug!(
                "{} failed again ({} in a row): {error}",
                self.what,
                self.backoff.failures()
            );
        }
        delay
    }

    pub(crate) fn succeeded(&mut self) {
        let failures = self.backoff.reset();
        if failures > 0 {
            tracing::info!("{} works again after {failures} failure(s)", self.what);
        }
    }
}
