"""Requests per second of a hello-world Falcon app under gunicorn, with and without
RateLimitMiddleware, in one run on loopback.

    .venv/bin/python benches/bench_http.py [--seconds 2] [--slices 15]

Each configuration has its own gunicorn (one gthread worker with 8 threads, as the
demo) on 127.0.0.1, all started at once. The load comes from `wrk` when
`command -v wrk` finds it, else from a load generator in Python in its own process:
one selector loop over keep-alive connections, each with one request outstanding.
The run is cut into short slices that visit the configurations in rotating order, so
changes in the machine's background load fall on all of them alike. The table gives
medians: "kept" is the median of each slice's ratio to the baseline's slice of the
same rotation; the worker's CPU time per request (from /proc) says what the
middleware costs even when the load generator and the server share the cores.

The limited apps allow far more than the run sends, so every request takes the whole
allowed path: key, hit, headers. The "no headers" row (``headers="none"``) separates
the cost of the five rate-limit header fields, which gunicorn validates one by one,
from the cost of deciding. All requests come from one address, so they all hit
one key: the worst case for contention on a shard lock.

Not a test: timings live here, never in tests/.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import falcon

from shardlimit import Limiter
from shardlimit.falcon import RateLimitMiddleware

BENCHES = Path(__file__).resolve().parent
TARGET = 0.90
# Never reached, so every request is allowed; a one-second window keeps the sliding
# log of the single key at about one second of requests, as a real limit would.
LIMIT = "1000000/second"


# --- the apps gunicorn serves (imported by the worker as bench_http:...) --------------


class Hello:
    """``GET /``: the smallest useful response."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, world!\n"


def make_app(
    algorithm: str | None = None, headers: str = "both"
) -> falcon.App[Any, Any]:
    """Return the hello-world app, limited with ``algorithm`` unless it is None."""
    middleware = []
    if algorithm is not None:
        limiter = Limiter(LIMIT, algorithm=algorithm, gc_interval=None)
        middleware.append(RateLimitMiddleware(limiter, headers=headers))
    app: falcon.App[Any, Any] = falcon.App(middleware=middleware)
    app.add_route("/", Hello())
    return app


CONFIGS: dict[str, str] = {
    "no middleware": "bench_http:make_app()",
    "middleware, sliding_window": "bench_http:make_app('sliding_window')",
    "middleware, token_bucket": "bench_http:make_app('token_bucket')",
    "middleware, no headers": "bench_http:make_app('sliding_window', 'none')",
}
BASELINE = "no middleware"


