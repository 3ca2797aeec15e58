//! Fixed window: one counter per key, reset when the clock enters the next window.
//!
//! Windows are aligned to multiples of the period on the clock's timeline. The state
//! is one `u64`, so a single-rate limiter updates it with one compare-and-swap: the
//! high 32 bits tag the window (its index, truncated), the low 32 bits count the hits
//! admitted in it. A key can admit up to twice its limit across a window boundary
//! (the end of one window and the start of the next); that is the price of O(1) state.
//!
//! The 32-bit tag wraps after 2^32 windows (136 years for a one-second period, 49.7
//! days for a one-millisecond one). A key untouched for exactly a multiple of that,
//! and not removed by the GC in between, would see its old count again.

use super::{Algorithm, Eval, Nanos};
use crate::rate::Rate;

/// The fixed-window algorithm.
pub struct FixedWindow;

/// The window a time falls in, and the one the state was last written in, resolved
/// to an effective window index and the hits already counted in it.
#[inline]
fn window(rate: &Rate, state: u64, now: Nanos) -> (u64, u64) {
    let index = now / rate.period();
    let (tag, count) = ((state >> 32) as u32, state & 0xffff_ffff);
    match tag.wrapping_sub(index as u32) {
        _ if count == 0 => (index, 0),
        0 => (index, count),
        // Another thread read the clock a moment later and already opened the next
        // window: count this hit there too, so time never runs backwards for a key.
        1 => (index + 1, count),
        _ => (index, 0),
    }
}

impl Algorithm for FixedWindow {
    type State = u64;
    const NAME: &'static str = "fixed_window";

    #[inline]
    fn evaluate(rate: &Rate, state: &u64, now: Nanos, cost: u64) -> Eval {
        let (index, used) = window(rate, *state, now);
        let until_next = ((index + 1) * rate.period()).saturating_sub(now);
        let allowed = used + cost <= rate.limit();
        Eval {
            allowed,
            remaining: rate.limit() - used,
            reset_now: if used > 0 { until_next } else { 0 },
            reset_taken: until_next,
            retry_after: if allowed { Some(0) } else { Some(until_next) },
        }
    }

    #[inline]
    fn consume(rate: &Rate, state: &mut u64, now: Nanos, cost: u64) {
        let (index, used) = window(rate, *state, now);
        *state = ((index as u32 as u64) << 32) | (used + cost);
    }

    fn is_idle(rate: &Rate, state: &u64, now: Nanos) -> bool {
        window(rate, *state, now).1 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn counts_within_a_window_and_resets_at_its_edge() {
        let rate = Rate::new(2, 10 * S).unwrap();
        let mut st = 0;
        for now in [3 * S, 9 * S] {
            assert!(FixedWindow::evaluate(&rate, &st, now, 1).allowed);
            FixedWindow::consume(&rate, &mut st, now, 1);
        }
        let denied = FixedWindow::evaluate(&rate, &st, 10 * S - 1, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(1));
        assert_eq!(denied.remaining, 0);
        let next = FixedWindow::evaluate(&rate, &st, 10 * S, 1);
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert!(FixedWindow::is_idle(&rate, &st, 10 * S));
        assert!(!FixedWindow::is_idle(&rate, &st, 10 * S - 1));
    }

    #[test]
    fn a_state_from_the_next_window_is_kept() {
        let rate = Rate::new(5, 10).unwrap();
        let mut st = 0;
        FixedWindow::consume(&rate, &mut st, 10, 3);
        let late = FixedWindow::evaluate(&rate, &st, 9, 1);
        assert_eq!(late.remaining, 2);
        assert_eq!(late.reset_taken, 11);
    }
}
