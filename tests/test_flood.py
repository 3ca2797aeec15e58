"""Floods, leaks and concurrency: the memory store under load, for every algorithm.

* **Key flood.** Distinct keys (random-looking IPv4 addresses and API keys) far
  beyond ``max_keys``. The store holds exactly ``max_keys``; resident memory (RSS,
  from ``/proc/self/statm``) stops growing once it is full; keys already held keep
  their exact limits; every new key gets the documented denial (``allowed=False``,
  ``remaining=0``, ``reset_after=0``, ``retry_after`` = the shortest period); after
  the window a sweep frees the store and new keys are admitted again.
* **Leak soak.** Hits on rolling keys that expire, with the GC thread sweeping
  every few milliseconds: RSS reaches a plateau and ``stats()["keys"]`` returns to
  zero after the last window.
* **Concurrency soak.** Many threads on many keys while another thread sweeps
  without pause, in phases a window apart (so the sweeper removes idle keys while
  the workers bring them back): each key admits exactly its limit per phase, and
  the run fails if any thread does not finish in time (a deadlock).

The flood and the leak soak run in a child process, so the interpreter of the test
run does not pollute RSS. The default run uses small sizes (a few seconds in all);
the ``slow`` tests (``make soak``) and ``benches/soak.py`` use millions of keys and
hits. The workloads are plain functions, shared with ``benches/soak.py``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shardlimit import ALGORITHMS, Decision, Limiter, ManualClock, Rate

pytest_plugins = ["tests.redis_support"]

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20


def rss() -> int:
    """Resident set size of this process, in bytes (from /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def flood_key(i: int) -> str:
    """The i-th flood key: alternately an IPv4 address and an API key.

    Both come from bijections of ``i`` (odd multipliers modulo a power of two), so
    the keys look random and never repeat.
    """
    if i % 2:
        r = (i * 2_654_435_761) % 2**32
        return f"{r >> 24}.{r >> 16 & 255}.{r >> 8 & 255}.{r & 255}"
    return f"api-{(i * 0x9E3779B97F4A7C15) % 2**64:016x}"


# --- the workloads (also run by benches/soak.py) --------------------------------------


def key_flood(algorithm: str, max_keys: int, flood: int) -> dict[str, Any]:
    """Fill a store of ``max_keys``, then flood it with ``flood`` more new keys."""
    clock = ManualClock(1_000.0)
    rate = Rate(3, 10.0)
    before = rss()
    limiter = Limiter(
        [rate], algorithm=algorithm, clock=clock, gc_interval=None, max_keys=max_keys
    )
    residents = [f"resident-{i}" for i in range(100)]
    for key in residents:
        assert limiter.hit(key).remaining == 2

    fill = max_keys - len(residents)
    for i in range(fill):
        assert limiter.hit(flood_key(i)).allowed
    full = rss()
    stats = limiter.stats()
    assert stats["keys"] == max_keys

    documented = Decision(
        allowed=False,
        limit=3,
        remaining=0,
        reset_after=0.0,
        retry_after=10.0,
        rate=rate,
    )
    wrong = 0
    samples = []
    for i in range(fill, fill + flood):
        decision = limiter.hit(flood_key(i))
        wrong += decision != documented
        if (i - fill) % max(1, flood // 8) == 0:
            samples.append(rss())
    flooded = rss()
    stats = limiter.stats()

    # Residents kept their exact limits: one hit taken, two left, then denied.
    resident_ok = all(
        [limiter.hit(key).remaining for _ in range(2)] == [1, 0]
        and not limiter.hit(key).allowed
        for key in residents
    )
    clock.advance(20.0)
    swept = limiter.sweep()
    readmitted = limiter.hit(flood_key(fill + flood)).allowed
    result = {
        "algorithm": algorithm,
        "max_keys": max_keys,
        "keys_flooded": fill + flood,
        "keys_held": stats["keys"],
        "rejected_full": stats["rejected_full"],
        "wrong_denials": wrong,
        "residents_exact": resident_ok,
        "swept": swept,
        "readmitted": readmitted,
        "memory_bytes": stats["memory_bytes"],
        "rss_before": before,
        "rss_full": full,
        "rss_flooded": flooded,
        "rss_samples": samples,
        "rss_per_key": (full - before) / max_keys,
    }
    limiter.close()
    return result


def leak_soak(
    algorithm: str, hits: int, keys_per_batch: int = 2_000, gc_interval: float = 0.005
) -> dict[str, Any]:
    """Hit rolling keys that expire, the GC thread sweeping; sample RSS."""
    clock = ManualClock(1_000.0)
    limiter = Limiter("5/1s", algorithm=algorithm, clock=clock, gc_interval=gc_interval)
    batches = max(1, hits // (2 * keys_per_batch))
    samples = []
    peak_keys = 0
    started = time.perf_counter()
    for batch in range(batches):
        for j in range(keys_per_batch):
            key = f"roll-{batch}-{j}"
            limiter.hit(key)
            limiter.hit(key)
        clock.advance(0.1)  # a key's window ends 10 to 30 batches later
        if batch % 10 == 9:
            # The loop holds the GIL; let the GC thread have a turn, so the number
            # of live keys stays that of the last windows.
            runs = limiter.stats()["gc"]["runs"]
            deadline = time.monotonic() + 5.0
            while limiter.stats()["gc"]["runs"] == runs and time.monotonic() < deadline:
                time.sleep(0.001)
        if batch % max(1, batches // 40) == 0:
            samples.append(rss())
            peak_keys = max(peak_keys, limiter.stats()["keys"])
    elapsed = time.perf_counter() - started
    clock.advance(5.0)  # past the last window of every algorithm
    deadline = time.monotonic() + 30.0
    while limiter.stats()["keys"] and time.monotonic() < deadline:
        time.sleep(0.005)
    stats = limiter.stats()
    limiter.close()
    return {
        "algorithm": algorithm,
        "hits": 2 * keys_per_batch * batches,
        "distinct_keys": keys_per_batch * batches,
        "peak_keys": peak_keys,
        "keys_after": stats["keys"],
        "gc_runs": stats["gc"]["runs"],
        "gc_removed": stats["gc"]["removed"],
        "gc_errors": stats["gc"]["errors"],
        "rss_samples": samples,
        "seconds": elapsed,
    }


def concurrency_soak(
    limiter: Limiter,
    clock: ManualClock,
    *,
    threads: int,
    keys: int,
    hits_per_thread: int,
    phases: int,
    period: float,
    limit: int,
    sweep: bool = True,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Threads hit random keys while a sweeper sweeps; phases a window apart.

    Returns admitted counts per (phase, key) and whether every thread finished.
    """
    admitted: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def sweeper() -> None:
        while not stop.is_set():
            limiter.sweep()

    def worker(phase: int, seed: int) -> None:
        rng = random.Random(seed)
        local: Counter[tuple[int, int]] = Counter()
        try:
            for _ in range(hits_per_thread):
                key = rng.randrange(keys)
                if limiter.hit(f"user:{key}").allowed:
                    local[phase, key] += 1
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        with lock:
            admitted.update(local)

    sweeping = threading.Thread(target=sweeper, name="soak-sweeper", daemon=True)
    if sweep:
        sweeping.start()
    finished = True
    deadline = time.monotonic() + timeout
    for phase in range(phases):
        clock.set(1_000.0 + phase * 3 * period)
        workers = [
            threading.Thread(
                target=worker, args=(phase, phase * 1_000 + n), daemon=True
            )
            for n in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in workers):
            finished = False
            break
    stop.set()
    if sweep:
        sweeping.join(max(1.0, deadline - time.monotonic()))
        finished &= not sweeping.is_alive()
    over = {k: n for k, n in admitted.items() if n > limit}
    return {
        "finished": finished,
        "errors": [repr(e) for e in errors],
        "admitted": sum(admitted.values()),
        "over_admitted": over,
        "per_key_max": max(admitted.values(), default=0),
        "phases": phases,
    }


# --- running a workload in a fresh interpreter ---------------------------------------


def in_child(workload: str, **kwargs: Any) -> dict[str, Any]:
    """Run ``workload(**kwargs)`` of this module in a child process; return its dict."""
    code = (
        "import json, sys; from tests import test_flood as t; "
        f"print(json.dumps(t.{workload}(**json.loads(sys.argv[1]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=1_800,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3_000:]
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


# --- checks --------------------------------------------------------------------------


def check_flood(r: dict[str, Any]) -> None:
    assert r["keys_held"] == r["max_keys"]
    assert r["rejected_full"] == r["keys_flooded"] - r["max_keys"] + 100
    assert r["wrong_denials"] == 0, "a new key on a full store got another answer"
    assert r["residents_exact"], "keys already held lost their limits"
    assert r["swept"] == r["max_keys"]
    assert r["readmitted"]
    # The bound holds: flooding ten times max_keys more keys costs (almost) nothing
    # beyond the memory of a full store.
    grown = r["rss_full"] - r["rss_before"]
    extra = r["rss_flooded"] - r["rss_full"]
    assert extra <= max(8 * MB, grown // 10), (
        f"RSS grew {extra / MB:.1f} MB during the flood after the store was full "
        f"({grown / MB:.1f} MB to fill it)"
    )


def check_leak(r: dict[str, Any]) -> None:
    assert r["keys_after"] == 0, f"{r['keys_after']} keys left after the last window"
    assert r["gc_errors"] == 0
    assert r["gc_removed"] >= r["distinct_keys"] * 0.99
    assert r["peak_keys"] < r["distinct_keys"] / 2, "the GC did not keep up"
    samples = r["rss_samples"]
    half = samples[len(samples) // 2 :]
    growth = max(half) - half[0]
    assert growth <= 4 * MB, (
        f"RSS still grew {growth / MB:.1f} MB over the second half: "
        f"{[round(s / MB, 1) for s in samples]}"
    )


def check_concurrency(r: dict[str, Any], keys: int, limit: int) -> None:
    assert r["finished"], "a thread did not finish: deadlock or livelock"
    assert not r["errors"], r["errors"]
    assert not r["over_admitted"], f"over-admission: {r['over_admitted']}"
    # Each key got far more than `limit` hits per phase, so each admitted exactly it.
    assert r["admitted"] == r["phases"] * keys * limit


# --- the default (short) runs ---------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_flood_holds_the_bound(algorithm: str) -> None:
    check_flood(
        in_child("key_flood", algorithm=algorithm, max_keys=100_000, flood=500_000)
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rolling_keys_do_not_leak(algorithm: str) -> None:
    check_leak(in_child("leak_soak", algorithm=algorithm, hits=1_000_000))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_and_a_sweeper_never_over_admit(algorithm: str) -> None:
    clock = ManualClock(1_000.0)
    keys, limit = 32, 20
    with Limiter(
        f"{limit}/1s", algorithm=algorithm, clock=clock, gc_interval=None, shards=4
    ) as limiter:
        r = concurrency_soak(
            limiter, clock, threads=8, keys=keys, hits_per_thread=400, phases=6,
            period=1.0, limit=limit,
        )  # fmt: skip
        check_concurrency(r, keys, limit)
        assert limiter.stats()["allowed"] == r["admitted"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_several_rates_under_threads_never_over_admit(algorithm: str) -> None:
    """The short rate decides in each phase; the long one must have paid the same."""
    clock = ManualClock(1_000.0)
    keys, limit = 16, 10
    with Limiter(
        f"{limit}/1s; 45/1h", algorithm=algorithm, clock=clock, gc_interval=None
    ) as limiter:
        r = concurrency_soak(
            limiter, clock, threads=8, keys=keys, hits_per_thread=200, phases=4,
            period=1.0, limit=limit,
        )  # fmt: skip
        check_concurrency(r, keys, limit)
        # 4 phases of 10 on each key: the hourly rate has 5 left on every key.
        clock.advance(3.0)
        for key in range(keys):
            peek = limiter.peek(f"user:{key}")
            assert (peek.remaining, peek.rate) == (5, Rate(45, 3600.0))


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_on_redis_never_over_admit(algorithm: str, redis_url: str) -> None:
    clock = ManualClock(1_000.0)
    keys, limit = 8, 10
    with Limiter(
        f"{limit}/1s",
        algorithm=algorithm,
        clock=clock,
        storage=redis_url,
        storage_timeout=5.0,
        on_storage_error="raise",
    ) as limiter:
        r = concurrency_soak(
            limiter, clock, threads=8, keys=keys, hits_per_thread=60, phases=3,
            period=1.0, limit=limit, sweep=False,
        )  # fmt: skip
        check_concurrency(r, keys, limit)


# --- the long runs (make soak) --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_flood_of_millions(algorithm: str) -> None:
    check_flood(
        in_child("key_flood", algorithm=algorithm, max_keys=1_000_000, flood=10_000_000)
    )


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ten_million_rolling_hits_do_not_leak(algorithm: str) -> None:
    check_leak(in_child("leak_soak", algorithm=algorithm, hits=10_000_000))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_long_concurrency_soak(algorithm: str) -> None:
    clock = ManualClock(1_000.0)
    keys, limit = 256, 50
    with Limiter(
        f"{limit}/1s", algorithm=algorithm, clock=clock, gc_interval=None
    ) as limiter:
        r = concurrency_soak(
            limiter, clock, threads=32, keys=keys, hits_per_thread=2_000, phases=40,
            period=1.0, limit=limit, timeout=600.0,
        )  # fmt: skip
        check_concurrency(r, keys, limit)
