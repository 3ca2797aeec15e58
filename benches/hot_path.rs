//! A fixed number of hits on the store, for counting instructions under callgrind.
//!
//! `benches/contention_cost.sh` builds this with and without the `contention`
//! feature and reports instructions per hit for each: a measure that, unlike wall
//! time, does not move with whatever else the machine is doing.
//!
//! Usage: `hot_path <algorithm> <hits>`; the algorithm is one of fixed_window,
//! sliding_window, sliding_window_counter, token_bucket.

use std::hint::black_box;

use _core::algorithm::{FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket};
use _core::{AtomicCell, Cell, Clock, LockedCell, Rate, Store};

fn run<C: Cell>(hits: u64) -> u64 {
    let rates = [Rate::new(u32::MAX.into(), 3_600_000_000_000).unwrap_or_else(|e| panic!("{e}"))];
    let store =
        Store::<C>::new(&rates, 64, 1_000, Clock::monotonic()).unwrap_or_else(|e| panic!("{e}"));
    let mut allowed = 0;
    for _ in 0..hits {
        allowed += u64::from(black_box(store.hit(black_box(b"user:42"), 1)).allowed);
    }
    allowed
}

fn main() {
    let mut args = std::env::args().skip(1);
    let algorithm = args.next().unwrap_or_else(|| "fixed_window".to_owned());
    let hits = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let allowed = match algorithm.as_str() {
        "fixed_window" => run::<AtomicCell<FixedWindow>>(hits),
        "sliding_window" => run::<LockedCell<SlidingWindowLog>>(hits),
        "sliding_window_counter" => run::<LockedCell<SlidingWindowCounter>>(hits),
        "token_bucket" => run::<AtomicCell<TokenBucket>>(hits),
        other => panic!("unknown algorithm {other:?}"),
    };
    println!("{algorithm}: {allowed} of {hits} hits allowed");
}
