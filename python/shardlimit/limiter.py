"""The :class:`Limiter`: rates, an algorithm and a storage, behind one small API."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from shardlimit._backend import Backend
from shardlimit._core import MAX_SHARDS, Decision, ManualClock, MemoryStore
from shardlimit._gc import GcThread
from shardlimit.errors import ConfigError
from shardlimit.rates import Rate, parse_duration, parse_rates

__all__ = ["ALGORITHMS", "ON_STORAGE_ERROR", "Limiter"]

#: The algorithms a limiter can run, by the names ``algorithm=`` takes.
ALGORITHMS: Final = (
    "fixed_window",
    "sliding_window",
    "sliding_window_counter",
    "token_bucket",
)

#: What a shared-storage limiter does when its storage cannot answer.
ON_STORAGE_ERROR: Final = ("allow", "deny", "raise")

_REDIS_SCHEMES: Final = ("redis", "rediss", "redis+cluster", "rediss+cluster")

#: The shortest GC interval: a sweep every millisecond is already a busy loop.
_MIN_GC_INTERVAL: Final = 0.001


class Limiter:
    """A rate limiter: ``hit(key)`` admits a key's hit or says how long to wait.

    :param rates: ``"100/minute"``, a :class:`Rate`, or several (``"10/s; 1000/h"``);
        with several, a hit passes only if every rate allows it.
    :param algorithm: one of :data:`ALGORITHMS`.
    :param storage: ``"memory://"`` (this process) or ``"redis://host:port/db"``,
        ``"rediss://..."``, ``"redis+cluster://host:port"`` (shared by processes and
        hosts).
    :param shards: shards of the memory store (1 to 65536).
    :param gc_interval: seconds between GC sweeps of the memory store (a number or a
        duration such as ``"30s"``); ``None`` or ``0`` runs no GC thread.
    :param max_keys: the most keys the memory store holds; a new key on a full
        store is denied until the GC frees room (keys already held keep working).
    :param clock: a :class:`ManualClock` for tests; ``None`` reads real time.
    :param on_storage_error: shared storage only: ``"allow"`` (fail open),
        ``"deny"`` or ``"raise"`` (:class:`~shardlimit.StorageError`).
    :param storage_timeout: shared storage only: connect and socket timeout, seconds.

    Every bad argument raises :class:`~shardlimit.ConfigError` naming it and its value.
    """

    rates: tuple[Rate, ...]
    algorithm: str
    storage_url: str
    clock: ManualClock | None

    def __init__(
        self,
        rates: str | Rate | Iterable[Rate],
        *,
        algorithm: str = "sliding_window",
        storage: str = "memory://",
        shards: int = 64,
        gc_interval: float | str | None = 30.0,
        max_keys: int = 1_000_000,
        clock: ManualClock | None = None,
        on_storage_error: str = "allow",
        storage_timeout: float = 0.1,
    ) -> None:
        """Validate every argument, then open the storage and start the GC thread."""
        self.rates = parse_rates(rates)
        self.algorithm = _check_algorithm(algorithm)
        self.storage_url = storage
        self.clock = _check_clock(clock)
        self._options: dict[str, Any] = {
            "algorithm": algorithm,
            "storage": storage,
            "shards": shards,
            "gc_interval": gc_interval,
            "max_keys": max_keys,
            "clock": clock,
            "on_storage_error": on_storage_error,
            "storage_timeout": storage_timeout,
        }
        interval = _check_gc_interval(gc_interval)
        self._gc: GcThread | None = None
        self._closed = False
        scheme = _storage_scheme(storage)
        if scheme == "memory":
            self._memory: MemoryStore | None = MemoryStore(
                [(rate, rate.limit, rate.period_ns) for rate in self.rates],
                algorithm=self.algorithm,
                shards=_check_int("shards", shards, 1, MAX_SHARDS),
                max_keys=_check_int("max_keys", max_keys, 1, 2**63 - 1),
                clock=self.clock,
            )
            self._backend: Backend = _MemoryBackend(self._memory)
            # The hot path: the instance's hit and peek are the Rust methods
            # themselves, which validate key and cost as the methods below do. This
            # saves a Python frame (about a quarter of the time of a hit).
            self.hit = self._memory.hit  # type: ignore[method-assign]
            self.peek = self._memory.peek  # type: ignore[method-assign]
            if interval:
                self._gc = GcThread(self._memory.sweep, interval)
                self._gc.start()
        else:
            self._memory = None
            self._backend = _open_redis(self, scheme, on_storage_error, storage_timeout)

    def hit(self, key: str, cost: int = 1) -> Decision:
        """Take a hit of ``cost`` on ``key`` if every rate allows it.

        Returns a :class:`Decision`; a denial consumes nothing. ``key`` must be a
        ``str`` (:class:`TypeError` otherwise) and ``cost`` an ``int`` of at least 1
        (:class:`ValueError` otherwise); a cost above a limit is denied with
        ``retry_after == math.inf``.
        """
        _check_key(key)
        _check_cost(cost)
        return self._backend.hit(key, 1 if cost is None else cost)

    def peek(self, key: str) -> Decision:
        """Say what a cost-1 hit on ``key`` would get now, consuming nothing."""
        _check_key(key)
        return self._backend.peek(key)

    def reset(self, key: str) -> None:
        """Forget ``key``: its next hit is treated as a new key's."""
        _check_key(key)
        self._backend.reset(key)

    def sweep(self) -> int:
        """Run the GC now; return how many entries it removed (0 on Redis)."""
        return self._backend.sweep()

    def stats(self) -> dict[str, Any]:
        """Return counters: keys, shards, hits, GC, lock contention, memory."""
        stats = self._backend.stats()
        stats["algorithm"] = self.algorithm
        stats["rates"] = [str(rate) for rate in self.rates]
        if self._memory is not None:
            gc = self._gc
            stats["gc"] = {
                "interval": gc.interval if gc else None,
                "running": gc.running if gc else False,
                "runs": stats.pop("gc_runs"),
                "removed": stats.pop("gc_removed"),
                "last_sweep_seconds": stats.pop("last_sweep_seconds"),
                "errors": gc.errors if gc else 0,
            }
            stats["contention"] = {
                "contended": stats.pop("contended"),
                "wait_seconds": stats.pop("wait_seconds"),
            }
        return stats

    def with_rates(self, rates: str | Rate | Iterable[Rate]) -> Limiter:
        """Return a new limiter like this one but with other rates.

        It has the same algorithm, storage, options and clock; its keys never mix
        with this limiter's. The caller closes it.
        """
        return Limiter(rates, **self._options)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop the GC thread and release the storage. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._gc is not None:
            self._gc.stop()
        self._backend.close()

    def __enter__(self) -> Limiter:
        """Return the limiter itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the limiter."""
        self.close()

    def __repr__(self) -> str:
        """Show rates, algorithm and storage."""
        rates = "; ".join(str(rate) for rate in self.rates)
        return (
            f"Limiter({rates!r}, algorithm={self.algorithm!r}, "
            f"storage={self.storage_url!r})"
        )


