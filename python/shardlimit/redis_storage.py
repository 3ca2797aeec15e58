"""Redis and Valkey storage: one limit shared by every process and host using a server.

:class:`RedisStorage` is the backend a :class:`~shardlimit.Limiter` opens for the
``redis://``, ``rediss://`` (TLS) and ``redis+cluster://`` storage URLs. Each decision
is one round trip: an ``EVALSHA`` of the algorithm's Lua script (package data under
``shardlimit/lua``), which reads, decides and writes every rate of the key atomically
on the server, with the same rules and the same answers as the memory store.

Key layout: one key per rate of a decision,
``shardlimit:<alg>:<rates>:<i>:{=<key>}``, where ``<alg>`` is ``fw``, ``sw``,
``swc`` or ``tb``, ``<rates>`` lists every rate of the limiter (``10/1s,1000/1h``)
so that limiters with other rates never share state, ``<i>`` is the rate's index
and the braces are the Redis Cluster hash tag: all keys of one decision hash to one
slot. Values are packed doubles (see ``lua/_common.lua``). Each key expires
(``PX``/``PEXPIRE``) when its state is back to a fresh key's, so Redis needs no GC.

Limitations, in the README's words: a failover can lose the last hits (replication
is asynchronous); a call that timed out may still have been applied; answers are
exact to the nanosecond for periods up to 2**52 ns (52 days), and within double
precision beyond.

Time is the server's ``TIME``, never the client's, unless a clock is injected (a
:class:`~shardlimit.ManualClock` in tests), whose nanoseconds are then sent along.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from shardlimit._core import Decision
from shardlimit.errors import ConfigError, StorageError
from shardlimit.rates import Rate, largest_unit, parse_rates

try:
    import redis
    import redis.cluster
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "shardlimit's Redis storage needs redis-py: pip install 'shardlimit[redis]'"
    ) from exc

__all__ = ["ON_STORAGE_ERROR", "SCHEMES", "RedisStorage"]

logger = logging.getLogger(__name__)

#: The URL schemes :class:`RedisStorage` accepts (``rediss+cluster`` is TLS cluster).
SCHEMES: Final = ("redis", "rediss", "redis+cluster", "rediss+cluster")

#: What a decision does when the server cannot answer.
ON_STORAGE_ERROR: Final = ("allow", "deny", "raise")

#: Seconds the circuit breaker keeps a failed server out of the request path.
DEFAULT_BACKOFF: Final = 1.0

#: Milliseconds added to every key's expiry when a clock is injected: the server's
#: clock and the injected one do not advance together, so without a margin a key
#: could expire (by the server's clock) while the injected clock still needs it.
INJECTED_CLOCK_TTL_MARGIN_MS: Final = 600_000

_ALGORITHM_CODES: Final = {
    "fixed_window": "fw",
    "sliding_window": "sw",
    "sliding_window_counter": "swc",
    "token_bucket": "tb",
}

#: The files under ``shardlimit/lua`` that make each algorithm's script, in order.
_SCRIPT_PARTS: Final = {
    "fixed_window": ("_common", "_window", "fixed_window"),
    "sliding_window": ("_common", "sliding_window"),
    "sliding_window_counter": (
        "_common",
        "_window",
        "_exact",
        "sliding_window_counter",
    ),
    "token_bucket": ("_common", "token_bucket"),
}

#: Errors that mean "the server is unreachable or not serving": they open the
#: circuit. Other errors (a script error, WRONGTYPE on a foreign key) are counted and
#: answered by the policy, but the server is up, so the circuit stays closed.
_UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    OSError,
)

#: ARGV[1] of the scripts: now (whole seconds, nanoseconds; seconds < 0: the
#: server's TIME) and the cost (0: peek).
_CALL: Final = struct.Struct("<ddd")

#: A script's reply: allowed, rate index (1-based), remaining, reset_after and
#: retry_after in nanoseconds (-1: never).
_REPLY: Final = struct.Struct("<ddddd")


class _Clock(Protocol):
    def now_ns(self) -> int: ...


def load_script(algorithm: str) -> bytes:
    """Return the Lua source RedisStorage runs for ``algorithm`` (helpers included)."""
    if algorithm not in _SCRIPT_PARTS:
        raise ConfigError(
            f"algorithm must be one of {', '.join(_SCRIPT_PARTS)}; got {algorithm!r}"
        )
    lua = resources.files("shardlimit") / "lua"
    parts = (lua / f"{part}.lua" for part in _SCRIPT_PARTS[algorithm])
    return b"\n".join(part.read_bytes() for part in parts)


def rate_signature(rates: Iterable[Rate]) -> str:
    """Return the rates as they appear in key names, e.g. ``10/1s,1000/1h``.

    The form is exact (periods in the largest unit that divides them, down to
    nanoseconds), so two different sets of rates never share keys.
    """
    return ",".join(
        "{}/{}{}".format(rate.limit, *largest_unit(rate.period_ns)) for rate in rates
    )


def redact(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


class _Breaker:
    """A small circuit breaker: at most one request per back-off waits on a bad server.

    Closed: every request goes to the server. The first failure opens it (one
    WARNING): requests are answered by the policy without touching the server
    until the back-off has passed; then one request probes (half-open) while the
    others still fail fast. A probe's success closes it (one INFO), a failure
    opens it for another back-off.
    """

    def __init__(self, backoff: float, name: str) -> None:
        self.backoff = backoff
        self.name = name
        self.state = "closed"
        self.opens = 0
        self.fast_failures = 0
        self.last_error: BaseException | None = None
        self._opened_at = 0.0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        """Say whether this request may use the server now."""
        if self.state == "closed":  # the hot path: no lock while all is well
            return True
        with self._lock:
            if self.state == "closed":
                return True
            if self.state == "open" and time.monotonic() >= self._retry_at:
                self.state = "half_open"
                return True
            self.fast_failures += 1
            return False

    def succeeded(self) -> None:
        """Record that the server answered."""
        if self.state == "closed":
            return
        with self._lock:
            if self.state == "closed":
                return
            self.state = "closed"
            down = time.monotonic() - self._opened_at
        logger.info("Redis at %s answers again after %.1fs", self.name, down)

    def failed(self, error: BaseException) -> None:
        """Record that the server could not be reached."""
        now = time.monotonic()
        with self._lock:
            self.last_error = error
            self._retry_at = now + self.backoff
            if self.state != "closed":
                self.state = "open"
                return
            self.state = "open"
            self.opens += 1
            self._opened_at = now
        logger.warning(
            "Redis at %s is unavailable (%s: %s); decisions follow the failure "
            "policy, and one request tries the server again every %.2fs",
            self.name,
            type(error).__name__,
            error,
            self.backoff,
        )

    def retry_in(self) -> float:
        """Return seconds until the next request may try the server (0 if closed)."""
        if self.state == "closed":
            return 0.0
        return max(0.0, self._retry_at - time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        """Return the breaker's state for stats()."""
        with self._lock:
            return {
                "state": self.state,
                "opens": self.opens,
                "fast_failures": self.fast_failures,
                "backoff": self.backoff,
                "retry_in": self.retry_in(),
                "last_error": None
                if self.last_error is None
                else repr(self.last_error),
            }


