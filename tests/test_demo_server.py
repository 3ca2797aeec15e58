"""End to end: the real demo under gunicorn, over HTTP on loopback, then SIGTERM.

The server runs as ``python -m shardlimit serve`` (gunicorn with
configs/gunicorn.conf.py) on a free 127.0.0.1 port. Every wait is bounded, and the
whole process group is killed in a ``finally`` whatever happens.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shardlimit.config import VARIABLES
from tests.support import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
# Settings the outer environment may hold; each test sets its own.
SCRUBBED = {*VARIABLES, "CONFIG_FILE", "GUNICORN_CMD_ARGS"}
HTTP_TIMEOUT = 10.0
EXIT_TIMEOUT = 45.0  # graceful_timeout is 25s; a healthy drain takes well under 5s


class Server:
    """A ``shardlimit serve`` process group with its logs in files."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.stderr_path = tmp_path / "stderr.log"
        environ = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        environ.update(
            {"RATE_LIMIT": "5", "WINDOW_SIZE": "60s", "PROFILING_ADDR": "off"}
        )
        environ.update(env)
        command = [sys.executable, "-m", "shardlimit", "serve"]
        command += ["--bind", f"127.0.0.1:{self.port}", *args]
        with (
            open(tmp_path / "stdout.log", "wb") as out,
            open(self.stderr_path, "wb") as err,
        ):
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=environ,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        try:
            wait_for_port(self.port, timeout=30.0)
        except TimeoutError:
            pytest.fail(f"the demo did not start:\n{self.log()}")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)

    def terminate(self) -> int:
        """Send SIGTERM to the master and return its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=EXIT_TIMEOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=EXIT_TIMEOUT)
        else:  # the workers too, should the master have left any behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> list[str]:
        return re.findall(r"Booting worker with pid: (\d+)", self.log())


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start demo servers; kill every one of them at the end, whatever happened."""
    started: list[Server] = []

    def start(*args: str, **env: str) -> Server:
        directory = tmp_path / str(len(started))
        directory.mkdir()
        server = Server(directory, *args, **env)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


