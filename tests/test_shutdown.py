"""Shutdown under load: the demo under gunicorn gets SIGTERM or SIGINT mid-traffic.

The real server (``gunicorn -c configs/gunicorn.conf.py shardlimit.demo:app``, bound
to a free loopback port, with an access log) serves eight client threads that open a
connection per request, plus slow clients whose requests are half sent when the
signal arrives and finished after it. Then, with the memory store and with Redis:

* the server exits with status 0 within the graceful timeout, and its worker
  process is gone (no thread can be left behind);
* the worker closed its limiter (the exit hook logs it), stopping the GC thread;
* every request in flight at the signal (the slow clients) gets a whole response;
* no accepted request is lost: every request the server logged as answered was
  received whole by its client, and with Redis the server-side count of admitted
  hits equals the 200s the clients received. (Connections still in the kernel's
  listen backlog when gunicorn closes its socket are reset; the server never read
  them, they are not counted, and clients see a connection error they can retry.)

A second signal during the graceful stop (TERM then TERM, TERM then INT) does not
hang either.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import free_port, wait_for_port

if TYPE_CHECKING:
    from tests.redis_support import RedisServer

pytest_plugins = ["tests.redis_support"]

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
EXIT_TIMEOUT = 40.0  # gunicorn's graceful_timeout is 25s
REQUEST = b"GET /api/load HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


@dataclass
class Server:
    """A demo server process and where its logs go."""

    process: subprocess.Popen[bytes]
    port: int
    error_log: Path
    access_log: Path

    def worker_pids(self) -> list[int]:
        text = self.error_log.read_text(errors="replace")
        return [
            int(line.rsplit(":", 1)[1])
            for line in text.splitlines()
            if "Booting worker with pid:" in line
        ]

    def answered(self) -> Counter[str]:
        """Statuses the server logged for /api/load requests."""
        lines = self.access_log.read_text(errors="replace").splitlines()
        return Counter(line.split()[0] for line in lines if line.endswith("/api/load"))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Start demo servers; kill whatever is left at the end of the test."""
    started: list[Server] = []

    def start(store_url: str, **env: str) -> Server:
        port = free_port()
        error_log = tmp_path / f"error-{port}.log"
        access_log = tmp_path / f"access-{port}.log"
        environment = {
            **os.environ,
            "SERVER_PORT": str(port),
            "RATE_LIMIT": "1000000",
            "WINDOW_SIZE": "60s",
            "STORE_URL": store_url,
            "STORE_GC_INTERVAL": "50ms",
            "PROFILING_ADDR": "off",
            **env,
        }
        with error_log.open("wb") as errors:
            process = subprocess.Popen(
                [
                    str(GUNICORN),
                    "-c",
                    "configs/gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--access-logfile",
                    str(access_log),
                    "--access-logformat",
                    "%(s)s %(U)s",
                    "shardlimit.demo:app",
                ],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        server = Server(process, port, error_log, access_log)
        started.append(server)
        wait_for_port(port)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)


@dataclass
class Traffic:
    """Client threads hitting the server until stopped; what each request got."""

    port: int
    outcomes: Counter[str] = field(default_factory=Counter)
    slow: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def hammer(self) -> None:
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                self.record("refused")
                time.sleep(0.005)
                continue
            with sock:
                try:
                    sock.sendall(REQUEST)
                    self.record(read_status(sock))
                except OSError as exc:
                    self.record(f"reset:{type(exc).__name__}")

    def slow_request(self, release: threading.Event) -> None:
        """Send half a request, wait for `release`, send the rest, read the answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
            sock.sendall(b"GET /api/load HTTP/1.1\r\nHost: test\r\n")
            release.wait(20)
            try:
                sock.sendall(b"Connection: close\r\n\r\n")
                status = read_status(sock)
            except OSError as exc:
                status = f"reset:{type(exc).__name__}"
        with self.lock:
            self.slow.append(status)


def read_status(sock: socket.socket) -> str:
    """Read a whole response (the server closes the connection); return its status."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return "empty" if not data else "garbled"
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    if length is not None and len(body) != length:
        return "truncated"
    return head.split(b" ", 2)[1].decode()


