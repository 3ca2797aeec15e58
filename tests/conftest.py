"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shardlimit import Limiter, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at 1000s (any start works; 0 is a valid time too)."""
    return ManualClock(1000.0)


@pytest.fixture
def make_limiter(clock: ManualClock) -> Iterator[Callable[..., Limiter]]:
    """Build memory limiters on the shared manual clock, without a GC thread, and
    close them all at the end of the test."""
    made: list[Limiter] = []

    def make(rates: Any, **options: Any) -> Limiter:
        options.setdefault("clock", clock)
        options.setdefault("gc_interval", None)
        limiter = Limiter(rates, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()
