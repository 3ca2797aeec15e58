//! The sharded store: keys to [`Cell`]s, split over a fixed number of shards.
//!
//! Each shard is a `hashbrown` table behind its own `parking_lot` [`RwLock`]. A hit on
//! a key that exists takes the shard's read lock and updates the key's cell (with a
//! compare-and-swap, or the cell's own one-byte mutex), so hits on different keys, and
//! on the same key, run in parallel. Only inserting a key, removing one, and the GC
//! take the write lock. `parking_lot` was chosen over `dashmap` because the store
//! needs to see its locks: `try_read` tells the fast path from the contended one,
//! which is where contention is counted, and nothing is counted when there is none.
//!
//! Keys are not stored. The store keeps a 128-bit SipHash-1-3 fingerprint of each key,
//! under a secret key drawn when the store is made: attackers cannot choose keys that
//! collide, and two distinct keys share a fingerprint with probability about
//! `n² / 2¹²⁹` (below 10⁻²⁴ for a billion keys). An entry of a fixed-window or
//! token-bucket store is then 24 bytes, whatever the length of the key.
//!
//! `max_keys` bounds the number of entries. When the store is full, a new key is
//! denied (fail closed: an attacker who floods keys cannot open a hole for a key that
//! is not tracked), while keys already present keep working; the GC frees the entries
//! of keys whose windows have passed, and then new keys are admitted again.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::algorithm::{Decision, Nanos};
use crate::cell::Cell;
use crate::clock::Clock;
use crate::rate::{Error, Rate};

/// The most shards a store may have.
pub const MAX_SHARDS: usize = 1 << 16;

/// A key's fingerprint: its keyed 128-bit hash, as two words.
type Fingerprint = [u64; 2];

struct Entry<C> {
    fingerprint: Fingerprint,
    cell: C,
}

/// Counters of one shard; relaxed atomics, read only for statistics.
#[derive(Default)]
struct Counters {
    allowed: AtomicU64,
    denied: AtomicU64,
    rejected_full: AtomicU64,
    contended: AtomicU64,
    wait_ns: AtomicU64,
}

struct Shard<C> {
    table: RwLock<HashTable<Entry<C>>>,
    counters: Counters,
}

impl<C> Shard<C> {
    /// The read lock; a failed `try_read` is a contended acquisition, timed.
    #[inline]
    fn read(&self) -> RwLockReadGuard<'_, HashTable<Entry<C>>> {
        #[cfg(feature = "contention")]
        {
            if let Some(guard) = self.table.try_read() {
                return guard;
            }
            let start = Instant::now();
            let guard = self.table.read();
            self.count_wait(start);
            guard
        }
        #[cfg(not(feature = "contention"))]
        self.table.read()
    }

    /// The write lock, counted like [`Shard::read`].
    fn write(&self) -> RwLockWriteGuard<'_, HashTable<Entry<C>>> {
        #[cfg(feature = "contention")]
        {
            if let Some(guard) = self.table.try_write() {
                return guard;
            }
            let start = Instant::now();
            let guard = self.table.write();
            self.count_wait(start);
            guard
        }
        #[cfg(not(feature = "contention"))]
        self.table.write()
    }

    #[cfg(feature = "contention")]
    #[cold]
    fn count_wait(&self, start: Instant) {
        let waited = start.elapsed().as_nanos() as u64;
        self.counters.contended.fetch_add(1, Ordering::Relaxed);
        self.counters.wait_ns.fetch_add(waited, Ordering::Relaxed);
    }

    #[inline]
    fn record(&self, decision: &Decision) {
        let counter = if decision.allowed {
            &self.counters.allowed
        } else {
            &self.counters.denied
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Figures of one shard, as [`Store::stats`] reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Keys held.
    pub keys: usize,
    /// Memory estimated from the layout: the table's slots and control bytes plus
    /// what the cells own on the heap.
    pub bytes: usize,
    /// Hits allowed.
    pub allowed: u64,
    /// Hits denied (including new keys refused because the store was full).
    pub denied: u64,
    /// New keys refused because the store was full.
    pub rejected_full: u64,
    /// Lock acquisitions that found the lock held.
    pub contended: u64,
    /// Total nanoseconds spent waiting in those acquisitions.
    pub wait_ns: u64,
}

/// Figures of a whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardStats>,
    /// Sweeps run.
    pub gc_runs: u64,
    /// Entries the sweeps removed.
    pub gc_removed: u64,
    /// How long the last sweep took, in nanoseconds.
    pub last_sweep_ns: u64,
}

