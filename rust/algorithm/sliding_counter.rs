//! Sliding window counter: an O(1) approximation of the sliding window.
//!
//! Windows are aligned as in the fixed window; the state keeps the count of the
//! current window and of the one before it. A hit at elapsed time `e` into the
//! current window sees the estimate
//!
//! ```text
//! used = prev * (period - e) / period + cur
//! ```
//!
//! that is, the previous window's hits weighted by how much of it still overlaps the
//! sliding window, and fits if `used + cost <= limit`. The comparison is done in exact
//! integers (`prev * (period - e) + (cur + cost) * period <= limit * period`), so the
//! only error is the algorithm's own assumption that the previous window's hits were
//! spread evenly; it can over- or under-admit against the exact log by that much.

use super::{Algorithm, Eval, Nanos};
use crate::rate::Rate;

/// The sliding-window-counter algorithm.
pub struct SlidingWindowCounter;

/// The counts of the current and the previous window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    window: u64,
    prev: u64,
    cur: u64,
}

/// The counters as seen at `now`: rolled forward to the window `now` falls in (or
/// kept in a later one that another thread already opened), with the elapsed time.
#[inline]
fn rolled(rate: &Rate, c: &Counters, now: Nanos) -> (Counters, Nanos) {
    let index = now / rate.period();
    if c.window >= index {
        let elapsed = now.saturating_sub(c.window * rate.period());
        return (*c, elapsed);
    }
    let prev = if c.window + 1 == index { c.cur } else { 0 };
    let counters = Counters {
        window: index,
        prev,
        cur: 0,
    };
    (counters, now - index * rate.period())
}

/// The weighted count, scaled by the period: `prev * (period - e) + cur * period`.
#[inline]
fn weighted(rate: &Rate, c: &Counters, elapsed: Nanos) -> u128 {
    let p = u128::from(rate.period());
    u128::from(c.prev) * (p - u128::from(elapsed)) + u128::from(c.cur) * p
}

/// Nanoseconds until a hit of `cost` fits, when it does not fit now.
fn retry_after(rate: &Rate, c: &Counters, elapsed: Nanos, cost: u64) -> Nanos {
    let p = u128::from(rate.period());
    let limit = u128::from(rate.limit());
    let (prev, cur, cost) = (u128::from(c.prev), u128::from(c.cur), u128::from(cost));
    // Later in this window: prev * (p - e') <= (limit - cur - cost) * p.
    if cur + cost <= limit && prev > 0 {
        let room = (limit - cur - cost) * p / prev;
        if room >= 1 {
            let e_min = p - room.min(p);
            return (e_min - u128::from(elapsed).min(e_min)) as Nanos;
        }
    }
    // In the next window the current count becomes the previous one.
    let to_next = p - u128::from(elapsed);
    let e_next = ((limit - cost) * p)
        .checked_div(cur)
        .map_or(0, |room| p - room.min(p));
    (to_next + e_next) as Nanos
}

impl Algorithm for SlidingWindowCounter {
    type State = Counters;
    const NAME: &'static str = "sliding_window_counter";

    fn evaluate(rate: &Rate, state: &Counters, now: Nanos, cost: u64) -> Eval {
        let (c, elapsed) = rolled(rate, state, now);
        let p = u128::from(rate.period());
        let capacity = u128::from(rate.limit()) * p;
        let used = weighted(rate, &c, elapsed);
        let allowed = used + u128::from(cost) * p <= capacity;
        let to_next = rate.period() - elapsed;
        let reset_now = if c.cur > 0 {
            to_next + rate.period()
        } else if c.prev > 0 {
            to_next
        } else {
            0
        };
        Eval {
            allowed,
            remaining: (capacity.saturating_sub(used) / p) as u64,
            reset_now,
            reset_taken: to_next + rate.period(),
            retry_after: Some(if allowed {
                0
            } else {
                retry_after(rate, &c, elapsed, cost)
            }),
        }
    }

    fn consume(rate: &Rate, state: &mut Counters, now: Nanos, cost: u64) {
        let (mut c, _) = rolled(rate, state, now);
        c.cur += cost;
        *state = c;
    }

    fn advance(rate: &Rate, state: &mut Counters, now: Nanos) {
        *state = rolled(rate, state, now).0;
    }

    fn is_idle(rate: &Rate, state: &Counters, now: Nanos) -> bool {
        let (c, _) = rolled(rate, state, now);
        c.prev == 0 && c.cur == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rate: &Rate, st: &mut Counters, now: Nanos, cost: u64) -> Eval {
        let e = SlidingWindowCounter::evaluate(rate, st, now, cost);
        if e.allowed {
            SlidingWindowCounter::consume(rate, st, now, cost);
        }
        e
    }

    #[test]
    fn weights_the_previous_window() {
        let rate = Rate::new(10, 100).unwrap();
        let mut st = Counters::default();
        assert!(hit(&rate, &mut st, 50, 10).allowed);
        // At 125 the previous window weighs 75%: 7.5 used, 2 more fit.
        let e = SlidingWindowCounter::evaluate(&rate, &st, 125, 1);
        assert_eq!(e.remaining, 2);
        assert!(hit(&rate, &mut st, 125, 2).allowed);
        let denied = hit(&rate, &mut st, 125, 1);
        assert!(!denied.allowed);
        // 10 * (100 - e) + 2 * 100 + 100 <= 1000  =>  e >= 30: wait 5ns.
        assert_eq!(denied.retry_after, Some(5));
        assert!(hit(&rate, &mut st, 130, 1).allowed);
        assert!(!SlidingWindowCounter::is_idle(&rate, &st, 299));
        assert!(SlidingWindowCounter::is_idle(&rate, &st, 300));
    }

    #[test]
    fn retry_crosses_into_the_next_window() {
        let rate = Rate::new(4, 100).unwrap();
        let mut st = Counters::default();
        assert!(hit(&rate, &mut st, 10, 4).allowed);
        let denied = SlidingWindowCounter::evaluate(&rate, &st, 20, 1);
        // Next window: 4 * (100 - e) + 100 <= 400  =>  e >= 25, so 80 + 25.
        assert_eq!(denied.retry_after, Some(105));
        assert!(!hit(&rate, &mut st, 124, 1).allowed);
        assert!(hit(&rate, &mut st, 125, 1).allowed);
    }
}
