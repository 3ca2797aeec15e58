"""Exactness across processes: four processes hammering one key admit the limit.

Each process (multiprocessing, spawn) opens its own Limiter on the same Redis server
and key, waits at a barrier, then hits as fast as it can. The decisions use the
server's TIME, as in production, so the sum of the admissions is exactly the limit
only if every decision is atomic on the server.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import pytest

from shardlimit import ALGORITHMS, Limiter

pytest_plugins = ["tests.redis_support"]
pytestmark = pytest.mark.redis

PROCESSES = 4
LIMIT = 150
HITS_PER_PROCESS = 120  # 480 attempts in all


def hammer(
    url: str,
    rates: str,
    algorithm: str,
    barrier: Barrier,
    results: multiprocessing.Queue[tuple[int, int]],
) -> None:
    """Run in a child: hit one key HITS_PER_PROCESS times; report admissions."""
    with Limiter(rates, algorithm=algorithm, storage=url, storage_timeout=5.0) as lim:
        lim.peek("warm-up")  # connect and load the script before the race
        barrier.wait(timeout=60)
        allowed = sum(lim.hit("shared").allowed for _ in range(HITS_PER_PROCESS))
        results.put((allowed, lim.stats()["errors"]))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("several", [False, True], ids=["one-rate", "two-rates"])
def test_four_processes_admit_exactly_the_limit(
    redis_url: str, mid_window_period: int, algorithm: str, several: bool
) -> None:
    period = mid_window_period
    rates = f"{LIMIT}/{period}s"
    if several:
        rates += f"; {LIMIT * 2}/{period * 2}s"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    processes = [
        context.Process(
            target=hammer, args=(redis_url, rates, algorithm, barrier, results)
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    assert sum(errors for _, errors in reports) == 0
    assert sum(allowed for allowed, _ in reports) == LIMIT
