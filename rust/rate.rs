//! A rate is a limit of hits per period; [`Rate::new`] validates one and derives the
//! figures the algorithms need. [`Error`] is the one error type of the core.

use std::fmt;

use crate::algorithm::Nanos;

/// The largest limit a rate may have: counters in the store are 32-bit.
pub const MAX_LIMIT: u64 = u32::MAX as u64;

/// The longest period a rate may have: ten years, in nanoseconds.
pub const MAX_PERIOD: Nanos = 10 * 365 * 86_400 * 1_000_000_000;

/// Every way the core can refuse a request. The binding maps each to one Python
/// exception, in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A rate's limit is 0 or above [`MAX_LIMIT`].
    Limit(u64),
    /// A rate's period is 0 or above [`MAX_PERIOD`] nanoseconds.
    Period(Nanos),
    /// A limiter was given no rate at all.
    NoRates,
    /// A store was asked for 0 shards or more than [`crate::store::MAX_SHARDS`].
    Shards(usize),
    /// A store was given a key bound of 0.
    MaxKeys(usize),
    /// A manual clock was asked for a time past [`crate::clock::MAX_TIME`].
    ClockRange(Nanos),
    /// A manual clock was asked to go backwards.
    ClockBackwards {
        /// The clock's time now, in nanoseconds.
        now: Nanos,
        /// The earlier time it was asked to take.
        requested: Nanos,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Limit(v) => write!(f, "rate limit must be between 1 and {MAX_LIMIT}, got {v}"),
            Error::Period(v) => write!(
                f,
                "rate period must be between 1ns and {MAX_PERIOD}ns (10 years), got {v}ns"
            ),
            Error::NoRates => write!(f, "rates must name at least one rate"),
            Error::Shards(v) => write!(
                f,
                "shards must be between 1 and {}, got {v}",
                crate::store::MAX_SHARDS
            ),
            Error::MaxKeys(v) => write!(f, "max_keys must be at least 1, got {v}"),
            Error::ClockRange(v) => write!(
                f,
                "a ManualClock reads at most {}ns (the year 2262), asked for {v}ns",
                crate::clock::MAX_TIME
            ),
            Error::ClockBackwards { now, requested } => write!(
                f,
                "a ManualClock only moves forward: it is at {now}ns, asked for {requested}ns"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A validated rate: `limit` hits per `period` nanoseconds, with the derived figures
/// of the token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    limit: u64,
    period: Nanos,
    interval: Nanos,
    tolerance: Nanos,
}

impl Rate {
    /// Validates `limit` (1 to [`MAX_LIMIT`]) and `period` (1ns to [`MAX_PERIOD`]).
    pub fn new(limit: u64, period: Nanos) -> Result<Rate, Error> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::Limit(limit));
        }
        if period == 0 || period > MAX_PERIOD {
            return Err(Error::Period(period));
        }
        // The emission interval is rounded up, so the bucket never refills faster than
        // `limit` per `period`; the error is under one nanosecond per token.
        let interval = period.div_ceil(limit);
        Ok(Rate {
            limit,
            period,
            interval,
            tolerance: interval * limit,
        })
    }

    /// Hits admitted per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period in nanoseconds.
    pub fn period(&self) -> Nanos {
        self.period
    }

    /// The token bucket's emission interval: `ceil(period / limit)` nanoseconds.
    pub fn interval(&self) -> Nanos {
        self.interval
    }

    /// The token bucket's burst tolerance: `limit * interval` nanoseconds.
    pub fn tolerance(&self) -> Nanos {
        self.tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_huge_values() {
        assert_eq!(Rate::new(0, 1), Err(Error::Limit(0)));
        assert_eq!(
            Rate::new(MAX_LIMIT + 1, 1),
            Err(Error::Limit(MAX_LIMIT + 1))
        );
        assert_eq!(Rate::new(1, 0), Err(Error::Period(0)));
        assert_eq!(
            Rate::new(1, MAX_PERIOD + 1),
            Err(Error::Period(MAX_PERIOD + 1))
        );
    }

    #[test]
    fn interval_rounds_up() {
        let rate = Rate::new(3, 1_000_000_000).unwrap();
        assert_eq!(rate.interval(), 333_333_334);
        assert_eq!(rate.tolerance(), 1_000_000_002);
    }
}
