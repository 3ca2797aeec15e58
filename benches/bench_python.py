"""Time ``hit()`` of shardlimit beside limits, throttled-py and pyrate-limiter.

Every library runs in this one process with its in-memory backend, on the same
machine at the same time, so the ratios mean something even where the absolute
figures drift. Scenarios:

1. one hot key, every hit allowed;
2. one hot key, every hit denied (limit 1 per hour, hit once first);
3. 100,000 keys round robin, limit never reached;
4. the sliding log of one hot key under a 10,000,000 limit, timed in batches of
   100,000 hits as the log grows;
5. bytes per key after 1,000,000 distinct keys, each library in a fresh
   subprocess (RSS growth from ``/proc/self/statm``).

Figures are nanoseconds per hit, the median of several repeats, each including
the Python loop and the call (the loop alone is printed as a reference). The
script prints a markdown table and writes it to ``benches/results/python.md``.
It asserts nothing about speed.

Usage: ``.venv/bin/python benches/bench_python.py [--repeats N]
[--memory fixed|all|none]``
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import limits
import pyrate_limiter
import throttled
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from pyrate_limiter import (
    AbstractBucket,
    BucketFactory,
    Duration,
    FixedWindow,
    InMemoryBucket,
    MonotonicClock,
    Rate,
    RateItem,
    StateBucket,
    TokenBucket,
)

from shardlimit import Limiter

perf_counter_ns = time.perf_counter_ns

NEVER = 1_000_000_000  # a limit no scenario reaches
HOT_KEY = "user:42"
HOT_HITS = 50_000  # per repeat of scenarios 1 and 2
WARMUP_HITS = 2_000
ROUND_ROBIN_KEYS = 100_000
LOG_LIMIT = 10_000_000
LOG_BATCH = 100_000
LOG_CAP = 1_000_000  # hits per library in scenario 4
LOG_CAPS = {"limits": 200_000}  # its log is a list shifted on every hit
LOG_BUDGET_NS = 20_000_000_000  # a library's scenario 4 stops past this, cap or not
MEMORY_KEYS = 1_000_000
THROTTLED_CAPACITY = 2_000_000  # MemoryStore MAX_SIZE; its default of 1024 keys evicts
RESULTS = Path(__file__).resolve().parent / "results" / "python.md"

FIXED = "fixed window"
LOG = "sliding log"
COUNTER = "sliding counter"
GCRA = "token bucket (GCRA)"


class Adapter(Protocol):
    """One configured limiter of one library, behind the same few calls."""

    def hot(self, key: str, n: int) -> int:
        """Hit ``key`` ``n`` times; return the nanoseconds taken."""
        ...

    def sweep(self, keys: list[str]) -> int:
        """Hit every key once, in order; return the nanoseconds taken."""
        ...

    def allowed(self, key: str) -> bool:
        """Hit ``key`` once and say whether it was admitted."""
        ...

    def held(self) -> int:
        """Return how many keys the store holds."""
        ...

    def settle(self) -> None:
        """Wait until no background work of this library is left running."""
        ...

    def close(self) -> None:
        """Release the limiter and whatever it holds."""
        ...


class ShardlimitAdapter:
    """``shardlimit.Limiter`` with the memory store and no GC thread."""

    def __init__(self, algorithm: str, limit: int) -> None:
        self.limiter = Limiter(
            f"{limit}/hour",
            algorithm=algorithm,
            gc_interval=None,
            max_keys=2 * MEMORY_KEYS,
        )

    def hot(self, key: str, n: int) -> int:
        hit = self.limiter.hit
        rng = range(n)
        start = perf_counter_ns()
        for _ in rng:
            hit(key)
        return perf_counter_ns() - start

    def sweep(self, keys: list[str]) -> int:
        hit = self.limiter.hit
        start = perf_counter_ns()
        for key in keys:
            hit(key)
        return perf_counter_ns() - start

    def allowed(self, key: str) -> bool:
        return self.limiter.hit(key).allowed

    def held(self) -> int:
        return int(self.limiter.stats()["keys"])

    def store_bytes_per_key(self) -> float:
        stats = self.limiter.stats()
        return int(stats["memory_bytes"]) / int(stats["keys"])

    def settle(self) -> None:
        pass

    def close(self) -> None:
        self.limiter.close()


class LimitsAdapter:
    """A ``limits`` strategy over ``MemoryStorage``."""

    def __init__(self, strategy: type[RateLimiter], limit: int) -> None:
        self.storage = MemoryStorage()
        self.strategy = strategy(self.storage)
        self.item = limits.parse(f"{limit}/hour")

    def hot(self, key: str, n: int) -> int:
        hit, item = self.strategy.hit, self.item
        rng = range(n)
        start = perf_counter_ns()
        for _ in rng:
            hit(item, key)
        return perf_counter_ns() - start

    def sweep(self, keys: list[str]) -> int:
        hit, item = self.strategy.hit, self.item
        start = perf_counter_ns()
        for key in keys:
            hit(item, key)
        return perf_counter_ns() - start

    def allowed(self, key: str) -> bool:
        return self.strategy.hit(self.item, key)

    def held(self) -> int:
        return max(len(self.storage.storage), len(self.storage.events))

    def settle(self) -> None:
        # Its expiry timer fires 10 ms after a hit and walks every key.
        self.storage.timer.join()

    def close(self) -> None:
        # Stop the expiry timer first: reset() under its feet raises KeyError there.
        self.storage.timer.cancel()
        self.storage.timer.join()
        self.storage.reset()


class ThrottledAdapter:
    """``throttled.Throttled`` over a ``MemoryStore`` with room for every key."""

    def __init__(self, using: str, limit: int) -> None:
        self.store = throttled.MemoryStore(options={"MAX_SIZE": THROTTLED_CAPACITY})
        self.throttle = throttled.Throttled(
            using=using, quota=throttled.per_hour(limit), store=self.store
        )

    def hot(self, key: str, n: int) -> int:
        limit = self.throttle.limit
        rng = range(n)
        start = perf_counter_ns()
        for _ in rng:
            limit(key)
        return perf_counter_ns() - start

    def sweep(self, keys: list[str]) -> int:
        limit = self.throttle.limit
        start = perf_counter_ns()
        for key in keys:
            limit(key)
        return perf_counter_ns() - start

    def allowed(self, key: str) -> bool:
        return not self.throttle.limit(key).limited

    def held(self) -> int:
        return len(self.store._backend.get_client())

    def settle(self) -> None:
        pass

    def close(self) -> None:
        self.store._backend.get_client().clear()
        self.store._backend.expire_info.clear()


class PerKeyBuckets(BucketFactory):
    """One bucket per item name, made on first use.

    pyrate-limiter's ``Limiter(rates)`` puts every name into one shared bucket,
    so a per-key limit needs a factory. The buckets are plain objects in a dict,
    not registered with pyrate's background Leaker (like ``gc_interval=None``
    for shardlimit): nothing runs beside the timed loop.
    """

    def __init__(self, make: Callable[[], AbstractBucket]) -> None:
        self.make = make
        self.clock = MonotonicClock()
        self.buckets: dict[str, AbstractBucket] = {}

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> AbstractBucket:
        bucket = self.buckets.get(item.name)
        if bucket is None:
            bucket = self.buckets[item.name] = self.make()
        return bucket

    def owned_buckets(self) -> list[AbstractBucket]:
        return list(self.buckets.values())


class PyrateAdapter:
    """``pyrate_limiter.Limiter`` over a ``PerKeyBuckets`` factory."""

    def __init__(self, kind: str, limit: int) -> None:
        rates = [Rate(limit, Duration.HOUR)]
        makers: dict[str, Callable[[], AbstractBucket]] = {
            "log": lambda: InMemoryBucket(rates),
            "fixed": lambda: InMemoryBucket(rates, algorithm=FixedWindow()),
            "token": lambda: StateBucket(rates, algorithm=TokenBucket()),
        }
        self.factory = PerKeyBuckets(makers[kind])
        self.limiter = pyrate_limiter.Limiter(self.factory)

    def hot(self, key: str, n: int) -> int:
        acquire = self.limiter.try_acquire
        rng = range(n)
        start = perf_counter_ns()
        for _ in rng:
            acquire(key, 1, False)
        return perf_counter_ns() - start

    def sweep(self, keys: list[str]) -> int:
        acquire = self.limiter.try_acquire
        start = perf_counter_ns()
        for key in keys:
            acquire(key, 1, False)
        return perf_counter_ns() - start

    def allowed(self, key: str) -> bool:
        return bool(self.limiter.try_acquire(key, 1, False))

    def held(self) -> int:
        return len(self.factory.buckets)

    def settle(self) -> None:
        pass

    def close(self) -> None:
        self.factory.buckets.clear()


@dataclass(frozen=True)
class Impl:
    """A library with one algorithm, and the family it is compared within."""

    library: str
    algorithm: str
    family: str
    make: Callable[[int], Adapter]

    @property
    def name(self) -> str:
        return f"{self.library}/{self.algorithm}"


def _shardlimit(algorithm: str) -> Callable[[int], Adapter]:
    return lambda limit: ShardlimitAdapter(algorithm, limit)


def _limits(strategy: type[RateLimiter]) -> Callable[[int], Adapter]:
    return lambda limit: LimitsAdapter(strategy, limit)


def _throttled(using: str) -> Callable[[int], Adapter]:
    return lambda limit: ThrottledAdapter(using, limit)


def _pyrate(kind: str) -> Callable[[int], Adapter]:
    return lambda limit: PyrateAdapter(kind, limit)


IMPLS = [
    Impl("shardlimit", "fixed_window", FIXED, _shardlimit("fixed_window")),
    Impl("limits", "FixedWindow", FIXED, _limits(FixedWindowRateLimiter)),
    Impl("throttled-py", "fixed_window", FIXED, _throttled("fixed_window")),
    Impl("pyrate-limiter", "FixedWindow (log)", FIXED, _pyrate("fixed")),
    Impl("shardlimit", "sliding_window", LOG, _shardlimit("sliding_window")),
    Impl("limits", "MovingWindow", LOG, _limits(MovingWindowRateLimiter)),
    Impl("pyrate-limiter", "SlidingWindowLog", LOG, _pyrate("log")),
    Impl(
        "shardlimit",
        "sliding_window_counter",
        COUNTER,
        _shardlimit("sliding_window_counter"),
    ),
    Impl(
        "limits",
        "SlidingWindowCounter",
        COUNTER,
        _limits(SlidingWindowCounterRateLimiter),
    ),
    Impl("throttled-py", "sliding_window", COUNTER, _throttled("sliding_window")),
    Impl("shardlimit", "token_bucket", GCRA, _shardlimit("token_bucket")),
    Impl("throttled-py", "token_bucket", GCRA, _throttled("token_bucket")),
    Impl("pyrate-limiter", "TokenBucket", GCRA, _pyrate("token")),
]
BY_NAME = {impl.name: impl for impl in IMPLS}


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    impl: Impl
    value: float  # ns per hit, or bytes per key
    unit: str
    notes: list[str] = field(default_factory=list)
    vs_limits: str = "—"


def median_ns_per_hit(samples: list[tuple[int, int]]) -> float:
    """Return the median of ``elapsed / hits`` over the repeats."""
    return statistics.median(ns / hits for ns, hits in samples)


def loop_baseline(repeats: int) -> float:
    """Time the bare loop with one builtin call, the floor of every figure."""
    call = len
    rng = range(HOT_HITS)
    samples = []
    for _ in range(repeats):
        start = perf_counter_ns()
        for _ in rng:
            call(HOT_KEY)
        samples.append((perf_counter_ns() - start, HOT_HITS))
    return median_ns_per_hit(samples)


def check_admission(impl: Impl) -> str | None:
    """Hit a fresh key 10 times under 5 per hour; describe any miscount."""
    adapter = impl.make(5)
    try:
        admitted = sum(adapter.allowed("check") for _ in range(10))
    finally:
        adapter.close()
    return None if admitted == 5 else f"admitted {admitted} of 10 under 5/hour"


def hot_once(impl: Impl, limit: int) -> tuple[int, bool]:
    """Time HOT_HITS hits on one key of a fresh limiter; say if the next is allowed.

    Under a limit of 1 the key is hit once first, so every timed hit is denied.
    """
    adapter = impl.make(limit)
    if limit == 1:
        adapter.allowed(HOT_KEY)
    adapter.hot(HOT_KEY, WARMUP_HITS)
    gc.collect()
    elapsed = adapter.hot(HOT_KEY, HOT_HITS)
    allowed = adapter.allowed(HOT_KEY)
    adapter.close()
    return elapsed, allowed


def hot_key(limit: int, repeats: int) -> list[Row]:
    """Scenarios 1 (limit NEVER) and 2 (limit 1), repeats interleaved.

    Each repeat visits every library in turn, so a burst of other work on the
    machine lands on all of them rather than on one.
    """
    samples: dict[str, list[tuple[int, int]]] = {impl.name: [] for impl in IMPLS}
    wrong: set[str] = set()
    for _ in range(repeats):
        for impl in IMPLS:
            elapsed, allowed = hot_once(impl, limit)
            samples[impl.name].append((elapsed, HOT_HITS))
            if allowed != (limit == NEVER):
                wrong.add(impl.name)
    scenario = "1. hot key allowed" if limit == NEVER else "2. hot key denied"
    rows = []
    for impl in IMPLS:
        notes = []
        if impl.name in wrong:
            notes.append("a hit was DENIED" if limit == NEVER else "a hit was ADMITTED")
        is_log = impl.family == LOG or impl.name == "pyrate-limiter/FixedWindow (log)"
        if limit == NEVER and is_log:
            notes.append(f"log grows to {WARMUP_HITS + HOT_HITS:,} in each repeat")
        value = median_ns_per_hit(samples[impl.name])
        rows.append(Row(scenario, impl, value, "ns", notes))
    return rows


def round_robin(repeats: int) -> list[Row]:
    """Scenario 3: insert the keys in every library, then interleaved timed passes.

    Every library's store stays alive through the passes, as in scenarios 1 and
    2 a repeat visits each library in turn.
    """
    keys = [f"user:{i}" for i in range(ROUND_ROBIN_KEYS)]
    adapters = {impl.name: impl.make(NEVER) for impl in IMPLS}
    for adapter in adapters.values():
        adapter.sweep(keys)
        adapter.settle()
    samples: dict[str, list[tuple[int, int]]] = {name: [] for name in adapters}
    for _ in range(repeats):
        for name, adapter in adapters.items():
            gc.collect()
            samples[name].append((adapter.sweep(keys), len(keys)))
            adapter.settle()

    rows = []
    for impl in IMPLS:
        adapter = adapters.pop(impl.name)
        held = adapter.held()
        notes = [] if held == len(keys) else [f"store holds {held:,} keys"]
        if not adapter.allowed(keys[0]):
            notes.append("a hit was DENIED")
        adapter.close()
        scenario = f"3. {len(keys) // 1000}k keys round robin"
        value = median_ns_per_hit(samples[impl.name])
        rows.append(Row(scenario, impl, value, "ns", notes))
    gc.collect()
    return rows


@dataclass
class LogRun:
    """Scenario 4 for one library: ns per hit of each batch, in log order."""

    impl: Impl
    batches: list[float]
    cap: int
    ok: bool


def sliding_log(impl: Impl, cap: int) -> LogRun:
    """Scenario 4: grow one key's log in batches, timing each batch."""
    adapter = impl.make(LOG_LIMIT)
    adapter.hot("warm", WARMUP_HITS)
    gc.collect()
    batches: list[float] = []
    spent = 0
    while len(batches) * LOG_BATCH < cap and spent < LOG_BUDGET_NS:
        elapsed = adapter.hot(HOT_KEY, LOG_BATCH)
        spent += elapsed
        batches.append(elapsed / LOG_BATCH)
    ok = adapter.allowed(HOT_KEY)
    adapter.close()
    return LogRun(impl, batches, cap, ok)


