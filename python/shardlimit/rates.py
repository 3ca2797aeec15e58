"""Rates and durations: :class:`Rate`, :func:`parse_rates` and :func:`parse_duration`.

A rate is a limit and a period: ``Rate(100, 60.0)`` admits 100 hits per 60 seconds.
Text forms accepted by :func:`parse_rates`::

    10/second   10/s   10 per second   100/5minutes   100 per 5 minutes
    10/second; 1000/hour      (several rates, separated by ';' or ',')

Units: ns, us, ms, s/sec/second(s), m/min/minute(s), h/hour(s), d/day(s).

Durations accepted by :func:`parse_duration`: ``250ms``, ``30s``, ``5m``, ``1h``,
``1d`` and bare seconds (``"2.5"``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shardlimit.errors import ConfigError

__all__ = ["MAX_LIMIT", "Rate", "largest_unit", "parse_duration", "parse_rates"]

#: The largest limit a rate may have (the counters are 32-bit).
MAX_LIMIT = 2**32 - 1

#: The shortest period a rate may have: one nanosecond, the clock's resolution.
MIN_PERIOD = 1e-9

#: The longest period a rate may have: 10 years, far inside the nanosecond clock.
MAX_PERIOD = 10 * 365 * 86400.0

#: Longer numbers are refused before conversion: no valid rate or duration needs
#: them, and converting thousands of digits is slow (Python caps it at 4300).
_MAX_DIGITS = 30

_UNITS = {
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "nanoseconds": 1e-9,
    "us": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

# Written so that no two adjacent parts can match the same characters: a long run
# of spaces is then rejected in linear time, not after exponential backtracking.
_RATE_RE = re.compile(
    r"^(?P<limit>\d+)\s*(?:/|per\b)\s*(?:(?P<count>\d+(?:\.\d+)?)\s*)?"
    r"(?P<unit>[a-z]+)$",
    re.IGNORECASE,
)
_DURATION_RE = re.compile(
    r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit of ``limit`` hits per ``period`` seconds.

    Rates compare and hash by value, so they can key dictionaries. ``limit`` must be
    an integer from 1 to 4294967295 and ``period`` a finite number of seconds above
    zero (at least one nanosecond, at most ten years); anything else raises
    :class:`~shardlimit.ConfigError`.
    """

    limit: int
    period: float

    def __post_init__(self) -> None:
        """Validate and normalise the fields."""
        limit, period = self.limit, self.period
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ConfigError(f"Rate limit must be an integer, got {limit!r}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ConfigError(
                f"Rate limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise ConfigError(
                f"Rate period must be a number of seconds, got {period!r}"
            )
        if not _finite_between(period, MIN_PERIOD, MAX_PERIOD):
            raise ConfigError(
                f"Rate period must be between 1ns and {MAX_PERIOD:g}s, got {period!r}"
            )
        object.__setattr__(self, "period", float(period))

    @property
    def period_ns(self) -> int:
        """The period in whole nanoseconds, as the core counts time."""
        return max(1, round(self.period * 1e9))

    def __str__(self) -> str:
        """Return the rate in the text form :func:`parse_rates` reads back."""
        return f"{self.limit}/{_format_period(self.period, self.period_ns)}"


def _finite_between(value: float, low: float, high: float) -> bool:
    """Whether ``value`` is a finite number in ``[low, high]``; ints of any size."""
    if isinstance(value, int):
        return low <= value <= high  # compared exactly, never converted to float
    return math.isfinite(value) and low <= value <= high


#: Units :meth:`Rate.__str__` writes, largest first, in nanoseconds.
_FORMAT_UNITS = (
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)


def largest_unit(period_ns: int) -> tuple[int, str]:
    """Return ``(count, unit)`` for a period in the largest unit that divides it.

    ``90_000_000_000`` gives ``(90, "s")``; exact, for any number of nanoseconds.
    """
    for unit, size in _FORMAT_UNITS:
        if period_ns % size == 0:
            return period_ns // size, unit
    return period_ns, "ns"  # pragma: no cover - size 1 divides everything


