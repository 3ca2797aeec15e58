//! Property tests of the store: arbitrary operation sequences for every algorithm.
//!
//! Each case draws one to three rates (periods from 1ns to 1s, so window edges and
//! single-nanosecond steps matter) and a sequence of hits, peeks, resets, sweeps and
//! clock moves on a handful of keys, and runs it on three stores sharing one clock:
//!
//! * `swept`: unbounded, sweeps whenever the sequence says so;
//! * `kept`: unbounded, never sweeps;
//! * `bounded`: sweeps too, and holds at most a few keys.
//!
//! and checks, after every operation:
//!
//! * nothing panics;
//! * `swept` and `kept` give the same decisions: a sweep never removes a key that
//!   does not behave as a fresh one;
//! * each sweeping store holds exactly the keys a shadow predicts (built from the
//!   crate's own cells: a key is held from its first admitted hit until a reset or
//!   a sweep that finds it idle), answers as the shadow does, and `sweep` removes
//!   exactly the shadow's idle keys; `bounded` never holds more than `max_keys` and
//!   refuses a new key only when full, with the documented decision;
//! * a denied hit changes nothing (peek before and after are equal) and a peek
//!   changes nothing;
//! * every decision is well formed (limit of the named rate, `retry_after` zero
//!   exactly when allowed, `None` exactly when the cost exceeds a limit);
//! * when a denied hit says "retry after r", the same hit is still denied at
//!   `r - 1` and allowed at `r`;
//! * admitted hits never exceed the limit: per aligned window (fixed window and
//!   counter), in any half-open interval of one period (log), and for the bucket
//!   at most `limit + d / interval` in any span of `d` nanoseconds.
//!
//! `PROPTEST_CASES` raises the number of cases (256 by default).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use _core::algorithm::{FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket};
use _core::{AtomicCell, Cell, Clock, Decision, LockedCell, ManualTime, Nanos, Rate, Store};
use proptest::prelude::*;
use proptest::test_runner::Config;

const KEYS: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"\xff\xfe"];
const PERIODS: [u64; 9] = [1, 2, 3, 7, 10, 97, 1_000, 1_000_000, 1_000_000_000];
const BOUND: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Hit {
        key: usize,
        cost: u64,
        probe: bool,
    },
    Peek {
        key: usize,
    },
    Reset {
        key: usize,
    },
    Sweep,
    /// Move the clock by this many nanoseconds.
    Advance(u64),
    /// Move to the next edge of rate `rate % rates` plus `offset - 1` (-1, 0, +1).
    Edge {
        rate: usize,
        offset: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fixed,
    Log,
    Counter,
    Bucket,
}

fn rates() -> impl Strategy<Value = Vec<Rate>> {
    let rate = (
        prop_oneof![3 => 1u64..=6, 1 => prop::sample::select(vec![10u64, 100, 1000])],
        prop::sample::select(PERIODS.to_vec()),
    )
        .prop_map(|(limit, period)| Rate::new(limit, period).unwrap());
    prop::collection::vec(rate, 1..=3)
}

fn ops(max_cost: u64) -> impl Strategy<Value = Vec<Op>> {
    let key = 0..KEYS.len();
    let op = prop_oneof![
        8 => (key.clone(), 1..=max_cost + 1, any::<bool>())
            .prop_map(|(key, cost, probe)| Op::Hit { key, cost, probe }),
        8 => key.clone().prop_map(|key| Op::Hit { key, cost: 1, probe: false }),
        2 => key.clone().prop_map(|key| Op::Peek { key }),
        1 => key.prop_map(|key| Op::Reset { key }),
        1 => Just(Op::Sweep),
        2 => prop_oneof![Just(1u64), Just(2), 0..3_000_000_000u64].prop_map(Op::Advance),
        2 => (0..3usize, 0..3u64).prop_map(|(rate, offset)| Op::Edge { rate, offset }),
    ];
    prop::collection::vec(op, 1..200)
}

fn case() -> impl Strategy<Value = (Vec<Rate>, Vec<Op>, u64)> {
    rates().prop_flat_map(|rates| {
        let max = rates.iter().map(Rate::limit).max().unwrap();
        let max = max.min(12);
        (Just(rates), ops(max), 0..1_000_000_000_000_000u64)
    })
}

/// The hits a key admitted, for the exactness checks: (time, cost).
type History = HashMap<usize, Vec<(Nanos, u64)>>;

