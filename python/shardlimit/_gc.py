"""The background GC thread of the memory store.

The thread only schedules: every ``interval`` seconds it calls the store's
``sweep()``, which does its work in Rust without the GIL, one shard at a time, so
requests keep flowing during a sweep. ``stop()`` wakes it at once. Threads do not
survive ``fork()``: :func:`restart_after_fork` (registered with
:func:`os.register_at_fork`) starts a fresh one in the child for every limiter that
had one, which is what gunicorn's ``--preload`` needs.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["GcThread"]

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[GcThread] = weakref.WeakSet()


class GcThread:
    """Call ``sweep`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, sweep: Callable[[], int], interval: float) -> None:
        """Prepare the thread; :meth:`start` runs it."""
        self._sweep = sweep
        self.interval = interval
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread (again, after a fork or a stop)."""
        with self._lock:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="shardlimit-gc", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait for it; a sweep in progress finishes first."""
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        _LIVE.discard(self)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            try:
                self._sweep()
            except Exception:
                # Logged, not swallowed: the next interval tries again.
                self.errors += 1
                logger.exception("shardlimit GC sweep failed; retrying next interval")

    def _restart_in_child(self) -> None:
        # The parent's thread does not exist in the child; its lock may have been
        # held at the fork, so a new one is made before anything else.
        self._lock = threading.Lock()
        self._thread = None
        if not self._stop.is_set():
            self.start()


def restart_after_fork() -> None:
    """Restart, in a forked child, every GC thread that was running in the parent."""
    for gc in list(_LIVE):
        gc._restart_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=restart_after_fork)
