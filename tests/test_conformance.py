"""The memory store and the Redis storage give the same answers, field by field.

Each algorithm has a scenario list: hits, peeks, resets and clock moves. The same
steps run against ``storage="memory://"`` and a real Redis server, with one
ManualClock driving both, and every Decision must be identical (floats included).
Seeded random scenarios then cover what the lists do not spell out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from shardlimit import ALGORITHMS, Decision, Limiter, ManualClock, Rate

pytest_plugins = ["tests.redis_support"]
pytestmark = pytest.mark.redis

S = 1.0
NS = 1e-9


@dataclass(frozen=True)
class Hit:
    key: str
    cost: int = 1


@dataclass(frozen=True)
class Peek:
    key: str


@dataclass(frozen=True)
class Reset:
    key: str


@dataclass(frozen=True)
class Advance:
    seconds: float


Step = Hit | Peek | Reset | Advance


@dataclass(frozen=True)
class Scenario:
    name: str
    rates: str | Sequence[Rate]
    steps: Sequence[Step]
    start: float = 0.0


def fields(d: Decision) -> tuple[object, ...]:
    return (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after, d.rate)


def _common_steps() -> list[Step]:
    """Steps that make every algorithm admit, deny, refill and reset."""
    return [
        Hit("a"),
        Hit("a"),
        Peek("a"),
        Hit("a", 2),
        Hit("a"),
        Hit("a", 9),  # above the limit: denied forever, nothing taken
        Peek("a"),
        Advance(0.25),
        Hit("a"),
        Hit("b", 3),
        Advance(0.5 - NS),
        Hit("a"),
        Advance(NS),
        Hit("a"),
        Peek("a"),
        Advance(0.999999999),
        Hit("a"),
        Hit("a", 2),
        Reset("a"),
        Peek("a"),
        Hit("a", 3),
        Advance(3.0),
        Peek("a"),
        Peek("b"),
        Hit("b", 3),
        Hit("b"),
    ]


SCENARIOS: dict[str, list[Scenario]] = {
    "fixed_window": [
        Scenario("single rate", "3/1s", _common_steps()),
        Scenario(
            "window edge to the nanosecond",
            "2/1s",
            [
                Advance(0.7),
                Hit("k", 2),
                Hit("k"),  # denied: retry at the window's end, 0.3s
                Advance(0.3 - NS),
                Hit("k"),  # still the same window: retry 1ns
                Advance(NS),
                Peek("k"),  # a new window: full
                Hit("k"),
                Hit("k"),
                Hit("k"),
            ],
        ),
        Scenario("several rates", "2/1s; 3/5s", _common_steps()),
        Scenario("epoch-scale clock", "3/1s", _common_steps(), start=1.7e9 + 0.123),
    ],
    "sliding_window": [
        Scenario("single rate", "3/1s", _common_steps()),
        Scenario(
            "each hit expires one period later",
            "2/100ms",
            [
                Advance(0.01),
                Hit("k"),
                Advance(0.04),
                Hit("k"),
                Advance(0.059),
                Hit("k"),  # denied: the first hit expires at 0.11, 1ms away
                Advance(0.001 - NS),
                Hit("k"),  # 1ns early
                Advance(NS),
                Hit("k"),  # now == first + period: expired exactly
                Hit("k"),
                Advance(0.04),
                Hit("k"),
                Hit("k", 2),  # needs both live entries gone
                Peek("k"),
            ],
        ),
        Scenario("several rates", "2/1s; 3/5s", _common_steps()),
        Scenario("epoch-scale clock", "3/1s", _common_steps(), start=1.7e9 + 0.123),
    ],
    "sliding_window_counter": [
        Scenario("single rate", "3/1s", _common_steps()),
        Scenario(
            "the previous window decays",
            [Rate(10, 100 * NS)],
            [
                Advance(50 * NS),
                Hit("k", 10),
                Advance(75 * NS),  # 125ns: the previous window weighs 75%
                Peek("k"),
                Hit("k", 2),
                Hit("k"),  # denied: passes at 130ns
                Advance(5 * NS),
                Hit("k"),
                Advance(170 * NS),
                Peek("k"),
            ],
        ),
        Scenario(
            "the wait crosses into the next window",
            [Rate(4, 100 * NS)],
            [
                Advance(10 * NS),
                Hit("k", 4),
                Advance(10 * NS),
                Hit("k"),  # retry 105ns
                Hit("k", 4),  # a full-limit hit: only after two windows
                Advance(104 * NS),
                Hit("k"),
                Advance(NS),
                Hit("k"),
            ],
        ),
        Scenario("several rates", "2/1s; 3/5s", _common_steps()),
        Scenario("epoch-scale clock", "3/1s", _common_steps(), start=1.7e9 + 0.123),
        Scenario(
            "products beyond 2**53",
            [Rate(2**32 - 1, 40 * 86400.0), Rate(10_000, 3600.0)],
            [Hit("k", 5000), Advance(3599.5), Hit("k", 5000), Peek("k"), Hit("k", 300)],
            start=1.7e9,
        ),
    ],
    "token_bucket": [
        Scenario("single rate", "3/1s", _common_steps()),
        Scenario(
            "one token per interval, rounded up",
            "3/1s",  # interval 333333334ns
            [
                Hit("k", 3),
                Hit("k"),
                Advance(0.333333333),
                Hit("k"),  # 1ns short
                Advance(NS),
                Hit("k"),
                Peek("k"),
                Advance(10.0),
                Peek("k"),
            ],
        ),
        Scenario("several rates", "2/1s; 3/5s", _common_steps()),
        Scenario("epoch-scale clock", "3/1s", _common_steps(), start=1.7e9 + 0.123),
    ],
}


def scenario_params() -> list[object]:
    params: list[object] = []
    for algorithm in ALGORITHMS:
        for scenario in SCENARIOS[algorithm]:
            params.append(
                pytest.param(algorithm, scenario, id=f"{algorithm}-{scenario.name}")
            )
    return params


def run_both(redis_url: str, algorithm: str, scenario: Scenario) -> int:
    """Run the scenario on both storages; assert each decision agrees."""
    clock = ManualClock(scenario.start)
    memory = Limiter(scenario.rates, algorithm=algorithm, clock=clock, gc_interval=None)
    shared = Limiter(
        scenario.rates, algorithm=algorithm, clock=clock, storage=redis_url
    )
    decisions = 0
    with memory, shared:
        for key in {step.key for step in scenario.steps if hasattr(step, "key")}:
            shared.reset(key)  # a server shared by several scenarios starts clean
        for i, step in enumerate(scenario.steps):
            match step:
                case Advance(seconds):
                    clock.advance(seconds)
                    continue
                case Reset(key):
                    memory.reset(key)
                    shared.reset(key)
                    continue
                case Hit(key, cost):
                    expected, got = memory.hit(key, cost), shared.hit(key, cost)
                case Peek(key):
                    expected, got = memory.peek(key), shared.peek(key)
            assert fields(got) == fields(expected), (
                f"step {i} {step} at t={clock.now_ns()}ns:\n"
                f"  memory: {expected!r}\n  redis:  {got!r}"
            )
            decisions += 1
        assert shared.stats()["errors"] == 0
    return decisions


@pytest.mark.parametrize(("algorithm", "scenario"), scenario_params())
def test_scenario(redis_url: str, algorithm: str, scenario: Scenario) -> None:
    assert run_both(redis_url, algorithm, scenario) > 0


def random_scenario(seed: int) -> Scenario:
    """A seeded mix of rates, costs and clock moves, edges included."""
    rng = random.Random(seed)
    periods = [1e-9, 3.33e-7, 0.0015, 0.25, 1.0, 90.5, 3600.0, 49 * 86400.0]
    rates = [
        Rate(rng.choice([1, 2, 3, 5, 10, 1000]), rng.choice(periods))
        for _ in range(rng.randint(1, 3))
    ]
    smallest = min(rate.limit for rate in rates)
    costs = [1, 1, 1, 2, smallest, smallest + 1, max(1, smallest - 1)]
    steps: list[Step] = []
    for _ in range(60):
        roll = rng.random()
        key = rng.choice("ab")
        if roll < 0.3:
            period = rng.choice(rates).period
            steps.append(
                Advance(rng.choice([1e-9, period * rng.random(), period, 2 * period]))
            )
        elif roll < 0.85:
            steps.append(Hit(key, rng.choice(costs)))
        elif roll < 0.97:
            steps.append(Peek(key))
        else:
            steps.append(Reset(key))
    start = rng.choice([0.0, 12.345678901, 1.7e9 + rng.random()])
    return Scenario(f"random {seed}", rates, steps, start)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seed", range(8))
def test_random_scenarios(redis_url: str, algorithm: str, seed: int) -> None:
    assert run_both(redis_url, algorithm, random_scenario(seed)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_many_random_scenarios(redis_url: str, algorithm: str) -> None:
    for seed in range(100, 400):
        run_both(redis_url, algorithm, random_scenario(seed))
