"""The demo server: a small Falcon app limited per client, served by gunicorn.

Run it with ``make run``, ``shardlimit serve`` or
``gunicorn -c configs/gunicorn.conf.py shardlimit.demo:app``. Routes:

* ``GET /`` and ``GET /api/{anything}``: limited per client (``RATE_LIMIT`` requests
  per ``WINDOW_SIZE``), with the rate-limit headers;
* ``GET /healthz``: exempt, for load balancers and orchestrators.

Importing the module reads the settings (:func:`shardlimit.config.load_settings`), so
a bad value stops the server before it serves anything; it builds the limiter and
the app. Per-process services (the profiling server) start with :func:`start` and
everything stops with :func:`stop`. Under gunicorn the hooks of
``configs/gunicorn.conf.py`` call them in each worker, after the fork, since threads
and sockets do not survive one; under any other server the import starts them and
interpreter exit stops them. So a gunicorn run with another configuration file has
no profiling server unless it calls :func:`start` from its own ``post_worker_init``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

import falcon

from shardlimit import Limiter
from shardlimit.config import Settings, load_settings
from shardlimit.falcon import RateLimitMiddleware, exempt
from shardlimit.profiling import ProfilingServer

__all__ = ["app", "create_app", "limiter", "settings", "start", "stop"]

logger = logging.getLogger(__name__)


class Hello:
    """``/``: a greeting, limited per client."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Greet the client and say what else there is."""
        resp.media = {
            "message": "Hello from shardlimit.",
            "limited": ["/", "/api/{anything}"],
            "exempt": ["/healthz"],
        }


class Api:
    """``/api/{anything}``: echoes the path, limited per client."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        """Echo the path and the client's remaining budget."""
        decision = getattr(req.context, "rate_limit", None)
        resp.media = {
            "path": req.path,
            "remaining": decision.remaining if decision is not None else None,
        }


@exempt
class Health:
    """``/healthz``: always answers, never limited."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer ``ok``."""
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok\n"


def create_app(
    middleware: RateLimitMiddleware,
) -> falcon.App[falcon.Request, falcon.Response]:
    """Return the demo's WSGI app, limited by ``middleware``."""
    application: falcon.App[falcon.Request, falcon.Response]
    application = falcon.App(middleware=[middleware])
    application.add_route("/", Hello())
    application.add_route("/api/{rest:path}", Api())
    application.add_route("/healthz", Health())
    return application


def _warn_if_per_worker(config: Settings) -> None:
    if config.uses_memory_store and config.web_concurrency > 1:
        logger.warning(
            "STORE_URL=memory:// with WEB_CONCURRENCY=%d: each worker process keeps "
            "its own counts, so the limit of %d per %gs is per worker and a client may "
            "get up to %d requests per window; set STORE_URL=redis://... to share one "
            "limit between workers",
            config.web_concurrency,
            config.rate_limit,
            config.window_size,
            config.rate_limit * config.web_concurrency,
        )


class _Services:
    """Hold the per-process profiling server; shut everything down."""

    def __init__(
        self, config: Settings, limiters: list[Limiter], mw: RateLimitMiddleware
    ) -> None:
        self._config = config
        self._limiters = limiters
        self._middleware = mw
        self._lock = threading.Lock()
        self._server: ProfilingServer | None = None
        self._pid = 0

    def start(self) -> bool:
        with self._lock:
            if self._config.profiling_addr is None:
                return False
            if self._server is not None and self._pid == os.getpid():
                return self._server.address is not None
            self._server = ProfilingServer(
                self._config.profiling_addr, limiters=self._limiters
            )
            self._pid = os.getpid()
            serving = self._server.start()
            address = self._server.address
        if serving and address is not None:
            host, port = address
            host = f"[{host}]" if ":" in host else host
            logger.info("profiling pages at http://%s:%d/debug/pprof/", host, port)
        return serving

    def stop(self) -> None:
        with self._lock:
            server = self._server if self._pid == os.getpid() else None
            self._server = None
        if server is not None:
            server.stop()
        self._middleware.close()
        for each in self._limiters:
            each.close()


#: The settings the demo runs with.
settings = load_settings()
#: The demo's limiter, one per process (shared through Redis with ``STORE_URL``).
limiter = settings.make_limiter()
#: The middleware that limits the demo's routes.
middleware = RateLimitMiddleware(limiter, trusted_proxies=settings.trusted_proxies)
#: The WSGI application: ``shardlimit.demo:app``.
app = create_app(middleware)

_services = _Services(settings, [limiter], middleware)
_warn_if_per_worker(settings)


def start() -> bool:
    """Start this process's profiling server, once; return whether this process serves.

    ``False`` when ``PROFILING_ADDR`` is ``off`` or the address is taken (by another
    worker: the first to bind serves the profile, and says so in a WARNING).
    """
    return _services.start()


def stop() -> None:
    """Stop this process's profiling server and close the limiters. Safe to repeat."""
    _services.stop()


atexit.register(stop)
if "gunicorn.arbiter" not in sys.modules:
    start()
