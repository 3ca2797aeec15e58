//! The Python binding: the only module that uses pyo3.
//!
//! It exposes three classes to `shardlimit._core`: `ManualClock`, `Decision` and
//! `MemoryStore` (one store, one algorithm, one list of rates). Errors of the core
//! become Python exceptions here, in one place ([`to_py_err`]), and every entry point
//! runs under [`guarded`], so a panic in Rust surfaces as a `ShardLimitError` instead of
//! tearing down the interpreter.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::algorithm::{
    Decision as CoreDecision, FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
};
use crate::cell::{AtomicCell, LockedCell};
use crate::clock::{Clock, ManualTime};
use crate::rate::{Error, Rate};
use crate::store::{Store, StoreStats};

pyo3::import_exception!(shardlimit.errors, ConfigError);
pyo3::import_exception!(shardlimit.errors, ShardLimitError);

const NS_PER_S: f64 = 1e9;

/// Maps an error of the core to the Python exception the contract names.
fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::ClockBackwards { .. } | Error::ClockRange(_) => {
            PyValueError::new_err(error.to_string())
        }
        _ => ConfigError::new_err(error.to_string()),
    }
}

/// Runs `f`, turning a panic into a `ShardLimitError` that names it.
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(ShardLimitError::new_err(format!(
            "internal error in the shardlimit core (a Rust panic): {message}"
        )))
    })
}

/// Seconds (a Python float) to whole nanoseconds, refusing what is not a time.
fn seconds_to_ns(name: &str, seconds: f64) -> PyResult<u64> {
    if !seconds.is_finite() || seconds < 0.0 || seconds * NS_PER_S >= u64::MAX as f64 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, got {seconds}"
        )));
    }
    Ok((seconds * NS_PER_S).round() as u64)
}

/// A clock for tests: it reads the time it is set to and moves only when told to.
#[pyclass(module = "shardlimit._core", frozen)]
pub struct ManualClock {
    time: Arc<ManualTime>,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start = 0.0))]
    fn new(start: f64) -> PyResult<Self> {
        let start = seconds_to_ns("start", start)?;
        Ok(ManualClock {
            time: Arc::new(ManualTime::new(start).map_err(to_py_err)?),
        })
    }

    /// Move the clock forward by `seconds` (>= 0).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        self.time.advance(seconds_to_ns("seconds", seconds)?);
        Ok(())
    }

    /// Set the clock to `seconds`; it never goes backwards.
    fn set(&self, seconds: f64) -> PyResult<()> {
        self.time
            .set(seconds_to_ns("seconds", seconds)?)
            .map_err(to_py_err)
    }

    /// The time now, in seconds.
    fn now(&self) -> f64 {
        self.time.now() as f64 / NS_PER_S
    }

    /// The time now, in whole nanoseconds.
    fn now_ns(&self) -> u64 {
        self.time.now()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.now())
    }
}

/// The answer of a limiter for one key.
#[pyclass(module = "shardlimit._core", frozen)]
pub struct Decision {
    #[pyo3(get)]
    allowed: bool,
    #[pyo3(get)]
    limit: u64,
    #[pyo3(get)]
    remaining: u64,
    #[pyo3(get)]
    reset_after: f64,
    #[pyo3(get)]
    retry_after: f64,
    #[pyo3(get)]
    rate: Py<PyAny>,
}

#[pymethods]
impl Decision {
    #[new]
    #[pyo3(signature = (*, allowed, limit, remaining, reset_after, retry_after, rate))]
    fn new(
        allowed: bool,
        limit: u64,
        remaining: u64,
        reset_after: f64,
        retry_after: f64,
        rate: Py<PyAny>,
    ) -> Self {
        Decision {
            allowed,
            limit,
            remaining,
            reset_after,
            retry_after,
            rate,
        }
    }

    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Decision>() else {
            return Ok(false);
        };
        let other = other.get();
        Ok(self.allowed == other.allowed
            && self.limit == other.limit
            && self.remaining == other.remaining
            && self.reset_after == other.reset_after
            && self.retry_after == other.retry_after
            && self.rate.bind(py).eq(other.rate.bind(py))?)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(allowed={}, limit={}, remaining={}, reset_after={}, retry_after={}, rate={})",
            if self.allowed { "True" } else { "False" },
            self.limit,
            self.remaining,
            float_repr(self.reset_after),
            float_repr(self.retry_after),
            self.rate.bind(py).repr()?,
        ))
    }
}

fn float_repr(value: f64) -> String {
    if value.is_infinite() {
        "inf".to_owned()
    } else {
        format!("{value:?}")
    }
}

/// One concrete store per algorithm and cell kind; `dispatch!` picks the arm.
enum AnyStore {
    FixedAtomic(Store<AtomicCell<FixedWindow>>),
    FixedLocked(Store<LockedCell<FixedWindow>>),
    BucketAtomic(Store<AtomicCell<TokenBucket>>),
    BucketLocked(Store<LockedCell<TokenBucket>>),
    Log(Store<LockedCell<SlidingWindowLog>>),
    Counter(Store<LockedCell<SlidingWindowCounter>>),
}

