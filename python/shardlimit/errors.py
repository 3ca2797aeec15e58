"""The exceptions shardlimit raises.

Each one subclasses the nearest built-in as well as :class:`ShardLimitError`, so callers
can catch either the library's family or the ordinary Python category.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ShardLimitError", "StorageError"]


class ShardLimitError(Exception):
    """Base class of every error shardlimit raises on purpose."""


class ConfigError(ShardLimitError, ValueError):
    """A rate, algorithm, storage URL, shard count, duration or setting is invalid.

    The message names the argument (or variable) and the bad value.
    """


class StorageError(ShardLimitError, RuntimeError):
    """The storage backend could not answer (for example, Redis is unreachable).

    Raised only with ``on_storage_error="raise"``; the original error is chained as
    ``__cause__``.
    """
