//! Token bucket, as the generic cell rate algorithm (GCRA).
//!
//! The bucket holds `limit` tokens and gains one every `interval = ceil(period /
//! limit)` nanoseconds. Instead of a token count the state is one timestamp, the
//! theoretical arrival time (TAT): the moment the bucket would be full again. A hit of
//! cost `c` moves it to `max(tat, now) + c * interval`, and fits if that lies at most
//! `tolerance = limit * interval` ahead of now. One `u64`, one compare-and-swap.

use super::{Algorithm, Eval, Nanos};
use crate::rate::Rate;

/// The token-bucket algorithm (GCRA).
pub struct TokenBucket;

impl Algorithm for TokenBucket {
    type State = u64;
    const NAME: &'static str = "token_bucket";

    #[inline]
    fn evaluate(rate: &Rate, tat: &u64, now: Nanos, cost: u64) -> Eval {
        let base = (*tat).max(now);
        let debt = base - now;
        let taken = debt + cost * rate.interval();
        let allowed = taken <= rate.tolerance();
        Eval {
            allowed,
            remaining: rate.tolerance().saturating_sub(debt) / rate.interval(),
            reset_now: debt,
            reset_taken: taken,
            retry_after: if allowed {
                Some(0)
            } else {
                Some(taken - rate.tolerance())
            },
        }
    }

    #[inline]
    fn consume(rate: &Rate, tat: &mut u64, now: Nanos, cost: u64) {
        *tat = (*tat).max(now) + cost * rate.interval();
    }

    fn is_idle(_rate: &Rate, tat: &u64, now: Nanos) -> bool {
        *tat <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_token_per_interval() {
        let rate = Rate::new(4, 100).unwrap(); // interval 25ns
        let mut tat = 0;
        for i in 0..4 {
            let e = TokenBucket::evaluate(&rate, &tat, 1000, 1);
            assert!(e.allowed);
            assert_eq!(e.remaining, 4 - i);
            TokenBucket::consume(&rate, &mut tat, 1000, 1);
        }
        let denied = TokenBucket::evaluate(&rate, &tat, 1000, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(25));
        assert_eq!(denied.reset_now, 100);
        assert!(TokenBucket::evaluate(&rate, &tat, 1025, 1).allowed);
        let two = TokenBucket::evaluate(&rate, &tat, 1025, 2);
        assert_eq!(two.retry_after, Some(25));
        assert!(TokenBucket::is_idle(&rate, &tat, 1100));
        assert!(!TokenBucket::is_idle(&rate, &tat, 1099));
    }
}