def _format_period(period: float, period_ns: int) -> str:
    """Write a period so that :func:`parse_rates` reads back the same nanoseconds.

    The largest unit that divides it, when that reads back exactly (``90s``,
    ``1500us``); otherwise the seconds, as Python's shortest exact form of the float.
    """
    count, unit = largest_unit(period_ns)
    if round(count * _UNITS[unit] * 1e9) == period_ns:
        return f"{count}{unit}"
    return f"{period!r}s"


def parse_rates(text: str | Rate | Iterable[Rate]) -> tuple[Rate, ...]:
    """Parse one or more rates, such as ``"10/second; 1000/hour"``.

    A :class:`Rate` or a sequence of them is accepted too and returned as a tuple.
    Raises :class:`~shardlimit.ConfigError` naming the part that does not parse.
    """
    if isinstance(text, Rate):
        return (text,)
    if not isinstance(text, str):
        rates = tuple(text)
        for rate in rates:
            if not isinstance(rate, Rate):
                raise ConfigError(f"rates must be Rate objects, got {rate!r}")
        if not rates:
            raise ConfigError("rates must not be empty")
        return rates
    parts = [part for part in re.split(r"[;,]", text) if part.strip()]
    if not parts:
        raise ConfigError(f"rates: no rate in {text!r}")
    return tuple(_parse_one_rate(part) for part in parts)


def _parse_one_rate(part: str) -> Rate:
    match = _RATE_RE.match(part.strip())
    if match is None:
        raise ConfigError(
            f"rate {part.strip()!r} is not of the form 'N/unit', 'N per unit' "
            "or 'N/5minutes'"
        )
    unit = match["unit"].lower()
    if unit not in _UNITS:
        raise ConfigError(
            f"rate {part.strip()!r} has an unknown unit {match['unit']!r}; use "
            "s/sec/second, m/min/minute, h/hour or d/day"
        )
    if len(match["limit"]) > _MAX_DIGITS or len(match["count"] or "") > _MAX_DIGITS:
        raise ConfigError(f"rate {part.strip()!r}: number too large")
    count = float(match["count"]) if match["count"] else 1.0
    try:
        return Rate(int(match["limit"]), count * _UNITS[unit])
    except ConfigError as exc:
        raise ConfigError(f"rate {part.strip()!r}: {exc}") from None


def parse_duration(text: str | float, *, name: str = "duration") -> float:
    """Parse a duration such as ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``.

    A bare number (or a number given as ``int``/``float``) means seconds. Returns
    seconds as a float; raises :class:`~shardlimit.ConfigError` naming ``name`` and
    the value when it is not a non-negative finite duration.
    """
    if isinstance(text, bool):
        raise ConfigError(f"{name} must be a duration such as '30s', got {text!r}")
    if isinstance(text, int | float):
        if not _finite_between(text, 0, MAX_PERIOD):
            raise ConfigError(
                f"{name} must be a finite duration from 0 to {MAX_PERIOD:g}s, "
                f"got {text!r}"
            )
        seconds = float(text)
    else:
        match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
        unit = match["unit"].lower() if match else ""
        if match is None or (unit and unit not in _UNITS):
            raise ConfigError(
                f"{name} must be a duration such as 250ms, 30s, 5m, 1h or 1d, "
                f"got {text!r}"
            )
        if len(match["number"]) > _MAX_DIGITS:
            raise ConfigError(f"{name}: number too large in {text!r}")
        seconds = float(match["number"]) * (_UNITS[unit] if unit else 1.0)
    if not _finite_between(seconds, 0, MAX_PERIOD):
        raise ConfigError(
            f"{name} must be a finite duration from 0 to {MAX_PERIOD:g}s, got {text!r}"
        )
    return seconds