/// What a store should hold: the keys present and a cell per key with the same
/// history, built from the crate's own cells. It predicts the store's answers for
/// the key bound, insertion, reset and sweep.
struct Shadow<C: Cell> {
    max_keys: usize,
    cells: Vec<Option<C>>,
}

impl<C: Cell> Shadow<C> {
    fn new(max_keys: usize) -> Self {
        Shadow {
            max_keys,
            cells: (0..KEYS.len()).map(|_| None).collect(),
        }
    }

    fn held(&self) -> usize {
        self.cells.iter().flatten().count()
    }

    fn hit(&mut self, key: usize, rates: &[Rate], clock: &Clock, cost: u64) -> Decision {
        if let Some(cell) = &self.cells[key] {
            return cell.hit(rates, clock, cost);
        }
        let cell = C::fresh(rates);
        let d = cell.hit(rates, clock, cost);
        if !d.allowed {
            return d;
        }
        if self.held() >= self.max_keys {
            return full_decision(rates);
        }
        self.cells[key] = Some(cell);
        d
    }

    fn peek(&self, key: usize, rates: &[Rate], now: Nanos) -> Decision {
        match &self.cells[key] {
            Some(cell) => cell.peek(rates, now),
            None => C::fresh(rates).peek(rates, now),
        }
    }

    fn sweep(&mut self, rates: &[Rate], now: Nanos) -> usize {
        let mut removed = 0;
        for slot in &mut self.cells {
            if slot.as_mut().is_some_and(|cell| cell.is_idle(rates, now)) {
                *slot = None;
                removed += 1;
            }
        }
        removed
    }
}

/// The documented answer to a new key on a full store.
fn full_decision(rates: &[Rate]) -> Decision {
    let shortest = rates.iter().map(Rate::period).min().unwrap();
    let index = rates.iter().position(|r| r.period() == shortest).unwrap();
    Decision {
        allowed: false,
        rate: index,
        limit: rates[index].limit(),
        remaining: 0,
        reset_after: 0,
        retry_after: Some(shortest),
    }
}

struct Harness<C: Cell> {
    time: Arc<ManualTime>,
    clock: Clock,
    rates: Vec<Rate>,
    kind: Kind,
    swept: Store<C>,
    kept: Store<C>,
    bounded: Store<C>,
    shadow_swept: Shadow<C>,
    shadow_bounded: Shadow<C>,
    admitted: History,
}

impl<C: Cell> Harness<C> {
    fn new(rates: &[Rate], kind: Kind, start: Nanos) -> Self {
        let time = Arc::new(ManualTime::new(start).unwrap());
        let clock = Clock::Manual(time.clone());
        let store = |max_keys| Store::<C>::new(rates, 4, max_keys, clock.clone()).unwrap();
        Harness {
            rates: rates.to_vec(),
            kind,
            swept: store(1_000),
            kept: store(1_000),
            bounded: store(BOUND),
            shadow_swept: Shadow::new(1_000),
            shadow_bounded: Shadow::new(BOUND),
            time,
            clock,
            admitted: HashMap::new(),
        }
    }

    fn run(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        for op in ops {
            match *op {
                Op::Hit { key, cost, probe } => self.hit(key, cost, probe)?,
                Op::Peek { key } => {
                    let d = self.peek_all(key)?;
                    prop_assert_eq!(self.swept.peek(KEYS[key]), d, "peek changed something");
                }
                Op::Reset { key } => {
                    prop_assert_eq!(
                        self.swept.reset(KEYS[key]),
                        self.shadow_swept.cells[key].take().is_some()
                    );
                    prop_assert_eq!(
                        self.bounded.reset(KEYS[key]),
                        self.shadow_bounded.cells[key].take().is_some()
                    );
                    self.kept.reset(KEYS[key]);
                    self.admitted.remove(&key);
                }
                Op::Sweep => {
                    let now = self.time.now();
                    let expected = self.shadow_swept.sweep(&self.rates, now);
                    prop_assert_eq!(self.swept.sweep(), expected, "swept the wrong keys");
                    let expected = self.shadow_bounded.sweep(&self.rates, now);
                    prop_assert_eq!(self.bounded.sweep(), expected, "swept the wrong keys");
                }
                Op::Advance(ns) => self.time.advance(ns),
                Op::Edge { rate, offset } => {
                    let period = self.rates[rate % self.rates.len()].period();
                    let now = self.time.now();
                    let edge = (now / period).saturating_add(1).saturating_mul(period);
                    let _ = self
                        .time
                        .set(edge.saturating_add(offset).saturating_sub(1).max(now));
                }
            }
            prop_assert_eq!(self.swept.len(), self.shadow_swept.held());
            prop_assert_eq!(self.bounded.len(), self.shadow_bounded.held());
            prop_assert!(self.bounded.len() <= BOUND);
        }
        Ok(())
    }

