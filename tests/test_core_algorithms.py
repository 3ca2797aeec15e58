"""Admission sequences of each algorithm on the memory store, driven by ManualClock."""

from __future__ import annotations

import math

import pytest

from shardlimit import ALGORITHMS, ManualClock, Rate

NS = 1e-9


def admitted(limiter, key: str, n: int) -> list[bool]:
    return [limiter.hit(key).allowed for _ in range(n)]


class TestFixedWindow:
    def test_windows_are_aligned_to_multiples_of_the_period(self, make_limiter, clock):
        clock.set(1005.0)  # 5s into the window [1000, 1010)
        lim = make_limiter("3/10s", algorithm="fixed_window")
        first = lim.hit("k")
        assert (first.allowed, first.remaining) == (True, 2)
        assert first.reset_after == pytest.approx(5.0)
        assert admitted(lim, "k", 3) == [True, True, False]
        denied = lim.hit("k")
        assert denied.retry_after == pytest.approx(5.0)
        assert denied.remaining == 0
        clock.set(1010.0 - NS)
        assert not lim.hit("k").allowed
        clock.set(1010.0)
        assert admitted(lim, "k", 4) == [True, True, True, False]

    def test_bursts_twice_the_limit_across_a_boundary(self, make_limiter, clock):
        clock.set(1009.0)
        lim = make_limiter("5/10s", algorithm="fixed_window")
        assert admitted(lim, "k", 5) == [True] * 5
        clock.advance(1.0)
        assert admitted(lim, "k", 6) == [True] * 5 + [False]


class TestSlidingWindowLog:
    def test_a_hit_expires_exactly_one_period_later(self, make_limiter, clock):
        lim = make_limiter("2/10s", algorithm="sliding_window")
        assert lim.hit("k").allowed  # t = 1000
        clock.advance(4.0)
        assert lim.hit("k").allowed  # t = 1004
        clock.set(1010.0 - NS)
        d = lim.hit("k")
        assert not d.allowed
        assert d.retry_after == pytest.approx(NS, abs=1e-12)
        clock.set(1010.0)  # the first hit has expired, to the nanosecond
        d = lim.hit("k")
        assert d.allowed
        assert d.remaining == 0
        assert d.reset_after == pytest.approx(10.0)
        clock.set(1014.0 - NS)
        assert not lim.hit("k").allowed
        clock.set(1014.0)
        assert lim.hit("k").allowed

    def test_no_boundary_burst(self, make_limiter, clock):
        lim = make_limiter("5/10s", algorithm="sliding_window")
        clock.set(1009.0)
        assert admitted(lim, "k", 5) == [True] * 5
        clock.advance(1.0)
        assert admitted(lim, "k", 1) == [False]

    def test_retry_after_waits_for_enough_old_hits(self, make_limiter, clock):
        lim = make_limiter("4/10s", algorithm="sliding_window")
        for _ in range(4):
            lim.hit("k")
            clock.advance(1.0)
        # Hits at 1000, 1001, 1002, 1003; now 1004. A cost of 3 needs three to go.
        d = lim.hit("k", cost=3)
        assert not d.allowed
        assert d.retry_after == pytest.approx(1012.0 - 1004.0)

    def test_a_ten_million_limit_is_cheap_per_hit(self, make_limiter, clock):
        lim = make_limiter("10000000/hour", algorithm="sliding_window")
        for i in range(20_000):
            assert lim.hit("k").remaining == 10_000_000 - i - 1
            clock.advance(NS * 7)


class TestSlidingWindowCounter:
    @pytest.mark.parametrize("elapsed", [0.0, 2.5, 5.0, 7.25, 9.999])
    def test_remaining_matches_the_formula(self, make_limiter, clock, elapsed):
        period, limit, prev = 10.0, 20, 12
        lim = make_limiter(Rate(limit, period), algorithm="sliding_window_counter")
        clock.set(1000.0)
        assert lim.hit("k", cost=prev).allowed
        clock.set(1010.0 + elapsed)
        estimate = prev * (period - elapsed) / period
        d = lim.peek("k")
        assert d.remaining == math.floor(limit - estimate + 1e-9)
        expected_room = math.floor(limit - estimate + 1e-9)
        assert lim.hit("k", cost=expected_room).allowed or expected_room == 0
        assert not lim.hit("k").allowed

    def test_retry_after_solves_the_formula(self, make_limiter, clock):
        lim = make_limiter("10/10s", algorithm="sliding_window_counter")
        clock.set(1000.5)
        lim.hit("k", cost=10)
        clock.set(1012.5)  # previous window weighs 75%: 7.5 used
        assert lim.hit("k", cost=2).allowed  # 9.5
        d = lim.hit("k")
        assert not d.allowed
        # 10 * (10 - e) / 10 + 2 + 1 <= 10  =>  e >= 3s: wait 0.5s.
        assert d.retry_after == pytest.approx(0.5)
        clock.advance(0.5 - NS)
        assert not lim.hit("k").allowed
        clock.advance(NS)
        assert lim.hit("k").allowed


class TestTokenBucket:
    def test_burst_then_refill_one_interval_per_token(self, make_limiter, clock):
        lim = make_limiter("4/2s", algorithm="token_bucket")  # a token every 0.5s
        assert admitted(lim, "k", 5) == [True] * 4 + [False]
        d = lim.hit("k")
        assert d.retry_after == pytest.approx(0.5)
        assert d.reset_after == pytest.approx(2.0)
        clock.advance(0.5 - NS)
        assert not lim.hit("k").allowed
        clock.advance(NS)
        assert lim.hit("k").allowed
        clock.advance(1.0)
        d = lim.hit("k", cost=3)
        assert not d.allowed
        assert d.remaining == 2
        assert d.retry_after == pytest.approx(0.5)

    def test_full_after_the_period(self, make_limiter, clock):
        lim = make_limiter("3/1s", algorithm="token_bucket")
        assert admitted(lim, "k", 3) == [True] * 3
        clock.advance(1.0)  # the interval is rounded up: ceil(1e9 / 3) ns
        assert lim.peek("k").remaining == 2
        clock.advance(2 * NS)
        assert lim.peek("k").remaining == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
