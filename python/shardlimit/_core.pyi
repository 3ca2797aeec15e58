"""Stubs of the Rust extension ``shardlimit._core`` (private: use ``shardlimit``)."""

from typing import Any, Self, final

__all__ = [
    "MAX_LIMIT",
    "MAX_SHARDS",
    "Decision",
    "ManualClock",
    "MemoryStore",
    "_panic",
]

MAX_SHARDS: int
MAX_LIMIT: int

@final
class ManualClock:
    """A clock for tests: it reads the time it is set to and moves only when told to.

    A limiter given one reads time only from it, so tests never sleep. It never goes
    backwards: ``advance`` takes seconds >= 0 and ``set`` a time not before now
    (``ValueError`` otherwise).
    """

    def __new__(cls, start: float = 0.0) -> Self: ...
    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0)."""

    def set(self, seconds: float) -> None:
        """Set the clock to ``seconds``; it never goes backwards."""

    def now(self) -> float:
        """Return the time now, in seconds."""

    def now_ns(self) -> int:
        """Return the time now, in whole nanoseconds."""

@final
class Decision:
    """The answer of a limiter for one hit. Immutable; ``bool(d)`` is ``d.allowed``.

    ``remaining`` counts the cost-1 hits the deciding rate still allows now;
    ``reset_after`` is the seconds until that rate is back to full capacity;
    ``retry_after`` is 0.0 when allowed, otherwise the seconds until a hit of the
    same cost could pass (``math.inf`` if never: the cost exceeds the limit);
    ``rate`` is the violated rate when denied, the one with least remaining when
    allowed.
    """

    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def rate(self) -> Any: ...
    def __new__(
        cls,
        *,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_after: float,
        retry_after: float,
        rate: Any,
    ) -> Self: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class MemoryStore:
    """The sharded in-memory store for one algorithm and one list of rates."""

    def __new__(
        cls,
        rates: list[tuple[Any, int, int]],
        *,
        algorithm: str,
        shards: int,
        max_keys: int,
        clock: ManualClock | None = None,
    ) -> Self: ...
    def hit(self, key: str, cost: int | None = None) -> Decision:
        """Take a hit of ``cost`` on ``key`` if every rate allows it."""

    def peek(self, key: str) -> Decision:
        """Say what a cost-1 hit on ``key`` would get now, consuming nothing."""

    def reset(self, key: str) -> bool:
        """Forget ``key``; return whether it was held."""

    def sweep(self) -> int:
        """Remove entries that behave as fresh keys; runs without the GIL."""

    def stats(self) -> dict[str, Any]:
        """Return the store's counters."""

    @property
    def algorithm(self) -> str: ...
    @property
    def entry_size(self) -> int: ...
    def __len__(self) -> int: ...

def _panic(message: str) -> None:
    """Panic on purpose, so the tests can prove a panic becomes a Python exception."""