class _UnavailableError(Exception):
    """The circuit is open: the request did not go to the server."""


#: Everything a call to the server can raise that the failure policy answers.
_FAILURES: Final = (
    _UnavailableError,
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
)


class RedisStorage:
    """A :class:`~shardlimit.Limiter` backend on Redis, Valkey or Redis Cluster.

    :param url: ``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS;
        redis-py query options such as ``?ssl_ca_certs=/path/ca.crt`` apply) or
        ``redis+cluster://host:port`` (any node of the cluster; ``rediss+cluster``
        for TLS).
    :param rates: the limiter's rates (all-or-nothing, as in the memory store).
    :param algorithm: one of the four algorithm names.
    :param clock: an injected clock (``now_ns()``); ``None`` uses the server's TIME.
    :param on_storage_error: ``"allow"``, ``"deny"`` or ``"raise"``: what a decision
        is when the server cannot answer (see :meth:`hit`).
    :param timeout: connect and socket timeout in seconds.
    :param backoff: seconds a failed server is kept out of the request path before
        one request tries it again.

    Bad arguments raise :class:`~shardlimit.ConfigError` naming them. Creating the
    storage does not contact the server.
    """

    def __init__(
        self,
        url: str,
        *,
        rates: str | Rate | Iterable[Rate],
        algorithm: str,
        clock: _Clock | None = None,
        on_storage_error: str = "allow",
        timeout: float = 0.1,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        """Validate the arguments and prepare the client (no connection yet)."""
        self.url = url
        self.rates = parse_rates(rates)
        self.algorithm = algorithm
        self.on_storage_error = _check_policy(on_storage_error)
        self.timeout = _check_seconds("timeout", timeout)
        self._clock = clock
        self._cluster, self._client_url = _check_url(url)
        self._name = redact(url)
        self._script = load_script(algorithm)
        self._sha = hashlib.sha1(self._script, usedforsecurity=False).hexdigest()
        self._prefixes = _key_prefixes(algorithm, self.rates)
        margin = 0 if clock is None else INJECTED_CLOCK_TTL_MARGIN_MS
        self._config = _pack_config(margin, self.rates)
        self._server_time = {cost: _CALL.pack(-1, 0, cost) for cost in (0, 1)}
        self._fallback_rate = min(self.rates, key=lambda rate: rate.limit)
        self._breaker = _Breaker(_check_seconds("backoff", backoff), self._name)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            (
                "hits",
                "allowed",
                "denied",
                "peeks",
                "errors",
                "fallbacks",
                "script_loads",
            ),
            0,
        )
        self._closed = False
        self._client: redis.Redis | redis.cluster.RedisCluster | None = None
        standalone = self._connect()
        if self._cluster:
            standalone.close()  # it only checked the options; see _open_cluster
        else:
            self._client = standalone

    # -- the Backend protocol -------------------------------------------------------

    def hit(self, key: str, cost: int) -> Decision:
        """Take a hit of ``cost`` on ``key`` if every rate allows it (one round trip).

        When the server cannot answer (or the circuit is open), the policy decides:
        ``"allow"`` returns ``allowed=True`` with the smallest-limit rate,
        ``remaining=limit`` and ``reset_after = retry_after = 0``; ``"deny"`` returns
        ``allowed=False``, ``remaining=0`` and ``reset_after = retry_after`` = seconds
        until the server is tried again (at least the back-off when it just failed);
        ``"raise"`` raises :class:`~shardlimit.StorageError` chaining the cause.
        """
        decision = self._decide(key, cost, peek=False)
        with self._lock:
            self._counts["hits"] += 1
            self._counts["allowed" if decision.allowed else "denied"] += 1
        return decision

    def peek(self, key: str) -> Decision:
        """Say what a cost-1 hit on ``key`` would get now, consuming nothing."""
        with self._lock:
            self._counts["peeks"] += 1
        return self._decide(key, 1, peek=True)

    def reset(self, key: str) -> None:
        """Forget ``key`` for this limiter's algorithm and rates (one DEL).

        On failure, ``"raise"`` raises :class:`~shardlimit.StorageError`; with
        ``"allow"`` or ``"deny"`` the reset is skipped (and counted as an error).
        """
        try:
            self._call(lambda client: client.delete(*self._keys(key)))
        except _FAILURES as error:
            if self.on_storage_error == "raise":
                raise self._storage_error(error) from _cause(error, self._breaker)

    def sweep(self) -> int:
        """Do nothing and return 0: Redis expires every key by itself."""
        return 0

    def stats(self) -> dict[str, Any]:
        """Return counters: decisions, errors, fallbacks, script loads, the breaker."""
        with self._lock:
            counts = dict(self._counts)
        return {
            "backend": "redis",
            "url": self._name,
            "cluster": self._cluster,
            "algorithm": self.algorithm,
            "rates": [str(rate) for rate in self.rates],
            **counts,
            "on_storage_error": self.on_storage_error,
            "timeout": self.timeout,
            "breaker": self._breaker.snapshot(),
        }

    def close(self) -> None:
        """Close the connections. Later calls raise StorageError. Safe to call twice."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def keys(self, key: str) -> list[bytes]:
        """Return the Redis keys holding ``key``'s state, one per rate."""
        return self._keys(key)

    def __repr__(self) -> str:
        """Show the URL (password hidden), algorithm and rates."""
        rates = "; ".join(str(rate) for rate in self.rates)
        return (
            f"RedisStorage({self._name!r}, rates={rates!r}, "
            f"algorithm={self.algorithm!r})"
        )

    # -- internals ------------------------------------------------------------------

    def _decide(self, key: str, cost: int, *, peek: bool) -> Decision:
        cost = 0 if peek else cost
        if self._clock is not None:
            seconds, nanos = divmod(self._clock.now_ns(), 1_000_000_000)
            now_and_cost = _CALL.pack(seconds, nanos, cost)
        else:
            now_and_cost = self._server_time.get(cost) or _CALL.pack(-1, 0, cost)
        try:
            reply = self._call(self._eval, self._keys(key), now_and_cost)
        except _FAILURES as error:
            return self._fallback(error)
        return self._to_decision(reply)

    def _eval(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        keys: Sequence[bytes],
        now_and_cost: bytes,
    ) -> Any:
        # execute_command is redis-py's untyped core; the typed wrappers only add a
        # layer of calls to the hot path.
        execute: Callable[..., Any] = client.execute_command
        try:
            return execute(
                "EVALSHA", self._sha, len(keys), *keys, now_and_cost, self._config
            )
        except redis.exceptions.NoScriptError:
            # A new server, a restart or SCRIPT FLUSH: EVAL runs the script and caches
            # it again under the same SHA.
            with self._lock:
                self._counts["script_loads"] += 1
            return execute(
                "EVAL", self._script, len(keys), *keys, now_and_cost, self._config
            )

    def _call(self, action: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise StorageError(f"the Redis storage at {self._name} is closed")
        if not self._breaker.admit():
            raise _UnavailableError
        try:
            client = self._client if self._client is not None else self._open_cluster()
            result = action(client, *args)
        except _UNAVAILABLE as error:
            with self._lock:
                self._counts["errors"] += 1
            self._breaker.failed(error)
            raise
        except redis.exceptions.RedisError:
            with self._lock:
                self._counts["errors"] += 1
            self._breaker.succeeded()
            raise
        self._breaker.succeeded()
        return result

    def _fallback(self, error: BaseException) -> Decision:
        with self._lock:
            self._counts["fallbacks"] += 1
        if self.on_storage_error == "raise":
            raise self._storage_error(error) from _cause(error, self._breaker)
        rate = self._fallback_rate
        if self.on_storage_error == "allow":
            return Decision(
                allowed=True,
                limit=rate.limit,
                remaining=rate.limit,
                reset_after=0.0,
                retry_after=0.0,
                rate=rate,
            )
        wait = self._breaker.retry_in() or self._breaker.backoff
        return Decision(
            allowed=False,
            limit=rate.limit,
            remaining=0,
            reset_after=wait,
            retry_after=wait,
            rate=rate,
        )

    def _storage_error(self, error: BaseException) -> StorageError:
        if isinstance(error, _UnavailableError):
            return StorageError(
                f"Redis at {self._name} is unavailable (the circuit is open; the next "
                f"try is in {self._breaker.retry_in():.2f}s)"
            )
        return StorageError(f"Redis at {self._name} could not answer: {error}")

    def _to_decision(self, reply: bytes) -> Decision:
        allowed, index, remaining, reset_ns, retry_ns = _REPLY.unpack(reply)
        rate = self.rates[int(index) - 1]
        return Decision(
            allowed=allowed == 1.0,
            limit=rate.limit,
            remaining=int(remaining),
            reset_after=reset_ns / 1e9,
            retry_after=math.inf if retry_ns < 0 else retry_ns / 1e9,
            rate=rate,
        )

    def _keys(self, key: str) -> list[bytes]:
        tail = key.encode("utf-8", "surrogatepass") + b"}"
        return [prefix + tail for prefix in self._prefixes]

    def _connect(self) -> redis.Redis:
        """Return a client for the URL (not connected yet); bad options raise here."""
        options = self._client_options()
        try:
            client = redis.Redis.from_url(self._client_url, **options)
            # Build (not open) one connection, so bad query options fail here.
            client.connection_pool.make_connection()
        except (TypeError, ValueError) as error:
            raise ConfigError(f"storage URL {self._name!r}: {error}") from error
        return client

    def _open_cluster(self) -> redis.cluster.RedisCluster:
        # RedisCluster reads the slot map when it is created, so it is created on
        # first use, inside the breaker, not in __init__.
        with self._lock:
            if self._client is None:
                self._client = redis.cluster.RedisCluster.from_url(
                    self._client_url, **self._client_options()
                )
            return cast(redis.cluster.RedisCluster, self._client)

    def _client_options(self) -> dict[str, Any]:
        # No retries inside redis-py: one request waits on a bad server at most once
        # (one timeout); the breaker decides when to try again.
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "shardlimit",
        }