/// The number of slots behind a hashbrown table of `capacity` (7/8 of the slots,
/// or one less than them below eight).
fn buckets(capacity: usize) -> usize {
    match capacity {
        0 => 0,
        1..8 => capacity + 1,
        _ => capacity / 7 * 8,
    }
}

/// A sharded map from keys to cells of type `C`, for one list of rates.
pub struct Store<C> {
    shards: Box<[CachePadded<Shard<C>>]>,
    seeds: (u64, u64),
    rates: Box<[Rate]>,
    clock: Clock,
    max_keys: usize,
    len: AtomicUsize,
    gc_runs: AtomicU64,
    gc_removed: AtomicU64,
    last_sweep_ns: AtomicU64,
}

impl<C: Cell> Store<C> {
    /// A store of `shards` shards holding at most `max_keys` keys for `rates`.
    pub fn new(
        rates: &[Rate],
        shards: usize,
        max_keys: usize,
        clock: Clock,
    ) -> Result<Self, Error> {
        if rates.is_empty() {
            return Err(Error::NoRates);
        }
        if shards == 0 || shards > MAX_SHARDS {
            return Err(Error::Shards(shards));
        }
        if max_keys == 0 {
            return Err(Error::MaxKeys(max_keys));
        }
        let shards = (0..shards)
            .map(|_| {
                CachePadded::new(Shard {
                    table: RwLock::new(HashTable::new()),
                    counters: Counters::default(),
                })
            })
            .collect();
        // Two secret words from the standard library's randomly keyed SipHash.
        let seeds = (
            RandomState::new().hash_one(1u64),
            RandomState::new().hash_one(2u64),
        );
        Ok(Store {
            shards,
            seeds,
            rates: rates.into(),
            clock,
            max_keys,
            len: AtomicUsize::new(0),
            gc_runs: AtomicU64::new(0),
            gc_removed: AtomicU64::new(0),
            last_sweep_ns: AtomicU64::new(0),
        })
    }

    /// The rates every key is limited by.
    pub fn rates(&self) -> &[Rate] {
        &self.rates
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The most keys the store holds.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    #[inline]
    fn fingerprint(&self, key: &[u8]) -> Fingerprint {
        let mut hasher = SipHasher13::new_with_keys(self.seeds.0, self.seeds.1);
        hasher.write(key);
        let hash = hasher.finish128();
        [hash.h1, hash.h2]
    }

    #[inline]
    fn shard_of(&self, fingerprint: &Fingerprint) -> &Shard<C> {
        let index = (u128::from(fingerprint[1]) * self.shards.len() as u128) >> 64;
        &self.shards[index as usize]
    }

    /// Takes a hit of `cost` (at least 1) on `key` if every rate allows it.
    ///
    /// A denied hit consumes nothing; a cost above a rate's limit is denied with no
    /// `retry_after`. A new key on a full store is denied too (see the module docs).
    #[inline]
    pub fn hit(&self, key: &[u8], cost: u64) -> Decision {
        let fingerprint = self.fingerprint(key);
        let shard = self.shard_of(&fingerprint);
        let decision = {
            let table = shard.read();
            table
                .find(fingerprint[0], |e| e.fingerprint == fingerprint)
                .map(|entry| entry.cell.hit(&self.rates, &self.clock, cost))
        };
        let decision = decision.unwrap_or_else(|| self.insert_and_hit(shard, fingerprint, cost));
        shard.record(&decision);
        decision
    }

    #[cold]
    fn insert_and_hit(&self, shard: &Shard<C>, fingerprint: Fingerprint, cost: u64) -> Decision {
        let mut table = shard.write();
        if let Some(entry) = table.find(fingerprint[0], |e| e.fingerprint == fingerprint) {
            return entry.cell.hit(&self.rates, &self.clock, cost);
        }
        let cell = C::fresh(&self.rates);
        let decision = cell.hit(&self.rates, &self.clock, cost);
        if !decision.allowed {
            // A denied hit on a new key changes nothing, so nothing is stored.
            return decision;
        }
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.max_keys {
            self.len.fetch_sub(1, Ordering::Relaxed);
            shard.counters.rejected_full.fetch_add(1, Ordering::Relaxed);
            return self.full_decision();
        }
        table.insert_unique(fingerprint[0], Entry { fingerprint, cell }, |e| {
            e.fingerprint[0]
        });
        decision
    }

    /// The answer to a new key when the store is full: denied, nothing left, and
    /// `retry_after` of the shortest period, after which the GC can have freed room.
    fn full_decision(&self) -> Decision {
        let (index, rate) = self
            .rates
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| r.period())
            .unwrap_or((0, &self.rates[0]));
        Decision {
            allowed: false,
            rate: index,
            limit: rate.limit(),
            remaining: 0,
            reset_after: 0,
            retry_after: Some(rate.period()),
        }
    }

