"""The demo on Redis: four gunicorn workers share one limit, over real HTTP.

gunicorn runs ``shardlimit.demo:app`` with ``configs/gunicorn.conf.py`` and
``WEB_CONCURRENCY=4`` against the test's Redis server, bound to a free loopback
port. Concurrent clients on fresh connections spread over the workers (each worker
takes at most three connections at a time; the access log names the worker of each
request); exactly ``RATE_LIMIT`` requests succeed.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import free_port, wait_for_port

pytest_plugins = ["tests.redis_support"]
pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
WORKERS = 4
RATE_LIMIT = 40
REQUESTS = 3 * RATE_LIMIT


class Demo:
    """A gunicorn process serving the demo on 127.0.0.1:port."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path):
        self.port = port
        self.process = process
        self.access_log = log

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def warm_up(self) -> None:
        """Send concurrent /healthz requests (exempt) until every worker answers.

        A worker logs "Booting" before it imports the app; load sent before all are
        ready would go to the first one.
        """
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(max_workers=16) as pool:
            while len(set(self.served("/healthz"))) < WORKERS:
                assert self.process.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, self.served("/healthz")
                assert set(pool.map(self.get, ["/healthz"] * 16)) == {200}

    def served(self, path: str) -> list[str]:
        """Return the worker pid of each logged request for ``path``."""
        lines = self.access_log.read_text().splitlines()
        return [line.split()[0] for line in lines if line.split()[-1] == path]


@pytest.fixture
def demo(
    redis_url: str,
    mid_window_period: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Demo]:
    algorithm = request.param
    port = free_port()
    access_log = tmp_path / "access.log"
    env = dict(os.environ)
    env.update(
        SERVER_PORT=str(port),
        RATE_LIMIT=str(RATE_LIMIT),
        WINDOW_SIZE=f"{mid_window_period}s",
        RATE_LIMIT_ALGORITHM=algorithm,
        STORE_URL=redis_url,
        WEB_CONCURRENCY=str(WORKERS),
        PROFILING_ADDR="off",
    )
    env.pop("CONFIG_FILE", None)
    command = [
        str(GUNICORN),
        "-c",
        "configs/gunicorn.conf.py",
        # Loopback only (the config binds every interface).
        "--bind",
        f"127.0.0.1:{port}",
        # A worker holds at most 3 connections, so 16 concurrent clients must
        # spread over the workers instead of queueing on whichever woke first.
        "--threads",
        "2",
        "--worker-connections",
        "3",
        # Log each request's worker pid, status and path.
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(p)s %(s)s %(U)s",
        "shardlimit.demo:app",
    ]
    stderr = tmp_path / "gunicorn.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=err)
    server = Demo(port, process, access_log)
    try:
        wait_for_port(port, timeout=30)
        server.warm_up()
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise
        assert code == 0, stderr.read_text()


@pytest.mark.parametrize(
    "demo",
    ["fixed_window", "sliding_window", "sliding_window_counter", "token_bucket"],
    indirect=True,
)
def test_four_workers_share_one_limit(demo: Demo) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(demo.get, ["/api/shared"] * REQUESTS))
    assert statuses.count(200) == RATE_LIMIT
    assert statuses.count(429) == REQUESTS - RATE_LIMIT
    assert demo.get("/healthz") == 200  # exempt
    # Several workers answered (the access log is written after each response);
    # with the memory store each of them would have allowed RATE_LIMIT alone.
    deadline = time.monotonic() + 10
    while len(demo.served("/api/shared")) < REQUESTS:
        assert time.monotonic() < deadline, demo.served("/api/shared")
        time.sleep(0.05)
    assert len(set(demo.served("/api/shared"))) >= 2
