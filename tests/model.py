"""A plain-Python reference model of shardlimit's four algorithms and its store.

The model is written from the contract (shared DESIGN.md and the algorithms' doc
comments), not from the Rust: each algorithm keeps the state its definition talks
about (the admitted hits of a window, the admission times of the log, the counts of
the current and the previous window, the theoretical arrival time of the bucket), in
integer nanoseconds, and answers with the same fields as a ``Decision``:

* ``allowed``; ``limit`` and ``rate`` of the deciding rate (the violated rate with
  the longest wait when denied, the rate with least remaining when allowed; the
  first one on ties);
* ``remaining``: cost-1 hits that rate still allows after the decision;
* ``reset_after``: nanoseconds until that rate is back to full capacity;
* ``retry_after``: 0 when allowed, else nanoseconds until a hit of this cost could
  pass, ``None`` (infinity) when it never can (the cost exceeds a limit).

Several rates are all-or-nothing; a denied hit changes nothing; ``peek`` describes
a key now without consuming (what a cost-1 hit would face: ``remaining`` and
``reset_after`` as they stand). :class:`ModelStore` adds the memory store's key set:
``max_keys`` (a new key on a full store is denied with ``retry_after`` = the
shortest period), ``reset`` and ``sweep`` (which removes exactly the keys that
behave as fresh ones).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

NS_PER_S = 1_000_000_000

__all__ = [
    "ALGORITHMS",
    "Eval",
    "ModelDecision",
    "ModelRate",
    "ModelStore",
    "combine",
]


@dataclass(frozen=True)
class ModelRate:
    """``limit`` hits per ``period`` nanoseconds."""

    limit: int
    period: int

    def __post_init__(self) -> None:
        assert self.limit >= 1
        assert self.period >= 1

    @property
    def interval(self) -> int:
        """The token bucket's emission interval, rounded up: ceil(period / limit)."""
        return -(-self.period // self.limit)

    @property
    def tolerance(self) -> int:
        """The token bucket's burst tolerance: limit * interval."""
        return self.limit * self.interval


@dataclass(frozen=True)
class Eval:
    """What one rate says about a hit of some cost, before anything is consumed."""

    allowed: bool
    remaining: int  # cost-1 hits allowed now, before this hit
    reset_now: int  # ns until full capacity if nothing is taken
    reset_taken: int  # ns until full capacity if this hit is taken
    retry: int | None  # ns until this cost fits (0 when allowed); None: never


@dataclass(frozen=True)
class ModelDecision:
    """The model's answer, field by field, with times in nanoseconds."""

    allowed: bool
    rate_index: int
    limit: int
    remaining: int
    reset_after: int
    retry_after: int | None

    def seconds(self) -> tuple[bool, int, int, float, float]:
        """Return (allowed, limit, remaining, reset_after, retry_after) as the
        binding reports them: nanoseconds divided by 1e9, ``inf`` for never."""
        retry = math.inf if self.retry_after is None else self.retry_after / 1e9
        return (
            self.allowed,
            self.limit,
            self.remaining,
            self.reset_after / 1e9,
            retry,
        )


class Algorithm(Protocol):
    """One algorithm's rules for the state of one rate of one key."""

    name: str

    def fresh(self) -> Any:
        """Return the state of a key never seen."""

    def evaluate(self, rate: ModelRate, state: Any, now: int, cost: int) -> Eval:
        """Say what a hit of ``cost`` (at most the limit) would get at ``now``."""

    def consume(self, rate: ModelRate, state: Any, now: int, cost: int) -> Any:
        """Return the state after an allowed hit of ``cost`` at ``now``."""

    def idle(self, rate: ModelRate, state: Any, now: int) -> bool:
        """Whether the state behaves as a fresh key's, now and from now on."""


# --- fixed window ---------------------------------------------------------------------


class FixedWindow:
    """Windows [k*P, (k+1)*P); at most ``limit`` hits admitted in each.

    State: ``(k, n)``, n hits admitted in window k.
    """

    name = "fixed_window"

    def fresh(self) -> tuple[int, int]:
        return (-1, 0)

    @staticmethod
    def _used(rate: ModelRate, state: tuple[int, int], now: int) -> int:
        window, count = state
        return count if window == now // rate.period else 0

    def evaluate(
        self, rate: ModelRate, state: tuple[int, int], now: int, cost: int
    ) -> Eval:
        used = self._used(rate, state, now)
        window_end = (now // rate.period + 1) * rate.period
        allowed = used + cost <= rate.limit
        return Eval(
            allowed=allowed,
            remaining=rate.limit - used,
            # Full again when the window ends (the next one starts empty).
            reset_now=window_end - now if used else 0,
            reset_taken=window_end - now,
            # Any cost up to the limit fits in the next, empty window.
            retry=0 if allowed else window_end - now,
        )

    def consume(
        self, rate: ModelRate, state: tuple[int, int], now: int, cost: int
    ) -> tuple[int, int]:
        return (now // rate.period, self._used(rate, state, now) + cost)

    def idle(self, rate: ModelRate, state: tuple[int, int], now: int) -> bool:
        return self._used(rate, state, now) == 0


# --- sliding window log ---------------------------------------------------------------


class SlidingWindowLog:
    """At most ``limit`` admitted hits in any interval of one period.

    State: a tuple of admission times, oldest first, one per unit of cost. A hit at
    t counts while ``now < t + period``.
    """

    name = "sliding_window"

    def fresh(self) -> tuple[int, ...]:
        return ()

    @staticmethod
    def _live(rate: ModelRate, log: tuple[int, ...], now: int) -> tuple[int, ...]:
        return tuple(t for t in log if now < t + rate.period)

    def evaluate(
        self, rate: ModelRate, state: tuple[int, ...], now: int, cost: int
    ) -> Eval:
        live = self._live(rate, state, now)
        used = len(live)
        allowed = used + cost <= rate.limit
        if allowed:
            retry = 0
        else:
            # The oldest (used + cost - limit) hits must have expired first.
            must_go = used + cost - rate.limit
            retry = live[must_go - 1] + rate.period - now
        return Eval(
            allowed=allowed,
            remaining=rate.limit - used,
            reset_now=live[-1] + rate.period - now if live else 0,
            reset_taken=rate.period,
            retry=retry,
        )

    def consume(
        self, rate: ModelRate, state: tuple[int, ...], now: int, cost: int
    ) -> tuple[int, ...]:
        return (*self._live(rate, state, now), *([now] * cost))

    def idle(self, rate: ModelRate, state: tuple[int, ...], now: int) -> bool:
        return not self._live(rate, state, now)


# --- sliding window counter -----------------------------------------------------------


class SlidingWindowCounter:
    """The previous window's hits weighted by its overlap with the sliding window.

    State: ``{window index: hits admitted in it}`` (only the last two matter). At
    elapsed time e into window k the estimate is
    ``count[k-1] * (P - e) / P + count[k]``; a hit fits if estimate + cost <= limit,
    compared exactly: ``count[k-1] * (P - e) + (count[k] + cost) * P <= limit * P``.
    """

    name = "sliding_window_counter"

    def fresh(self) -> tuple[tuple[int, int], ...]:
        return ()

    @staticmethod
    def _counts(
        rate: ModelRate, state: tuple[tuple[int, int], ...], now: int
    ) -> tuple[int, int, int]:
        """Return (count of the previous window, of the current one, elapsed)."""
        window = now // rate.period
        counts = dict(state)
        return counts.get(window - 1, 0), counts.get(window, 0), now % rate.period

    @staticmethod
    def _fits(rate: ModelRate, prev: int, cur: int, elapsed: int, cost: int) -> bool:
        period = rate.period
        return prev * (period - elapsed) + (cur + cost) * period <= rate.limit * period

    def _retry(
        self, rate: ModelRate, prev: int, cur: int, elapsed: int, cost: int
    ) -> int:
        """The earliest wait after which the hit fits, if no other hit comes.

        Within a window the condition only gets easier as the previous window's
        weight decays, so the answer is the first window (this one, the next, the
        one after, which is empty) where it can hold, at the earliest elapsed time.
        """
        period = rate.period
        to_next = period - elapsed
        # This window: prev * (P - e) <= (limit - cur - cost) * P.
        room = rate.limit - cur - cost
        if room >= 0 and prev > 0:
            earliest = period - (room * period) // prev
            if earliest < period:
                return max(earliest, elapsed) - elapsed
        # The next window: the current count becomes the previous one.
        room = rate.limit - cost
        if cur == 0:
            return to_next
        earliest = max(0, period - (room * period) // cur)
        if earliest < period:
            return to_next + earliest
        # The window after the next: both counts are zero.
        return to_next + period

    def evaluate(
        self, rate: ModelRate, state: tuple[tuple[int, int], ...], now: int, cost: int
    ) -> Eval:
        prev, cur, elapsed = self._counts(rate, state, now)
        period = rate.period
        weighted = prev * (period - elapsed) + cur * period
        to_next = period - elapsed
        allowed = self._fits(rate, prev, cur, elapsed, cost)
        if cur:
            # The current window's hits weigh in until the end of the next window.
            reset_now = to_next + period
        elif prev:
            reset_now = to_next
        else:
            reset_now = 0
        return Eval(
            allowed=allowed,
            remaining=max(0, rate.limit * period - weighted) // period,
            reset_now=reset_now,
            reset_taken=to_next + period,
            retry=0 if allowed else self._retry(rate, prev, cur, elapsed, cost),
        )

    def consume(
        self, rate: ModelRate, state: tuple[tuple[int, int], ...], now: int, cost: int
    ) -> tuple[tuple[int, int], ...]:
        prev, cur, _ = self._counts(rate, state, now)
        window = now // rate.period
        return ((window - 1, prev), (window, cur + cost))

    def idle(
        self, rate: ModelRate, state: tuple[tuple[int, int], ...], now: int
    ) -> bool:
        prev, cur, _ = self._counts(rate, state, now)
        return prev == 0 and cur == 0


# --- token bucket (GCRA) --------------------------------------------------------------


class TokenBucket:
    """GCRA: interval = ceil(P / limit), tolerance = limit * interval.

    State: the theoretical arrival time (TAT), the moment the bucket is full again.
    A hit of cost c fits if ``max(tat, now) + c * interval - now <= tolerance``.
    """

    name = "token_bucket"

    def fresh(self) -> int:
        return 0

    def evaluate(self, rate: ModelRate, tat: int, now: int, cost: int) -> Eval:
        debt = max(tat - now, 0)  # ns until full capacity
        taken = debt + cost * rate.interval
        allowed = taken <= rate.tolerance
        return Eval(
            allowed=allowed,
            remaining=(rate.tolerance - debt) // rate.interval,
            reset_now=debt,
            reset_taken=taken,
            retry=0 if allowed else taken - rate.tolerance,
        )

    def consume(self, rate: ModelRate, tat: int, now: int, cost: int) -> int:
        return max(tat, now) + cost * rate.interval

    def idle(self, rate: ModelRate, tat: int, now: int) -> bool:
        return tat <= now


ALGORITHMS: dict[str, Algorithm] = {
    alg.name: alg
    for alg in (
        FixedWindow(),
        SlidingWindowLog(),
        SlidingWindowCounter(),
        TokenBucket(),
    )
}


# --- several rates, one decision ------------------------------------------------------


def _waits_longer(a: int | None, b: int | None) -> bool:
    if a is None:
        return b is not None
    return b is not None and a > b


def combine(
    rates: Sequence[ModelRate], evals: Sequence[Eval], cost: int, *, peek: bool
) -> ModelDecision:
    """Fold per-rate evaluations into one all-or-nothing decision."""
    denied = [i for i, e in enumerate(evals) if not e.allowed]
    if denied:
        worst = denied[0]
        for i in denied[1:]:
            if _waits_longer(evals[i].retry, evals[worst].retry):
                worst = i
        e = evals[worst]
        return ModelDecision(
            allowed=False,
            rate_index=worst,
            limit=rates[worst].limit,
            remaining=e.remaining,
            reset_after=e.reset_now,
            retry_after=e.retry,
        )
    best = min(range(len(evals)), key=lambda i: (evals[i].remaining, i))
    e = evals[best]
    return ModelDecision(
        allowed=True,
        rate_index=best,
        limit=rates[best].limit,
        remaining=e.remaining if peek else e.remaining - cost,
        reset_after=e.reset_now if peek else e.reset_taken,
        retry_after=0,
    )


def evaluate_key(
    algorithm: Algorithm,
    rates: Sequence[ModelRate],
    states: Sequence[Any],
    now: int,
    cost: int,
) -> list[Eval]:
    """Evaluate a hit of ``cost`` on every rate; a cost above a rate's limit never
    fits it (its figures are those a cost-1 hit would see)."""
    evals = []
    for rate, state in zip(rates, states, strict=True):
        if cost <= rate.limit:
            evals.append(algorithm.evaluate(rate, state, now, cost))
        else:
            e = algorithm.evaluate(rate, state, now, 1)
            evals.append(Eval(False, e.remaining, e.reset_now, e.reset_taken, None))
    return evals


# --- the store ------------------------------------------------------------------------


@dataclass
class ModelStore:
    """Keys to per-rate states, with the memory store's key bound, reset and sweep.

    A key is held from its first admitted hit until ``reset`` or a ``sweep`` that
    finds it idle. ``max_keys=None`` is unbounded (the Redis storage).
    """

    algorithm_name: str
    rates: Sequence[ModelRate]
    max_keys: int | None = None
    keys: dict[str, list[Any]] = field(default_factory=dict)
    rejected_full: int = 0

    @property
    def algorithm(self) -> Algorithm:
        """Return the algorithm's rules."""
        return ALGORITHMS[self.algorithm_name]

    def _states(self, key: str) -> list[Any]:
        held = self.keys.get(key)
        if held is not None:
            return held
        return [self.algorithm.fresh() for _ in self.rates]

    def hit(self, key: str, cost: int, now: int) -> ModelDecision:
        """Take a hit of ``cost`` on ``key`` at ``now`` if every rate allows it."""
        states = self._states(key)
        evals = evaluate_key(self.algorithm, self.rates, states, now, cost)
        decision = combine(self.rates, evals, cost, peek=False)
        if not decision.allowed:
            return decision
        if key not in self.keys:
            if self.max_keys is not None and len(self.keys) >= self.max_keys:
                self.rejected_full += 1
                return self.full_decision()
            self.keys[key] = states
        self.keys[key] = [
            self.algorithm.consume(rate, state, now, cost)
            for rate, state in zip(self.rates, states, strict=True)
        ]
        return decision

    def full_decision(self) -> ModelDecision:
        """The documented answer to a new key on a full store."""
        index = min(range(len(self.rates)), key=lambda i: (self.rates[i].period, i))
        rate = self.rates[index]
        return ModelDecision(False, index, rate.limit, 0, 0, rate.period)

    def peek(self, key: str, now: int) -> ModelDecision:
        """Describe ``key`` now, as a cost-1 hit would see it; consume nothing."""
        evals = evaluate_key(self.algorithm, self.rates, self._states(key), now, 1)
        return combine(self.rates, evals, 1, peek=True)

    def reset(self, key: str) -> None:
        """Forget ``key``."""
        self.keys.pop(key, None)

    def idle(self, key: str, now: int) -> bool:
        """Whether ``key`` behaves as a fresh key now and from now on."""
        return all(
            self.algorithm.idle(rate, state, now)
            for rate, state in zip(self.rates, self._states(key), strict=True)
        )

    def sweep(self, now: int) -> int:
        """Remove every idle key; return how many went."""
        idle = [key for key in self.keys if self.idle(key, now)]
        for key in idle:
            del self.keys[key]
        return len(idle)


def model_rates(rates: Iterable[Any]) -> list[ModelRate]:
    """Convert ``shardlimit.Rate`` objects to model rates (periods in whole ns)."""
    return [ModelRate(rate.limit, rate.period_ns) for rate in rates]
