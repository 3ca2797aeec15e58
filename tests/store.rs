//! Integration tests of the store: exactness under real threads, the key bound, GC.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use _core::algorithm::{FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket};
use _core::{AtomicCell, Cell, Clock, LockedCell, ManualTime, Rate, Store};

const SECOND: u64 = 1_000_000_000;

fn manual(start: u64) -> (Arc<ManualTime>, Clock) {
    let time = Arc::new(ManualTime::new(start).unwrap());
    (time.clone(), Clock::Manual(time))
}

/// 8 threads hit one key as fast as they can, while a ninth sweeps; exactly `limit`
/// hits must pass. Repeated, so that a race has many chances to show.
fn exactly_limit_under_threads<C: Cell>(rates: &[Rate], limit: u64) {
    for round in 0..40 {
        let (_, clock) = manual(1_000 * SECOND);
        let store = Arc::new(Store::<C>::new(rates, 4, 1_000, clock).unwrap());
        let admitted = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sweeper = {
            let (store, done) = (store.clone(), done.clone());
            thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    store.sweep();
                }
            })
        };
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (store, admitted) = (store.clone(), admitted.clone());
                thread::spawn(move || {
                    for _ in 0..(limit / 4 + 50) {
                        if store.hit(b"hot", 1).allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        sweeper.join().unwrap();
        assert_eq!(admitted.load(Ordering::Relaxed), limit, "round {round}");
        let stats = store.stats();
        let allowed: u64 = stats.shards.iter().map(|s| s.allowed).sum();
        assert_eq!(allowed, limit);
    }
}

#[test]
fn fixed_window_is_exact_under_threads() {
    let rates = [Rate::new(500, 60 * SECOND).unwrap()];
    exactly_limit_under_threads::<AtomicCell<FixedWindow>>(&rates, 500);
    exactly_limit_under_threads::<LockedCell<FixedWindow>>(&rates, 500);
}

#[test]
fn token_bucket_is_exact_under_threads() {
    let rates = [Rate::new(500, 60 * SECOND).unwrap()];
    exactly_limit_under_threads::<AtomicCell<TokenBucket>>(&rates, 500);
    exactly_limit_under_threads::<LockedCell<TokenBucket>>(&rates, 500);
}

#[test]
fn sliding_log_is_exact_under_threads() {
    let rates = [Rate::new(500, 60 * SECOND).unwrap()];
    exactly_limit_under_threads::<LockedCell<SlidingWindowLog>>(&rates, 500);
}

#[test]
fn sliding_counter_is_exact_under_threads() {
    let rates = [Rate::new(500, 60 * SECOND).unwrap()];
    exactly_limit_under_threads::<LockedCell<SlidingWindowCounter>>(&rates, 500);
}

#[test]
fn several_rates_are_exact_under_threads() {
    // The tighter rate decides; the other must have consumed exactly as much.
    let rates = [
        Rate::new(1_000, 60 * SECOND).unwrap(),
        Rate::new(300, SECOND).unwrap(),
    ];
    exactly_limit_under_threads::<LockedCell<FixedWindow>>(&rates, 300);
    exactly_limit_under_threads::<LockedCell<SlidingWindowLog>>(&rates, 300);
    exactly_limit_under_threads::<LockedCell<TokenBucket>>(&rates, 300);
    exactly_limit_under_threads::<LockedCell<SlidingWindowCounter>>(&rates, 300);
}

#[test]
fn several_rates_are_all_or_nothing() {
    let (time, clock) = manual(0);
    let rates = [
        Rate::new(3, SECOND).unwrap(),
        Rate::new(5, 10 * SECOND).unwrap(),
    ];
    let store = Store::<LockedCell<SlidingWindowLog>>::new(&rates, 1, 10, clock).unwrap();
    for _ in 0..3 {
        assert!(store.hit(b"k", 1).allowed);
    }
    let denied = store.hit(b"k", 1);
    assert!(!denied.allowed);
    assert_eq!(denied.rate, 0);
    time.advance(SECOND);
    // The long rate has 2 left: a cost of 3 passes the short rate but not the long
    // one, and must take nothing from either.
    let big = store.hit(b"k", 3);
    assert!(!big.allowed);
    assert_eq!((big.rate, big.remaining), (1, 2));
    let ok = store.hit(b"k", 2);
    assert!(ok.allowed);
    assert_eq!((ok.rate, ok.remaining), (1, 0));
}

#[test]
fn a_full_store_denies_new_keys_and_serves_old_ones() {
    let (time, clock) = manual(0);
    let rates = [Rate::new(2, SECOND).unwrap()];
    let store = Store::<AtomicCell<FixedWindow>>::new(&rates, 4, 3, clock).unwrap();
    for key in [b"a", b"b", b"c"] {
        assert!(store.hit(key, 1).allowed);
    }
    let refused = store.hit(b"d", 1);
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Some(SECOND));
    assert_eq!(store.len(), 3);
    assert!(store.hit(b"a", 1).allowed);
    assert_eq!(
        store
            .stats()
            .shards
            .iter()
            .map(|s| s.rejected_full)
            .sum::<u64>(),
        1
    );
    time.advance(SECOND);
    assert_eq!(store.sweep(), 3);
    assert!(store.hit(b"d", 1).allowed);
    assert_eq!(store.len(), 1);
}

#[test]
fn sweep_removes_exactly_the_idle_keys() {
    let (time, clock) = manual(0);
    let rates = [Rate::new(5, 10 * SECOND).unwrap()];
    let store = Store::<LockedCell<SlidingWindowLog>>::new(&rates, 8, 100, clock).unwrap();
    for i in 0..20u32 {
        store.hit(&i.to_le_bytes(), 1);
        time.advance(SECOND / 2);
    }
    // Now at 10s: the hits at 0s and 0.5s... up to 0s have expired (t + 10s <= now).
    assert_eq!(store.sweep(), 1);
    time.advance(SECOND / 2 - 1);
    assert_eq!(store.sweep(), 0);
    time.advance(1);
    assert_eq!(store.sweep(), 1);
    assert_eq!(store.len(), 18);
    time.advance(10 * SECOND);
    assert_eq!(store.sweep(), 18);
    assert!(store.is_empty());
}

#[test]
fn denied_hits_on_new_keys_store_nothing() {
    let (_, clock) = manual(0);
    let rates = [Rate::new(2, SECOND).unwrap()];
    let store = Store::<AtomicCell<TokenBucket>>::new(&rates, 1, 10, clock).unwrap();
    let d = store.hit(b"k", 3);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, None);
    assert!(store.is_empty());
    assert!(store.peek(b"k").allowed);
    assert!(store.is_empty());
}
