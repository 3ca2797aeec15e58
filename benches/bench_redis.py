"""Decisions per second on Redis: shardlimit beside ``limits``, and a bare EVALSHA.

One redis-server (started here on a free loopback port, no persistence; or
``--url``), one connection per library, one thread, in this one process, so the
ratios mean something even where the absolute figures drift. For each algorithm:

* ``shardlimit``: ``Limiter(..., storage="redis://...").hit(key)``, one EVALSHA
  per decision, time from the server's TIME;
* ``limits``: the same algorithm with ``limits``' RedisStorage (fixed window,
  moving window, sliding window counter; it has no token bucket), whose ``hit`` is
  also one round trip;
* ``evalsha``: ``EVALSHA`` of ``return 1`` with one key and one argument through
  redis-py's ``execute_command``: the round trip and client floor no Lua limiter
  can beat.

Two workloads: ``allowed`` (1,000 keys round robin, 1000/minute, never reached) and
``denied`` (one hot key over its limit). The three take turns every 500 decisions,
so a change in the machine's load falls on all alike. Figures are the median of the
repeats of decisions per second (and microseconds per decision). A last pass per
library reads the server's own time per decision from ``INFO commandstats`` (what
a shared Redis spends on each decision: its capacity). The script prints a
markdown table and writes it to ``benches/results/redis.md``. It asserts nothing
about speed.

Usage: ``.venv/bin/python benches/bench_redis.py [--decisions N] [--repeats N]
[--url redis://host:port/db]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from limits import parse
from limits.storage import RedisStorage as LimitsRedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_support import RedisServer  # noqa: E402

from shardlimit import ALGORITHMS, Limiter  # noqa: E402

LIMITS_STRATEGIES: dict[str, type[RateLimiter] | None] = {
    "fixed_window": FixedWindowRateLimiter,
    "sliding_window": MovingWindowRateLimiter,
    "sliding_window_counter": SlidingWindowCounterRateLimiter,
    "token_bucket": None,
}
WORKLOADS = {
    # name: (rate, keys, warm-up hits per key before timing)
    "allowed": ("1000/minute", [f"user:{i}" for i in range(1000)], 0),
    "denied": ("10/hour", ["hot"], 10),
}


CHUNK = 500


def measure(
    calls: dict[str, Callable[[str], object]], keys: list[str], decisions: int
) -> dict[str, float]:
    """Return decisions per second of each call over ``keys`` round robin.

    The calls take turns every CHUNK decisions, so a change in the machine's load
    falls on all of them alike.
    """
    spent = dict.fromkeys(calls, 0.0)
    for first in range(0, decisions, CHUNK):
        chunk = [keys[i % len(keys)] for i in range(first, first + CHUNK)]
        for name, call in calls.items():
            start = time.perf_counter()
            for key in chunk:
                call(key)
            spent[name] += time.perf_counter() - start
    done = len(range(0, decisions, CHUNK)) * CHUNK
    return {name: done / seconds for name, seconds in spent.items()}


def server_microseconds(
    client: redis.Redis, call: Callable[[str], object], keys: list[str], decisions: int
) -> float:
    """Return the server's time per decision: the microseconds INFO commandstats
    counts inside every command (scripts included) over a pass, per decision."""
    client.config_resetstat()
    for i in range(decisions):
        call(keys[i % len(keys)])
    stats = client.info("commandstats")
    total = sum(value["usec"] for name, value in stats.items() if "config" not in name)
    return float(total) / decisions


def shardlimit_call(url: str, algorithm: str, rate: str) -> Callable[[str], object]:
    limiter = Limiter(rate, algorithm=algorithm, storage=url, storage_timeout=5.0)
    return limiter.hit


def limits_call(url: str, algorithm: str, rate: str) -> Callable[[str], object] | None:
    strategy = LIMITS_STRATEGIES[algorithm]
    if strategy is None:
        return None
    limiter = strategy(LimitsRedisStorage(url))
    item = parse(rate)
    return lambda key: limiter.hit(item, key)


def evalsha_call(url: str) -> Callable[[str], object]:
    client = redis.Redis.from_url(url)
    sha = client.script_load("return 1")
    execute: Callable[..., object] = client.execute_command
    return lambda key: execute("EVALSHA", sha, 1, key, "1")


def run(url: str, decisions: int, repeats: int) -> list[dict[str, object]]:
    flush = redis.Redis.from_url(url)
    rows: list[dict[str, object]] = []
    for algorithm in ALGORITHMS:
        for workload, (rate, keys, warm) in WORKLOADS.items():
            flush.flushall()
            maybe = {
                "shardlimit": shardlimit_call(url, algorithm, rate),
                "limits": limits_call(url, algorithm, rate),
                "evalsha": evalsha_call(url),
            }
            calls = {name: call for name, call in maybe.items() if call is not None}
            for call in calls.values():
                for key in keys:
                    for _ in range(warm):
                        call(key)
                call(keys[0])  # connect, load scripts
            figures: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(repeats):
                for name, value in measure(calls, keys, decisions).items():
                    figures[name].append(value)
            row: dict[str, object] = {"algorithm": algorithm, "workload": workload}
            for name in maybe:
                values = figures.get(name)
                row[name] = statistics.median(values) if values else None
            for name in ("shardlimit", "limits"):
                timed = calls.get(name)
                row[f"{name}_server"] = (
                    server_microseconds(flush, timed, keys, decisions // 4)
                    if timed is not None
                    else None
                )
            rows.append(row)
            print(_line(row), flush=True)
    flush.close()
    return rows


def _cell(value: object) -> str:
    if not isinstance(value, float):
        return "n/a"
    return f"{value:,.0f} ({1e6 / value:.0f} µs)"


def _ratio(row: dict[str, object]) -> str:
    ours, theirs = row["shardlimit"], row["limits"]
    if isinstance(ours, float) and isinstance(theirs, float):
        return f"{ours / theirs:.2f}x"
    return "n/a"


def _micros(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "n/a"


def _line(row: dict[str, object]) -> str:
    return (
        f"| {row['algorithm']} | {row['workload']} | {_cell(row['shardlimit'])} | "
        f"{_cell(row['limits'])} | {_ratio(row)} | {_cell(row['evalsha'])} | "
        f"{_micros(row['shardlimit_server'])} | {_micros(row['limits_server'])} |"
    )


def table(rows: list[dict[str, object]], server: str) -> str:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("shardlimit", "limits", "redis")
    )
    try:
        importlib.metadata.version("hiredis")
        parser = "hiredis"
    except importlib.metadata.PackageNotFoundError:
        parser = "pure-Python parser (no hiredis)"
    head = [
        f"Decisions per second on one connection to {server} over loopback "
        f"(Python {platform.python_version()}, {versions}, {parser}); "
        "median of the repeats, microseconds per decision in brackets. The last "
        "columns are the server's own time per decision (INFO commandstats).",
        "",
        "| algorithm | workload | shardlimit | limits | shardlimit / limits "
        "| EVALSHA `return 1` | server µs, shardlimit | server µs, limits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + [_line(row) for row in rows]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--url", help="use this server instead of starting one")
    args = parser.parse_args()

    server: RedisServer | None = None
    url = args.url
    if url is None:
        server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        server.start_on_a_free_port()
        url = server.url
    try:
        info = redis.Redis.from_url(url).info("server")
        name = f"redis-server {info['redis_version']}"
        rows = run(url, args.decisions, args.repeats)
    finally:
        if server is not None:
            server.stop()
    text = table(rows, name)
    print()
    print(text)
    results = ROOT / "benches" / "results"
    results.mkdir(exist_ok=True)
    (results / "redis.md").write_text(text)


if __name__ == "__main__":
    main()