    /// Says what a cost-1 hit on `key` would get now, consuming nothing and storing
    /// nothing.
    pub fn peek(&self, key: &[u8]) -> Decision {
        let fingerprint = self.fingerprint(key);
        let shard = self.shard_of(&fingerprint);
        let table = shard.read();
        let now = self.clock.now();
        match table.find(fingerprint[0], |e| e.fingerprint == fingerprint) {
            Some(entry) => entry.cell.peek(&self.rates, now),
            None => C::fresh(&self.rates).peek(&self.rates, now),
        }
    }

    /// Forgets `key`; returns whether it was held.
    pub fn reset(&self, key: &[u8]) -> bool {
        let fingerprint = self.fingerprint(key);
        let shard = self.shard_of(&fingerprint);
        let mut table = shard.write();
        match table.find_entry(fingerprint[0], |e| e.fingerprint == fingerprint) {
            Ok(entry) => {
                entry.remove();
                self.len.fetch_sub(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every entry that behaves exactly as a fresh key would, one shard at a
    /// time (each under its write lock, briefly), and returns how many it removed.
    pub fn sweep(&self) -> usize {
        let start = Instant::now();
        let mut removed = 0;
        for shard in self.shards.iter() {
            removed += self.sweep_shard(shard);
        }
        self.gc_runs.fetch_add(1, Ordering::Relaxed);
        self.gc_removed.fetch_add(removed as u64, Ordering::Relaxed);
        self.last_sweep_ns
            .store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        removed
    }

    fn sweep_shard(&self, shard: &Shard<C>) -> usize {
        let mut table = shard.write();
        let now = self.clock.now();
        let before = table.len();
        table.retain(|entry| !entry.cell.is_idle(&self.rates, now));
        let removed = before - table.len();
        self.len.fetch_sub(removed, Ordering::Relaxed);
        // Give memory back once the table is mostly empty.
        if table.capacity() > 64 && table.len() * 4 < table.capacity() {
            table.shrink_to_fit(|e| e.fingerprint[0]);
        }
        removed
    }

    /// Counters and memory of every shard, and of the GC.
    pub fn stats(&self) -> StoreStats {
        let shards = self
            .shards
            .iter()
            .map(|shard| Self::shard_stats(shard))
            .collect();
        StoreStats {
            shards,
            gc_runs: self.gc_runs.load(Ordering::Relaxed),
            gc_removed: self.gc_removed.load(Ordering::Relaxed),
            last_sweep_ns: self.last_sweep_ns.load(Ordering::Relaxed),
        }
    }

    fn shard_stats(shard: &Shard<C>) -> ShardStats {
        let table = shard.read();
        // hashbrown keeps one control byte per slot plus one group of spares.
        let slots = buckets(table.capacity());
        let layout = slots * (std::mem::size_of::<Entry<C>>() + 1) + if slots > 0 { 16 } else { 0 };
        let heap: usize = table.iter().map(|e| e.cell.heap_bytes()).sum();
        let c = &shard.counters;
        ShardStats {
            keys: table.len(),
            bytes: layout + heap,
            allowed: c.allowed.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            rejected_full: c.rejected_full.load(Ordering::Relaxed),
            contended: c.contended.load(Ordering::Relaxed),
            wait_ns: c.wait_ns.load(Ordering::Relaxed),
        }
    }

    /// The size of one entry of this store's table, in bytes.
    pub fn entry_size() -> usize {
        std::mem::size_of::<Entry<C>>()
    }

    /// The current time on the store's clock.
    pub fn now(&self) -> Nanos {
        self.clock.now()
    }
}
