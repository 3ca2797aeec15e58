"""The profiling server on a real loopback socket: every page, bad requests, binding."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shardlimit import ConfigError, Limiter, ManualClock
from shardlimit.profiling import ProfilingServer, parse_profiling_addr
from tests.support import free_port, wait_for_port

pytest_plugins = ["tests.redis_support"]

LOGGER = "shardlimit.profiling"
COLLAPSED_LINE = re.compile(r"^(\S+) (\d+)$")


def fetch(
    server: ProfilingServer, path: str, method: str = "GET"
) -> tuple[int, Message, str]:
    """Request ``path``; return the status, headers and body, whatever the status."""
    address = server.address
    assert address is not None
    host, port = address
    host = f"[{host}]" if ":" in host else host
    data = b"ignored" if method in {"POST", "PUT", "PATCH"} else None
    request = urllib.request.Request(
        f"http://{host}:{port}{path}", data=data, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def text(server: ProfilingServer, path: str) -> str:
    status, _, body = fetch(server, path)
    assert status == 200, body
    return body


def mutex_totals(page: str) -> tuple[int, float]:
    match = re.search(r"^total: contended=(\d+) wait_seconds=([\d.]+)", page, re.M)
    assert match, page
    return int(match.group(1)), float(match.group(2))


@pytest.fixture
def make_limiter() -> Iterator[Callable[..., Limiter]]:
    made: list[Limiter] = []

    def make(rates: str = "1000000/1h", **options: object) -> Limiter:
        options.setdefault("gc_interval", None)
        options.setdefault("clock", ManualClock())
        limiter = Limiter(rates, **options)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ProfilingServer]]:
    servers: list[ProfilingServer] = []

    def start(*limiters: Limiter, addr: str = "127.0.0.1:0") -> ProfilingServer:
        server = ProfilingServer(addr, limiters=limiters)
        servers.append(server)
        assert server.start()
        return server

    yield start
    for server in servers:
        server.stop()


# --- addresses and binding ------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:6060", ("127.0.0.1", 6060)),
        (":6060", ("127.0.0.1", 6060)),
        ("[::1]:6060", ("::1", 6060)),
        ("[0:0:0:0:0:0:0:1]:7000", ("::1", 7000)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:6060", ("0.0.0.0", 6060)),
        ("profiler.internal:65535", ("profiler.internal", 65535)),
        (" 127.0.0.1:6060 ", ("127.0.0.1", 6060)),
        ("off", None),
        (None, None),
        ("OFF", None),
        (" Off ", None),
    ],
)
def test_parse_addr_accepts(addr: str | None, expected: tuple[str, int] | None) -> None:
    assert parse_profiling_addr(addr) == expected


@pytest.mark.parametrize(
    "addr",
    [
        "",
        "6060",
        "localhost",
        "localhost:",
        ":",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:http",
        "127.0.0.1:6060x",
        "::1:6060",
        "[::1]",
        "[::1]:",
        "[not-v6]:6060",
        "[127.0.0.1]:6060",
        "bad host:6060",
        "-bad:6060",
        "999.1.1.1:6060",
        "127.0.0.1.5:6060",
        "no",
    ],
)
def test_parse_addr_rejects_with_the_variable_and_value(addr: str) -> None:
    with pytest.raises(ConfigError, match="PROFILING_ADDR") as info:
        parse_profiling_addr(addr)
    assert repr(addr) in str(info.value)


def test_constructor_rejects_a_bad_addr_before_binding() -> None:
    with pytest.raises(ConfigError, match=r"PROFILING_ADDR='nope'"):
        ProfilingServer("nope")
    with pytest.raises(ConfigError, match="PROFILING_ADDR"):
        ProfilingServer(6060)  # type: ignore[arg-type]


def _socket_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            fds.add(target)
    return fds


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_off_binds_nothing(make_limiter: Callable[..., Limiter]) -> None:
    before = _socket_fds()
    for addr in ("off", "OFF", None):
        server = ProfilingServer(addr, limiters=[make_limiter()])
        assert server.start() is False
        assert server.address is None
    assert _socket_fds() <= before
    assert not any(
        t.name.startswith("shardlimit-profiling") for t in threading.enumerate()
    )
    server.stop()


def test_colon_port_binds_loopback_only(serve: Callable[..., ProfilingServer]) -> None:
    server = serve(addr=":0")
    assert server.address is not None
    assert server.address[0] == "127.0.0.1"


def test_ipv6_loopback(serve: Callable[..., ProfilingServer]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"this machine cannot bind [::1]: {exc}")
    server = serve(addr="[::1]:0")
    assert server.address is not None
    assert server.address[0] == "::1"
    assert "/debug/pprof/mutex" in text(server, "/debug/pprof/")


def test_lifecycle_start_stop_and_context_manager(
    make_limiter: Callable[..., Limiter],
) -> None:
    server = ProfilingServer("127.0.0.1:0", limiters=[make_limiter()])
    assert server.address is None
    server.stop()  # stopping a server that never started is a no-op
    with server as entered:
        assert entered is server
        assert server.address is not None
        port = server.address[1]
        assert server.start() is True  # already serving: a no-op
        assert server.address[1] == port
        wait_for_port(port)
        assert "serving=True" in repr(server)
    assert server.address is None
    server.stop()
    names = {t.name for t in threading.enumerate()}
    assert "shardlimit-profiling" not in names
    with pytest.raises(OSError):  # noqa: PT011 - the socket is closed: refused
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_taken_port_warns_once_and_returns_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        server = ProfilingServer(f"127.0.0.1:{port}")
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            assert server.start() is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].name == LOGGER
    assert f"127.0.0.1:{port} is in use" in message
    assert f"pid {os.getpid()}) has no profiling server" in message
    assert f"http://127.0.0.1:{port}/debug/pprof/" in message
    assert server.address is None


def test_an_address_not_on_this_machine_warns_and_returns_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ProfilingServer("192.0.2.1:0")  # TEST-NET-1: never a local address
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert server.start() is False
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "cannot bind 192.0.2.1:0" in message
    assert "has no profiling server" in message


def test_taken_port_names_the_profiling_server_that_holds_it(
    serve: Callable[..., ProfilingServer], caplog: pytest.LogCaptureFixture
) -> None:
    first = serve()
    assert first.address is not None
    second = ProfilingServer(f"127.0.0.1:{first.address[1]}")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert second.start() is False
    assert len(caplog.records) == 1
    assert f"in use by pid {os.getpid()}" in caplog.records[0].getMessage()
    assert "/debug/pprof/" in text(first, "/debug/pprof/")  # the holder keeps serving


def test_a_second_process_on_the_port_says_where_the_profile_is(
    serve: Callable[..., ProfilingServer],
) -> None:
    """Two gunicorn workers on one PROFILING_ADDR: the second serves no profile."""
    holder = serve()
    assert holder.address is not None
    script = (
        "import logging, sys\n"
        "from shardlimit.profiling import ProfilingServer\n"
        "logging.basicConfig(format='%(levelname)s %(name)s %(message)s')\n"
        "print(ProfilingServer(sys.argv[1]).start())\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, f"127.0.0.1:{holder.address[1]}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert out.strip() == "False"
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING shardlimit.profiling profiling server not")
    assert f"in use by pid {os.getpid()}" in lines[0]
    assert f"this process (pid {worker.pid}) has no profiling server" in lines[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_claim_the_parents_server(
    serve: Callable[..., ProfilingServer],
) -> None:
    server = serve(addr=f"127.0.0.1:{free_port()}")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's cleanup
        try:
            claims = server.address
            started = server.start()
            os.write(write_end, f"{claims!r} {started!r}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    assert report == "None False"
    assert "/debug/pprof/mutex" in text(server, "/debug/pprof/")  # the parent's


# --- the pages ------------------------------------------------------------------------


def test_index_links_every_page_and_lists_the_limiters(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    server = serve(make_limiter("10/second", algorithm="token_bucket", shards=4))
    for path in ("/debug/pprof/", "/debug/pprof", "/"):
        status, headers, body = fetch(server, path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert headers["X-Profiling-Pid"] == str(os.getpid())
    for page in ("mutex", "heap", "threads", "profile"):
        assert f'href="/debug/pprof/{page}' in body
    assert 'href="/metrics"' in body
    assert "limiter 0: token_bucket 10/1s (memory store, 4 shards)" in body


def test_head_answers_headers_only(serve: Callable[..., ProfilingServer]) -> None:
    status, headers, body = fetch(serve(), "/debug/pprof/threads", method="HEAD")
    assert status == 200
    assert body == ""
    assert int(headers["Content-Length"]) > 0


def test_mutex_is_zero_without_contention(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(shards=1)
    for i in range(100):
        limiter.hit(f"quiet:{i}")
    server = serve(limiter)
    page = text(server, "/debug/pprof/mutex")
    assert mutex_totals(page) == (0, 0.0)
    report = json.loads(text(server, "/debug/pprof/mutex?format=json"))
    assert report["pid"] == os.getpid()
    (only,) = report["limiters"]
    assert only["contended"] == 0
    assert [s["contended"] for s in only["shards"]] == [0]


def _contend(limiter: Limiter, keys: int, deadline: float) -> None:
    """Hit keys from two threads while this one sweeps, until the store saw contention.

    ``sweep()`` holds the shard's write lock without the GIL, so a hit in another
    thread finds the lock held: exactly the slow path the counters measure.
    """
    stop = threading.Event()

    def hitter(offset: int) -> None:
        i = offset
        while not stop.is_set():
            limiter.hit(f"hot:{i % keys}")
            i += 7

    threads = [threading.Thread(target=hitter, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    try:
        while limiter.stats()["contention"]["contended"] == 0:
            assert time.monotonic() < deadline, "no contention seen before the deadline"
            limiter.sweep()
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_mutex_shows_contention_hottest_shard_first(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(shards=1)
    keys = 20_000
    for i in range(keys):
        limiter.hit(f"hot:{i}")
    server = serve(limiter)
    assert mutex_totals(text(server, "/debug/pprof/mutex")) == (0, 0.0)

    _contend(limiter, keys, deadline=time.monotonic() + 60)

    stats = limiter.stats()
    page = text(server, "/debug/pprof/mutex")
    contended, wait = mutex_totals(page)
    assert contended >= stats["contention"]["contended"] > 0
    assert wait > 0
    first_row = page.split("avg_wait_us", 2)[2].splitlines()[1].split()
    assert first_row[0] == "0"  # the only shard
    assert int(first_row[1]) > 0


def test_mutex_orders_shards_by_wait(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(shards=8)
    keys = 20_000
    for i in range(keys):
        limiter.hit(f"hot:{i}")
    _contend(limiter, keys, deadline=time.monotonic() + 60)
    report = json.loads(text(serve(limiter), "/debug/pprof/mutex?format=json"))
    shards = report["limiters"][0]["shards"]
    assert len(shards) == 8
    waits = [s["wait_seconds"] for s in shards]
    assert waits == sorted(waits, reverse=True)
    assert sum(s["contended"] for s in shards) == report["limiters"][0]["contended"]
    assert sum(s["hits"] for s in shards) == limiter.stats()["hits"]


def test_mutex_over_seconds_shows_the_change(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(shards=1)
    keys = 20_000
    for i in range(keys):
        limiter.hit(f"hot:{i}")
    _contend(limiter, keys, deadline=time.monotonic() + 60)
    server = serve(limiter)
    assert mutex_totals(text(server, "/debug/pprof/mutex"))[0] > 0
    # Nothing contends during the next second, so the change is zero.
    page = text(server, "/debug/pprof/mutex?seconds=1")
    assert "change over the last 1 s" in page
    assert mutex_totals(page) == (0, 0.0)


def test_heap_entries_equal_the_store_keys(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(shards=8)
    for i in range(777):
        limiter.hit(f"user:{i}")
    server = serve(limiter)
    stats = limiter.stats()
    assert stats["keys"] == 777
    page = text(server, "/debug/pprof/heap")
    assert re.search(r"^entries: 777 \(stats keys=777,", page, re.M), page
    assert f"bytes: {stats['memory_bytes']} " in page
    report = json.loads(text(server, "/debug/pprof/heap?format=json"))
    (only,) = report["limiters"]
    assert only["entries"] == only["keys"] == 777
    assert len(only["shards"]) == 8
    assert sum(s["keys"] for s in only["shards"]) == 777
    sizes = [s["bytes"] for s in only["shards"]]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(sizes) == only["bytes"] > 0


def test_heap_tracemalloc_start_and_stop(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    server = serve(make_limiter())
    was_tracing = tracemalloc.is_tracing()
    try:
        page = text(server, "/debug/pprof/heap?tracemalloc=start")
        assert tracemalloc.is_tracing()
        hoard = [bytearray(1000) for _ in range(200)]  # noqa: F841 - kept alive
        report = json.loads(text(server, "/debug/pprof/heap?format=json&top=5"))
        top = report["tracemalloc"]["top"]
        assert report["tracemalloc"]["tracing"] is True
        assert 1 <= len(top) <= 5
        assert any("test_profiling.py" in site["site"] for site in top), top
        page = text(server, "/debug/pprof/heap")
        assert "python allocations (tracemalloc)" in page
        if not was_tracing:
            page = text(server, "/debug/pprof/heap?tracemalloc=stop")
            assert "tracemalloc stopped" in page
            assert "tracemalloc is not tracing" in page
            assert not tracemalloc.is_tracing()
    finally:
        if not was_tracing:
            tracemalloc.stop()


def test_threads_page_shows_the_gc_thread_and_stacks(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter(gc_interval=60.0)
    server = serve(limiter)
    page = text(server, "/debug/pprof/threads")
    assert "thread 'shardlimit-gc'" in page
    assert "thread 'shardlimit-profiling'" in page
    assert "thread 'MainThread'" in page
    assert "in test_threads_page_shows_the_gc_thread_and_stacks" in page
    gc_stack = page.split("thread 'shardlimit-gc'", 1)[1].split("\n\n", 1)[0]
    assert "in _run" in gc_stack


def busy_for_profile(stop: threading.Event) -> None:
    """Keep one thread on the CPU in a function the profile must name."""
    total = 0
    while not stop.is_set():
        total += sum(i * i for i in range(500))


def test_profile_returns_collapsed_stacks_with_the_busy_function(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    server = serve(make_limiter())
    stop = threading.Event()
    busy = threading.Thread(target=busy_for_profile, args=(stop,), name="busy worker")
    busy.start()
    try:
        status, headers, body = fetch(server, "/debug/pprof/profile?seconds=1")
    finally:
        stop.set()
        busy.join()
    assert status == 200
    assert int(headers["X-Profile-Samples"]) > 0
    lines = body.splitlines()
    assert lines
    parsed = [COLLAPSED_LINE.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    stacks = {m.group(1): int(m.group(2)) for m in parsed if m}
    busy_stacks = [s for s in stacks if s.startswith("busy_worker;")]
    assert any(
        "tests.test_profiling:busy_for_profile" in s.split(";") for s in busy_stacks
    ), busy_stacks
    assert all(n > 0 for n in stacks.values())
    # The sampler does not sample itself.
    assert not any("profiling:_sample" in s for s in stacks)


def test_profile_accepts_a_float_and_hz(
    serve: Callable[..., ProfilingServer],
) -> None:
    status, headers, _ = fetch(serve(), "/debug/pprof/profile?seconds=1.0&hz=20")
    assert status == 200
    assert headers["X-Profile-Hz"] == "20"
    assert 0 < int(headers["X-Profile-Samples"]) <= 20 + 1


def test_stop_ends_a_profile_in_progress(
    make_limiter: Callable[..., Limiter],
) -> None:
    server = ProfilingServer("127.0.0.1:0", limiters=[make_limiter()])
    assert server.start()
    result: list[int] = []
    request = threading.Thread(
        target=lambda: result.append(
            fetch(server, "/debug/pprof/profile?seconds=60")[0]
        )
    )
    address = server.address
    request.start()
    while not any(
        t.name == "shardlimit-profiling-request" for t in threading.enumerate()
    ):
        time.sleep(0.01)
    server.stop()
    request.join(timeout=30)
    assert not request.is_alive(), "stop() left the 60-second profile running"
    assert result == [200]
    assert server.address is None
    assert address is not None


def test_one_profile_at_a_time(make_limiter: Callable[..., Limiter]) -> None:
    server = ProfilingServer("127.0.0.1:0", limiters=[make_limiter()])
    assert server.start()
    first: list[int] = []
    long_profile = threading.Thread(
        target=lambda: first.append(fetch(server, "/debug/pprof/profile?seconds=60")[0])
    )
    long_profile.start()
    try:
        deadline = time.monotonic() + 30
        while "in _sample" not in text(server, "/debug/pprof/threads"):
            assert time.monotonic() < deadline, "the long profile never started"
            time.sleep(0.01)
        status, _, body = fetch(server, "/debug/pprof/profile?seconds=1")
        assert status == 409
        assert "another profile is being taken" in body
    finally:
        server.stop()
        long_profile.join(timeout=30)
    assert first == [200]


def test_metrics_decisions_match_the_hits(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    limiter = make_limiter("5/minute", shards=4)
    other = make_limiter("2/second", algorithm="fixed_window")
    for _ in range(8):
        limiter.hit("a")  # 5 allowed, 3 denied
    for _ in range(2):
        limiter.hit("b")  # 2 allowed
    other.hit("x")
    server = serve(limiter)
    server.add_limiter(other)

    status, headers, body = fetch(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    decisions = "shardlimit_decisions_total"
    assert value(decisions, algorithm="sliding_window", result="allowed") == 7
    assert value(decisions, algorithm="sliding_window", result="denied") == 3
    assert value(decisions, algorithm="fixed_window", result="allowed") == 1
    assert value(decisions, algorithm="fixed_window", result="denied") == 0
    assert value("shardlimit_keys") == 3
    assert value("shardlimit_memory_bytes") > 0
    assert value("shardlimit_max_keys") == 2_000_000
    assert value("shardlimit_rejected_full_total") == 0
    assert value("shardlimit_gc_runs_total") == 0
    assert value("shardlimit_lock_contended_total") == 0
    assert value("shardlimit_lock_wait_seconds_total") == 0

    limiter.reset("a")
    limiter.sweep()
    samples_after = {
        s.name: s.value
        for family in text_string_to_metric_families(fetch(server, "/metrics")[2])
        for s in family.samples
    }
    assert samples_after["shardlimit_gc_runs_total"] >= 1
    assert "shardlimit_gc_last_sweep_seconds" in samples_after


def test_metrics_without_prometheus_client_is_501(
    serve: Callable[..., ProfilingServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.setitem(sys.modules, "prometheus_client.exposition", None)
    status, _, body = fetch(server, "/metrics")
    assert status == 501
    assert "prometheus-client" in body
    assert "shardlimit[prometheus]" in body


def test_closed_limiters_leave_the_pages(
    serve: Callable[..., ProfilingServer], make_limiter: Callable[..., Limiter]
) -> None:
    kept = make_limiter("10/second")
    dropped = make_limiter("20/second")
    server = serve(kept, dropped)
    assert "20/1s" in text(server, "/debug/pprof/")
    dropped.close()
    page = text(server, "/debug/pprof/")
    assert "20/1s" not in page
    assert "limiter 0: sliding_window 10/1s" in page


# --- bad requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/nope", 404, "no page at '/nope'"),
        ("/debug/pprof/goroutines", 404, "no page"),
        ("/debug/pprof/profile?seconds=-1", 400, "seconds must be a number from 1"),
        ("/debug/pprof/profile?seconds=abc", 400, "got 'abc'"),
        ("/debug/pprof/profile?seconds=100000", 400, "got '100000'"),
        ("/debug/pprof/profile?seconds=0", 400, "got '0'"),
        ("/debug/pprof/profile?seconds=60.5", 400, "from 1 to 60"),
        ("/debug/pprof/profile?seconds=nan", 400, "got 'nan'"),
        ("/debug/pprof/profile?seconds=1e1", 400, "got '1e1'"),
        ("/debug/pprof/profile?seconds=", 400, "got ''"),
        ("/debug/pprof/profile?seconds=1&seconds=2", 400, "given 2 times"),
        ("/debug/pprof/profile?hz=0", 400, "hz must be an integer from 1 to 200"),
        ("/debug/pprof/profile?hz=5000", 400, "got '5000'"),
        ("/debug/pprof/profile?second=5", 400, "unknown parameter 'second'"),
        ("/debug/pprof/mutex?seconds=61", 400, "from 1 to 60"),
        ("/debug/pprof/mutex?format=xml", 400, "format must be one of text, json"),
        ("/debug/pprof/heap?tracemalloc=on", 400, "start, stop"),
        ("/debug/pprof/heap?top=0", 400, "top must be an integer"),
        ("/debug/pprof/threads?debug=2", 400, "this page takes: none"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(
    serve: Callable[..., ProfilingServer],
    make_limiter: Callable[..., Limiter],
    path: str,
    status: int,
    reason: str,
) -> None:
    server = serve(make_limiter())
    got, headers, body = fetch(server, path)
    assert got == status
    assert reason in body
    assert headers["Content-Type"].startswith("text/plain")
    assert "/debug/pprof/mutex" in text(server, "/debug/pprof/")  # still serving


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_wrong_method_is_405(
    serve: Callable[..., ProfilingServer], method: str
) -> None:
    server = serve()
    status, headers, body = fetch(server, "/debug/pprof/mutex", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert f"method {method} is not allowed" in body
    assert text(server, "/debug/pprof/threads")


def test_garbage_on_the_socket_does_not_stop_the_server(
    serve: Callable[..., ProfilingServer],
) -> None:
    server = serve()
    assert server.address is not None
    for garbage in (
        b"\x00\xff garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\n\r\n",
    ):
        with socket.create_connection(server.address, timeout=10) as conn:
            conn.sendall(garbage)
            conn.recv(200)  # an error reply (HTTP/0.9 style for a bare line) or EOF
    with socket.create_connection(server.address, timeout=10):
        pass  # a client that connects and says nothing
    assert "/debug/pprof/heap" in text(server, "/debug/pprof/")


# --- Redis ----------------------------------------------------------------------------


@pytest.mark.redis
def test_metrics_and_pages_with_a_redis_limiter(
    serve: Callable[..., ProfilingServer],
    make_limiter: Callable[..., Limiter],
    redis_url: str,
) -> None:
    limiter = make_limiter("3/minute", storage=redis_url)
    results = [bool(limiter.hit("r")) for _ in range(5)]
    assert results == [True, True, True, False, False]
    server = serve(limiter)
    stats = limiter.stats()
    assert stats["backend"] == "redis"

    body = fetch(server, "/metrics")[2]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    key = (
        "shardlimit_decisions_total",
        (("algorithm", "sliding_window"), ("result", "allowed")),
    )
    assert samples[key] == stats["allowed"] == 3
    errors = ("shardlimit_storage_errors_total", (("backend", "redis"),))
    assert samples[errors] == stats["errors"] == 0
    state = (
        "shardlimit_backend_breaker_state",
        (("backend", "redis"), ("state", "closed")),
    )
    assert stats["breaker"]["state"] == "closed"
    assert samples[state] == 1
    assert not any("url" in name or "password" in name for name, _ in samples)
    assert "no shard locks in this process" in text(server, "/debug/pprof/mutex")
    assert "the redis store keeps no entries here" in text(server, "/debug/pprof/heap")
