"""The profiling server: shardlimit's analogue of Go's pprof, and Prometheus metrics.

:class:`ProfilingServer` serves, on ``PROFILING_ADDR`` (default ``127.0.0.1:6060``):

==============================  ====================================================
``/debug/pprof/``               index of the pages below
``/debug/pprof/mutex``          per-shard lock contention measured in the Rust store,
                                hottest shards first (``?seconds=N``: the change over
                                N seconds; ``?format=json``)
``/debug/pprof/heap``           store entries and estimated bytes by shard, and the top
                                Python allocation sites when tracemalloc traces
                                (``?tracemalloc=start|stop``, ``?top=N``,
                                ``?format=json``)
``/debug/pprof/threads``        every thread's current Python stack
``/debug/pprof/profile``        a sampled profile of all threads for ``?seconds=N``
                                (1 to 60, default 30; one at a time) as collapsed
                                stacks, the input of flamegraph.pl, speedscope and
                                inferno
``/metrics``                    Prometheus text format (needs ``prometheus-client``)
==============================  ====================================================

Everything is read from ``Limiter.stats()`` when a page is requested; nothing runs on
the hot path. The server uses only the standard library's ``http.server``, with one
daemon thread per request, so a slow page never blocks the others.

The CPU profile samples Python stacks with ``sys._current_frames()``: it is a wall-clock
profile, so threads blocked in a wait show up as often as threads that run, and a thread
that holds the GIL for long (inside a Rust call that keeps it) delays the sampler.
"""

from __future__ import annotations

import collections
import errno
import html
import http.client
import http.server
import ipaddress
import json
import logging
import math
import operator
import os
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
import tracemalloc
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from shardlimit.errors import ConfigError

if TYPE_CHECKING:
    from _socket import _RetAddress
    from socketserver import _RequestType

    from prometheus_client.metrics_core import Metric

__all__ = ["DEFAULT_ADDR", "ProfilingServer", "StatsSource", "parse_profiling_addr"]

logger = logging.getLogger(__name__)

#: Where the profiling server listens unless ``PROFILING_ADDR`` says otherwise.
DEFAULT_ADDR = "127.0.0.1:6060"