    /// Peeks `key` on every store; they must agree with each other and the shadows.
    fn peek_all(&self, key: usize) -> Result<Decision, TestCaseError> {
        let now = self.time.now();
        let d = self.swept.peek(KEYS[key]);
        prop_assert_eq!(
            self.kept.peek(KEYS[key]),
            d,
            "a sweep changed a key's state"
        );
        prop_assert_eq!(self.shadow_swept.peek(key, &self.rates, now), d);
        let b = self.bounded.peek(KEYS[key]);
        prop_assert_eq!(self.shadow_bounded.peek(key, &self.rates, now), b);
        self.well_formed(&d, 1)?;
        Ok(d)
    }

    fn hit(&mut self, key: usize, cost: u64, probe: bool) -> Result<(), TestCaseError> {
        let before = self.peek_all(key)?;
        let held_before = self.swept.len();
        let d = self.hit_all(key, cost)?;
        if d.allowed {
            self.record(key, cost)?;
        } else {
            prop_assert_eq!(
                self.peek_all(key)?,
                before,
                "a denied hit changed the state"
            );
            prop_assert_eq!(self.swept.len(), held_before, "a denied hit stored a key");
        }
        if let (false, true, Some(wait)) = (d.allowed, probe, d.retry_after) {
            // The same hit is denied one nanosecond early and allowed on time; unless
            // the clock cannot get there (it stops at the end of its range).
            let start = self.time.now();
            let scratch = ManualTime::new(start).unwrap();
            scratch.advance(wait);
            if scratch.now() != start.saturating_add(wait) {
                return Ok(());
            }
            if wait > 1 {
                self.time.advance(wait - 1);
                let early = self.hit_all(key, cost)?;
                prop_assert!(!early.allowed, "allowed before retry_after {}", wait);
                self.time.advance(1);
            } else {
                self.time.advance(wait);
            }
            let again = self.hit_all(key, cost)?;
            prop_assert!(
                again.allowed,
                "denied after retry_after {}: {:?}",
                wait,
                again
            );
            self.record(key, cost)?;
        }
        Ok(())
    }

    fn record(&mut self, key: usize, cost: u64) -> Result<(), TestCaseError> {
        let now = self.time.now();
        self.admitted.entry(key).or_default().push((now, cost));
        self.check_exact(key)
    }

    /// Hits `key` on every store and compares the decisions with each other and the
    /// shadows; returns the unbounded stores' decision.
    fn hit_all(&mut self, key: usize, cost: u64) -> Result<Decision, TestCaseError> {
        let d = self.swept.hit(KEYS[key], cost);
        prop_assert_eq!(
            self.kept.hit(KEYS[key], cost),
            d,
            "a sweep changed a decision"
        );
        let expected = self.shadow_swept.hit(key, &self.rates, &self.clock, cost);
        prop_assert_eq!(expected, d);
        self.well_formed(&d, cost)?;
        let b = self.bounded.hit(KEYS[key], cost);
        let expected = self.shadow_bounded.hit(key, &self.rates, &self.clock, cost);
        prop_assert_eq!(b, expected, "the bounded store answered unexpectedly");
        self.well_formed(&b, cost)?;
        Ok(d)
    }
    fn well_formed(&self, d: &Decision, cost: u64) -> Result<(), TestCaseError> {
        let rate = self.rates[d.rate];
        prop_assert_eq!(d.limit, rate.limit());
        prop_assert!(d.remaining <= rate.limit());
        // Two periods for the counter; the bucket's tolerance (limit * the interval
        // rounded up) can exceed a period of a few nanoseconds.
        let longest = self
            .rates
            .iter()
            .map(|r| (2 * r.period()).max(r.tolerance()));
        prop_assert!(
            d.reset_after <= longest.max().unwrap(),
            "reset_after {:?}",
            d
        );
        let too_big = self.rates.iter().any(|r| cost > r.limit());
        if *d == full_decision(&self.rates) {
            return Ok(());
        }
        if d.allowed {
            prop_assert_eq!(d.retry_after, Some(0));
        } else if too_big {
            prop_assert_eq!(d.retry_after, None);
        } else {
            prop_assert!(matches!(d.retry_after, Some(w) if w > 0), "denied: {:?}", d);
        }
        Ok(())
    }