def shut_down_under_load(server: Server, signals: list[signal.Signals]) -> Traffic:
    traffic = Traffic(server.port)
    release = threading.Event()
    hammers = [threading.Thread(target=traffic.hammer) for _ in range(8)]
    slows = [
        threading.Thread(target=traffic.slow_request, args=(release,)) for _ in range(4)
    ]
    try:
        for thread in hammers:
            thread.start()
        deadline = time.monotonic() + 15.0
        while traffic.outcomes["200"] < 200 and time.monotonic() < deadline:
            time.sleep(0.01)  # until traffic flows
        for thread in slows:
            thread.start()
        time.sleep(0.1)  # the slow requests are half sent
        for n, sig in enumerate(signals):
            if n:
                time.sleep(0.05)
            server.process.send_signal(sig)
        time.sleep(0.5)
        release.set()  # the slow clients finish their requests after the signal
        server.process.wait(EXIT_TIMEOUT)
    finally:
        release.set()
        traffic.stop.set()
        for thread in hammers + slows:
            thread.join(30)
    return traffic


def check_clean_exit(server: Server, traffic: Traffic) -> None:
    assert server.process.returncode == 0, server.error_log.read_text()[-3000:]
    log = server.error_log.read_text(errors="replace")
    assert "closed its limiter" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    for pid in server.worker_pids():
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} is still running"

    assert traffic.slow == ["200"] * 4, (
        f"requests in flight at the signal: {traffic.slow}"
    )
    outcomes = traffic.outcomes
    assert outcomes["200"] >= 200, f"too little traffic to mean anything: {outcomes}"
    broken = {
        k: n for k, n in outcomes.items() if k in ("empty", "garbled", "truncated")
    }
    assert not broken, f"incomplete responses: {outcomes}"
    assert set(outcomes) <= {"200", "refused", "reset:ConnectionResetError",
                             "reset:BrokenPipeError"}, outcomes  # fmt: skip
    # Every request the server answered reached its client whole.
    answered = server.answered()
    assert answered["200"] == outcomes["200"] + len(traffic.slow), (
        f"the server answered {answered} but the clients received {outcomes} "
        f"and {traffic.slow}"
    )


SIGNALS = {
    "term": [signal.SIGTERM],
    "int": [signal.SIGINT],
    "term-term": [signal.SIGTERM, signal.SIGTERM],
    "term-int": [signal.SIGTERM, signal.SIGINT],
}


@pytest.mark.parametrize("signals", sorted(SIGNALS))
def test_memory_store_shuts_down_cleanly_under_load(
    start_server: object, signals: str
) -> None:
    server = start_server("memory://")  # type: ignore[operator]
    traffic = shut_down_under_load(server, SIGNALS[signals])
    check_clean_exit(server, traffic)


def admitted_on_redis(server: RedisServer) -> int:
    """Hits the sliding-window lists on the server hold (one list per client)."""
    client = server.client()
    try:
        return sum(client.llen(key) for key in client.scan_iter("shardlimit:*"))
    finally:
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize("signals", ["term", "int", "term-term"])
def test_redis_store_shuts_down_cleanly_under_load(
    start_server: object, redis_server: RedisServer, redis_url: str, signals: str
) -> None:
    server = start_server(redis_url)  # type: ignore[operator]
    traffic = shut_down_under_load(server, SIGNALS[signals])
    check_clean_exit(server, traffic)
    # Every 200 a client received was counted on Redis: none went through after the
    # worker closed its limiter (the middleware then fails open, uncounted).
    assert admitted_on_redis(redis_server) == traffic.outcomes["200"] + 4
    log = server.error_log.read_text(errors="replace")
    assert "rate limiter failed" not in log, log[-2000:]


@pytest.mark.redis
def test_redis_limits_survive_a_restart_of_the_server(
    start_server: object, redis_server: RedisServer, redis_url: str
) -> None:
    """A restarted server finds the counts where the last one left them."""
    first = start_server(redis_url, RATE_LIMIT="5")  # type: ignore[operator]
    statuses = [get_status(first.port) for _ in range(3)]
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(EXIT_TIMEOUT)
    assert first.process.returncode == 0
    second = start_server(redis_url, RATE_LIMIT="5")  # type: ignore[operator]
    statuses += [get_status(second.port) for _ in range(3)]
    assert statuses == ["200"] * 5 + ["429"]
    second.process.send_signal(signal.SIGTERM)
    second.process.wait(EXIT_TIMEOUT)
    assert second.process.returncode == 0


def get_status(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(REQUEST)
        return read_status(sock)