_LOOPBACK = "127.0.0.1"
_PORT_RE = re.compile(r"\d{1,5}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_MIN_SECONDS = 1.0
_MAX_SECONDS = 60.0
_DEFAULT_PROFILE_SECONDS = 30.0
_DEFAULT_HZ = 100
_MAX_HZ = 200
_DEFAULT_TOP = 25
_MAX_TOP = 1000
_PROBE_TIMEOUT = 1.0
_REQUEST_TIMEOUT = 30.0
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"


class StatsSource(Protocol):
    """What the pages read: a :class:`~shardlimit.Limiter`, or any ``stats()``."""

    def stats(self) -> Mapping[str, Any]:
        """Return the statistics dictionary described by ``Limiter.stats()``."""
        ...


def parse_profiling_addr(addr: str | None) -> tuple[str, int] | None:
    """Parse a ``PROFILING_ADDR`` value into ``(host, port)``, or ``None`` for ``off``.

    Accepted forms: ``host:port``, ``[v6-address]:port``, ``:port`` (which means
    ``127.0.0.1``: a non-loopback address is bound only when written out), and ``off``
    in any case or ``None`` (as the settings hold ``off``). Port ``0`` asks the system
    for a free port.

    Raises:
        ConfigError: naming ``PROFILING_ADDR`` and the value, when it is none of
            these.

    """
    if addr is None:
        return None
    if not isinstance(addr, str):
        raise ConfigError(f"PROFILING_ADDR must be a string, got {addr!r}")
    text = addr.strip()
    if text.lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not _PORT_RE.fullmatch(port) or int(port) > 65535:  # noqa: PLR2004
        raise _bad_addr(addr, "expected host:port, [v6-address]:port, :port or off")
    return _parse_host(addr, host), int(port)


def _parse_host(addr: str, host: str) -> str:
    if not host:
        return _LOOPBACK
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise _bad_addr(addr, f"{host} is not an IPv6 address") from None
    if ":" in host:
        raise _bad_addr(addr, "write an IPv6 address in brackets, as [::1]:6060")
    if not _HOSTNAME_RE.fullmatch(host) or _bad_ipv4(host):
        raise _bad_addr(addr, f"{host!r} is not a host name or address")
    return host


def _bad_ipv4(host: str) -> bool:
    """Tell whether ``host`` is all digits and dots but no IPv4 address."""
    if not host.replace(".", "").isdigit():
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def _bad_addr(addr: str, why: str) -> ConfigError:
    return ConfigError(f"PROFILING_ADDR={addr!r} is invalid: {why}")


class ProfilingServer:
    """Serve the pprof-style pages and ``/metrics`` for some limiters, in a thread.

    Start it in the process that serves requests (in a gunicorn worker, after the
    fork): a server started before ``fork()`` keeps serving in the parent only, and
    the child's copy reports no address until its own :meth:`start`. When the port
    is taken, as when several workers share one address, :meth:`start` returns
    ``False`` and logs one WARNING saying which process has the profile; the
    application keeps serving.

    Example::

        with ProfilingServer("127.0.0.1:6060", limiters=[limiter]) as server:
            print(server.address)
    """

    def __init__(
        self, addr: str | None = DEFAULT_ADDR, *, limiters: Iterable[StatsSource] = ()
    ) -> None:
        """Check ``addr`` (see :func:`parse_profiling_addr`); bind nothing yet."""
        self._addr = addr
        self._bind = parse_profiling_addr(addr)
        self._lock = threading.Lock()
        self._limiters: list[StatsSource] = list(limiters)
        self._stopping = threading.Event()
        self._pages = _Pages(self._snapshots, self._stopping)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    @property
    def address(self) -> tuple[str, int] | None:
        """Return the ``(host, port)`` the server listens on, or ``None``."""
        httpd = self._httpd
        if httpd is None:
            return None
        host, port = httpd.socket.getsockname()[:2]
        return str(host), int(port)

    def add_limiter(self, limiter: StatsSource) -> None:
        """Show ``limiter`` on the pages too; a closed limiter is dropped by itself."""
        with self._lock:
            self._limiters.append(limiter)

    def start(self) -> bool:
        """Bind and serve in a daemon thread; return whether this process serves.

        Returns ``False`` when the address is ``off`` (binding nothing) or cannot be
        bound; the latter is logged once at WARNING. Starting a running server is a
        no-op that returns ``True``.
        """
        if self._bind is None:
            return False
        with self._lock:
            if self._httpd is not None:
                return True
            try:
                httpd = _HTTPServer(self._bind, self._pages)
            except OSError as exc:
                _warn_not_started(self._bind, exc)
                return False
            self._stopping.clear()
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="shardlimit-profiling",
                daemon=True,
            )
            thread.start()
            self._httpd, self._thread = httpd, thread
        return True

    def stop(self) -> None:
        """Stop serving, end any profile in progress and join the server thread."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> Self:
        """Start the server (see :meth:`start`) and return it."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show the configured address and whether the server is serving."""
        return f"ProfilingServer({self._addr!r}, serving={self._httpd is not None})"

    def _forget_after_fork(self) -> None:
        """In a forked child: the thread is gone, so serve nothing until started."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pages = _Pages(self._snapshots, self._stopping)
        httpd, self._httpd, self._thread = self._httpd, None, None
        if httpd is not None:
            httpd.socket.close()  # the child's copy; the parent keeps serving

    def _snapshots(self) -> list[_Snapshot]:
        with self._lock:
            self._limiters = [
                lim for lim in self._limiters if not getattr(lim, "closed", False)
            ]
            limiters = list(self._limiters)
        return [_read_stats(index, lim) for index, lim in enumerate(limiters)]


_LIVE: weakref.WeakSet[ProfilingServer] = weakref.WeakSet()


def _forget_servers_in_child() -> None:
    for server in list(_LIVE):
        server._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_servers_in_child)


def _warn_not_started(bind: tuple[str, int], exc: OSError) -> None:
    host, port = bind
    url = f"http://{_url_host(host)}:{port}/debug/pprof/"
    pid = os.getpid()
    if exc.errno != errno.EADDRINUSE:
        logger.warning(
            "profiling server not started: cannot bind %s:%d (%s); "
            "this process (pid %d) has no profiling server",
            host, port, exc, pid,
        )  # fmt: skip
        return
    holder = _probe_holder(host, port)
    owner = f"pid {holder}" if holder else "another process"
    logger.warning(
        "profiling server not started: %s:%d is in use by %s; this process "
        "(pid %d) has no profiling server, and the profile at %s is %s's",
        host, port, owner, pid, url, owner,
    )  # fmt: skip


def _probe_holder(host: str, port: int) -> str | None:
    """Ask the process that holds the port for its pid (our server sends it)."""
    target = {"0.0.0.0": _LOOPBACK, "::": "::1"}.get(host, host)  # noqa: S104
    conn = http.client.HTTPConnection(target, port, timeout=_PROBE_TIMEOUT)
    try:
        conn.request("HEAD", "/debug/pprof/")
        return conn.getresponse().getheader("X-Profiling-Pid")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- reading Limiter.stats() defensively ----------------------------------------------


def _get(stats: Mapping[str, object], *path: str) -> object:
    value: object = stats
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _int(value: object) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


def _float(value: object) -> float:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _strings(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return []
    return [str(item) for item in value]


@dataclass(frozen=True)
class _Shard:
    shard: int
    keys: int
    nbytes: int
    contended: int
    wait_seconds: float
    hits: int

    def minus(self, before: _Shard | None) -> _Shard:
        if before is None:
            return self
        return _Shard(
            self.shard,
            self.keys,
            self.nbytes,
            self.contended - before.contended,
            self.wait_seconds - before.wait_seconds,
            self.hits - before.hits,
        )

    def as_dict(self) -> dict[str, int | float]:
        return {
            "shard": self.shard,
            "keys": self.keys,
            "bytes": self.nbytes,
            "contended": self.contended,
            "wait_seconds": self.wait_seconds,
            "hits": self.hits,
        }


@dataclass(frozen=True)
class _Snapshot:
    """One limiter's ``stats()``, read once for one page."""

    index: int
    source: int
    stats: Mapping[str, object]
    error: str | None = None

    @property
    def backend(self) -> str:
        return str(self.stats.get("backend", "unknown"))

    @property
    def title(self) -> str:
        algorithm = self.stats.get("algorithm", "?")
        rates = ", ".join(_strings(self.stats.get("rates"))) or "?"
        where = f"{self.backend} store"
        if "shards" in self.stats:
            where += f", {_int(self.stats['shards'])} shards"
        return f"limiter {self.index}: {algorithm} {rates} ({where})"

    @property
    def has_shards(self) -> bool:
        return isinstance(self.stats.get("per_shard"), Sequence)

    def shards(self) -> list[_Shard]:
        rows = self.stats.get("per_shard")
        if not isinstance(rows, Sequence):
            return []
        return [
            _Shard(
                shard=_int(row.get("shard", i)),
                keys=_int(row.get("keys")),
                nbytes=_int(row.get("bytes")),
                contended=_int(row.get("contended")),
                wait_seconds=_float(row.get("wait_seconds")),
                hits=_int(row.get("allowed")) + _int(row.get("denied")),
            )
            for i, row in enumerate(rows)
            if isinstance(row, Mapping)
        ]

    def contention(self) -> tuple[int, float]:
        """Return the totals of ``stats()["contention"]``, or the sums over shards."""
        if isinstance(self.stats.get("contention"), Mapping):
            return (
                _int(_get(self.stats, "contention", "contended")),
                _float(_get(self.stats, "contention", "wait_seconds")),
            )
        shards = self.shards()
        return sum(s.contended for s in shards), sum(s.wait_seconds for s in shards)


