"""The protocol every storage backend of a :class:`~shardlimit.Limiter` implements."""

from __future__ import annotations

from typing import Any, Protocol

from shardlimit._core import Decision

__all__ = ["Backend"]


class Backend(Protocol):
    """What a limiter needs of its storage.

    The limiter validates keys and costs before it calls a backend, except on the
    memory store, whose Rust methods validate them on the hot path themselves.
    """

    def hit(self, key: str, cost: int) -> Decision:
        """Take a hit of ``cost`` on ``key`` if every rate allows it."""

    def peek(self, key: str) -> Decision:
        """Say what a cost-1 hit on ``key`` would get now, consuming nothing."""

    def reset(self, key: str) -> None:
        """Forget ``key``."""

    def sweep(self) -> int:
        """Remove expired state; return how many entries went."""

    def stats(self) -> dict[str, Any]:
        """Return the backend's counters."""

    def close(self) -> None:
        """Release connections and threads."""
