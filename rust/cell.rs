//! The state a store keeps for one key: a [`Cell`].
//!
//! Two kinds exist. An [`AtomicCell`] holds the one `u64` of a single-rate fixed
//! window or token bucket and updates it with a compare-and-swap loop: no lock at all.
//! A [`LockedCell`] holds the state of every rate behind a one-byte `parking_lot`
//! mutex, for the algorithms whose state is larger than a word (the log, the counter)
//! and for several rates, which must be checked and consumed all together.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::algorithm::{self, Algorithm, Decision, Nanos, combine};
use crate::clock::Clock;
use crate::rate::Rate;

/// The per-key state of a store, for one algorithm and a fixed list of rates.
pub trait Cell: Send + Sync + Sized + 'static {
    /// The state of a key never seen.
    fn fresh(rates: &[Rate]) -> Self;

    /// Takes a hit of `cost` if every rate allows it, reading the clock once.
    fn hit(&self, rates: &[Rate], clock: &Clock, cost: u64) -> Decision;

    /// Says what a cost-1 hit would get now, consuming nothing.
    fn peek(&self, rates: &[Rate], now: Nanos) -> Decision;

    /// Whether the key now behaves exactly as a fresh one; may drop expired history.
    /// Called with exclusive access (the shard's write lock), so it takes no lock.
    fn is_idle(&mut self, rates: &[Rate], now: Nanos) -> bool;

    /// Bytes owned on the heap, beyond the cell's own size.
    fn heap_bytes(&self) -> usize;
}

/// A lock-free cell for one rate whose state is one word.
pub struct AtomicCell<A> {
    state: AtomicU64,
    _algorithm: std::marker::PhantomData<fn() -> A>,
}

impl<A: Algorithm<State = u64>> Cell for AtomicCell<A> {
    fn fresh(_rates: &[Rate]) -> Self {
        AtomicCell {
            state: AtomicU64::new(0),
            _algorithm: std::marker::PhantomData,
        }
    }

    #[inline]
    fn hit(&self, rates: &[Rate], clock: &Clock, cost: u64) -> Decision {
        let rate = &rates[0];
        let now = clock.now();
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let eval = algorithm::evaluate::<A>(rate, &current, now, cost);
            if !eval.allowed {
                return combine(rates, std::iter::once(eval), cost);
            }
            let mut next = current;
            A::consume(rate, &mut next, now, cost);
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return combine(rates, std::iter::once(eval), cost),
                Err(actual) => current = actual,
            }
        }
    }

    fn peek(&self, rates: &[Rate], now: Nanos) -> Decision {
        let state = self.state.load(Ordering::Acquire);
        let eval = algorithm::evaluate::<A>(&rates[0], &state, now, 1);
        combine(rates, std::iter::once(eval), 0)
    }

    fn is_idle(&mut self, rates: &[Rate], now: Nanos) -> bool {
        A::is_idle(&rates[0], self.state.get_mut(), now)
    }

    fn heap_bytes(&self) -> usize {
        0
    }
}

/// A cell for any algorithm and any number of rates, behind a per-key mutex.
pub struct LockedCell<A: Algorithm> {
    states: Mutex<Box<[A::State]>>,
}

impl<A: Algorithm> Cell for LockedCell<A> {
    fn fresh(rates: &[Rate]) -> Self {
        LockedCell {
            states: Mutex::new(rates.iter().map(|_| A::State::default()).collect()),
        }
    }

    fn hit(&self, rates: &[Rate], clock: &Clock, cost: u64) -> Decision {
        let mut states = self.states.lock();
        // Read the clock under the lock, so the times a key sees never go backwards.
        let now = clock.now();
        for (state, rate) in states.iter_mut().zip(rates) {
            A::advance(rate, state, now);
        }
        let evals = states
            .iter()
            .zip(rates)
            .map(|(state, rate)| algorithm::evaluate::<A>(rate, state, now, cost));
        let decision = combine(rates, evals, cost);
        if decision.allowed {
            for (state, rate) in states.iter_mut().zip(rates) {
                A::consume(rate, state, now, cost);
            }
        }
        decision
    }

    fn peek(&self, rates: &[Rate], now: Nanos) -> Decision {
        let mut states = self.states.lock();
        for (state, rate) in states.iter_mut().zip(rates) {
            A::advance(rate, state, now);
        }
        let evals = states
            .iter()
            .zip(rates)
            .map(|(state, rate)| algorithm::evaluate::<A>(rate, state, now, 1));
        combine(rates, evals, 0)
    }

    fn is_idle(&mut self, rates: &[Rate], now: Nanos) -> bool {
        let states = self.states.get_mut();
        let mut idle = true;
        for (state, rate) in states.iter_mut().zip(rates) {
            A::advance(rate, state, now);
            idle &= A::is_idle(rate, state, now);
        }
        idle
    }

    fn heap_bytes(&self) -> usize {
        let states = self.states.lock();
        states.len() * std::mem::size_of::<A::State>()
            + states.iter().map(A::heap_bytes).sum::<usize>()
    }
}
