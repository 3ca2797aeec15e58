//! The four algorithms, each a set of pure functions over one rate's state.
//!
//! An [`Algorithm`] never locks and never reads a clock: it is told the time and the
//! state, and says what a hit would get ([`Algorithm::evaluate`]) and how the state
//! changes when it is taken ([`Algorithm::consume`]). The cells in [`crate::cell`]
//! decide how that is made atomic, and [`combine`] folds the answers of several rates
//! into one all-or-nothing [`Decision`].

mod fixed_window;
mod gcra;
mod sliding_counter;
mod sliding_log;

pub use fixed_window::FixedWindow;
pub use gcra::TokenBucket;
pub use sliding_counter::SlidingWindowCounter;
pub use sliding_log::{Log, SlidingWindowLog};

use crate::rate::Rate;

/// Time in nanoseconds on the store's clock.
pub type Nanos = u64;

/// What one rate says about a hit of some cost, before anything is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eval {
    /// Whether the hit fits.
    pub allowed: bool,
    /// Cost-1 hits that would be allowed now, before this hit.
    pub remaining: u64,
    /// Nanoseconds until the rate is back to full capacity, if nothing is taken.
    pub reset_now: Nanos,
    /// Nanoseconds until full capacity, if the hit is taken (only when allowed).
    pub reset_taken: Nanos,
    /// When denied, nanoseconds until a hit of this cost could pass; `None` if never.
    pub retry_after: Option<Nanos>,
}

/// One algorithm's rules for the state of one rate of one key.
pub trait Algorithm: Send + Sync + 'static {
    /// The per-rate state; `Default` is the state of a key never seen.
    type State: Default + Send;

    /// The name Python uses for the algorithm.
    const NAME: &'static str;

    /// Says what a hit of `cost` (1 to the rate's limit) would get at `now`.
    fn evaluate(rate: &Rate, state: &Self::State, now: Nanos, cost: u64) -> Eval;

    /// Records a hit that [`Algorithm::evaluate`] allowed at the same `now`.
    fn consume(rate: &Rate, state: &mut Self::State, now: Nanos, cost: u64);

    /// Drops what has expired by `now`, where the state keeps history (the log).
    fn advance(_rate: &Rate, _state: &mut Self::State, _now: Nanos) {}

    /// Whether the state now behaves exactly as a fresh key's: the GC removes it then.
    fn is_idle(rate: &Rate, state: &Self::State, now: Nanos) -> bool;

    /// Bytes the state owns on the heap, beyond its own size.
    fn heap_bytes(_state: &Self::State) -> usize {
        0
    }
}

/// Evaluates a hit of `cost` on one rate, treating a cost above the limit as a denial
/// that can never pass (the algorithms are only asked about costs that fit).
#[inline]
pub fn evaluate<A: Algorithm>(rate: &Rate, state: &A::State, now: Nanos, cost: u64) -> Eval {
    if cost <= rate.limit() {
        return A::evaluate(rate, state, now, cost);
    }
    let mut eval = A::evaluate(rate, state, now, 1);
    eval.allowed = false;
    eval.retry_after = None;
    eval
}

/// The answer for one key: all its rates folded into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the hit passed (every rate allowed it).
    pub allowed: bool,
    /// The index of the deciding rate: the violated one when denied (the longest
    /// wait if several), the one with least remaining when allowed.
    pub rate: usize,
    /// That rate's limit.
    pub limit: u64,
    /// Cost-1 hits that rate still allows after this decision.
    pub remaining: u64,
    /// Nanoseconds until that rate is back to full capacity.
    pub reset_after: Nanos,
    /// 0 when allowed; otherwise nanoseconds until a hit of this cost could pass,
    /// `None` if it never can (the cost exceeds the limit).
    pub retry_after: Option<Nanos>,
}

/// Folds per-rate evaluations into a decision, as a hit of `cost` that is taken if
/// every rate allows it. With `cost == 0` the result is a peek: nothing is subtracted.
pub fn combine(rates: &[Rate], evals: impl Iterator<Item = Eval>, cost: u64) -> Decision {
    let mut allowed_best: Option<(usize, Eval)> = None;
    let mut denied_worst: Option<(usize, Eval)> = None;
    for (i, e) in evals.enumerate() {
        if e.allowed {
            if allowed_best.is_none_or(|(_, b)| e.remaining < b.remaining) {
                allowed_best = Some((i, e));
            }
        } else if denied_worst.is_none_or(|(_, w)| wait_longer(e.retry_after, w.retry_after)) {
            denied_worst = Some((i, e));
        }
    }
    match (denied_worst, allowed_best) {
        (Some((i, e)), _) => Decision {
            allowed: false,
            rate: i,
            limit: rates[i].limit(),
            remaining: e.remaining,
            reset_after: e.reset_now,
            retry_after: e.retry_after,
        },
        (None, Some((i, e))) => Decision {
            allowed: true,
            rate: i,
            limit: rates[i].limit(),
            remaining: e.remaining - cost.min(e.remaining),
            reset_after: if cost == 0 {
                e.reset_now
            } else {
                e.reset_taken
            },
            retry_after: Some(0),
        },
        (None, None) => Decision {
            allowed: false,
            rate: 0,
            limit: 0,
            remaining: 0,
            reset_after: 0,
            retry_after: None,
        },
    }
}

/// Whether waiting `a` is strictly longer than waiting `b` (`None` is forever).
fn wait_longer(a: Option<Nanos>, b: Option<Nanos>) -> bool {
    match (a, b) {
        (None, None) => false,
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(allowed: bool, remaining: u64, retry: Option<Nanos>) -> Eval {
        Eval {
            allowed,
            remaining,
            reset_now: 1,
            reset_taken: 2,
            retry_after: retry,
        }
    }

    #[test]
    fn allowed_reports_least_remaining() {
        let rates = [Rate::new(10, 5).unwrap(), Rate::new(20, 5).unwrap()];
        let d = combine(
            &rates,
            [eval(true, 9, Some(0)), eval(true, 4, Some(0))].into_iter(),
            1,
        );
        assert!(d.allowed);
        assert_eq!((d.rate, d.limit, d.remaining, d.reset_after), (1, 20, 3, 2));
    }

    #[test]
    fn denied_reports_the_longest_wait() {
        let rates = [Rate::new(10, 5).unwrap(); 3];
        let d = combine(
            &rates,
            [
                eval(false, 0, Some(5)),
                eval(true, 3, Some(0)),
                eval(false, 0, Some(9)),
            ]
            .into_iter(),
            1,
        );
        assert!(!d.allowed);
        assert_eq!((d.rate, d.retry_after, d.reset_after), (2, Some(9), 1));
        let forever = combine(
            &rates,
            [eval(false, 0, Some(5)), eval(false, 0, None)].into_iter(),
            1,
        );
        assert_eq!((forever.rate, forever.retry_after), (1, None));
    }
}