def _read_stats(index: int, limiter: StatsSource) -> _Snapshot:
    source = id(limiter)
    try:
        stats = limiter.stats()
    except Exception as exc:  # a page reports the error instead
        error = f"stats() failed: {type(exc).__name__}: {exc}"
        return _Snapshot(index, source, {}, error)
    if not isinstance(stats, Mapping):
        error = f"stats() returned {type(stats).__name__}, not a mapping"
        return _Snapshot(index, source, {}, error)
    return _Snapshot(index, source, stats)


# --- requests and responses -----------------------------------------------------------


class _HTTPError(Exception):
    """A request the server refuses: the status and the reason for the body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class _Response:
    body: bytes
    content_type: str = _TEXT
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def _text(text: str, **headers: str) -> _Response:
    extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
    return _Response(text.encode("utf-8"), _TEXT, headers=extra)


def _json(value: object) -> _Response:
    return _Response((json.dumps(value, indent=2) + "\n").encode("utf-8"), _JSON)


def _error(status: int, reason: str) -> _Response:
    phrase = http.HTTPStatus(status).phrase
    return _Response(f"{status} {phrase}: {reason}\n".encode(), status=status)


@dataclass(frozen=True)
class _Query:
    """The query string of one request, checked against the names a page accepts."""

    values: dict[str, list[str]]

    @classmethod
    def parse(cls, query: str, allowed: frozenset[str] | None) -> _Query:
        values = urllib.parse.parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(values) - allowed) if allowed is not None else []
        if unknown:
            names = ", ".join(sorted(allowed or ())) or "none"
            raise _HTTPError(
                400, f"unknown parameter {unknown[0]!r} (this page takes: {names})"
            )
        return cls(values)

    def one(self, name: str) -> str | None:
        given = self.values.get(name)
        if not given:
            return None
        if len(given) > 1:
            raise _HTTPError(400, f"parameter {name!r} is given {len(given)} times")
        return given[0]

    def seconds(self) -> float | None:
        raw = self.one("seconds")
        if raw is None:
            return None
        if not _NUMBER_RE.fullmatch(raw) or not (
            _MIN_SECONDS <= float(raw) <= _MAX_SECONDS
        ):
            raise _HTTPError(400, f"seconds must be a number from 1 to 60, got {raw!r}")
        return float(raw)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.one(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise _HTTPError(
                400, f"{name} must be an integer from {low} to {high}, got {raw!r}"
            )
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        raw = self.one(name)
        if raw is not None and raw not in choices:
            raise _HTTPError(
                400, f"{name} must be one of {', '.join(choices)}, got {raw!r}"
            )
        return raw

    def wants_json(self) -> bool:
        return self.choice("format", ("text", "json")) == "json"


# --- the pages ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    path: str
    example: str
    params: frozenset[str] | None
    summary: str


_PAGES = (
    _Page(
        "/debug/pprof/mutex",
        "/debug/pprof/mutex",
        frozenset({"seconds", "format"}),
        "shard-lock contention measured in the Rust store, hottest shards first "
        "(?seconds=N for the change over N seconds, ?format=json)",
    ),
    _Page(
        "/debug/pprof/heap",
        "/debug/pprof/heap",
        frozenset({"format", "tracemalloc", "top"}),
        "store entries and estimated bytes by shard; top Python allocation sites "
        "when tracemalloc traces (?tracemalloc=start|stop, ?top=N, ?format=json)",
    ),
    _Page(
        "/debug/pprof/threads",
        "/debug/pprof/threads",
        frozenset(),
        "the current Python stack of every thread",
    ),
    _Page(
        "/debug/pprof/profile",
        "/debug/pprof/profile?seconds=30",
        frozenset({"seconds", "hz"}),
        "sampled stacks of all threads for N seconds (1-60, default 30, ?hz=1-200, "
        "default 100) as collapsed stacks for flamegraph.pl, speedscope or inferno",
    ),
    _Page(
        "/metrics",
        "/metrics",
        None,
        "Prometheus text format: decisions, keys, GC, contention, storage counters",
    ),
)


class _Pages:
    """Render every page; the HTTP handler only routes and writes."""

    def __init__(
        self, snapshots: Callable[[], list[_Snapshot]], stopping: threading.Event
    ) -> None:
        self._snapshots = snapshots
        self._stopping = stopping
        self._profiling = threading.Lock()  # one sampler at a time bounds the cost
        self._params = {page.path: page.params for page in _PAGES}
        self._routes: dict[str, Callable[[_Query, str], _Response]] = {
            "/debug/pprof/mutex": self.mutex,
            "/debug/pprof/heap": self.heap,
            "/debug/pprof/threads": self.threads,
            "/debug/pprof/profile": self.profile,
            "/metrics": self.metrics,
        }

    def dispatch(self, target: str, accept: str) -> _Response:
        url = urllib.parse.urlsplit(target)
        path = url.path.rstrip("/") or "/"
        if path in ("/", "/debug/pprof"):
            return self.index()
        render = self._routes.get(path)
        if render is None:
            raise _HTTPError(404, f"no page at {url.path!r}; see /debug/pprof/")
        return render(_Query.parse(url.query, self._params[path]), accept)

    def index(self) -> _Response:
        limiters = "\n".join(html.escape(s.title) for s in self._snapshots())
        lines = [
            f'<a href="{p.example}">{p.path}</a>  {html.escape(p.summary)}'
            for p in _PAGES
        ]
        body = (
            "<!DOCTYPE html>\n<html><head><title>shardlimit profiling</title></head>\n"
            f"<body><h1>shardlimit profiling, pid {os.getpid()}</h1>\n"
            "<pre>\n" + "\n".join(lines) + "\n</pre>\n"
            "<h2>limiters</h2>\n<pre>\n" + (limiters or "none") + "\n</pre>\n"
            "</body></html>\n"
        )
        return _Response(body.encode("utf-8"), _HTML)

    def mutex(self, query: _Query, accept: str) -> _Response:
        seconds = query.seconds()
        as_json = query.wants_json()
        before = self._snapshots()
        if seconds is not None:
            self._stopping.wait(seconds)
            reports = _mutex_delta(before, self._snapshots())
        else:
            reports = [_MutexReport.of(snap) for snap in before]
        if as_json:
            return _json(
                {
                    "pid": os.getpid(),
                    "seconds": seconds,
                    "limiters": [r.as_dict() for r in reports],
                }
            )
        return _text(_render_mutex(reports, seconds))

    def heap(self, query: _Query, accept: str) -> _Response:
        as_json = query.wants_json()
        top = query.integer("top", _DEFAULT_TOP, 1, _MAX_TOP)
        action = query.choice("tracemalloc", ("start", "stop"))
        note = _tracemalloc_action(action)
        reports = [_HeapReport.of(snap) for snap in self._snapshots()]
        sites = _allocation_sites(top)
        if as_json:
            return _json(
                {
                    "pid": os.getpid(),
                    "limiters": [r.as_dict() for r in reports],
                    "tracemalloc": _tracemalloc_dict(sites),
                }
            )
        return _text(_render_heap(reports, sites, note))

    def threads(self, query: _Query, accept: str) -> _Response:
        return _text(_render_threads())

    def profile(self, query: _Query, accept: str) -> _Response:
        seconds = query.seconds() or _DEFAULT_PROFILE_SECONDS
        hz = query.integer("hz", _DEFAULT_HZ, 1, _MAX_HZ)
        if not self._profiling.acquire(blocking=False):
            raise _HTTPError(
                409, "another profile is being taken; ask again when it has ended"
            )
        try:
            counts, ticks, elapsed = _sample(seconds, 1.0 / hz, self._stopping)
        finally:
            self._profiling.release()
        body = "".join(f"{stack} {n}\n" for stack, n in sorted(counts.items()))
        return _text(
            body,
            X_Profile_Samples=str(ticks),
            X_Profile_Seconds=f"{elapsed:.3f}",
            X_Profile_Hz=str(hz),
        )

    def metrics(self, query: _Query, accept: str) -> _Response:
        try:
            from prometheus_client.exposition import choose_encoder  # noqa: PLC0415
        except ImportError as exc:
            raise _HTTPError(
                501,
                f"/metrics needs prometheus-client, which cannot be imported ({exc}); "
                "install it with: pip install 'shardlimit[prometheus]'",
            ) from None
        encoder, content_type = choose_encoder(accept)
        return _Response(encoder(_Exposition(self._snapshots)), content_type)


# --- /debug/pprof/mutex ---------------------------------------------------------------


@dataclass(frozen=True)
class _MutexReport:
    snapshot: _Snapshot
    contended: int
    wait_seconds: float
    shards: list[_Shard] = field(default_factory=list)

    @classmethod
    def of(cls, snap: _Snapshot) -> _MutexReport:
        contended, wait = snap.contention()
        return cls(snap, contended, wait, _hottest_first(snap.shards()))

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.snapshot.index,
            "title": self.snapshot.title,
            "backend": self.snapshot.backend,
            "error": self.snapshot.error,
            "contended": self.contended,
            "wait_seconds": self.wait_seconds,
            "shards": [s.as_dict() for s in self.shards],
        }


def _hottest_first(shards: list[_Shard]) -> list[_Shard]:
    return sorted(shards, key=lambda s: (-s.wait_seconds, -s.contended, s.shard))


def _mutex_delta(before: list[_Snapshot], after: list[_Snapshot]) -> list[_MutexReport]:
    """Subtract the earlier counters from the later ones, limiter by limiter."""
    earlier = {snap.source: snap for snap in before}
    reports = []
    for snap in after:
        old = earlier.get(snap.source)
        new = _MutexReport.of(snap)
        if old is None or old.error or snap.error:
            reports.append(new)
            continue
        old_shards = {s.shard: s for s in old.shards()}
        contended, wait = old.contention()
        shards = [s.minus(old_shards.get(s.shard)) for s in new.shards]
        reports.append(
            _MutexReport(
                snap,
                new.contended - contended,
                new.wait_seconds - wait,
                _hottest_first(shards),
            )
        )
    return reports


def _render_mutex(reports: list[_MutexReport], seconds: float | None) -> str:
    since = (
        f"change over the last {seconds:g} s"
        if seconds is not None
        else "counted since each limiter was created"
    )
    out = [
        "shardlimit mutex profile: shard-lock contention measured in the Rust store",
        f"pid {os.getpid()}; {since}; hottest shards first",
        "",
    ]
    if not reports:
        out.append("no limiters")
    for report in reports:
        out.extend(_render_mutex_one(report))
    return "\n".join(out) + "\n"


def _render_mutex_one(report: _MutexReport) -> list[str]:
    snap = report.snapshot
    lines = [snap.title]
    if snap.error:
        return [*lines, f"  {snap.error}", ""]
    if not snap.has_shards:
        return [*lines, "  no shard locks in this process (see /metrics)", ""]
    lines.append(
        f"total: contended={report.contended} wait_seconds={report.wait_seconds:.6f} "
        f"avg_wait_us={_avg_us(report.wait_seconds, report.contended):.1f}"
    )
    lines.append(
        f"{'shard':>6} {'contended':>12} {'wait_seconds':>14} {'avg_wait_us':>12} "
        f"{'hits':>12} {'keys':>10}"
    )
    lines.extend(
        f"{s.shard:>6} {s.contended:>12} {s.wait_seconds:>14.6f} "
        f"{_avg_us(s.wait_seconds, s.contended):>12.1f} {s.hits:>12} {s.keys:>10}"
        for s in report.shards
    )
    return [*lines, ""]


def _avg_us(wait_seconds: float, contended: int) -> float:
    return wait_seconds / contended * 1e6 if contended > 0 else 0.0


# --- /debug/pprof/heap ----------------------------------------------------------------


@dataclass(frozen=True)
class _HeapReport:
    snapshot: _Snapshot
    shards: list[_Shard]

    @classmethod
    def of(cls, snap: _Snapshot) -> _HeapReport:
        shards = sorted(snap.shards(), key=lambda s: (-s.nbytes, -s.keys, s.shard))
        return cls(snap, shards)

    @property
    def entries(self) -> int:
        if not self.snapshot.has_shards:
            return _int(self.snapshot.stats.get("keys"))
        return sum(s.keys for s in self.shards)

    @property
    def nbytes(self) -> int:
        if not self.snapshot.has_shards:
            return _int(self.snapshot.stats.get("memory_bytes"))
        return sum(s.nbytes for s in self.shards)

    def as_dict(self) -> dict[str, object]:
        stats = self.snapshot.stats
        return {
            "index": self.snapshot.index,
            "title": self.snapshot.title,
            "backend": self.snapshot.backend,
            "error": self.snapshot.error,
            "entries": self.entries,
            "bytes": self.nbytes,
            "keys": stats.get("keys"),
            "memory_bytes": stats.get("memory_bytes"),
            "max_keys": stats.get("max_keys"),
            "rejected_full": stats.get("rejected_full"),
            "shards": [s.as_dict() for s in self.shards],
        }


def _tracemalloc_action(action: str | None) -> str | None:
    if action == "start":
        if tracemalloc.is_tracing():
            return "tracemalloc was already tracing"
        tracemalloc.start()
        return "tracemalloc started: allocations from now on are traced"
    if action == "stop":
        was = tracemalloc.is_tracing()
        tracemalloc.stop()
        return "tracemalloc stopped" if was else "tracemalloc was not tracing"
    return None


@dataclass(frozen=True)
class _Site:
    where: str
    size: int
    count: int


def _allocation_sites(top: int) -> list[_Site] | None:
    """Return the ``top`` allocation sites by size, or ``None`` when not tracing."""
    if not tracemalloc.is_tracing():
        return None
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<unknown>"),
        )
    )
    stats = snapshot.statistics("lineno")[:top]
    return [
        _Site(f"{s.traceback[0].filename}:{s.traceback[0].lineno}", s.size, s.count)
        for s in stats
    ]


def _tracemalloc_dict(sites: list[_Site] | None) -> dict[str, object]:
    if sites is None:
        return {"tracing": False}
    current, peak = tracemalloc.get_traced_memory()
    return {
        "tracing": True,
        "current_bytes": current,
        "peak_bytes": peak,
        "top": [{"site": s.where, "bytes": s.size, "count": s.count} for s in sites],
    }


def _render_heap(
    reports: list[_HeapReport], sites: list[_Site] | None, note: str | None
) -> str:
    out = [
        "shardlimit heap profile: store memory by shard, Python allocations",
        f"pid {os.getpid()}; largest shards first; bytes are estimated from the "
        "store's layout",
        "",
    ]
    if note:
        out += [note, ""]
    if not reports:
        out += ["no limiters", ""]
    for report in reports:
        out.extend(_render_heap_one(report))
    out.extend(_render_sites(sites))
    return "\n".join(out) + "\n"


def _render_heap_one(report: _HeapReport) -> list[str]:
    snap = report.snapshot
    if snap.error:
        return [snap.title, f"  {snap.error}", ""]
    stats = snap.stats
    if not snap.has_shards:
        return [snap.title, f"  the {snap.backend} store keeps no entries here", ""]
    lines = [
        snap.title,
        f"entries: {report.entries} (stats keys={stats.get('keys')}, "
        f"max_keys={stats.get('max_keys')}, "
        f"rejected_full={stats.get('rejected_full')})",
        f"bytes: {report.nbytes} (stats memory_bytes={stats.get('memory_bytes')})",
    ]
    lines.append(f"{'shard':>6} {'entries':>10} {'bytes':>12} {'bytes/entry':>12}")
    lines.extend(
        f"{s.shard:>6} {s.keys:>10} {s.nbytes:>12} "
        f"{(s.nbytes / s.keys if s.keys else 0.0):>12.1f}"
        for s in report.shards
    )
    return [*lines, ""]


def _render_sites(sites: list[_Site] | None) -> list[str]:
    blocks = f"python allocated blocks: {sys.getallocatedblocks()}"
    if sites is None:
        return [
            blocks,
            "python allocations: tracemalloc is not tracing; start it with "
            "?tracemalloc=start (or PYTHONTRACEMALLOC=1), stop with ?tracemalloc=stop",
        ]
    current, peak = tracemalloc.get_traced_memory()
    lines = [
        blocks,
        f"python allocations (tracemalloc): current {current} bytes, peak {peak} "
        f"bytes; top {len(sites)} sites by size",
        f"{'bytes':>12} {'count':>9}  site",
    ]
    lines.extend(f"{s.size:>12} {s.count:>9}  {s.where}" for s in sites)
    return lines


# --- /debug/pprof/threads and /debug/pprof/profile ------------------------------------


def _render_threads() -> str:
    frames = sys._current_frames()
    threads = {t.ident: t for t in threading.enumerate()}
    me = threading.get_ident()
    out = [
        f"shardlimit threads: {len(frames)} threads with Python frames in pid "
        f"{os.getpid()} (most recent call last)",
        "",
    ]
    for ident in sorted(frames, key=lambda i: (i != threading.main_thread().ident, i)):
        thread = threads.get(ident)
        name = thread.name if thread else "<not started by threading>"
        flags = " daemon" if thread is not None and thread.daemon else ""
        flags += " (serving this page)" if ident == me else ""
        out.append(f"thread {name!r} ident={ident}{flags}")
        out.extend(line.rstrip("\n") for line in traceback.format_stack(frames[ident]))
        out.append("")
    del frames
    return "\n".join(out)


def _sample(
    seconds: float, interval: float, stopping: threading.Event
) -> tuple[collections.Counter[str], int, float]:
    """Sample every other thread's stack each ``interval`` for ``seconds``.

    Returns the count of each collapsed stack, the number of sampling ticks and the
    seconds actually spent (less than asked when the server stops).
    """
    me = threading.get_ident()
    labels: dict[object, str] = {}
    counts: collections.Counter[str] = collections.Counter()
    start = time.monotonic()
    deadline = start + seconds
    next_tick, ticks = start, 0
    while True:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident != me:
                name = names.get(ident, f"thread-{ident}")
                counts[_collapse(name, frame, labels)] += 1
        ticks += 1
        now = time.monotonic()
        next_tick = max(next_tick + interval, now)
        if next_tick >= deadline or stopping.wait(next_tick - now):
            return counts, ticks, time.monotonic() - start


def _collapse(thread: str, frame: FrameType | None, labels: dict[object, str]) -> str:
    """Return ``thread;mod:func;...;mod:leaf`` for one stack, outermost frame first."""
    parts = []
    while frame is not None:
        code = frame.f_code
        label = labels.get(code)
        if label is None:
            module = frame.f_globals.get("__name__")
            if not isinstance(module, str):
                module = os.path.basename(code.co_filename)
            label = labels[code] = _clean(f"{module}:{code.co_qualname}")
        parts.append(label)
        frame = frame.f_back
    parts.append(_clean(thread))
    return ";".join(reversed(parts))


def _clean(label: str) -> str:
    """Keep a frame label to one field: no ``;`` and no whitespace."""
    return re.sub(r"\s+", "_", label.replace(";", ","))


# --- /metrics -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    name: str
    kind: str
    doc: str
    labels: tuple[str, ...] = ()


def _scalar(
    name: str,
    kind: str,
    doc: str,
    path: tuple[str, ...],
    *,
    combine: Callable[[float, float], float] = operator.add,
    labels: tuple[str, ...] = (),
) -> tuple[_Family, tuple[str, ...], Callable[[float, float], float]]:
    return _Family(name, kind, doc, labels), path, combine


# (family, path in stats(), how the values of several limiters combine)
_SCALARS = (
    _scalar("shardlimit_keys", "gauge", "Keys the store tracks.", ("keys",)),
    _scalar(
        "shardlimit_max_keys", "gauge", "Most keys the store holds.", ("max_keys",)
    ),
    _scalar(
        "shardlimit_memory_bytes",
        "gauge",
        "Estimated bytes of the store's entries.",
        ("memory_bytes",),
    ),
    _scalar(
        "shardlimit_rejected_full",
        "counter",
        "New keys denied because the store was full.",
        ("rejected_full",),
    ),
    _scalar("shardlimit_gc_runs", "counter", "GC sweeps run.", ("gc", "runs")),
    _scalar(
        "shardlimit_gc_removed",
        "counter",
        "Entries removed by GC sweeps.",
        ("gc", "removed"),
    ),
    _scalar(
        "shardlimit_gc_errors", "counter", "GC sweeps that failed.", ("gc", "errors")
    ),
    _scalar(
        "shardlimit_gc_last_sweep_seconds",
        "gauge",
        "Duration of the last GC sweep (the longest, over several limiters).",
        ("gc", "last_sweep_seconds"),
        combine=max,
    ),
    _scalar(
        "shardlimit_lock_contended",
        "counter",
        "Shard-lock acquisitions that found the lock held.",
        ("contention", "contended"),
    ),
    _scalar(
        "shardlimit_lock_wait_seconds",
        "counter",
        "Time spent waiting for held shard locks.",
        ("contention", "wait_seconds"),
    ),
    _scalar(
        "shardlimit_storage_errors",
        "counter",
        "Storage calls that failed.",
        ("errors",),
        labels=("backend",),
    ),
)

_DECISIONS = _Family(
    "shardlimit_decisions", "counter", "Rate-limit decisions.", ("algorithm", "result")
)

# Keys of stats() that the families above already export (or that are not counters).
_KNOWN = frozenset(
    {"backend", "algorithm", "rates", "shards", "hits", "allowed", "denied", "gc",
     "contention", "per_shard", "keys", "max_keys", "memory_bytes", "rejected_full",
     "errors"}
)  # fmt: skip
_MAX_DEPTH = 3

# Backend numbers that only grow (the Redis storage's), exported as counters.
_BACKEND_COUNTERS = frozenset(
    {"fallbacks", "peeks", "script_loads", "opens", "fast_failures", "reconnects"}
)


class _Samples:
    """Samples read from several limiters' stats(), combined per label set."""

    def __init__(self) -> None:
        self.families: dict[str, _Family] = {_DECISIONS.name: _DECISIONS}
        self.values: dict[str, dict[tuple[str, ...], float]] = {_DECISIONS.name: {}}

    def add(
        self,
        family: _Family,
        labels: tuple[str, ...],
        value: float,
        combine: Callable[[float, float], float] = operator.add,
    ) -> None:
        known = self.families.setdefault(family.name, family)
        if len(known.labels) != len(labels):
            return
        values = self.values.setdefault(family.name, {})
        old = values.get(labels)
        values[labels] = value if old is None else combine(old, value)

    def add_stats(self, stats: Mapping[str, object]) -> None:
        backend = str(stats.get("backend", "unknown"))
        algorithm = str(stats.get("algorithm", "unknown"))
        for result in ("allowed", "denied"):
            if _is_number(stats.get(result)):
                self.add(_DECISIONS, (algorithm, result), _float(stats[result]))
        for family, path, combine in _SCALARS:
            value = _get(stats, *path)
            if _is_number(value):
                labels = (backend,) if family.labels else ()
                self.add(family, labels, _float(value), combine)
        extras = {k: v for k, v in stats.items() if k not in _KNOWN}
        self._add_extras(backend, extras, ())

    def _add_extras(
        self, backend: str, stats: Mapping[str, object], path: tuple[str, ...]
    ) -> None:
        """Export the backend's other numbers as gauges, and its ``*state`` strings."""
        for key, value in stats.items():
            here = (*path, str(key))
            name = "shardlimit_backend_" + re.sub(r"[^A-Za-z0-9_]", "_", "_".join(here))
            doc = f"stats()[{']['.join(map(repr, here))}] of the backend, as read."
            if isinstance(value, Mapping) and len(here) < _MAX_DEPTH:
                self._add_extras(backend, value, here)
            elif _is_number(value):
                kind = "counter" if key in _BACKEND_COUNTERS else "gauge"
                family = _Family(name, kind, doc, ("backend",))
                self.add(family, (backend,), _float(value))
            elif isinstance(value, str) and str(key).endswith("state"):
                family = _Family(name, "gauge", doc + " 1 for the current state.",
                                 ("backend", "state"))  # fmt: skip
                self.add(family, (backend, value), 1.0)