# --- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """One gunicorn master and its single worker, on a free loopback port."""

    def __init__(self, app: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "gunicorn", app]
        command += ["--bind", f"127.0.0.1:{self.port}", "--chdir", str(BENCHES)]
        command += ["--workers", "1", "--worker-class", "gthread", "--threads", "8"]
        command += [
            "--keep-alive",
            "5",
            "--no-control-socket",
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(command, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("gunicorn did not start")

    def worker_cpu_seconds(self) -> float:
        """User plus system CPU time of the worker process so far."""
        total = 0.0
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in children.read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


# --- the load -------------------------------------------------------------------------

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def python_load(port: int, connections: int, seconds: float) -> tuple[int, int]:
    """Keep ``connections`` busy for ``seconds``; return (responses, non-200s)."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}

    def connect() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        sock.setblocking(False)
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(connections):
        connect()
    done = bad = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            data = sock.recv(65536)
            if not data:  # the server closed a kept-alive connection: open another
                selector.unregister(sock)
                sock.close()
                del buffers[sock]
                connect()
                continue
            buffer = buffers[sock]
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            match = _LENGTH.search(buffer, 0, end) if end >= 0 else None
            if match is None or len(buffer) < end + 4 + int(match[1]):
                continue
            done += 1
            bad += buffer[9:12] != b"200"
            del buffer[: end + 4 + int(match[1])]
            sock.setblocking(True)
            sock.sendall(request)
            sock.setblocking(False)
    for sock in buffers:
        sock.close()
    return done, bad


def _load_server(commands: Any) -> None:
    """Run in the load process: answer (port, connections, seconds) with results."""
    while (command := commands.recv()) is not None:
        commands.send(python_load(*command))


class PythonLoad:
    """The Python load generator, in its own process for the whole run."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_load_server, args=(child,))
        self._process.start()

    def __call__(
        self, port: int, connections: int, seconds: float
    ) -> tuple[float, int]:
        self._pipe.send((port, connections, seconds))
        done, bad = self._pipe.recv()
        return done / seconds, bad

    def close(self) -> None:
        self._pipe.send(None)
        self._process.join(timeout=30)


def measure_wrk(port: int, connections: int, seconds: float) -> tuple[float, int]:
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds:g}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s*([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    return float(rate[1]) if rate else 0.0, int(bad[1]) if bad else 0


# --- the run --------------------------------------------------------------------------


def run(args: argparse.Namespace, measure: Any) -> dict[str, list[tuple[float, float]]]:
    """Serve every configuration at once and measure them in interleaved slices.

    Slice by slice the order rotates, so slow changes in the machine's load fall on
    every configuration alike. Returns (requests/s, worker CPU us/request) per slice.
    """
    servers = {name: Gunicorn(app) for name, app in CONFIGS.items()}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    try:
        for server in servers.values():  # warm-up, not recorded
            measure(server.port, args.connections, 1.0)
        names = list(CONFIGS)
        for slice_ in range(args.slices):
            shift = slice_ % len(names)
            for name in names[shift:] + names[:shift]:
                server = servers[name]
                before = server.worker_cpu_seconds()
                rps, bad = measure(server.port, args.connections, args.seconds)
                cpu = server.worker_cpu_seconds() - before
                if bad:
                    raise RuntimeError(f"{name}: {bad} responses were not 200")
                samples[name].append((rps, cpu / (rps * args.seconds) * 1e6))
            line = "  ".join(f"{samples[n][-1][0]:6.0f}" for n in names)
            print(f"  slice {slice_ + 1:2}: {line}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return samples


def report(samples: dict[str, list[tuple[float, float]]]) -> float:
    """Print the table; return the worst share of the baseline's throughput kept."""
    base = samples[BASELINE]
    header = ("configuration", "req/s", "kept", "server CPU/req")
    print(f"\n| {header[0]:28} | {header[1]:>8} | {header[2]:>6} | {header[3]:>14} |")
    print(f"|{'-' * 30}|{'-' * 9}:|{'-' * 7}:|{'-' * 15}:|")
    worst = 1.0
    for name, runs in samples.items():
        rps = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        # Each slice against the baseline's slice of the same rotation.
        kept = statistics.median(
            r / b for (r, _), (b, _) in zip(runs, base, strict=True)
        )
        worst = min(worst, kept)
        print(f"| {name:28} | {rps:8.0f} | {kept:6.1%} | {cpu:11.1f} us |")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per slice")
    parser.add_argument("--slices", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    use_wrk = shutil.which("wrk") is not None
    load = None if use_wrk else PythonLoad()
    measure = measure_wrk if load is None else load
    generator = "wrk" if use_wrk else "Python load generator (wrk not found)"
    print(
        f"hello-world Falcon app, gunicorn 1 gthread worker x 8 threads, loopback; "
        f"{generator}, {args.connections} keep-alive connections; "
        f"{args.slices} interleaved slices of {args.seconds:g}s per configuration; "
        f"medians; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print("  columns: " + " | ".join(CONFIGS))
    try:
        samples = run(args, measure)
    finally:
        if load is not None:
            load.close()
    worst = report(samples)
    verdict = "met" if worst >= TARGET else "NOT met"
    print(
        f"\ntarget: the middleware keeps >= {TARGET:.0%} of the throughput: {verdict}"
    )
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
