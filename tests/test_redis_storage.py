"""RedisStorage against a real redis-server: algorithms, atomicity, scripts, keys.

The server is started by the fixtures of tests/redis_support.py on a free loopback
port; a missing binary fails these tests (``make deps`` installs it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis
from redis.crc import key_slot

from shardlimit import (
    ALGORITHMS,
    ConfigError,
    Limiter,
    ManualClock,
    Rate,
    StorageError,
)
from shardlimit.redis_storage import (
    INJECTED_CLOCK_TTL_MARGIN_MS,
    RedisStorage,
    rate_signature,
    redact,
)

if TYPE_CHECKING:
    from tests.redis_support import RedisCluster, RedisServer

pytest_plugins = ["tests.redis_support"]
pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def limiter(url: str, rates: str, algorithm: str, **options: object) -> Limiter:
    return Limiter(rates, algorithm=algorithm, storage=url, **options)  # type: ignore[arg-type]


def admitted(lim: Limiter, key: str, attempts: int) -> int:
    return sum(lim.hit(key).allowed for _ in range(attempts))


# -- each algorithm -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_admits_the_limit_then_denies_with_a_wait(
    redis_url: str, algorithm: str
) -> None:
    clock = ManualClock(100.0)
    with limiter(redis_url, "5/10s", algorithm, clock=clock) as lim:
        assert admitted(lim, "k", 8) == 5
        denied = lim.hit("k")
        assert not denied
        assert denied.remaining == 0
        # The counter may wait into the next window: up to two periods.
        assert 0 < denied.retry_after <= 20.0
        assert 0 < denied.reset_after <= 20.0
        assert denied.rate == Rate(5, 10.0)
        clock.advance(denied.retry_after)
        assert lim.hit("k")
        assert lim.hit("other").remaining == 4


def test_fixed_window_counts_and_resets_at_the_edge(redis_url: str) -> None:
    clock = ManualClock(3.0)
    with limiter(redis_url, "2/10s", "fixed_window", clock=clock) as lim:
        first = lim.hit("k")
        assert (first.remaining, first.reset_after) == (1, 7.0)
        clock.set(9.0)
        assert lim.hit("k").remaining == 0
        clock.set(10.0 - 1e-9)
        assert lim.hit("k").retry_after == pytest.approx(1e-9)
        clock.set(10.0)
        assert lim.peek("k").remaining == 2


def test_sliding_window_expires_each_hit_one_period_later(redis_url: str) -> None:
    clock = ManualClock(0.0)
    with limiter(redis_url, "2/100ms", "sliding_window", clock=clock) as lim:
        clock.set(0.010)
        assert lim.hit("k")
        clock.set(0.050)
        assert lim.hit("k")
        clock.set(0.109)
        assert lim.hit("k").retry_after == pytest.approx(0.001)
        clock.set(0.110)
        assert lim.hit("k")
        assert not lim.hit("k")


def test_sliding_window_takes_costs_above_the_lua_batch(redis_url: str) -> None:
    with limiter(redis_url, "3000/1h", "sliding_window", clock=ManualClock()) as lim:
        assert lim.hit("k", 2500).remaining == 500
        assert not lim.hit("k", 501)
        assert lim.hit("k", 500).remaining == 0


def test_sliding_window_counter_weights_the_previous_window(redis_url: str) -> None:
    clock = ManualClock(0.0)
    rate = Rate(10, 100e-9)
    with Limiter(
        rate, algorithm="sliding_window_counter", storage=redis_url, clock=clock
    ) as lim:
        clock.set(50e-9)
        assert lim.hit("k", 10)
        clock.set(125e-9)
        assert lim.peek("k").remaining == 2
        assert lim.hit("k", 2)
        denied = lim.hit("k")
        assert round(denied.retry_after * 1e9) == 5


def test_token_bucket_refills_one_token_per_interval(redis_url: str) -> None:
    clock = ManualClock(0.0)
    with limiter(redis_url, "3/1s", "token_bucket", clock=clock) as lim:
        assert lim.hit("k", 3)
        denied = lim.hit("k")
        assert round(denied.retry_after * 1e9) == 333_333_334
        clock.advance(0.333333334)
        assert lim.hit("k")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cost_above_the_limit_is_denied_forever_and_takes_nothing(
    redis_url: str, algorithm: str
) -> None:
    with limiter(redis_url, "3/1s", algorithm, clock=ManualClock()) as lim:
        big = lim.hit("k", 4)
        assert not big
        assert big.retry_after == math.inf
        assert big.remaining == 3
        assert lim.hit("k", 3)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_server_time_is_used_without_a_clock(redis_url: str, algorithm: str) -> None:
    with limiter(redis_url, "3/1h", algorithm) as lim:
        assert admitted(lim, "k", 5) == 3
        denied = lim.hit("k")
        assert 0 < denied.retry_after <= 7200.0
        assert 0 < denied.reset_after <= 7200.0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_peek_writes_nothing(
    redis_url: str, client: redis.Redis, algorithm: str
) -> None:
    with limiter(redis_url, "3/1s; 5/1m", algorithm, clock=ManualClock()) as lim:
        assert lim.peek("k").remaining == 3
        assert client.dbsize() == 0
        lim.hit("k")
        before = {key: client.dump(key) for key in client.scan_iter()}
        peeked = lim.peek("k")
        assert (peeked.allowed, peeked.remaining) == (True, 2)
        assert {key: client.dump(key) for key in client.scan_iter()} == before


# -- several rates ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_several_rates_are_all_or_nothing(
    redis_url: str, client: redis.Redis, algorithm: str
) -> None:
    clock = ManualClock(10.0)
    with limiter(redis_url, "10/1s; 3/1m", algorithm, clock=clock) as lim:
        assert admitted(lim, "k", 3) == 3
        keys = lim._backend.keys("k")  # type: ignore[attr-defined]
        states = [client.dump(key) for key in keys]
        for _ in range(5):
            denied = lim.hit("k")
            assert not denied
            assert denied.rate == Rate(3, 60.0)
        # Denied hits consumed nothing, from either rate.
        assert [client.dump(key) for key in keys] == states
        clock.advance(1.0)
        assert lim.peek("k").rate == Rate(3, 60.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_several_rates_stay_exact_under_threads(redis_url: str, algorithm: str) -> None:
    lim = limiter(redis_url, "50/1h; 30/1d; 100/1m", algorithm)
    counts = [0] * 8
    barrier = threading.Barrier(len(counts))

    def worker(index: int) -> None:
        barrier.wait(timeout=30)
        counts[index] = admitted(lim, "shared", 20)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(counts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with lim:
        assert sum(counts) == 30
        assert lim.stats()["denied"] == 8 * 20 - 30


# -- scripts ------------------------------------------------------------------------


def test_scripts_reload_after_script_flush(redis_url: str, client: redis.Redis) -> None:
    with limiter(redis_url, "3/1m", "sliding_window", clock=ManualClock()) as lim:
        assert lim.hit("k")
        loads = lim.stats()["script_loads"]
        client.script_flush()
        assert lim.hit("k").remaining == 1
        assert lim.stats()["script_loads"] == loads + 1
        assert lim.hit("k").remaining == 0
        assert lim.stats()["script_loads"] == loads + 1
        assert lim.stats()["errors"] == 0


def test_scripts_reload_after_a_restart(own_redis: RedisServer) -> None:
    with limiter(own_redis.url, "3/1m", "token_bucket", clock=ManualClock()) as lim:
        assert lim.hit("k")
        own_redis.restart()
        # The restarted server lost the state (no persistence) and the scripts.
        assert lim.hit("k").remaining == 2
        assert lim.stats()["script_loads"] >= 1


def test_one_round_trip_per_decision(redis_url: str, client: redis.Redis) -> None:
    with limiter(redis_url, "5/1m; 50/1h", "fixed_window", clock=ManualClock()) as lim:
        lim.hit("warm-up")
        before = _command_calls(client)
        for _ in range(10):
            lim.hit("k")
        calls = _command_calls(client)
    assert calls.get("evalsha", 0) - before.get("evalsha", 0) == 10
    assert calls.get("eval", 0) == before.get("eval", 0)


def _command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_foreign_value_counts_as_a_fresh_key(
    redis_url: str, client: redis.Redis, algorithm: str
) -> None:
    with limiter(redis_url, "3/1m", algorithm, clock=ManualClock(7.0)) as lim:
        (key,) = lim._backend.keys("k")  # type: ignore[attr-defined]
        if algorithm == "sliding_window":
            client.rpush(key, "junk", "more junk")
        else:
            client.set(key, "junk")
        assert lim.hit("k").remaining == 2
        assert lim.stats()["errors"] == 0


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_a_server_error_follows_the_policy_and_keeps_the_circuit_closed(
    redis_url: str, client: redis.Redis, policy: str
) -> None:
    storage = RedisStorage(
        redis_url, rates="3/1m", algorithm="token_bucket", on_storage_error=policy
    )
    (key,) = storage.keys("k")
    client.hset(key, "field", "value")  # WRONGTYPE for the script's GET
    if policy == "raise":
        with pytest.raises(StorageError, match="WRONGTYPE") as caught:
            storage.hit("k", 1)
        assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
    else:
        assert storage.hit("k", 1).allowed == (policy == "allow")
    assert storage.hit("other", 1).allowed  # the server is fine: no circuit opened
    stats = storage.stats()
    assert (stats["errors"], stats["breaker"]["state"]) == (1, "closed")
    storage.close()


# -- keys: layout, expiry, slots ----------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_expire_by_themselves(
    redis_url: str, client: redis.Redis, algorithm: str
) -> None:
    with limiter(redis_url, "3/2s; 10/1m", algorithm) as lim:
        lim.hit("k")
        keys = lim._backend.keys("k")  # type: ignore[attr-defined]
        ttls = [client.pttl(key) for key in keys]
    # Without an injected clock the TTL is the time until the state is a fresh
    # key's: at most one period (two for the counter's previous window).
    factor = 2 if algorithm == "sliding_window_counter" else 1
    assert 0 < ttls[0] <= factor * 2000
    assert 0 < ttls[1] <= factor * 60_000


def test_an_injected_clock_adds_a_margin_to_expiry(
    redis_url: str, client: redis.Redis
) -> None:
    with limiter(redis_url, "3/2s", "token_bucket", clock=ManualClock(5.0)) as lim:
        lim.hit("k")
        (key,) = lim._backend.keys("k")  # type: ignore[attr-defined]
        ttl = client.pttl(key)
    interval_ms = math.ceil(2000 / 3)
    assert interval_ms < ttl <= interval_ms + INJECTED_CLOCK_TTL_MARGIN_MS


@pytest.mark.parametrize(
    "user_key", ["user:42", "", "}", "{}", "a}b{c", "{tag}x", "ключ", "\udcff"]
)
def test_keys_of_one_decision_share_a_hash_slot(user_key: str) -> None:
    storage = RedisStorage(
        "redis://127.0.0.1:1/0", rates="1/s; 2/m; 3/h", algorithm="fixed_window"
    )
    keys = storage.keys(user_key)
    assert len(keys) == 3
    assert len({key_slot(key) for key in keys}) == 1
    assert len(set(keys)) == 3
    storage.close()


def test_key_layout_names_algorithm_rates_and_key() -> None:
    storage = RedisStorage(
        "redis://127.0.0.1:1/0",
        rates=[Rate(10, 1.0), Rate(1000, 3600.0), Rate(5, 0.25)],
        algorithm="sliding_window_counter",
    )
    assert storage.keys("user:42") == [
        f"shardlimit:swc:10/1s,1000/1h,5/250ms:{i}:{{=user:42}}".encode()
        for i in range(3)
    ]
    assert rate_signature([Rate(1, 1e-9), Rate(2, 1.5)]) == "1/1ns,2/1500ms"
    storage.close()


def test_limiters_with_other_rates_never_share_keys(redis_url: str) -> None:
    clock = ManualClock()
    with limiter(redis_url, "2/1m", "fixed_window", clock=clock) as parent:
        with parent.with_rates("2/1m; 5/1h") as child:
            assert admitted(parent, "k", 3) == 2
            assert admitted(child, "k", 3) == 2
        with parent.with_rates("3/1m") as other:
            assert admitted(other, "k", 4) == 3


def test_reset_forgets_the_key(redis_url: str, client: redis.Redis) -> None:
    with limiter(redis_url, "2/1m; 5/1h", "sliding_window", clock=ManualClock()) as lim:
        assert admitted(lim, "k", 3) == 2
        lim.hit("other")
        lim.reset("k")
        assert lim.peek("k").remaining == 2
        assert client.dbsize() == 2  # only "other"'s keys are left


# -- cluster ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cluster_decides_several_rates_atomically(
    redis_cluster: RedisCluster, algorithm: str
) -> None:
    users = [f"user:{i}" for i in range(12)]
    with limiter(
        redis_cluster.url, "3/1m; 2/1h", algorithm, clock=ManualClock()
    ) as lim:
        for user in users:
            lim.reset(user)
        for user in users:
            assert admitted(lim, user, 4) == 2
            assert lim.hit(user).rate == Rate(2, 3600.0)
        stats = lim.stats()
        assert (stats["cluster"], stats["errors"]) == (True, 0)
        keys = [lim._backend.keys(user) for user in users]  # type: ignore[attr-defined]
    nodes = [node.client() for node in redis_cluster.nodes]
    try:
        slots = set()
        for pair in keys:
            pair_slots = {nodes[0].cluster("KEYSLOT", k) for k in pair}
            assert len(pair_slots) == 1
            slots |= pair_slots
            # Both keys live on the same node: the one owning their slot.
            holders = {
                i for i, node in enumerate(nodes) for k in pair if _holds(node, k)
            }
            assert len(holders) == 1
        assert len(slots) > 1  # the users really spread over the cluster
    finally:
        for node in nodes:
            node.close()


def _holds(node: redis.Redis, key: bytes) -> bool:
    try:
        return bool(node.exists(key))
    except redis.exceptions.MovedError:
        return False


# -- TLS ----------------------------------------------------------------------------


def test_tls(tls_redis: RedisServer) -> None:
    assert tls_redis.url.startswith("rediss://")
    with limiter(tls_redis.url, "2/1m", "token_bucket", clock=ManualClock()) as lim:
        lim.reset("k")
        assert admitted(lim, "k", 3) == 2
        assert lim.stats()["errors"] == 0


def test_tls_rejects_an_unknown_certificate_authority(tls_redis: RedisServer) -> None:
    url = tls_redis.url.split("?")[0]  # the system CAs do not know the test CA
    storage = RedisStorage(
        url, rates="2/1m", algorithm="fixed_window", on_storage_error="raise"
    )
    with pytest.raises(StorageError) as caught:
        storage.hit("k", 1)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    storage.close()


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:6379", "must start with"),
        ("redis:/127.0.0.1", "must start with"),
        ("redis://127.0.0.1:notaport/0", "bad port"),
        ("redis://127.0.0.1:99999/0", "bad port"),
        ("redis://:6379/0", "names no host"),
        ("redis://127.0.0.1:6379/zero", "database number"),
        ("redis+cluster://127.0.0.1:7000/2", "only database 0"),
        ("redis://127.0.0.1:6379/0?no_such_option=1", "no_such_option"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", "soon"),
    ],
)
def test_bad_urls_raise_config_error_naming_them(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        RedisStorage(url, rates="1/s", algorithm="fixed_window")
    assert url.split("?", 1)[0] in str(caught.value)


def test_bad_urls_through_the_limiter() -> None:
    with pytest.raises(ConfigError, match="99999"):
        Limiter("1/s", storage="redis://127.0.0.1:99999/0")


def test_passwords_stay_out_of_messages_and_stats() -> None:
    url = "redis://user:s3cret@127.0.0.1:6379/zero"
    with pytest.raises(ConfigError) as caught:
        RedisStorage(url, rates="1/s", algorithm="fixed_window")
    assert "s3cret" not in str(caught.value)
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    storage = RedisStorage(
        "redis://u:pw@127.0.0.1:1/0", rates="1/s", algorithm="fixed_window"
    )
    assert "pw" not in str(storage.stats()) + repr(storage)
    storage.close()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"on_storage_error": "ignore"}, "on_storage_error.*'ignore'"),
        ({"timeout": 0}, "timeout.*0"),
        ({"timeout": math.nan}, "timeout.*nan"),
        ({"backoff": -1}, "backoff.*-1"),
        ({"algorithm": "leaky_bucket"}, "algorithm.*'leaky_bucket'"),
    ],
)
def test_bad_options_raise_config_error_naming_them(
    options: dict[str, object], words: str
) -> None:
    arguments: dict[str, object] = {"rates": "1/s", "algorithm": "fixed_window"}
    arguments.update(options)
    with pytest.raises(ConfigError, match=words):
        RedisStorage("redis://127.0.0.1:6379/0", **arguments)  # type: ignore[arg-type]


def test_stats(redis_url: str) -> None:
    with limiter(redis_url, "2/1m", "fixed_window", clock=ManualClock()) as lim:
        admitted(lim, "k", 3)
        lim.peek("k")
        stats = lim.stats()
    assert stats["backend"] == "redis"
    assert (stats["hits"], stats["allowed"], stats["denied"]) == (3, 2, 1)
    assert (stats["peeks"], stats["errors"], stats["fallbacks"]) == (1, 0, 0)
    assert stats["breaker"]["state"] == "closed"
    assert stats["algorithm"] == "fixed_window"
    assert stats["rates"] == ["2/1m"]
    assert lim.sweep() == 0


def test_closed_storage_refuses_calls(redis_url: str) -> None:
    storage = RedisStorage(
        redis_url, rates="2/1m", algorithm="fixed_window", on_storage_error="raise"
    )
    storage.close()
    storage.close()
    assert storage.closed
    with pytest.raises(StorageError, match="closed"):
        storage.hit("k", 1)