class _Exposition:
    """A prometheus-client collector: the default registry, then shardlimit's stats."""

    def __init__(self, snapshots: Callable[[], list[_Snapshot]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import REGISTRY  # noqa: PLC0415
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        yield from REGISTRY.collect()
        samples = _Samples()
        for snap in self._snapshots():
            if snap.error is None:
                samples.add_stats(snap.stats)
        for name, family in samples.families.items():
            kind = (
                CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            )
            metric = kind(name, family.doc, labels=family.labels)
            for labels, value in sorted(samples.values.get(name, {}).items()):
                metric.add_metric(labels, value)
            yield metric


# --- the HTTP server ------------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on one address family, quiet, fast to shut down."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, bind: tuple[str, int], pages: _Pages) -> None:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            bind[0], bind[1], type=socket.SOCK_STREAM
        )[0]
        host, port = str(sockaddr[0]), int(sockaddr[1])
        address: tuple[str, int] | tuple[str, int, int, int] = (host, port)
        if len(sockaddr) == 4:  # noqa: PLR2004 - IPv6: keep the flow info and scope
            address = (host, port, sockaddr[2], sockaddr[3])
        self.address_family = family
        self.pages = pages
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's socket.getfqdn(): a reverse DNS lookup can take seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(
        self, request: _RequestType, client_address: _RetAddress
    ) -> None:
        threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="shardlimit-profiling-request",
            daemon=True,
        ).start()

    def handle_error(self, request: _RequestType, client_address: _RetAddress) -> None:
        logger.debug("profiling request from %s failed", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Route GET and HEAD to the pages; refuse other methods with 405."""

    server: _HTTPServer
    server_version = "shardlimit-profiling"
    timeout = _REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        reason = f"method {self.command} is not allowed; use GET or HEAD"
        response = _error(405, reason)
        self._send(
            _Response(response.body, status=405, headers=(("Allow", "GET, HEAD"),))
        )

    def do_POST(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def do_OPTIONS(self) -> None:
        self._not_allowed()

    def do_TRACE(self) -> None:
        self._not_allowed()

    def _serve(self, *, head: bool) -> None:
        try:
            response = self.server.pages.dispatch(
                self.path, self.headers.get("Accept", "")
            )
        except _HTTPError as exc:
            response = _error(exc.status, exc.reason)
        except Exception as exc:  # one broken page must not stop the rest
            logger.debug("profiling page %s failed", self.path, exc_info=True)
            response = _error(500, f"{type(exc).__name__}: {exc}")
        self._send(response, head=head)

    def _send(self, response: _Response, *, head: bool = False) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Profiling-Pid", str(os.getpid()))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)
        except ConnectionError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("profiling %s: " + format, self.address_string(), *args)
