"""Real Redis servers for the tests: one server, a TLS server, a 3-master cluster.

Every server is a ``redis-server`` child process on a free loopback port with its own
temporary directory and no persistence; the fixtures stop it afterwards. Without the
binary the fixtures fail (never skip): ``make deps`` installs it.

Use the fixtures from a test module with ``pytest_plugins = ["tests.redis_support"]``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import free_port

#: Where ``make deps`` (scripts/install-redis.sh) puts the server.
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
START_TIMEOUT = 15.0
CLUSTER_SLOTS = 16384


def redis_server_binary() -> str:
    """Return the path of ``redis-server``, or fail the test saying how to get it."""
    binary = REDIS_SERVER or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail(
            f"redis-server not found (looked for {binary!r}); run `make deps` to "
            "install it (Debian's redis-server package)",
            pytrace=False,
        )
    return binary


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, which a test can kill and restart.

    The port stays the same across restarts, so clients configured with :attr:`url`
    find the server again.
    """

    def __init__(self, workdir: Path, *, tls: TlsFiles | None = None, **config: str):
        """Prepare (not start) a server in ``workdir``; ``config`` adds directives."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.config = config
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL: ``redis://127.0.0.1:PORT/0`` (``rediss://`` on TLS)."""
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca_cert}"
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """Return a redis-py client for this server."""
        return redis.Redis.from_url(self.url, socket_timeout=5.0)

    def command(self) -> list[str]:
        """Return the ``redis-server`` command line."""
        args = [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", str(self.tls.cert)]
            args += ["--tls-key-file", str(self.tls.key)]
            args += ["--tls-ca-cert-file", str(self.tls.ca_cert)]
            args += ["--tls-auth-clients", "no"]
        for name, value in self.config.items():
            args += [f"--{name.replace('_', '-')}", value]
        return args

    def start_on_a_free_port(self, attempts: int = 3) -> None:
        """Start the server, on another free port if its port got taken meanwhile."""
        for attempt in range(attempts):
            try:
                self.start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
            else:
                return

    def start(self) -> None:
        """Start the server on :attr:`port` and wait until it answers PING."""
        assert self.process is None, "server already running"
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise RuntimeError(
                        f"redis-server on port {self.port} exited at start: "
                        f"{self.log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not answer within "
                        f"{START_TIMEOUT}s: {self.log_tail()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def log_tail(self) -> str:
        """Return the last lines the server logged (for failure messages)."""
        log = self.workdir / "redis.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-10:]) or "(no log)"

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Kill the server if it runs and start a fresh one on the same port."""
        self.kill()
        self.start()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None


class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, made with ``openssl``."""

    def __init__(self, directory: Path):
        """Create the files in ``directory``."""
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail("openssl is needed to make test certificates; install it")
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = directory / "ca.key"
        self.ca_cert = directory / "ca.crt"
        self.key = directory / "server.key"
        self.cert = directory / "server.crt"
        csr = directory / "server.csr"
        ext = directory / "server.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        commands = [
            [openssl, "genrsa", "-out", self.ca_key, "2048"],
            [openssl, "req", "-x509", "-new", "-key", self.ca_key, "-sha256",
             "-days", "2", "-subj", "/CN=shardlimit test CA", "-out", self.ca_cert],
            [openssl, "genrsa", "-out", self.key, "2048"],
            [openssl, "req", "-new", "-key", self.key, "-subj", "/CN=127.0.0.1",
             "-out", csr],
            [openssl, "x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey",
             self.ca_key, "-CAcreateserial", "-days", "2", "-sha256", "-extfile",
             ext, "-out", self.cert],
        ]  # fmt: skip
        for command in commands:
            subprocess.run(
                [str(part) for part in command],
                check=True,
                capture_output=True,
                timeout=60,
            )


def server_supports_tls() -> bool:
    """Whether this ``redis-server`` was built with TLS (``BUILD_TLS=yes``).

    A build without TLS refuses the ``tls-port`` directive ("Bad directive"); a TLS
    build accepts it and, told to listen nowhere, exits at once.
    """
    result = subprocess.run(
        [redis_server_binary(), "--port", "0", "--tls-port", "0", "--save", ""],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return "Bad directive" not in result.stdout + result.stderr


class RedisCluster:
    """Three masters on loopback, slots split evenly, joined with CLUSTER MEET."""

    def __init__(self, workdir: Path, masters: int = 3):
        """Prepare (not start) ``masters`` cluster-enabled servers."""
        self.nodes = [
            RedisServer(
                workdir / f"node{i}",
                cluster_enabled="yes",
                cluster_config_file="nodes.conf",
                cluster_node_timeout="5000",
                # The bus port defaults to port + 10000, which may be taken or
                # above 65535: name a free one.
                cluster_port=str(free_port()),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """The URL shardlimit takes: ``redis+cluster://127.0.0.1:PORT`` (any node)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        """Start the nodes, assign the slots, introduce the nodes, wait for ``ok``."""
        for node in self.nodes:
            node.start_on_a_free_port()
        clients = [node.client() for node in self.nodes]
        try:
            share = CLUSTER_SLOTS // len(self.nodes)
            for i, client in enumerate(clients):
                first = i * share
                last = CLUSTER_SLOTS - 1 if i == len(clients) - 1 else first + share - 1
                client.cluster("ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                bus_port = node.config["cluster_port"]
                clients[0].cluster("MEET", "127.0.0.1", node.port, bus_port)
            self._wait_ok(clients)
        finally:
            for client in clients:
                client.close()

    def _wait_ok(self, clients: list[redis.Redis]) -> None:
        deadline = time.monotonic() + 30.0
        while True:
            infos = [client.cluster("INFO") for client in clients]
            if all(
                info["cluster_state"] == "ok"
                and int(info["cluster_known_nodes"]) == len(clients)
                for info in infos
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster did not reach state ok: {infos}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


@pytest.fixture
def mid_window_period(redis_url: str) -> int:
    """Return a period (whole seconds, 1 to 2 hours) that the server's clock is
    well inside of, a quarter to a half into its window (and flush the server).

    Windows align to multiples of the period on the server's clock; a test that
    straddled an edge would see the fixed window admit up to twice its limit, as it
    should. Choosing the period instead of sleeping keeps such tests exact.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        now, _ = client.time()
    finally:
        client.close()
    for period in range(3600, 7200):
        if period // 4 <= now % period <= period // 2:
            return period
    raise AssertionError("no period between 1h and 2h puts now mid-window")


def _unique_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Yield one Redis server shared by the session (tests flush it: `redis_url`)."""
    server = RedisServer(_unique_dir(tmp_path_factory, "redis"))
    server.start_on_a_free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """Return the shared server's URL after emptying it (data and scripts)."""
    if not redis_server.running:
        redis_server.restart()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Yield a Redis server of the test's own, which it may kill and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start_on_a_free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Yield a 3-master Redis Cluster on loopback, shared by the session."""
    cluster = RedisCluster(_unique_dir(tmp_path_factory, "cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Yield a TLS-only Redis server with a throwaway CA (``url`` names the CA)."""
    if not server_supports_tls():
        pytest.skip("this redis-server was built without TLS support (BUILD_TLS=no)")
    base = _unique_dir(tmp_path_factory, "redis-tls")
    server = RedisServer(base / "server", tls=TlsFiles(base / "certs"))
    server.start_on_a_free_port()
    try:
        yield server
    finally:
        server.stop()
