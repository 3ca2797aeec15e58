"""Model-based tests: the memory store and the Redis storage agree with tests/model.py.

A hypothesis state machine draws an algorithm, one to three rates (periods from a
few nanoseconds to a day, limits from 1 to 1000), a key bound and a start time, then
runs a random sequence of hits (a handful of keys, costs up to above the limit),
peeks, resets, sweeps and clock moves: single nanoseconds, random steps, the exact
edges of windows and the instants decisions named (``now + retry_after`` and
``now + reset_after``, one nanosecond either side), and jumps of several periods.
After every step each field of every ``Decision`` must equal the model's, floats
included, and the memory store's key count must equal the model's.

The default run keeps the example counts small; the ``slow`` variants (run by
``make soak``) draw many more. ``HYPOTHESIS_PROFILE=soak`` scales the default run
up as well, without touching any other module's settings.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, ClassVar

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shardlimit import ALGORITHMS, Decision, Limiter, ManualClock, Rate
from tests.model import ModelDecision, ModelStore, model_rates

pytest_plugins = ["tests.redis_support"]

KEYS = ("a", "b", "c", "é", "\udc80")

#: Periods in nanoseconds: tiny ones make window edges and 1ns steps meaningful,
#: awkward ones make GCRA's rounded-up interval matter, long ones are real.
PERIODS_NS = (
    1,
    2,
    3,
    7,
    10,
    97,
    1_000,
    12_345,
    1_000_000,
    250_000_000,
    1_000_000_000,
    10_000_000_000,
    60_000_000_000,
    3_600_000_000_000,
    86_400_000_000_000,
)
LIMITS = st.one_of(
    st.integers(1, 6), st.integers(1, 6), st.sampled_from((10, 12, 100, 1000))
)
START_NS = st.one_of(
    st.just(0),
    st.just(1_000 * 10**9),
    st.integers(0, 10**15),
    st.sampled_from((1_733_240_000 * 10**9, 1_733_240_000 * 10**9 + 999_999_999)),
)

SOAK = os.environ.get("HYPOTHESIS_PROFILE") == "soak"


def machine_settings(examples: int, steps: int) -> settings:
    """Settings for one state machine run; ``HYPOTHESIS_PROFILE=soak`` scales up."""
    scale = 20 if SOAK else 1
    return settings(
        max_examples=examples * scale,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    """An algorithm, its rates, a key bound and a start time."""
    count = draw(st.sampled_from((1, 1, 2, 3)))
    rates = [
        Rate(draw(LIMITS), draw(st.sampled_from(PERIODS_NS)) / 1e9)
        for _ in range(count)
    ]
    return {
        "algorithm": draw(st.sampled_from(ALGORITHMS)),
        "rates": rates,
        "max_keys": draw(st.sampled_from((1, 2, 3, 1_000_000))),
        "shards": draw(st.sampled_from((1, 2, 64))),
        "start_ns": draw(START_NS),
    }


FIELDS = ("allowed", "limit", "remaining", "reset_after", "retry_after", "rate")


def fields(d: Decision) -> tuple[object, ...]:
    return (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after, d.rate)


class LimiterMachine(RuleBasedStateMachine):
    """Drive a real limiter and the model side by side."""

    #: The storage URL; None is the memory store.
    storage: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.limiter: Limiter | None = None
        self.deltas: list[int] = []  # instants the last decisions named, from now
        self.prefix = ""

    @initialize(config=configurations())
    def setup(self, config: dict[str, Any]) -> None:
        self.clock = ManualClock()
        self.clock.set(config["start_ns"] / 1e9)
        options: dict[str, Any] = {
            "algorithm": config["algorithm"],
            "clock": self.clock,
            "gc_interval": None,
        }
        if self.storage is None:
            options.update(shards=config["shards"], max_keys=config["max_keys"])
            max_keys: int | None = config["max_keys"]
        else:
            options.update(storage=self.storage, storage_timeout=5.0)
            options["on_storage_error"] = "raise"
            max_keys = None
            # Every example gets fresh keys on the shared server.
            self.prefix = f"m{next(_EXAMPLE_IDS)}:"
        self.limiter = Limiter(config["rates"], **options)
        self.model = ModelStore(
            config["algorithm"], model_rates(self.limiter.rates), max_keys
        )
        self.max_period = max(rate.period_ns for rate in self.limiter.rates)

    def teardown(self) -> None:
        if self.limiter is not None:
            self.limiter.close()

    # -- helpers ---------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.clock.now_ns()

    def check(self, what: str, real: Decision, expected: ModelDecision) -> None:
        assert self.limiter is not None
        want = (*expected.seconds(), self.limiter.rates[expected.rate_index])
        assert fields(real) == want, (
            f"{what} at t={self.now}ns: store says {real!r}, model says "
            f"{dict(zip(FIELDS, want, strict=True))}"
        )
        self.deltas = [ns for ns in (expected.reset_after, expected.retry_after) if ns]

    def move_to(self, target: int) -> None:
        if target > self.now:
            self.clock.set(target / 1e9)

    # -- operations ------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), data=st.data())
    def hit(self, key: str, data: st.DataObject) -> None:
        assert self.limiter is not None
        limits = sorted({rate.limit for rate in self.model.rates})
        cost = data.draw(
            st.one_of(
                st.just(1),
                st.integers(1, min(limits)),
                st.sampled_from([c for limit in limits for c in (limit, limit + 1)]),
            ),
            label="cost",
        )
        expected = self.model.hit(key, cost, self.now)
        real = self.limiter.hit(self.prefix + key, cost)
        self.check(f"hit({key!r}, cost={cost})", real, expected)

    @rule(key=st.sampled_from(KEYS[:2]), data=st.data())
    def burst(self, key: str, data: st.DataObject) -> None:
        """Several hits on one key at one instant: the way to reach a denial."""
        assert self.limiter is not None
        limits = sorted({rate.limit for rate in self.model.rates})
        count = data.draw(
            st.sampled_from([n for limit in limits for n in (limit, limit + 1)]),
            label="burst",
        )
        cost = data.draw(st.sampled_from((1, 1, 2)), label="cost")
        for _ in range(min(count, 12)):
            expected = self.model.hit(key, cost, self.now)
            real = self.limiter.hit(self.prefix + key, cost)
            self.check(f"hit({key!r}, cost={cost})", real, expected)

    @rule(key=st.sampled_from(KEYS))
    def peek(self, key: str) -> None:
        assert self.limiter is not None
        expected = self.model.peek(key, self.now)
        self.check(f"peek({key!r})", self.limiter.peek(self.prefix + key), expected)

    @rule(key=st.sampled_from(KEYS))
    def reset(self, key: str) -> None:
        assert self.limiter is not None
        self.model.reset(key)
        self.limiter.reset(self.prefix + key)

    @rule()
    def sweep(self) -> None:
        assert self.limiter is not None
        removed = self.limiter.sweep()
        if self.storage is None:
            assert removed == self.model.sweep(self.now)
        else:
            assert removed == 0

    # -- clock moves -----------------------------------------------------------------

    @rule(ns=st.sampled_from((1, 2)))
    def tick(self, ns: int) -> None:
        self.clock.set((self.now + ns) / 1e9)

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        ns = data.draw(st.integers(1, 2 * self.max_period), label="advance_ns")
        self.move_to(self.now + ns)

    @rule(index=st.integers(0, 2), offset=st.sampled_from((-1, 0, 1)))
    def to_window_edge(self, index: int, offset: int) -> None:
        rates = self.model.rates
        period = rates[index % len(rates)].period
        self.move_to((self.now // period + 1) * period + offset)

    @precondition(lambda self: bool(self.deltas))
    @rule(data=st.data(), offset=st.sampled_from((-1, 0, 0, 1)))
    def to_named_instant(self, data: st.DataObject, offset: int) -> None:
        delta = data.draw(st.sampled_from(self.deltas), label="delta")
        self.move_to(self.now + delta + offset)

    @rule(periods=st.integers(1, 4), offset=st.sampled_from((-1, 0, 1)))
    def jump(self, periods: int, offset: int) -> None:
        self.move_to(self.now + periods * self.max_period + offset)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def key_count(self) -> None:
        if self.limiter is None or self.storage is not None:
            return
        stats = self.limiter.stats()
        assert stats["keys"] == len(self.model.keys)
        assert stats["rejected_full"] == self.model.rejected_full


_EXAMPLE_IDS = itertools.count()


def run_memory(examples: int, steps: int) -> None:
    run_state_machine_as_test(
        LimiterMachine, settings=machine_settings(examples, steps)
    )


def run_redis(url: str, examples: int, steps: int) -> None:
    class RedisMachine(LimiterMachine):
        storage = url

    try:
        run_state_machine_as_test(
            RedisMachine, settings=machine_settings(examples, steps)
        )
    finally:
        client = redis.Redis.from_url(url)
        try:
            client.flushall()
        finally:
            client.close()


def test_memory_store_agrees_with_the_model() -> None:
    run_memory(examples=300, steps=40)


@pytest.mark.redis
def test_redis_storage_agrees_with_the_model(redis_url: str) -> None:
    run_redis(redis_url, examples=40, steps=30)


@pytest.mark.slow
def test_memory_store_agrees_with_the_model_at_length() -> None:
    run_memory(examples=5_000, steps=80)


@pytest.mark.slow
@pytest.mark.redis
def test_redis_storage_agrees_with_the_model_at_length(redis_url: str) -> None:
    run_redis(redis_url, examples=1_500, steps=60)


# --- the model itself, on a few hand-checked figures ---------------------------------


def test_the_model_on_hand_checked_figures() -> None:
    """The figures the algorithms' doc comments work out, from the model."""
    from tests.model import ModelRate

    counter = ModelStore("sliding_window_counter", [ModelRate(10, 100)])
    assert counter.hit("k", 10, 50).allowed
    assert counter.peek("k", 125).remaining == 2  # 7.5 used at 25% into the window
    assert counter.hit("k", 2, 125).allowed
    denied = counter.hit("k", 1, 125)
    assert (denied.allowed, denied.retry_after) == (False, 5)

    bucket = ModelStore("token_bucket", [ModelRate(4, 100)])  # a token every 25ns
    assert [bucket.hit("k", 1, 1000).remaining for _ in range(4)] == [3, 2, 1, 0]
    denied = bucket.hit("k", 1, 1000)
    assert (denied.retry_after, denied.reset_after) == (25, 100)

    log = ModelStore("sliding_window", [ModelRate(2, 100)])
    assert log.hit("k", 1, 10).allowed
    assert log.hit("k", 1, 50).allowed
    assert log.hit("k", 1, 109).retry_after == 1
    assert log.hit("k", 1, 110).allowed

    full = ModelStore("fixed_window", [ModelRate(3, 10), ModelRate(5, 7)], max_keys=1)
    assert full.hit("a", 1, 0).allowed
    refused = full.hit("b", 1, 0)
    assert (refused.allowed, refused.rate_index, refused.retry_after) == (False, 1, 7)
    assert full.hit("b", 9, 0).retry_after is None  # denied anyway: not "full"
    assert full.rejected_full == 1


# --- the end of the clock's range -----------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_no_over_admission_at_the_end_of_the_clock(algorithm: str) -> None:
    """A ManualClock saturates at 2**64-1 ns; the limit must still hold there.

    The arithmetic of the log, the bucket and the fixed window adds a period to a
    time; at the end of the range it wraps (release build), and every hit passed.
    """
    clock = ManualClock()
    clock.advance(18_000_000_000.0)
    clock.advance(1_000_000_000.0)  # saturates at the end: 2**64 - 1 ns
    with Limiter("3/10s", algorithm=algorithm, clock=clock, gc_interval=None) as lim:
        admitted = [lim.hit("k").allowed for _ in range(6)]
        assert admitted == [True, True, True, False, False, False]
        assert math.isfinite(lim.peek("k").reset_after)
        assert lim.peek("k").reset_after > 0