    /// Admitted hits of `key` never exceed what each rate allows.
    fn check_exact(&self, key: usize) -> Result<(), TestCaseError> {
        let hits = &self.admitted[&key];
        let (&(now, _), _) = hits.split_last().unwrap();
        for rate in &self.rates {
            let (limit, period) = (rate.limit(), rate.period());
            match self.kind {
                Kind::Fixed | Kind::Counter => {
                    let window = now / period;
                    let used: u64 = hits
                        .iter()
                        .filter(|(t, _)| t / period == window)
                        .map(|(_, c)| c)
                        .sum();
                    prop_assert!(
                        used <= limit,
                        "{} admitted in one window of {:?}",
                        used,
                        rate
                    );
                }
                Kind::Log => {
                    let used: u64 = hits
                        .iter()
                        .filter(|(t, _)| t.saturating_add(period) > now)
                        .map(|(_, c)| c)
                        .sum();
                    prop_assert!(used <= limit, "{} admitted within {:?}", used, rate);
                }
                Kind::Bucket => {
                    let mut used = 0;
                    for &(t, c) in hits.iter().rev() {
                        used += c;
                        let allowance = limit + (now - t) / rate.interval();
                        prop_assert!(used <= allowance, "{} admitted, {:?}", used, rate);
                    }
                }
            }
        }
        Ok(())
    }
}

fn check<C: Cell>(
    kind: Kind,
    rates: &[Rate],
    ops: &[Op],
    start: Nanos,
) -> Result<(), TestCaseError> {
    Harness::<C>::new(rates, kind, start).run(ops)
}

fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fixed_window((rates, ops, start) in case()) {
        check::<LockedCell<FixedWindow>>(Kind::Fixed, &rates, &ops, start)?;
        if rates.len() == 1 {
            check::<AtomicCell<FixedWindow>>(Kind::Fixed, &rates, &ops, start)?;
        }
    }

    #[test]
    fn sliding_window_log((rates, ops, start) in case()) {
        check::<LockedCell<SlidingWindowLog>>(Kind::Log, &rates, &ops, start)?;
    }

    #[test]
    fn sliding_window_counter((rates, ops, start) in case()) {
        check::<LockedCell<SlidingWindowCounter>>(Kind::Counter, &rates, &ops, start)?;
    }

    #[test]
    fn token_bucket((rates, ops, start) in case()) {
        check::<LockedCell<TokenBucket>>(Kind::Bucket, &rates, &ops, start)?;
        if rates.len() == 1 {
            check::<AtomicCell<TokenBucket>>(Kind::Bucket, &rates, &ops, start)?;
        }
    }

    /// A manual clock can be moved to the end of its range (it saturates there);
    /// the store must neither panic nor admit more than the limit at that time.
    #[test]
    fn the_end_of_the_clock((rates, ops, _start) in case(), kind in 0..6usize) {
        // Through `advance`, which saturates, so that a clock capped below u64::MAX
        // passes through the same path.
        let start = 0;
        let ops: Vec<Op> = [Op::Advance(u64::MAX - 3_000_000_000)]
            .into_iter()
            .chain(ops)
            .chain([Op::Advance(u64::MAX)])
            .chain(
            (0..4).map(|_| Op::Hit { key: 0, cost: 1, probe: false })
        ).collect();
        match kind {
            0 => check::<LockedCell<FixedWindow>>(Kind::Fixed, &rates, &ops, start)?,
            1 => check::<LockedCell<SlidingWindowLog>>(Kind::Log, &rates, &ops, start)?,
            2 => check::<LockedCell<SlidingWindowCounter>>(Kind::Counter, &rates, &ops, start)?,
            3 => check::<LockedCell<TokenBucket>>(Kind::Bucket, &rates, &ops, start)?,
            4 => check::<AtomicCell<FixedWindow>>(Kind::Fixed, &rates[..1], &ops, start)?,
            _ => check::<AtomicCell<TokenBucket>>(Kind::Bucket, &rates[..1], &ops, start)?,
        }
    }
}
