"""shardlimit: a rate limiter for Python web services with a sharded Rust core.

>>> from shardlimit import Limiter, ManualClock
>>> clock = ManualClock()
>>> limiter = Limiter("2/second", clock=clock, gc_interval=None)
>>> [bool(limiter.hit("user:42")) for _ in range(3)]
[True, True, False]
>>> clock.advance(1.0)
>>> limiter.hit("user:42").remaining
1

The public names are listed in ``__all__``; ``shardlimit._core`` is private.
"""

from shardlimit._core import Decision, ManualClock
from shardlimit.errors import ConfigError, ShardLimitError, StorageError
from shardlimit.limiter import ALGORITHMS, Limiter
from shardlimit.rates import Rate, parse_duration, parse_rates

__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "Decision",
    "Limiter",
    "ManualClock",
    "Rate",
    "ShardLimitError",
    "StorageError",
    "parse_duration",
    "parse_rates",
]

__version__ = "0.1.0"
