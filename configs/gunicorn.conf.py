"""gunicorn settings of the shardlimit demo.

    gunicorn -c configs/gunicorn.conf.py shardlimit.demo:app      (what `make run` does)
    shardlimit serve [gunicorn options]                            (the same)

The values come from shardlimit's settings (configs/config.yaml, then the environment),
read here once in the master so that a bad value stops start-up before any worker
forks. Command-line options and GUNICORN_CMD_ARGS still win over this file, e.g.
`shardlimit serve --preload --threads 16`.
"""

import logging
import os
import sys
from types import ModuleType
from typing import Any

from shardlimit.config import load_settings
from shardlimit.errors import ConfigError

try:
    _settings = load_settings()
except ConfigError as exc:
    raise SystemExit(f"shardlimit: {exc}") from None

# Listen on every interface of the container or host, on SERVER_PORT.
bind = f"0.0.0.0:{_settings.server_port}"

# One process by default: the memory store counts per process, so more workers
# would give each client WEB_CONCURRENCY times the limit (the demo logs a WARNING
# then). Threads give the one process concurrency.
workers = _settings.web_concurrency
worker_class = "gthread"
threads = 8

# On SIGTERM, stop accepting, finish the requests in flight (for at most this
# many seconds), run worker_exit below and exit 0. docker-compose gives 30s.
graceful_timeout = 25
timeout = 30
keepalive = 5

# The demo needs no `gunicornc` control socket; without this every gunicorn of the
# same user would share ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True

# shardlimit logs (the per-worker WARNING, profiling-server messages) in the same
# format as gunicorn's own error log. The library itself configures no logging.
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(
    logging.Formatter(
        "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        "[%Y-%m-%d %H:%M:%S %z]",
    )
)
_shardlimit_logger = logging.getLogger("shardlimit")
_shardlimit_logger.addHandler(_handler)
_shardlimit_logger.setLevel(logging.INFO)
_shardlimit_logger.propagate = False


def _demo() -> ModuleType | None:
    """Return the demo module if this process has loaded it (the app may be another)."""
    return sys.modules.get("shardlimit.demo")


def post_worker_init(worker: Any) -> None:
    """Start the worker's profiling server: threads and sockets do not survive fork."""
    demo = _demo()
    if demo is not None:
        demo.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the worker's profiling server; close its limiter, joining the GC thread."""
    demo = _demo()
    if demo is None or worker.pid != os.getpid():
        return
    # After SIGINT or SIGQUIT (quick shutdown) the worker leaves its loop with
    # requests still running in its threads; they finish before the limiter closes,
    # so each is decided and counted like any other.
    pool = getattr(worker, "tpool", None)
    if pool is not None:
        pool.shutdown(wait=True)
    demo.stop()
    server.log.info("Worker %s closed its limiter and profiling server", worker.pid)


def on_exit(server: Any) -> None:
    """With --preload the master holds a limiter too: close it."""
    demo = _demo()
    if demo is not None:
        demo.stop()
