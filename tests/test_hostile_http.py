"""Hostile HTTP input to the demo server, over real sockets.

The demo runs under gunicorn on a free loopback port (``RATE_LIMIT=5``) and trusts
``X-Forwarded-For`` from 127.0.0.1, so the header's value becomes the client key.
Each hostile request (very long header values, thousands of forwarded hops, invalid
UTF-8 in the key, NUL bytes, oversized request lines and header counts) must get an
answer within a bounded time, and the answer must be a 2xx or a 4xx, never a 5xx.
Keys longer than ``MAX_KEY_LENGTH`` are shortened with a hash of the whole key:
the same long key keeps one budget, two long keys that differ only at the end keep
two. And the worker's memory stays bounded while thousands of distinct long keys
arrive.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20
TIMEOUT = 10.0


class Demo:
    """The demo under gunicorn on a loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "error.log"
        env = {
            **os.environ,
            "SERVER_PORT": str(self.port),
            "RATE_LIMIT": "5",
            "WINDOW_SIZE": "1h",
            "STORE_URL": "memory://",
            "PROFILING_ADDR": "off",
            "TRUSTED_PROXIES": "127.0.0.1",
        }
        with self.log.open("wb") as errors:
            self.process = subprocess.Popen(
                [
                    str(GUNICORN),
                    "-c",
                    "configs/gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "shardlimit.demo:app",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )

    def worker_rss(self) -> int:
        pids = [
            int(line.rsplit(":", 1)[1])
            for line in self.log.read_text(errors="replace").splitlines()
            if "Booting worker with pid:" in line
        ]
        with open(f"/proc/{pids[-1]}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    server = Demo(tmp_path_factory.mktemp("hostile"))
    try:
        wait_for_port(server.port)
        assert send(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n") == 200
        yield server
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def send(demo: Demo, raw: bytes) -> int:
    """Send one raw request on a new connection; return the response's status.

    Raises if no whole status line arrives within TIMEOUT seconds.
    """
    with socket.create_connection(("127.0.0.1", demo.port), timeout=TIMEOUT) as sock:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1."), f"no answer: {data[:200]!r}"
    return int(data.split(b" ", 2)[1])


def get(path: str = "/api/x", headers: dict[str, bytes] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def sane(status: int) -> bool:
    return 200 <= status < 500


HOSTILE = {
    "long-forwarded-for": get(headers={"X-Forwarded-For": b"7" * 8_000}),
    "too-long-forwarded-for": get(headers={"X-Forwarded-For": b"7" * 9_000}),
    "thousand-hops": get(
        headers={"X-Forwarded-For": b"1.1.1.1," * 1_000 + b"203.0.113.5"}
    ),
    "invalid-utf8-forwarded-for": get(headers={"X-Forwarded-For": b"\xff\xfe\xc3\x28"}),
    "invalid-utf8-api-key": get(headers={"X-API-Key": b"\xc0\xaf\xed\xa0\x80" * 100}),
    "nul-in-header": get(headers={"X-Forwarded-For": b"1.2.3.4\x00evil"}),
    "bare-cr-in-header": get(headers={"X-Forwarded-For": b"1.2.3.4\revil"}),
    "control-chars": get(
        headers={
            "X-Forwarded-For": bytes(range(1, 32))
            .replace(b"\r", b"")
            .replace(b"\n", b"")
        }
    ),
    "many-headers": (
        b"GET /api/x HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(300))
        + b"\r\n"
    ),
    "many-forwarded-for-headers": (
        b"GET /api/x HTTP/1.1\r\nHost: t\r\n"
        + b"X-Forwarded-For: 10.9.9.9\r\n" * 90
        + b"\r\n"
    ),
    "long-request-line": get(path="/api/" + "a" * 10_000),
    "invalid-utf8-path": b"GET /api/\xff\xfe%ff%c0 HTTP/1.1\r\nHost: t\r\n\r\n",
    "obs-fold": (
        b"GET /api/x HTTP/1.1\r\nHost: t\r\n"
        b"X-Forwarded-For: 1.1.1.1\r\n 2.2.2.2\r\n\r\n"
    ),
    "ipv6-zone-hop": get(headers={"X-Forwarded-For": b"fe80::1%eth0, [::1]:80"}),
    "bad-method": b"G\xffT /api/x HTTP/1.1\r\nHost: t\r\n\r\n",
    "http-0.9": b"GET /api/x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_requests_get_a_sane_answer(demo: Demo, name: str) -> None:
    status = send(demo, HOSTILE[name])
    assert sane(status), f"{name}: {status}"


def test_a_long_key_keeps_one_budget_and_long_keys_stay_distinct(demo: Demo) -> None:
    first = b"8" * 7_000 + b"A"
    second = b"8" * 7_000 + b"B"  # differs from the first only in its last byte
    statuses = [send(demo, get(headers={"X-Forwarded-For": first})) for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert send(demo, get(headers={"X-Forwarded-For": second})) == 200


def flood_long_keys(demo: Demo, count: int) -> int:
    """Send `count` requests with distinct 7 KB keys; return the RSS growth."""
    connection = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=TIMEOUT)
    before = demo.worker_rss()
    try:
        for i in range(count):
            hop = f"{i:08d}".encode() + b"k" * 7_000
            connection.request("GET", "/api/x", headers={"X-Forwarded-For": hop})
            response = connection.getresponse()
            response.read()
            assert sane(response.status), response.status
    finally:
        connection.close()
    return demo.worker_rss() - before


def test_distinct_long_keys_keep_memory_bounded(demo: Demo) -> None:
    """The store keeps a fixed-size fingerprint per key, whatever its length."""
    grown = flood_long_keys(demo, 3_000)
    assert grown < 64 * MB, f"the worker grew {grown / MB:.1f} MB for 3,000 keys"


@pytest.mark.slow
def test_many_distinct_long_keys_keep_memory_bounded(demo: Demo) -> None:
    warm = flood_long_keys(demo, 10_000)
    grown = flood_long_keys(demo, 30_000)
    assert grown < 16 * MB, (
        f"after a warm-up of 10,000 keys ({warm / MB:.1f} MB) the worker grew "
        f"{grown / MB:.1f} MB for 30,000 more"
    )
