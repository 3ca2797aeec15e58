"""The Limiter API: validation, errors, stats, the key bound, GC thread and threads."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

import shardlimit
from shardlimit import (
    ALGORITHMS,
    ConfigError,
    Decision,
    Limiter,
    ManualClock,
    Rate,
    ShardLimitError,
    StorageError,
    _core,
    parse_rates,
)


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"algorithm": "leaky"}, "algorithm"),
            ({"algorithm": None}, "algorithm"),
            ({"storage": "memcached://x"}, "storage"),
            ({"storage": "memory://somewhere"}, "memory://somewhere"),
            ({"storage": 42}, "storage"),
            ({"shards": 0}, "shards"),
            ({"shards": 70000}, "shards"),
            ({"shards": 2.5}, "shards"),
            ({"shards": True}, "shards"),
            ({"max_keys": 0}, "max_keys"),
            ({"max_keys": "many"}, "max_keys"),
            ({"gc_interval": -1}, "gc_interval"),
            ({"gc_interval": "soon"}, "gc_interval"),
            ({"gc_interval": float("inf")}, "gc_interval"),
            ({"clock": time.monotonic}, "clock"),
        ],
    )
    def test_each_bad_argument_raises_config_error_naming_it(self, kwargs, needle):
        with pytest.raises(ConfigError, match=needle) as info:
            Limiter("10/s", **kwargs)
        value = next(iter(kwargs.values()))
        assert repr(value) in str(info.value) or str(value) in str(info.value)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, ShardLimitError)

    @pytest.mark.parametrize(
        "rates",
        ["", "ten/second", "10/fortnight", "0/s", "10", "10/0s", "-1/s", "5/s;;x"],
    )
    def test_bad_rates_name_the_bad_part(self, rates):
        with pytest.raises(ConfigError) as info:
            Limiter(rates)
        assert "rate" in str(info.value)
        assert "got" in str(info.value) or repr(rates.split(";")[-1]) in str(info.value)

    @pytest.mark.parametrize(
        ("limit", "period"),
        [
            (0, 1.0),
            (2**32, 1.0),
            (1.5, 1.0),
            (True, 1.0),
            (1, 0),
            (1, -1.0),
            (1, float("nan")),
            (1, "1s"),
        ],
    )
    def test_bad_rate_objects(self, limit, period):
        with pytest.raises(ConfigError, match="Rate"):
            Rate(limit, period)

    def test_keys_must_be_str(self, make_limiter):
        lim = make_limiter("1/s")
        for key in (b"bytes", 42, None, ("t",)):
            with pytest.raises(
                TypeError, match=f"key must be str, got {type(key).__name__}"
            ):
                lim.hit(key)
            with pytest.raises(TypeError, match="key must be str"):
                lim.peek(key)
            with pytest.raises(TypeError, match="key must be str"):
                lim.reset(key)
        assert lim.stats()["keys"] == 0

    @pytest.mark.parametrize("cost", [0, -1, -(2**70)])
    def test_cost_below_one_is_a_value_error(self, make_limiter, cost):
        lim = make_limiter("5/s")
        with pytest.raises(ValueError, match=f"cost must be >= 1, got {cost}"):
            lim.hit("k", cost)
        assert lim.stats()["keys"] == 0

    @pytest.mark.parametrize("cost", [1.0, "1", True, [1]])
    def test_cost_must_be_an_int(self, make_limiter, cost):
        with pytest.raises(TypeError, match="cost must be an int"):
            make_limiter("5/s").hit("k", cost)

    def test_a_huge_cost_is_a_denial_not_an_error(self, make_limiter):
        d = make_limiter("5/s").hit("k", 2**80)
        assert not d.allowed
        assert d.retry_after == float("inf")


def test_a_panic_in_rust_is_a_python_exception():
    with pytest.raises(ShardLimitError, match=r"a Rust panic\): on purpose"):
        _core._panic("on purpose")
    # The interpreter and the extension are still fine.
    assert Limiter("1/s", gc_interval=None).hit("k").allowed


def test_storage_error_is_a_runtime_error():
    assert issubclass(StorageError, RuntimeError)
    assert issubclass(StorageError, ShardLimitError)


def test_parse_rates_forms():
    assert parse_rates("10/second; 1000/hour") == (Rate(10, 1.0), Rate(1000, 3600.0))
    assert parse_rates("10 per 5 minutes, 3/d") == (Rate(10, 300.0), Rate(3, 86400.0))
    assert parse_rates("100/5minutes") == (Rate(100, 300.0),)
    assert parse_rates("7/250ms") == (Rate(7, 0.25),)
    assert parse_rates(Rate(1, 2.0)) == (Rate(1, 2.0),)
    assert parse_rates([Rate(1, 2.0), Rate(3, 4.0)]) == (Rate(1, 2.0), Rate(3, 4.0))
    assert str(Rate(100, 60.0)) == "100/1m"
    assert parse_rates(str(Rate(7, 0.25))) == (Rate(7, 0.25),)


def test_decision_is_immutable_and_comparable(make_limiter):
    d = make_limiter("2/s").hit("k")
    with pytest.raises(AttributeError):
        d.allowed = False  # type: ignore[misc]
    same = Decision(
        allowed=True,
        limit=2,
        remaining=1,
        reset_after=1.0,
        retry_after=0.0,
        rate=Rate(2, 1.0),
    )
    assert d == same
    assert bool(d) is True
    assert "remaining=1" in repr(d)


def test_stats_report_keys_hits_and_shards(make_limiter):
    lim = make_limiter("2/minute", shards=8)
    for i in range(10):
        lim.hit(f"k{i % 4}")
    stats = lim.stats()
    assert stats["backend"] == "memory"
    assert (stats["keys"], stats["shards"], stats["hits"]) == (4, 8, 10)
    assert (stats["allowed"], stats["denied"]) == (8, 2)
    assert len(stats["per_shard"]) == 8
    assert sum(s["keys"] for s in stats["per_shard"]) == 4
    assert stats["memory_bytes"] == sum(s["bytes"] for s in stats["per_shard"])
    assert stats["contention"] == {"contended": 0, "wait_seconds": 0.0}
    assert stats["gc"]["runs"] == 0
    assert stats["rates"] == ["2/1m"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_full_store_denies_new_keys_only(make_limiter, clock, algorithm):
    lim = make_limiter("3/10s", algorithm=algorithm, max_keys=50, shards=4)
    assert all(lim.hit(f"k{i}").allowed for i in range(50))
    refused = lim.hit("newcomer")
    assert not refused.allowed
    assert refused.retry_after == 10.0
    assert lim.stats()["keys"] == 50
    assert lim.stats()["rejected_full"] == 1
    assert lim.hit("k7").allowed  # keys already held keep working
    clock.advance(30.0)
    assert lim.sweep() == 50
    assert lim.hit("newcomer").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_eight_threads_on_one_key_admit_exactly_the_limit(algorithm):
    """The GC sweeps without the GIL in a loop while eight threads hit one key."""
    for _ in range(5):
        clock = ManualClock(100.0)
        with Limiter(
            "300/minute", algorithm=algorithm, clock=clock, shards=2, gc_interval=None
        ) as lim:
            admitted: list[int] = []
            stop = threading.Event()

            def sweep(lim: Limiter = lim, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    lim.sweep()

            def hammer(lim: Limiter = lim, admitted: list[int] = admitted) -> None:
                admitted.append(sum(lim.hit("hot").allowed for _ in range(100)))

            sweeper = threading.Thread(target=sweep)
            sweeper.start()
            workers = [threading.Thread(target=hammer) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(60)
            stop.set()
            sweeper.join(60)
            assert sum(admitted) == 300
            assert lim.stats()["allowed"] == 300


class TestGcThread:
    def test_runs_sweeps_and_stops_promptly_on_close(self, clock):
        lim = Limiter("1/s", clock=clock, gc_interval="5ms")
        lim.hit("k")
        clock.advance(2.0)
        deadline = time.monotonic() + 10
        while lim.stats()["keys"] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lim.stats()["keys"] == 0
        assert lim.stats()["gc"]["running"]
        names = [t.name for t in threading.enumerate()]
        assert "shardlimit-gc" in names
        started = time.monotonic()
        lim.close()
        assert time.monotonic() - started < 1.0
        assert not lim.stats()["gc"]["running"]
        lim.close()  # twice is fine

    def test_a_long_interval_still_stops_at_once(self):
        lim = Limiter("1/s", gc_interval=3600)
        started = time.monotonic()
        lim.close()
        assert time.monotonic() - started < 1.0

    def test_off_when_interval_is_none_or_zero(self):
        for interval in (None, 0, "0s"):
            with Limiter("1/s", gc_interval=interval) as lim:
                assert lim.stats()["gc"]["running"] is False

    def test_logs_a_failing_sweep_and_keeps_going(self, caplog):
        from shardlimit._gc import GcThread

        calls: list[int] = []

        def failing_sweep() -> int:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("disk on fire")
            return 0

        gc = GcThread(failing_sweep, 0.001)
        with caplog.at_level(logging.ERROR, logger="shardlimit._gc"):
            gc.start()
            deadline = time.monotonic() + 10
            while len(calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.002)
            gc.stop()
        assert len(calls) >= 3
        assert gc.errors == 1
        assert "disk on fire" in caplog.text

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_comes_back_in_a_forked_child(self):
        lim = Limiter("1/s", gc_interval=0.01)
        lim.hit("k")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report whether its GC thread runs, then leave
            try:
                ok = lim.stats()["gc"]["running"] and any(
                    t.name == "shardlimit-gc" for t in threading.enumerate()
                )
                os.write(write, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        lim.close()
        assert answer == b"1"
        assert os.WEXITSTATUS(status) == 0


def test_public_surface():
    assert set(shardlimit.__all__) >= {
        "Limiter",
        "Rate",
        "Decision",
        "ManualClock",
        "parse_rates",
        "ShardLimitError",
        "ConfigError",
        "StorageError",
    }
    for name in shardlimit.__all__:
        assert getattr(shardlimit, name) is not None


def test_with_rates_shares_options_but_not_keys(make_limiter, clock):
    base = make_limiter("1/minute", algorithm="fixed_window", shards=4)
    other = base.with_rates("3/minute")
    try:
        assert other.algorithm == "fixed_window"
        assert other.clock is clock
        assert base.hit("k").allowed
        assert [other.hit("k").allowed for _ in range(4)] == [True] * 3 + [False]
    finally:
        other.close()