macro_rules! dispatch {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            AnyStore::FixedAtomic($s) => $body,
            AnyStore::FixedLocked($s) => $body,
            AnyStore::BucketAtomic($s) => $body,
            AnyStore::BucketLocked($s) => $body,
            AnyStore::Log($s) => $body,
            AnyStore::Counter($s) => $body,
        }
    };
}

impl AnyStore {
    fn new(
        algorithm: &str,
        rates: &[Rate],
        shards: usize,
        max_keys: usize,
        clock: Clock,
    ) -> Result<AnyStore, PyErr> {
        let single = rates.len() == 1;
        let store = match algorithm {
            "fixed_window" if single => AnyStore::FixedAtomic(
                Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?,
            ),
            "fixed_window" => AnyStore::FixedLocked(
                Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?,
            ),
            "token_bucket" if single => AnyStore::BucketAtomic(
                Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?,
            ),
            "token_bucket" => AnyStore::BucketLocked(
                Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?,
            ),
            "sliding_window" => {
                AnyStore::Log(Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?)
            }
            "sliding_window_counter" => {
                AnyStore::Counter(Store::new(rates, shards, max_keys, clock).map_err(to_py_err)?)
            }
            other => {
                return Err(ConfigError::new_err(format!(
                    "algorithm must be one of fixed_window, sliding_window, \
                     sliding_window_counter, token_bucket; got {other:?}"
                )));
            }
        };
        Ok(store)
    }
}

/// The sharded in-memory store for one algorithm and one list of rates.
#[pyclass(module = "shardlimit._core", frozen)]
pub struct MemoryStore {
    store: AnyStore,
    rate_objects: Vec<Py<PyAny>>,
    algorithm: String,
}

/// The UTF-8 bytes of a `str` key; a key with lone surrogates is encoded with
/// `surrogatepass`, so every distinct `str` is a distinct key.
fn key_bytes<'a, 'py>(key: &'a Bound<'py, PyAny>) -> PyResult<KeyBytes<'a, 'py>> {
    let Ok(text) = key.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "key must be str, got {}",
            key.get_type().name()?
        )));
    };
    match text.to_str() {
        Ok(s) => Ok(KeyBytes::Str(s)),
        Err(_) => {
            let encoded = text.call_method1("encode", ("utf-8", "surrogatepass"))?;
            Ok(KeyBytes::Owned(encoded.cast_into::<PyBytes>()?))
        }
    }
}

enum KeyBytes<'a, 'py> {
    Str(&'a str),
    Owned(Bound<'py, PyBytes>),
}

impl KeyBytes<'_, '_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Str(s) => s.as_bytes(),
            KeyBytes::Owned(b) => b.as_bytes(),
        }
    }
}

/// A cost argument: an `int` of at least 1. Costs beyond 64 bits saturate (they are
/// denied anyway, being above every limit).
fn cost_value(cost: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(cost) = cost else { return Ok(1) };
    if cost.is_instance_of::<pyo3::types::PyBool>() || !cost.is_instance_of::<pyo3::types::PyInt>()
    {
        return Err(PyTypeError::new_err(format!(
            "cost must be an int, got {}",
            cost.repr()?
        )));
    }
    let value = match cost.extract::<i64>() {
        Ok(v) => i128::from(v),
        Err(_) if cost.gt(0)? => i128::from(u64::MAX),
        Err(_) => -1,
    };
    if value < 1 {
        return Err(PyValueError::new_err(format!(
            "cost must be >= 1, got {}",
            cost.repr()?
        )));
    }
    Ok(value as u64)
}

impl MemoryStore {
    fn to_python(&self, py: Python<'_>, d: CoreDecision) -> Decision {
        Decision {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            reset_after: d.reset_after as f64 / NS_PER_S,
            retry_after: d
                .retry_after
                .map_or(f64::INFINITY, |ns| ns as f64 / NS_PER_S),
            rate: self.rate_objects[d.rate].clone_ref(py),
        }
    }
}

#[pymethods]
impl MemoryStore {
    /// `rates` pairs each Python `Rate` object with its limit and period in ns.
    #[new]
    #[pyo3(signature = (rates, *, algorithm, shards, max_keys, clock = None))]
    fn new(
        rates: Vec<(Py<PyAny>, u64, u64)>,
        algorithm: &str,
        shards: usize,
        max_keys: usize,
        clock: Option<&ManualClock>,
    ) -> PyResult<Self> {
        guarded(|| {
            let core_rates = rates
                .iter()
                .map(|(_, limit, period)| Rate::new(*limit, *period))
                .collect::<Result<Vec<_>, _>>()
                .map_err(to_py_err)?;
            let clock = clock.map_or_else(Clock::monotonic, |c| Clock::Manual(c.time.clone()));
            let store = AnyStore::new(algorithm, &core_rates, shards, max_keys, clock)?;
            Ok(MemoryStore {
                store,
                rate_objects: rates.into_iter().map(|(obj, _, _)| obj).collect(),
                algorithm: algorithm.to_owned(),
            })
        })
    }

