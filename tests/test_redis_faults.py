"""Faults: the server dies (SIGKILL) or hangs (SIGSTOP) under load, then comes back.

With each failure policy the decisions follow it while the server is away; no call
waits longer than the timeout; the circuit breaker keeps waiting requests to one per
back-off, logs one WARNING when it opens and one INFO when it closes; after a
restart the scripts are loaded again and the decisions are exact.

Real time appears here only where it is the subject: the breaker's back-off and the
socket timeout. Bounds on durations are deliberately generous.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from shardlimit import Limiter, Rate, StorageError
from shardlimit.redis_storage import RedisStorage

if TYPE_CHECKING:
    from shardlimit import Decision
    from tests.redis_support import RedisServer

pytest_plugins = ["tests.redis_support"]
pytestmark = pytest.mark.redis

TIMEOUT = 0.2
BACKOFF = 0.3
#: Slack for a loaded 2-core CI machine on top of the timeout under test.
MARGIN = 1.5
LOGGER = "shardlimit.redis_storage"


@pytest.fixture
def make_storage(own_redis: RedisServer) -> Iterator[Callable[..., RedisStorage]]:
    made: list[RedisStorage] = []

    def make(policy: str, algorithm: str = "sliding_window") -> RedisStorage:
        storage = RedisStorage(
            own_redis.url,
            rates="5/1h; 50/1d",
            algorithm=algorithm,
            on_storage_error=policy,
            timeout=TIMEOUT,
            backoff=BACKOFF,
        )
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


def timed(call: Callable[[], Decision]) -> tuple[Decision | BaseException, float]:
    start = time.monotonic()
    try:
        result: Decision | BaseException = call()
    except StorageError as error:
        result = error
    return result, time.monotonic() - start


def wait_until_closed(storage: RedisStorage, key: str = "probe") -> None:
    """Peek until the breaker lets a probe through and it succeeds (bounded)."""
    deadline = time.monotonic() + 10 * BACKOFF + 5
    while storage.stats()["breaker"]["state"] != "closed":
        assert time.monotonic() < deadline, storage.stats()
        with contextlib.suppress(StorageError):
            storage.peek(key)
        time.sleep(BACKOFF / 10)


def check_policy(policy: str, outcome: Decision | BaseException) -> None:
    if policy == "allow":
        assert not isinstance(outcome, BaseException)
        assert outcome.allowed
        assert (outcome.remaining, outcome.limit) == (5, 5)
        assert outcome.rate == Rate(5, 3600.0)
        assert outcome.retry_after == outcome.reset_after == 0.0
    elif policy == "deny":
        assert not isinstance(outcome, BaseException)
        assert not outcome.allowed
        assert outcome.remaining == 0
        assert 0 < outcome.retry_after <= BACKOFF
        assert outcome.reset_after == outcome.retry_after
    else:
        assert isinstance(outcome, StorageError)
        cause = outcome.__cause__
        assert isinstance(cause, redis.exceptions.ConnectionError), repr(cause)
        assert "127.0.0.1" in str(outcome)


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_each_policy_through_a_crash_and_a_restart(
    own_redis: RedisServer,
    make_storage: Callable[..., RedisStorage],
    policy: str,
) -> None:
    storage = make_storage(policy)
    assert [storage.hit("k", 1).allowed for _ in range(3)] == [True] * 3

    own_redis.kill()
    first, _ = timed(lambda: storage.hit("k", 1))  # finds the server gone
    again, _ = timed(lambda: storage.hit("k", 1))  # the circuit is open now
    check_policy(policy, first)
    check_policy(policy, again)
    peeked, _ = timed(lambda: storage.peek("k"))
    check_policy(policy, peeked)
    stats = storage.stats()
    assert stats["breaker"]["state"] == "open"
    assert stats["breaker"]["opens"] == 1
    assert stats["breaker"]["fast_failures"] >= 2
    assert stats["errors"] == 1
    assert stats["fallbacks"] == 3
    if policy == "raise":
        with pytest.raises(StorageError):
            storage.reset("k")
    else:
        storage.reset("k")  # skipped, not raised

    own_redis.start()
    wait_until_closed(storage)
    # The restarted server has neither the state nor the scripts.
    assert [storage.hit("k", 1).allowed for _ in range(7)] == [True] * 5 + [False] * 2
    stats = storage.stats()
    assert stats["script_loads"] >= 1
    assert stats["breaker"]["opens"] == 1


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_killed_mid_load(
    own_redis: RedisServer,
    make_storage: Callable[..., RedisStorage],
    policy: str,
) -> None:
    storage = make_storage(policy, algorithm="token_bucket")
    outcomes: list[tuple[float, Decision | BaseException, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        for i in range(100_000):
            if stop.is_set():
                return
            start, key = time.monotonic(), f"user:{worker}:{i % 5}"
            outcome, took = timed(lambda: storage.hit(key, 1))  # noqa: B023
            with lock:
                outcomes.append((start, outcome, took))
            time.sleep(0.001)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        killed_at = time.monotonic()
        own_redis.kill()
        time.sleep(3 * BACKOFF)
        restarting_at = time.monotonic()
        own_redis.start()
        wait_until_closed(storage)
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    before = [o for start, o, took in outcomes if start + took < killed_at]
    during = [o for start, o, _ in outcomes if killed_at < start < restarting_at]
    assert before
    assert during
    assert all(not isinstance(o, BaseException) for o in before)
    # While the server is down, every answer is the policy's.
    for outcome in during:
        check_policy(policy, outcome)
    assert max(took for _, _, took in outcomes) < TIMEOUT + MARGIN
    stats = storage.stats()
    assert stats["breaker"]["state"] == "closed"
    assert stats["errors"] >= 1
    assert stats["script_loads"] >= 1


def test_a_hung_server_costs_one_timeout_per_backoff(
    own_redis: RedisServer,
    make_storage: Callable[..., RedisStorage],
) -> None:
    """SIGSTOP: connections are accepted, nothing answers; calls time out."""
    storage = make_storage("allow")
    storage.hit("k", 1)
    pid = own_redis.process.pid if own_redis.process else 0
    assert pid
    durations: list[float] = []
    lock = threading.Lock()
    threads_count = 6

    def load() -> None:
        deadline = time.monotonic() + 6 * BACKOFF
        while time.monotonic() < deadline:
            outcome, took = timed(lambda: storage.hit("load", 1))
            assert not isinstance(outcome, BaseException)
            assert outcome.allowed
            with lock:
                durations.append(took)
            time.sleep(0.005)

    own_redis.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    started = time.monotonic()
    try:
        threads = [threading.Thread(target=load) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        own_redis.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    elapsed = time.monotonic() - started

    waited = [took for took in durations if took >= TIMEOUT / 2]
    assert waited, "nothing waited on the hung server: was it stopped?"
    assert max(durations) < TIMEOUT + MARGIN
    # The first wave (one call per thread) plus one probe per back-off period.
    assert len(waited) <= threads_count + int(elapsed / BACKOFF) + 1
    assert len(durations) > 5 * len(waited)  # the rest answered at once
    wait_until_closed(storage)
    # Requests that timed out had been sent all the same: the resumed server may
    # have run them on "load". "k" saw none of that.
    errors = storage.stats()["errors"]
    assert storage.hit("k", 1).remaining == 3
    assert storage.stats()["errors"] == errors


def test_the_breaker_logs_once_when_it_opens_and_once_when_it_closes(
    own_redis: RedisServer,
    make_storage: Callable[..., RedisStorage],
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = make_storage("deny")
    caplog.set_level(logging.INFO, logger=LOGGER)
    storage.hit("k", 1)
    own_redis.kill()
    deadline = time.monotonic() + 3 * BACKOFF
    while time.monotonic() < deadline:  # several failed probes, many fast failures
        storage.hit("k", 1)
        time.sleep(0.01)
    own_redis.start()
    wait_until_closed(storage)
    for _ in range(20):
        storage.hit("k", 1)

    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "unavailable" in records[0].getMessage()
    assert "answers again" in records[1].getMessage()
    assert storage.stats()["breaker"]["opens"] == 1


def test_the_limiter_follows_the_policy(own_redis: RedisServer) -> None:
    with Limiter(
        "2/1h",
        storage=own_redis.url,
        on_storage_error="deny",
        storage_timeout=TIMEOUT,
    ) as lim:
        assert lim.hit("k")
        own_redis.kill()
        denied, took = timed(lambda: lim.hit("k"))
        assert not isinstance(denied, BaseException)
        assert not denied.allowed
        assert took < TIMEOUT + MARGIN
        stats = lim.stats()
        assert stats["breaker"]["state"] == "open"
        assert stats["on_storage_error"] == "deny"