def span(batch: int) -> str:
    """Name the log sizes a batch covers, as ``100k-200k``."""

    def size(n: int) -> str:
        if n == 0:
            return "0"
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"

    return f"{size(batch * LOG_BATCH)}-{size((batch + 1) * LOG_BATCH)}"


def log_rows(runs: list[LogRun]) -> list[Row]:
    """Turn scenario 4 into one row per library, at the largest shared batch."""
    shared = min(len(run.batches) for run in runs) - 1
    rows = []
    for run in runs:
        last = len(run.batches) - 1
        notes = [
            f"at log {span(shared)}; at {span(0)}: {run.batches[0]:,.0f} ns, "
            f"at {span(last)}: {run.batches[-1]:,.0f} ns"
        ]
        if run.cap < LOG_CAP:
            notes.append(f"capped at {run.cap:,} hits")
        if not run.ok:
            notes.append("a hit was DENIED")
        scenario = f"4. sliding log, {LOG_LIMIT // 1_000_000}M limit"
        rows.append(Row(scenario, run.impl, run.batches[shared], "ns", notes))
    return rows


def log_table(runs: list[LogRun]) -> str:
    """Render ns per hit of every batch, one line per library."""
    width = max(len(run.batches) for run in runs)
    heads = [span(i) for i in range(width)]
    lines = [
        "| Library | Algorithm | " + " | ".join(heads) + " |",
        "|---|---|" + "---:|" * width,
    ]
    for run in runs:
        cells = [f"{ns:,.0f}" for ns in run.batches]
        cells += ["capped"] * (width - len(cells))
        lines.append(
            f"| {run.impl.library} | {run.impl.algorithm} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def rss_bytes() -> int:
    """Return the resident set size of this process from /proc/self/statm."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(name: str) -> None:
    """Insert MEMORY_KEYS keys with one library and print the growth as JSON."""
    adapter = BY_NAME[name].make(NEVER)
    adapter.allowed("warm")
    gc.collect()
    before = rss_bytes()
    start = time.perf_counter()
    for i in range(MEMORY_KEYS):
        adapter.allowed(f"user:{i}")
    seconds = time.perf_counter() - start
    gc.collect()
    result: dict[str, object] = {
        "rss_per_key": (rss_bytes() - before) / MEMORY_KEYS,
        "held": adapter.held(),
        "seconds": seconds,
    }
    if isinstance(adapter, ShardlimitAdapter):
        result["store_per_key"] = adapter.store_bytes_per_key()
    print(json.dumps(result))


def memory_rows(everything: bool) -> list[Row]:
    """Scenario 5: run memory_child in a fresh interpreter per library.

    Every shardlimit algorithm and the others' fixed window; with ``everything``
    the others' other algorithms too (about three minutes more).
    """
    rows = []
    for impl in IMPLS:
        if not (everything or impl.library == "shardlimit" or impl.family == FIXED):
            continue
        done = subprocess.run(
            [sys.executable, __file__, "--memory-child", impl.name],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        scenario = f"5. bytes/key after {MEMORY_KEYS // 1_000_000}M keys"
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            rows.append(Row(scenario, impl, float("nan"), "B", [f"failed: {tail[0]}"]))
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        notes = [f"insert {result['seconds']:.1f} s"]
        if "store_per_key" in result:
            notes.insert(0, f"store's own estimate {result['store_per_key']:.0f} B/key")
        if result["held"] != MEMORY_KEYS + 1:  # and the warm-up key
            notes.append(f"store holds {result['held']:,} keys")
        rows.append(Row(scenario, impl, result["rss_per_key"], "B", notes))
        print(f"  {impl.name:<40} {result['rss_per_key']:8.1f} B/key", flush=True)
    return rows


def compare(rows: list[Row]) -> None:
    """Fill ``vs_limits``: the limits row of the same scenario and family."""
    for row in rows:
        base = next(
            (
                other
                for other in rows
                if other.scenario == row.scenario
                and other.impl.family == row.impl.family
                and other.impl.library == "limits"
            ),
            None,
        )
        if base is None or not row.value or row.value != row.value:
            continue
        ratio = base.value / row.value
        if row is base:
            row.vs_limits = "baseline"
        elif ratio >= 1:
            word = "faster" if row.unit == "ns" else "smaller"
            row.vs_limits = f"{ratio:.1f}x {word}"
        else:
            word = "slower" if row.unit == "ns" else "larger"
            row.vs_limits = f"{1 / ratio:.1f}x {word}"


def fmt_value(row: Row) -> str:
    if row.value != row.value:
        return "—"
    if row.unit == "ns":
        return f"{row.value:,.0f} ns/hit"
    return f"{row.value:,.0f} B/key"


def main_table(rows: list[Row]) -> str:
    """Render the rows as one markdown table."""
    lines = [
        "| Scenario | Library | Algorithm | Result | vs limits | Notes |",
        "|---|---|---|---:|---:|---|",
    ]
    for row in rows:
        lib = f"**{row.impl.library}**" if row.impl.library == "shardlimit" else ""
        lines.append(
            f"| {row.scenario} | {lib or row.impl.library} | {row.impl.algorithm} "
            f"| {fmt_value(row)} | {row.vs_limits} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """Say how shardlimit stands against the issue's targets (no assertion)."""
    out = []
    for row in rows:
        if row.impl.library != "shardlimit" or not row.vs_limits.endswith("faster"):
            continue
        if row.scenario.startswith(("1.", "3.")):
            ratio = float(row.vs_limits.split("x")[0])
            mark = "met" if ratio >= 15 else "NOT met"
            out.append(f"- {row.scenario}, {row.impl.algorithm}: {ratio:.1f}x ({mark})")
    for row in rows:
        if row.scenario.startswith("5.") and row.impl.name == "shardlimit/fixed_window":
            mark = "met" if row.value <= 64 else "NOT met"
            out.append(
                f"- bytes per fixed-window key: {row.value:.0f} B (<= 64: {mark})"
            )
    return out


def versions() -> str:
    names = ["shardlimit", "limits", "throttled-py", "pyrate-limiter"]
    found = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)
    return (
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {found}"
    )