    /// Take a hit of `cost` on `key` if every rate allows it.
    #[pyo3(signature = (key, cost = None))]
    fn hit(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Decision> {
        guarded(|| {
            let key = key_bytes(key)?;
            let cost = cost_value(cost)?;
            let d = dispatch!(&self.store, s => s.hit(key.as_bytes(), cost));
            Ok(self.to_python(py, d))
        })
    }

    /// What a cost-1 hit on `key` would get now; consumes nothing.
    fn peek(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Decision> {
        guarded(|| {
            let key = key_bytes(key)?;
            let d = dispatch!(&self.store, s => s.peek(key.as_bytes()));
            Ok(self.to_python(py, d))
        })
    }

    /// Forget `key`; returns whether it was held.
    fn reset(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        guarded(|| {
            let key = key_bytes(key)?;
            Ok(dispatch!(&self.store, s => s.reset(key.as_bytes())))
        })
    }

    /// Remove entries that behave as fresh keys; runs without the GIL.
    fn sweep(&self, py: Python<'_>) -> PyResult<usize> {
        guarded(|| Ok(py.detach(|| dispatch!(&self.store, s => s.sweep()))))
    }

    /// The store's counters as a dict (see `Limiter.stats` for the shape).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let stats = py.detach(|| dispatch!(&self.store, s => s.stats()));
            let (keys, max_keys) = dispatch!(&self.store, s => (s.len(), s.max_keys()));
            stats_dict(py, &stats, keys, max_keys)
        })
    }

    /// The algorithm's name.
    #[getter]
    fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// Size in bytes of one entry of the store's tables (the fingerprint and the cell).
    #[getter]
    fn entry_size(&self) -> usize {
        match &self.store {
            AnyStore::FixedAtomic(_) => Store::<AtomicCell<FixedWindow>>::entry_size(),
            AnyStore::FixedLocked(_) => Store::<LockedCell<FixedWindow>>::entry_size(),
            AnyStore::BucketAtomic(_) => Store::<AtomicCell<TokenBucket>>::entry_size(),
            AnyStore::BucketLocked(_) => Store::<LockedCell<TokenBucket>>::entry_size(),
            AnyStore::Log(_) => Store::<LockedCell<SlidingWindowLog>>::entry_size(),
            AnyStore::Counter(_) => Store::<LockedCell<SlidingWindowCounter>>::entry_size(),
        }
    }

    fn __len__(&self) -> usize {
        dispatch!(&self.store, s => s.len())
    }
}

fn stats_dict<'py>(
    py: Python<'py>,
    stats: &StoreStats,
    keys: usize,
    max_keys: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let per_shard = PyList::empty(py);
    let (mut allowed, mut denied, mut rejected, mut contended, mut wait_ns, mut bytes) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0usize);
    for (index, shard) in stats.shards.iter().enumerate() {
        let d = PyDict::new(py);
        d.set_item("shard", index)?;
        d.set_item("keys", shard.keys)?;
        d.set_item("bytes", shard.bytes)?;
        d.set_item("allowed", shard.allowed)?;
        d.set_item("denied", shard.denied)?;
        d.set_item("contended", shard.contended)?;
        d.set_item("wait_seconds", shard.wait_ns as f64 / NS_PER_S)?;
        per_shard.append(d)?;
        allowed += shard.allowed;
        denied += shard.denied;
        rejected += shard.rejected_full;
        contended += shard.contended;
        wait_ns += shard.wait_ns;
        bytes += shard.bytes;
    }
    let d = PyDict::new(py);
    d.set_item("keys", keys)?;
    d.set_item("max_keys", max_keys)?;
    d.set_item("shards", stats.shards.len())?;
    d.set_item("hits", allowed + denied)?;
    d.set_item("allowed", allowed)?;
    d.set_item("denied", denied)?;
    d.set_item("rejected_full", rejected)?;
    d.set_item("gc_runs", stats.gc_runs)?;
    d.set_item("gc_removed", stats.gc_removed)?;
    d.set_item("last_sweep_seconds", stats.last_sweep_ns as f64 / NS_PER_S)?;
    d.set_item("contended", contended)?;
    d.set_item("wait_seconds", wait_ns as f64 / NS_PER_S)?;
    d.set_item("memory_bytes", bytes)?;
    d.set_item("per_shard", per_shard)?;
    Ok(d)
}

/// Panics on purpose, so the tests can prove a panic becomes a Python exception.
#[pyfunction]
fn _panic(message: &str) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

/// Registers the classes of `shardlimit._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ManualClock>()?;
    m.add_class::<Decision>()?;
    m.add_class::<MemoryStore>()?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    m.add("MAX_SHARDS", crate::store::MAX_SHARDS)?;
    m.add("MAX_LIMIT", crate::rate::MAX_LIMIT)?;
    Ok(())
}