class TestEveryAlgorithm:
    def test_cost_consumes_that_many(self, make_limiter, algorithm):
        lim = make_limiter("10/minute", algorithm=algorithm)
        assert lim.hit("k", cost=4).remaining == 6
        assert lim.hit("k", cost=6).remaining == 0
        assert not lim.hit("k").allowed

    def test_a_cost_above_the_limit_is_denied_for_ever(self, make_limiter, algorithm):
        lim = make_limiter("5/minute", algorithm=algorithm)
        d = lim.hit("k", cost=6)
        assert not d.allowed
        assert d.retry_after == math.inf
        assert d.remaining == 5
        assert lim.hit("k", cost=5).allowed

    def test_denied_hits_consume_nothing(self, make_limiter, clock, algorithm):
        lim = make_limiter("3/10s", algorithm=algorithm)
        clock.set(1000.0)
        assert admitted(lim, "k", 3) == [True] * 3
        for _ in range(50):
            assert not lim.hit("k").allowed
        clock.set(1020.0)  # two periods on: every algorithm is full again
        assert admitted(lim, "k", 4) == [True, True, True, False]

    def test_peek_consumes_nothing(self, make_limiter, algorithm):
        lim = make_limiter("3/minute", algorithm=algorithm)
        fresh = lim.peek("k")
        assert (fresh.allowed, fresh.remaining, fresh.reset_after) == (True, 3, 0.0)
        assert lim.stats()["keys"] == 0
        lim.hit("k", cost=2)
        for _ in range(5):
            d = lim.peek("k")
            assert (d.allowed, d.remaining, d.retry_after) == (True, 1, 0.0)
        lim.hit("k")
        assert not lim.peek("k").allowed
        assert lim.peek("k").retry_after > 0

    def test_reset_forgets_the_key(self, make_limiter, algorithm):
        lim = make_limiter("2/hour", algorithm=algorithm)
        assert admitted(lim, "k", 3) == [True, True, False]
        lim.reset("k")
        assert lim.stats()["keys"] == 0
        assert admitted(lim, "k", 3) == [True, True, False]
        lim.reset("never-seen")

    def test_several_rates_are_all_or_nothing(self, make_limiter, clock, algorithm):
        lim = make_limiter("2/second; 3/10s", algorithm=algorithm)
        clock.set(1000.0)
        assert admitted(lim, "k", 3) == [True, True, False]
        d = lim.hit("k")
        assert d.rate == Rate(2, 1.0)
        clock.set(1002.0)  # the short rate is full again, even for the counter
        ok = lim.hit("k")
        assert ok.allowed
        assert (ok.rate, ok.remaining) == (Rate(3, 10.0), 0)
        denied = lim.hit("k")
        assert not denied.allowed
        assert denied.rate == Rate(3, 10.0)
        # The short rate did not pay for the denied hit.
        assert lim.peek("k").rate == Rate(3, 10.0)

    def test_keys_are_independent(self, make_limiter, algorithm):
        lim = make_limiter("1/hour", algorithm=algorithm)
        assert [lim.hit(f"user:{i}").allowed for i in range(100)] == [True] * 100
        assert not lim.hit("user:7").allowed
        assert lim.stats()["keys"] == 100

    def test_sweep_removes_exactly_the_expired_keys(
        self, make_limiter, clock, algorithm
    ):
        lim = make_limiter("5/10s", algorithm=algorithm, shards=4)
        clock.set(1000.0)
        lim.hit("old")
        clock.set(1024.9)
        lim.hit("new", cost=5)
        clock.set(1025.0)
        assert lim.sweep() == 1  # "old" is two windows back for every algorithm
        assert lim.stats()["keys"] == 1
        # When "new" behaves as a fresh key again: the end of its fixed window, one
        # period after it for the log and the bucket, the end of the window after
        # the next for the counter (it weighs in as the previous window until then).
        idle_at = {
            "fixed_window": 1030.0,
            "sliding_window": 1034.9,
            "token_bucket": 1034.9,
            "sliding_window_counter": 1040.0,
        }[algorithm]
        clock.set(idle_at - NS)
        assert lim.sweep() == 0
        assert lim.peek("new").remaining < 5
        clock.set(idle_at)
        assert lim.peek("new").remaining == 5
        assert lim.sweep() == 1
        assert lim.stats()["keys"] == 0
        assert lim.stats()["gc"]["removed"] == 2

    def test_unicode_and_surrogate_keys_are_distinct(self, make_limiter, algorithm):
        lim = make_limiter("1/hour", algorithm=algorithm)
        keys = ["", "é", "e\u0301", "\udc80", "\ud800", "🙂", "a" * 10_000]
        assert [lim.hit(k).allowed for k in keys] == [True] * len(keys)
        assert [lim.hit(k).allowed for k in keys] == [False] * len(keys)


def test_manual_clock_only_moves_forward():
    clock = ManualClock(5.0)
    clock.advance(1.5)
    assert clock.now() == 6.5
    assert clock.now_ns() == 6_500_000_000
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(6.0)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1.0)
    with pytest.raises(ValueError, match="start"):
        ManualClock(float("nan"))
    assert clock.now() == 6.5
