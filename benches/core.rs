//! Criterion benchmarks of the core, without Python: one hit on a hot key (allowed
//! and denied), and hits over 100k keys round robin, for each algorithm.
//!
//! `make bench` runs them twice, with and without the `contention` feature, to show
//! what counting contended lock acquisitions costs on the hot path.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use _core::algorithm::{FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket};
use _core::{AtomicCell, Cell, Clock, LockedCell, Rate, Store};

const HOUR: u64 = 3_600 * 1_000_000_000;

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("user:{i}").into_bytes()).collect()
}

fn bench_algorithm<C: Cell>(c: &mut Criterion, name: &str) {
    let roomy = [Rate::new(u32::MAX.into(), HOUR).unwrap_or_else(|e| panic!("{e}"))];
    let store = Store::<C>::new(&roomy, 64, 1_000_000, Clock::monotonic())
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function(&format!("{name}/hot_key_allowed"), |b| {
        b.iter(|| black_box(store.hit(black_box(b"user:42"), 1)))
    });

    let tight = [Rate::new(1, HOUR).unwrap_or_else(|e| panic!("{e}"))];
    let store = Store::<C>::new(&tight, 64, 1_000_000, Clock::monotonic())
        .unwrap_or_else(|e| panic!("{e}"));
    store.hit(b"user:42", 1);
    c.bench_function(&format!("{name}/hot_key_denied"), |b| {
        b.iter(|| black_box(store.hit(black_box(b"user:42"), 1)))
    });

    let many = keys(100_000);
    let store = Store::<C>::new(&roomy, 64, 1_000_000, Clock::monotonic())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut i = 0;
    c.bench_function(&format!("{name}/100k_keys_round_robin"), |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            black_box(store.hit(&many[i], 1))
        })
    });
}

fn benches(c: &mut Criterion) {
    bench_algorithm::<AtomicCell<FixedWindow>>(c, "fixed_window");
    bench_algorithm::<LockedCell<SlidingWindowLog>>(c, "sliding_window");
    bench_algorithm::<LockedCell<SlidingWindowCounter>>(c, "sliding_window_counter");
    bench_algorithm::<AtomicCell<TokenBucket>>(c, "token_bucket");
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(core);
