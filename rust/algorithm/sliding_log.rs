//! Sliding window log: the exact algorithm. The state keeps the time of every
//! admitted hit still inside the window, so a key admits at most `limit` hits in any
//! interval of one period, with no boundary burst.
//!
//! A hit at `t` counts while `now < t + period`; at `now == t + period` it has expired
//! (the boundary is exact to the nanosecond). Entries are kept oldest first in a ring
//! buffer; hits at the same nanosecond share one entry with a count, so a hit costs
//! amortised O(1): expiry pops from the front, admission pushes at the back, and
//! nothing ever shifts the whole log. Memory is O(limit) per key in the worst case.

use std::collections::VecDeque;

use super::{Algorithm, Eval, Nanos};
use crate::rate::Rate;

/// The sliding-window-log algorithm.
pub struct SlidingWindowLog;

/// The admitted hits of one key for one rate, oldest first.
#[derive(Debug, Default)]
pub struct Log {
    entries: VecDeque<(Nanos, u32)>,
    used: u64,
}

impl Log {
    /// Hits in the log (expired ones included until the next advance).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The time the hit that is `k`-th oldest (1-based) in the log was admitted.
    fn time_of(&self, k: u64) -> Nanos {
        let mut seen = 0;
        for &(time, count) in &self.entries {
            seen += u64::from(count);
            if seen >= k {
                return time;
            }
        }
        self.entries.back().map_or(0, |e| e.0)
    }
}

impl Algorithm for SlidingWindowLog {
    type State = Log;
    const NAME: &'static str = "sliding_window";

    fn evaluate(rate: &Rate, log: &Log, now: Nanos, cost: u64) -> Eval {
        // The caller advanced the log to `now`, so every entry is live.
        let used = log.used;
        let allowed = used + cost <= rate.limit();
        let reset_now = log
            .entries
            .back()
            .map_or(0, |e| (e.0 + rate.period()).saturating_sub(now));
        let retry_after = if allowed {
            0
        } else {
            let oldest_needed = log.time_of(used + cost - rate.limit());
            (oldest_needed + rate.period()).saturating_sub(now)
        };
        Eval {
            allowed,
            remaining: rate.limit() - used,
            reset_now,
            reset_taken: rate.period(),
            retry_after: Some(retry_after),
        }
    }

    fn consume(_rate: &Rate, log: &mut Log, now: Nanos, cost: u64) {
        match log.entries.back_mut() {
            // Hits in the same nanosecond share an entry; the count stays below the
            // limit, so it fits 32 bits.
            Some(last) if last.0 == now => last.1 += cost as u32,
            _ => log.entries.push_back((now, cost as u32)),
        }
        log.used += cost;
    }

    fn advance(rate: &Rate, log: &mut Log, now: Nanos) {
        while let Some(&(time, count)) = log.entries.front() {
            if time + rate.period() > now {
                break;
            }
            log.entries.pop_front();
            log.used -= u64::from(count);
        }
        // Give memory back after a burst, without thrashing on small logs.
        let capacity = log.entries.capacity();
        if capacity > 64 && log.entries.len() * 4 < capacity {
            log.entries.shrink_to(capacity / 2);
        }
    }

    fn is_idle(rate: &Rate, log: &Log, now: Nanos) -> bool {
        log.entries
            .back()
            .is_none_or(|e| e.0 + rate.period() <= now)
    }

    fn heap_bytes(log: &Log) -> usize {
        log.entries.capacity() * std::mem::size_of::<(Nanos, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rate: &Rate, log: &mut Log, now: Nanos, cost: u64) -> Eval {
        SlidingWindowLog::advance(rate, log, now);
        let e = SlidingWindowLog::evaluate(rate, log, now, cost);
        if e.allowed {
            SlidingWindowLog::consume(rate, log, now, cost);
        }
        e
    }

    #[test]
    fn expires_exactly_one_period_after_each_hit() {
        let rate = Rate::new(2, 100).unwrap();
        let mut log = Log::default();
        assert!(hit(&rate, &mut log, 10, 1).allowed);
        assert!(hit(&rate, &mut log, 50, 1).allowed);
        let denied = hit(&rate, &mut log, 109, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(1));
        assert!(hit(&rate, &mut log, 110, 1).allowed);
        assert!(!hit(&rate, &mut log, 149, 1).allowed);
        assert!(hit(&rate, &mut log, 150, 1).allowed);
    }

    #[test]
    fn same_nanosecond_hits_share_an_entry() {
        let rate = Rate::new(10, 100).unwrap();
        let mut log = Log::default();
        for _ in 0..5 {
            assert!(hit(&rate, &mut log, 7, 1).allowed);
        }
        assert_eq!(log.entries.len(), 1);
        assert_eq!(log.used(), 5);
        let big = hit(&rate, &mut log, 8, 7);
        assert!(!big.allowed);
        assert_eq!(big.retry_after, Some(99));
    }

    #[test]
    fn shrinks_after_a_burst() {
        let rate = Rate::new(100_000, 1_000).unwrap();
        let mut log = Log::default();
        for t in 0..10_000 {
            hit(&rate, &mut log, t / 10, 1);
        }
        let big = log.entries.capacity();
        for t in 0..20 {
            SlidingWindowLog::advance(&rate, &mut log, 5_000 + t);
        }
        assert!(log.entries.capacity() < big);
        assert!(SlidingWindowLog::is_idle(&rate, &log, 5_000));
    }
}