def _cause(error: BaseException, breaker: _Breaker) -> BaseException | None:
    if isinstance(error, _UnavailableError):
        return breaker.last_error
    return error


def _pack_config(margin_ms: int, rates: Sequence[Rate]) -> bytes:
    """ARGV[2] of the scripts: the expiry margin, then each rate's limit and period."""
    parts = [struct.pack("<d", margin_ms)]
    parts += [struct.pack("<dd", rate.limit, rate.period_ns) for rate in rates]
    return b"".join(parts)


def _key_prefixes(algorithm: str, rates: Sequence[Rate]) -> list[bytes]:
    code = _ALGORITHM_CODES[algorithm]
    signature = rate_signature(rates)
    return [
        f"shardlimit:{code}:{signature}:{i}:{{=".encode() for i in range(len(rates))
    ]


def _check_policy(value: object) -> str:
    if value not in ON_STORAGE_ERROR:
        raise ConfigError(
            f"on_storage_error must be one of {', '.join(ON_STORAGE_ERROR)}; "
            f"got {value!r}"
        )
    return str(value)


def _check_seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a number of seconds above 0, got {value!r}")
    return float(value)


def _check_url(url: object) -> tuple[bool, str]:
    """Validate a storage URL; return (cluster?, the URL redis-py is given)."""
    if not isinstance(url, str):
        raise ConfigError(f"storage URL must be a string, got {url!r}")
    shown = redact(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or "://" not in url:
        raise ConfigError(
            f"storage URL {shown!r} must start with redis://, rediss:// or "
            "redis+cluster://"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as error:
        raise ConfigError(f"storage URL {shown!r} has a bad port: {error}") from error
    if not parts.hostname:
        raise ConfigError(f"storage URL {shown!r} names no host")
    cluster = scheme.endswith("+cluster")
    db = parts.path.lstrip("/")
    if db and not (db.isascii() and db.isdigit()):
        raise ConfigError(
            f"storage URL {shown!r}: the path must be a database number, got {db!r}"
        )
    if cluster and db not in ("", "0"):
        raise ConfigError(
            f"storage URL {shown!r}: Redis Cluster has only database 0, got {db!r}"
        )
    plain = scheme.removesuffix("+cluster")
    return cluster, urlunsplit(parts._replace(scheme=plain))
