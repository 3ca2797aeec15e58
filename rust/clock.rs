//! Time for the store: nanoseconds on a monotonic timeline, from the system's monotonic
//! clock or from a [`ManualTime`] that tests move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::algorithm::Nanos;
use crate::rate::Error;

/// The end of time for the store: 2^63 - 1 ns, the year 2262 on the monotonic
/// clock. Clocks stop there, so that a time plus the longest period (10 years) still
/// fits a `u64` and no arithmetic in the algorithms can wrap.
pub const MAX_TIME: Nanos = i64::MAX as Nanos;

/// Where a store reads the time. Both variants only ever move forward.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system's monotonic clock, offset so that it starts at the Unix time of its
    /// creation: fixed windows then line up with wall-clock minutes and hours, as they
    /// do on Redis, while leaps of the wall clock never move it.
    Monotonic {
        /// The instant the clock was made.
        start: Instant,
        /// Unix time at `start`, in nanoseconds.
        offset: Nanos,
    },
    /// Time that moves only when told to; shared with the Python `ManualClock`.
    Manual(Arc<ManualTime>),
}

impl Clock {
    /// A clock on the system's monotonic time.
    pub fn monotonic() -> Clock {
        let offset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as Nanos);
        Clock::Monotonic {
            start: Instant::now(),
            offset,
        }
    }

    /// The time now, in nanoseconds.
    #[inline]
    pub fn now(&self) -> Nanos {
        match self {
            Clock::Monotonic { start, offset } => {
                (offset + start.elapsed().as_nanos() as Nanos).min(MAX_TIME)
            }
            Clock::Manual(time) => time.now(),
        }
    }
}

/// A clock that moves only when told to. Tests share one between the limiter and
/// themselves, so they never sleep.
#[derive(Debug, Default)]
pub struct ManualTime {
    now: AtomicU64,
}

impl ManualTime {
    /// A manual clock that reads `start` nanoseconds (at most [`MAX_TIME`]).
    pub fn new(start: Nanos) -> Result<ManualTime, Error> {
        if start > MAX_TIME {
            return Err(Error::ClockRange(start));
        }
        Ok(ManualTime {
            now: AtomicU64::new(start),
        })
    }

    /// The time now, in nanoseconds.
    #[inline]
    pub fn now(&self) -> Nanos {
        self.now.load(Ordering::Acquire)
    }

    /// Moves the clock forward by `delta` nanoseconds, stopping at [`MAX_TIME`].
    pub fn advance(&self, delta: Nanos) {
        // A CAS loop rather than fetch_add, so the clock saturates instead of wrapping.
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(delta).min(MAX_TIME))
            });
    }

    /// Sets the clock to `time`, which must not be earlier than now nor later than
    /// [`MAX_TIME`].
    pub fn set(&self, time: Nanos) -> Result<(), Error> {
        if time > MAX_TIME {
            return Err(Error::ClockRange(time));
        }
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (time >= t).then_some(time)
            })
            .map(|_| ())
            .map_err(|now| Error::ClockBackwards {
                now,
                requested: time,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_forward_only() {
        let time = ManualTime::new(5).unwrap();
        time.advance(10);
        assert_eq!(time.now(), 15);
        assert!(time.set(20).is_ok());
        assert_eq!(
            time.set(19),
            Err(Error::ClockBackwards {
                now: 20,
                requested: 19
            })
        );
        time.advance(u64::MAX);
        assert_eq!(time.now(), MAX_TIME);
        assert_eq!(time.set(MAX_TIME + 1), Err(Error::ClockRange(MAX_TIME + 1)));
        assert!(ManualTime::new(MAX_TIME + 1).is_err());
    }

    #[test]
    fn monotonic_clock_does_not_go_back() {
        let clock = Clock::monotonic();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