class _MemoryBackend:
    """Adapts the Rust :class:`MemoryStore` to the :class:`Backend` protocol."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def hit(self, key: str, cost: int) -> Decision:
        return self._store.hit(key, cost)

    def peek(self, key: str) -> Decision:
        return self._store.peek(key)

    def reset(self, key: str) -> None:
        self._store.reset(key)

    def sweep(self) -> int:
        return self._store.sweep()

    def stats(self) -> dict[str, Any]:
        stats = self._store.stats()
        stats["backend"] = "memory"
        return stats

    def close(self) -> None:
        """Nothing to release: the store goes with the last reference."""


def _open_redis(
    limiter: Limiter, scheme: str, on_storage_error: str, timeout: float
) -> Backend:
    if on_storage_error not in ON_STORAGE_ERROR:
        raise ConfigError(
            f"on_storage_error must be one of {', '.join(ON_STORAGE_ERROR)}; "
            f"got {on_storage_error!r}"
        )
    timeout = parse_duration(timeout, name="storage_timeout")
    if timeout <= 0:
        raise ConfigError(f"storage_timeout must be > 0 seconds, got {timeout!r}")
    try:
        from shardlimit.redis_storage import RedisStorage  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            f"storage {limiter.storage_url!r} needs redis-py: "
            "pip install 'shardlimit[redis]'"
        ) from exc
    backend: Backend = RedisStorage(
        limiter.storage_url,
        rates=limiter.rates,
        algorithm=limiter.algorithm,
        clock=limiter.clock,
        on_storage_error=on_storage_error,
        timeout=timeout,
    )
    return backend


def _check_algorithm(algorithm: object) -> str:
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}"
        )
    return str(algorithm)


def _check_clock(clock: object) -> ManualClock | None:
    if clock is not None and not isinstance(clock, ManualClock):
        raise ConfigError(f"clock must be a ManualClock or None, got {clock!r}")
    return clock


def _check_gc_interval(value: float | str | None) -> float:
    if value is None:
        return 0.0
    seconds = parse_duration(value, name="gc_interval")
    if seconds and seconds < _MIN_GC_INTERVAL:
        raise ConfigError(f"gc_interval must be 0 (off) or >= 1ms, got {value!r}")
    return seconds


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
    return value


def _storage_scheme(storage: object) -> str:
    if not isinstance(storage, str):
        raise ConfigError(f"storage must be a URL string, got {storage!r}")
    scheme = urlsplit(storage).scheme.lower() if "://" in storage else ""
    if scheme == "memory":
        if storage.rstrip("/").lower() != "memory:":
            raise ConfigError(
                f"storage {storage!r}: the memory store takes no host or path; "
                "use 'memory://'"
            )
        return scheme
    if scheme in _REDIS_SCHEMES:
        return scheme
    raise ConfigError(
        "storage must be 'memory://', 'redis://host:port/db', 'rediss://...', "
        f"'redis+cluster://host:port' or 'rediss+cluster://...'; got {storage!r}"
    )


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"key must be str, got {type(key).__name__}")


def _check_cost(cost: object) -> None:
    if cost is None:  # as on the memory store: None means the default, 1
        return
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise TypeError(f"cost must be an int, got {cost!r}")
    if cost < 1:
        raise ValueError(f"cost must be >= 1, got {cost!r}")
