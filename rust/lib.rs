//! The core of shardlimit: a sharded in-memory store and four rate-limiting algorithms.
//!
//! Everything here except [`binding`] is plain Rust: the store and the algorithms take
//! keys, numbers and a [`Clock`], and return values, so `cargo test` and the criterion
//! benches run without a Python interpreter. The `python` feature (turned on by maturin)
//! adds the pyo3 binding that the `shardlimit` package imports as `shardlimit._core`.
//!
//! * [`rate`]: a validated rate (limit per period) and the error type of the core.
//! * [`clock`]: monotonic time in nanoseconds, real or manual.
//! * [`algorithm`]: fixed window, sliding window log, sliding window counter, GCRA.
//! * [`cell`]: the per-key state of a store, lock-free or behind a tiny mutex.
//! * [`store`]: the sharded map from keys to cells, with GC, a key bound and counters.

pub mod algorithm;
pub mod cell;
pub mod clock;
pub mod rate;
pub mod store;

#[cfg(feature = "python")]
mod binding;

pub use algorithm::{Algorithm, Decision, Eval, Nanos};
pub use cell::{AtomicCell, Cell, LockedCell};
pub use clock::{Clock, ManualTime};
pub use rate::{Error, Rate};
pub use store::{ShardStats, Store, StoreStats};

/// The Python module `shardlimit._core`; its name agrees with `[lib] name` in
/// Cargo.toml and `module-name` in pyproject.toml.
#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _core(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    binding::register(m)
}