def get(conn: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response


def assert_clean_shutdown(server: Server, status: int) -> None:
    log = server.log()
    assert status == 0, log
    assert "Traceback" not in log, log
    assert "exited with code" not in log, log
    assert "SIGKILL" not in log, log
    pids = server.worker_pids()
    assert pids, log
    for pid in pids:
        assert f"Worker {pid} closed its limiter and profiling server" in log, log


# --- the limit, over HTTP -------------------------------------------------------------


def test_exactly_five_successes_then_429s_with_all_headers(
    start_server: StartServer,
) -> None:
    server = start_server()
    conn = server.connection()
    try:
        responses = [get(conn, "/api/hello") for _ in range(8)]
        health = [get(conn, "/healthz") for _ in range(3)]
        unrouted = get(conn, "/no/such/page")
    finally:
        conn.close()

    assert [r.status for r in responses] == [200] * 5 + [429] * 3
    for n, response in enumerate(responses[:5]):
        assert response.getheader("RateLimit-Policy") == '"default";q=5;w=60'
        assert response.getheader("RateLimit") == f'"default";r={4 - n};t=60'
        assert response.getheader("X-RateLimit-Limit") == "5"
        assert response.getheader("X-RateLimit-Remaining") == str(4 - n)
        assert response.getheader("X-RateLimit-Reset") == "60"
        assert response.getheader("Retry-After") is None
    for response in responses[5:]:
        retry_after = int(response.getheader("Retry-After") or "0")
        assert 1 <= retry_after <= 60
        assert response.getheader("Content-Type") == "application/problem+json"
        assert response.getheader("RateLimit-Policy") == '"default";q=5;w=60'
        assert response.getheader("RateLimit") == f'"default";r=0;t={retry_after}'
        assert response.getheader("X-RateLimit-Limit") == "5"
        assert response.getheader("X-RateLimit-Remaining") == "0"
        assert response.getheader("X-RateLimit-Reset") == str(retry_after)
    assert [r.status for r in health] == [200, 200, 200]
    assert health[0].getheader("RateLimit") is None
    assert unrouted.status == 429  # a 404 counts, and the budget is spent

    assert_clean_shutdown(server, server.terminate())


def test_the_429_body_is_problem_details(start_server: StartServer) -> None:
    server = start_server(RATE_LIMIT="1")
    conn = server.connection()
    try:
        assert get(conn, "/").status == 200
        conn.request("GET", "/")
        refused = conn.getresponse()
        body = json.loads(refused.read())
    finally:
        conn.close()
    assert refused.status == 429
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert "1/1m" in body["detail"]
    assert_clean_shutdown(server, server.terminate())


def test_a_bad_setting_stops_start_up_with_one_message(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "shardlimit", "serve"]
    command += ["--bind", f"127.0.0.1:{free_port()}"]
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["WINDOW_SIZE"] = "forever"
    result = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "environment: WINDOW_SIZE='forever' is not valid" in result.stderr


# --- SIGTERM during a burst -----------------------------------------------------------


@dataclass
class Burst:
    """Clients hammering the server on kept-alive connections until told to close."""

    server: Server
    clients: int = 8
    deadline: float = 20.0
    answered: list[int] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    closed_by_server: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        # Each connection is established and served once before the burst, so the
        # worker has accepted it: every request sent on it is in flight at the worker.
        conns = [self.server.connection() for _ in range(self.clients)]
        for conn in conns:
            assert get(conn, "/healthz").status == 200
        threads = [
            threading.Thread(target=self._client, args=(conn,), daemon=True)
            for conn in conns
        ]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, conn: http.client.HTTPConnection) -> None:
        stop_at = time.monotonic() + self.deadline
        try:
            while time.monotonic() < stop_at:
                try:
                    response = get(conn, "/api/burst")
                except (OSError, http.client.HTTPException) as exc:
                    with self.lock:
                        self.unanswered.append(repr(exc))
                    return
                with self.lock:
                    self.answered.append(response.status)
                if response.will_close:  # "Connection: close": the worker is stopping
                    with self.lock:
                        self.closed_by_server += 1
                    return
        finally:
            conn.close()

    def count(self) -> int:
        with self.lock:
            return len(self.answered)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param((), {}, id="one-worker"),
        pytest.param(("--preload",), {"WEB_CONCURRENCY": "2"}, id="preload-2-workers"),
    ],
)
def test_sigterm_during_a_burst_answers_every_request_in_flight_and_exits_0(
    start_server: StartServer, args: tuple[str, ...], env: dict[str, str]
) -> None:
    server = start_server(*args, **env)
    burst = Burst(server)
    threads = burst.run()

    deadline = time.monotonic() + 10.0
    while burst.count() < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert burst.count() >= 200, server.log()  # the burst is under way
    status = server.terminate()
    for thread in threads:
        thread.join(timeout=HTTP_TIMEOUT + 5)
    assert not any(thread.is_alive() for thread in threads)

    assert burst.unanswered == []
    assert burst.closed_by_server == burst.clients  # every client was told to close
    assert set(burst.answered) <= {200, 429}
    assert burst.answered.count(200) <= 5 * int(env.get("WEB_CONCURRENCY", "1"))
    assert_clean_shutdown(server, status)


def test_preload_workers_run_their_gc_thread_and_profiling_server(
    start_server: StartServer,
) -> None:
    profiling_port = free_port()
    server = start_server(
        "--preload",
        WEB_CONCURRENCY="2",
        PROFILING_ADDR=f"127.0.0.1:{profiling_port}",
        STORE_GC_INTERVAL="1h",
    )
    wait_for_port(profiling_port, timeout=30.0)
    conn = http.client.HTTPConnection("127.0.0.1", profiling_port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", "/debug/pprof/threads")
        threads_page = conn.getresponse().read().decode()
    finally:
        conn.close()

    assert "shardlimit-gc" in threads_page  # restarted in the forked worker
    log = server.log()
    assert "each worker process keeps its own counts" in log
    assert log.count("each worker process keeps its own counts") == 1  # the master
    assert_clean_shutdown(server, server.terminate())