def run(repeats: int, memory: str) -> str:
    """Run every scenario and return the markdown report."""
    troubles = [
        f"{impl.name} {trouble}"
        for impl in IMPLS
        if (trouble := check_admission(impl)) is not None
    ]
    admission = "; ".join(troubles) or "every library admitted exactly 5"
    print(f"admission check: {admission}", flush=True)
    baseline = loop_baseline(repeats)
    print(f"loop + one builtin call: {baseline:.0f} ns (inside every figure)")

    rows = hot_key(NEVER, repeats) + hot_key(1, repeats) + round_robin(repeats)
    for row in rows:
        print(f"  {row.scenario:<28} {row.impl.name:<40} {row.value:10,.0f} ns")

    runs = []
    for impl in IMPLS:
        if impl.family == LOG:
            runs.append(sliding_log(impl, LOG_CAPS.get(impl.library, LOG_CAP)))
            gc.collect()
            print(f"  4. sliding log {impl.name:<40} {len(runs[-1].batches)} batches")
    rows += log_rows(runs)
    if memory != "none":
        rows += memory_rows(memory == "all")
    compare(rows)

    report = [
        "## Python side by side",
        "",
        versions() + ".",
        f"Median of {repeats} repeats; ns per `hit()` including the Python loop "
        f"(loop + one builtin call alone: {baseline:.0f} ns).",
        "",
        main_table(rows),
        "",
        f"Scenario 4 in full: ns per hit for each batch of {LOG_BATCH:,} hits on one "
        f"key under {LOG_LIMIT:,}/hour, by log size before the batch.",
        "",
        log_table(runs),
        "",
        "Set-up: shardlimit `Limiter(..., gc_interval=None)`; limits `MemoryStorage`; "
        f"throttled-py `MemoryStore(options={{'MAX_SIZE': {THROTTLED_CAPACITY:,}}})` "
        "(its default of 1,024 keys would evict); pyrate-limiter `Limiter` over a "
        "small `BucketFactory` making one `InMemoryBucket` (`StateBucket` for "
        "`TokenBucket`) per key, not registered with its Leaker thread (by default "
        "one bucket serves every name). Scenario 5 runs each library in a fresh "
        "interpreter and divides the RSS growth by the number of keys; the key "
        "strings are made and dropped in the loop.",
        "",
        f"Admission check (10 hits on a fresh key under 5/hour): {admission}.",
        "",
        "Targets of issue 2:",
        *targets(rows),
    ]
    return "\n".join(report) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--memory",
        choices=["fixed", "all", "none"],
        default="fixed",
        help="scenario 5 for shardlimit and every fixed window (default), "
        "for every algorithm, or not at all",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    report = run(max(1, args.repeats), args.memory)
    print()
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
