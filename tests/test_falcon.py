"""The Falcon middleware, through falcon.testing, on falcon.App and falcon.asgi.App."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import falcon
import falcon.asgi
import falcon.testing
import pytest

from shardlimit import ConfigError, Limiter, ManualClock, Rate, StorageError
from shardlimit.falcon import (
    MAX_KEY_LENGTH,
    ClientAddress,
    RateLimitMiddleware,
    exempt,
    header_key,
    limit,
)
from tests.support import free_port

pytest_plugins = ["tests.redis_support"]

CLIENT = "203.0.113.5"
OTHER = "198.51.100.7"

MakeLimiter = Callable[..., Limiter]


# --- building apps for both interfaces ------------------------------------------------


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> str:
    """Run the test on falcon.App and on falcon.asgi.App."""
    return str(request.param)


CALLS: dict[str, int] = {}


def responder(kind: str, tag: str) -> Any:
    """Return an on_* responder that answers with its tag and counts its calls."""

    def respond(req: falcon.Request, resp: falcon.Response) -> None:
        CALLS[tag] = CALLS.get(tag, 0) + 1
        decision = getattr(req.context, "rate_limit", None)
        resp.media = {"tag": tag, "remaining": decision and decision.remaining}

    if kind == "asgi":

        async def on_async(self: object, req: Any, resp: Any, **params: Any) -> None:
            respond(req, resp)

        on: Any = on_async
    else:

        def on_sync(self: object, req: Any, resp: Any, **params: Any) -> None:
            respond(req, resp)

        on = on_sync
    on.__name__ = "on_get"
    on.__qualname__ = f"Resource.{tag}"
    return on


def resource(**responders: Any) -> Any:
    """Return an instance of a new resource class with the given responders."""
    return type("Resource", (), responders)()


class Client:
    """A falcon.testing client for one app, plus the middleware under test."""

    def __init__(
        self, kind: str, middleware: RateLimitMiddleware, routes: dict[str, Any]
    ) -> None:
        app: Any = falcon.asgi.App() if kind == "asgi" else falcon.App()
        app.add_middleware(middleware)
        for path, target in routes.items():
            if isinstance(target, tuple):
                app.add_route(path, target[0], suffix=target[1])
            else:
                app.add_route(path, target)
        self.middleware = middleware
        self.test = falcon.testing.TestClient(app)

    def get(self, path: str = "/", **kwargs: Any) -> falcon.testing.Result:
        kwargs.setdefault("remote_addr", CLIENT)
        return self.test.simulate_get(path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> falcon.testing.Result:
        kwargs.setdefault("remote_addr", CLIENT)
        return self.test.simulate_request(method, path, **kwargs)


@pytest.fixture
def make_client(kind: str) -> Iterator[Callable[..., Client]]:
    """Build clients on ``kind`` apps; close their middleware afterwards."""
    made: list[Client] = []
    CALLS.clear()

    def make(
        limiter: Any, routes: dict[str, Any] | None = None, **options: Any
    ) -> Client:
        routes = (
            routes
            if routes is not None
            else {"/": resource(on_get=responder(kind, "root"))}
        )
        client = Client(kind, RateLimitMiddleware(limiter, **options), routes)
        made.append(client)
        return client

    yield make
    for client in made:
        client.middleware.close()


def remaining(result: falcon.testing.Result) -> int:
    return int(result.headers["X-RateLimit-Remaining"])


# --- allowed and refused requests -----------------------------------------------------


def test_allowed_responses_carry_decreasing_headers(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("3/minute"))

    results = [client.get() for _ in range(3)]

    assert [r.status_code for r in results] == [200, 200, 200]
    assert [r.headers["RateLimit"] for r in results] == [
        '"default";r=2;t=60',
        '"default";r=1;t=60',
        '"default";r=0;t=60',
    ]
    assert [remaining(r) for r in results] == [2, 1, 0]
    for result in results:
        assert result.headers["RateLimit-Policy"] == '"default";q=3;w=60'
        assert result.headers["X-RateLimit-Limit"] == "3"
        assert result.headers["X-RateLimit-Reset"] == "60"
        assert "Retry-After" not in result.headers
    assert [r.json["remaining"] for r in results] == [2, 1, 0]


def test_request_over_the_limit_gets_429_problem_details(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("3/minute"))
    for _ in range(3):
        assert client.get().status_code == 200

    refused = client.get()

    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["RateLimit"] == '"default";r=0;t=60'
    assert refused.headers["RateLimit-Policy"] == '"default";q=3;w=60'
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Limit"] == "3"
    body = json.loads(refused.text)
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert "3/1m" in body["detail"]
    assert CALLS["root"] == 3  # the responder never ran for the refused request
    assert make_client(make_limiter("1/s")).get().status_code == 200  # other limiter


def test_retry_after_is_whole_seconds_rounded_up(
    clock: ManualClock, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("1/10s", algorithm="fixed_window"))
    assert client.get().status_code == 200
    clock.advance(2.3)  # the window ends in 7.7s

    refused = client.get()

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "8"
    assert refused.headers["X-RateLimit-Reset"] == "8"
    assert refused.headers["RateLimit"] == '"default";r=0;t=8'
    clock.advance(7.7)
    assert client.get().status_code == 200


def test_each_client_has_its_own_budget(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("1/minute"))
    assert client.get(remote_addr=CLIENT).status_code == 200
    assert client.get(remote_addr=CLIENT).status_code == 429
    assert client.get(remote_addr=OTHER).status_code == 200


def test_headers_survive_an_error_raised_by_the_responder(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    def fail(req: Any, resp: Any) -> None:
        raise falcon.HTTPConflict(title="busy")

    if kind == "asgi":

        async def on_get(self: object, req: Any, resp: Any) -> None:
            fail(req, resp)
    else:

        def on_get(self: object, req: Any, resp: Any) -> None:  # type: ignore[misc]
            fail(req, resp)

    client = make_client(make_limiter("2/minute"), {"/": resource(on_get=on_get)})
    result = client.get()
    assert result.status_code == 409
    assert result.headers["RateLimit"] == '"default";r=1;t=60'


# --- overrides and exemptions ---------------------------------------------------------


class RecordingLimiter(Limiter):
    """A real limiter that keeps the limiters it derives, to check they get closed."""

    derived: list[Limiter]

    def with_rates(self, rates: Any) -> Limiter:
        limiter = super().with_rates(rates)
        self.derived = [*getattr(self, "derived", []), limiter]
        return limiter


def test_responder_override_has_its_own_rates_and_budget(
    kind: str, clock: ManualClock, make_client: Callable[..., Client]
) -> None:
    limiter = RecordingLimiter("3/minute", clock=clock, gc_interval=None)
    client = make_client(
        limiter,
        {
            "/": resource(on_get=responder(kind, "root")),
            "/burst": resource(on_get=limit("2/second")(responder(kind, "burst"))),
        },
    )

    burst = [client.get("/burst") for _ in range(3)]

    assert [r.status_code for r in burst] == [200, 200, 429]
    assert burst[0].headers["RateLimit-Policy"] == '"route";q=2;w=1'
    assert burst[0].headers["RateLimit"] == '"route";r=1;t=1'
    assert burst[2].headers["Retry-After"] == "1"
    assert remaining(client.get("/")) == 2  # the default budget was not touched
    clock.advance(1.0)
    assert client.get("/burst").status_code == 200

    assert len(limiter.derived) == 1  # created once, on first use
    client.middleware.close()
    assert limiter.derived[0].closed
    assert not limiter.closed  # the caller's limiter is the caller's to close
    limiter.close()


def test_equal_overrides_keep_separate_budgets_unless_they_share_a_scope(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(
        make_limiter("10/minute"),
        {
            "/a": resource(on_get=limit("1/minute")(responder(kind, "a"))),
            "/b": resource(on_get=limit("1/minute")(responder(kind, "b"))),
            "/c": resource(
                on_get=limit("1/minute", scope="pair")(responder(kind, "c"))
            ),
            "/d": resource(
                on_get=limit("1/minute", scope="pair")(responder(kind, "d"))
            ),
        },
    )
    assert client.get("/a").status_code == 200
    assert client.get("/b").status_code == 200
    assert client.get("/a").status_code == 429
    assert client.get("/c").status_code == 200
    assert client.get("/d").status_code == 429


def test_class_override_and_responder_rule_wins(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    @limit("1/minute")
    class Slow:
        on_get = responder(kind, "slow-get")
        on_post = exempt(responder(kind, "slow-post"))

    client = make_client(make_limiter("10/minute"), {"/slow": Slow()})

    assert client.get("/slow").status_code == 200
    assert client.get("/slow").status_code == 429
    posts = [client.request("POST", "/slow") for _ in range(3)]
    assert [r.status_code for r in posts] == [200, 200, 200]
    assert "RateLimit" not in posts[0].headers


def test_multi_rate_override_names_each_policy(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(
        make_limiter("10/minute; 100/hour"),
        {
            "/": resource(on_get=responder(kind, "root")),
            "/x": resource(on_get=limit("2/second; 5/minute")(responder(kind, "x"))),
        },
    )
    assert client.get("/").headers["RateLimit-Policy"] == (
        '"default-10/1m";q=10;w=60, "default-100/1h";q=100;w=3600'
    )
    result = client.get("/x")
    assert result.headers["RateLimit-Policy"] == (
        '"route-2/1s";q=2;w=1, "route-5/1m";q=5;w=60'
    )
    assert result.headers["RateLimit"] == '"route-2/1s";r=1;t=1'


def test_exempt_responder_and_exempt_resource_are_never_limited(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    @exempt
    class Health:
        on_get = responder(kind, "health")

    client = make_client(
        make_limiter("1/minute"),
        {
            "/": resource(on_get=responder(kind, "root")),
            "/health": Health(),
            "/ping": resource(on_get=exempt(responder(kind, "ping"))),
        },
    )
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 429
    for path in ("/health", "/ping"):
        results = [client.get(path) for _ in range(3)]
        assert [r.status_code for r in results] == [200, 200, 200]
        assert not any(
            h in results[0].headers for h in ("RateLimit", "X-RateLimit-Limit")
        )


def test_suffixed_responders_get_their_own_rules(
    kind: str, make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    items = resource(
        on_get=responder(kind, "collection"),
        on_get_item=limit("1/minute")(responder(kind, "item")),
    )
    client = make_client(
        make_limiter("3/minute"), {"/items": items, "/items/{id}": (items, "item")}
    )

    item = [client.get("/items/1") for _ in range(2)]
    collection = [client.get("/items") for _ in range(4)]

    assert [r.status_code for r in item] == [200, 429]
    assert item[0].headers["RateLimit-Policy"] == '"route";q=1;w=60'
    assert [r.status_code for r in collection] == [200, 200, 200, 429]
    assert [remaining(r) for r in collection] == [2, 1, 0, 0]
    assert CALLS == {"item": 1, "collection": 3}


def test_decorator_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="rate"):
        limit("lots")
    with pytest.raises(ConfigError, match="scope"):
        limit("1/s", scope="")
    with pytest.raises(TypeError, match="exempt"):
        exempt(42)


# --- client keys ----------------------------------------------------------------------


def test_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("2/minute"), trusted_proxies=["10.0.0.0/8"])
    forged = ["1.1.1.1", "1.1.1.2, 10.0.0.1", f"{OTHER}", f"{CLIENT}, 9.9.9.9"]
    statuses = [
        client.get(headers={"X-Forwarded-For": xff}).status_code for xff in forged
    ]
    assert statuses == [200, 200, 429, 429]
    assert client.get(remote_addr=OTHER).status_code == 200


def test_trusted_proxy_chain_keys_by_the_first_untrusted_hop(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(
        make_limiter("1/minute"), trusted_proxies=["10.0.0.0/8", "fd00::/8"]
    )

    def via_proxies(xff: str) -> int:
        result = client.get(remote_addr="10.0.0.1", headers={"X-Forwarded-For": xff})
        return result.status_code

    assert via_proxies(f"{CLIENT}, 10.1.2.3") == 200
    assert via_proxies(f"6.6.6.6, {CLIENT}, fd00::5") == 429  # same client
    assert via_proxies(f"{OTHER}") == 200  # another client behind the proxy
    assert client.get(remote_addr="10.0.0.1").status_code == 200  # the proxy itself


def client_key(peer: str, xff: str | None = None, **options: Any) -> str:
    headers = {"X-Forwarded-For": xff} if xff is not None else None
    req = falcon.testing.create_req(remote_addr=peer, headers=headers)
    return ClientAddress(**options)(req)


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        (CLIENT, None, CLIENT),
        (CLIENT, "1.2.3.4", CLIENT),
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.1", "9.9.9.9, 1.2.3.4, 10.0.0.7", "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4:5678, 10.0.0.7", "1.2.3.4"),
        ("10.0.0.1", "10.0.0.9, 10.0.0.8", "10.0.0.9"),
        ("10.0.0.1", " , 1.2.3.4 ,, ", "1.2.3.4"),
        ("10.0.0.1", "unknown", "unknown"),
        ("::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("2001:db8::1", "[2001:db8:1::9]:443", "2001:db8::/64"),
        ("2001:db8::1", "1.2.3.4", "2001:db8::/64"),
        ("fd00::1", "2001:db8:aa:bb:cc::1, fd00::2", "2001:db8:aa:bb::/64"),
        ("fd00::1", "[2001:db8::1], 192.168.1.1", "2001:db8::/64"),
    ],
)
def test_client_address(peer: str, xff: str | None, expected: str) -> None:
    proxies = ["10.0.0.0/8", "fd00::/8", "192.168.1.1"]
    assert client_key(peer, xff, trusted_proxies=proxies) == expected


def test_client_address_options() -> None:
    assert client_key("2001:db8::1", ipv6_prefix=128) == "2001:db8::1"
    assert client_key("2001:db8::1:2", ipv6_prefix=48) == "2001:db8::/48"
    assert client_key("10.0.0.1", "1.2.3.4", trusted_proxies="10.0.0.1 10.0.0.2") == (
        "1.2.3.4"
    )
    with pytest.raises(ConfigError, match="not-a-net"):
        ClientAddress(["not-a-net"])
    with pytest.raises(ConfigError, match="ipv6_prefix"):
        ClientAddress(ipv6_prefix=0)


def test_header_key_falls_back_to_the_address(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("1/minute"), key_func=header_key("X-Api-Key"))
    assert client.get(headers={"X-Api-Key": "alpha"}).status_code == 200
    assert client.get(headers={"X-Api-Key": "alpha"}).status_code == 429
    assert client.get(headers={"X-Api-Key": "beta"}).status_code == 200
    assert client.get().status_code == 200  # no header: keyed by address
    assert client.get().status_code == 429
    assert client.get(headers={"X-Api-Key": CLIENT}).status_code == 200  # no overlap


def test_key_func_none_means_unlimited_and_errors_propagate(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    def key(req: falcon.Request) -> str | None:
        if req.get_header("X-Internal"):
            return None
        if req.get_header("X-Banned"):
            raise falcon.HTTPForbidden()
        return "everyone"

    client = make_client(make_limiter("1/minute"), key_func=key)
    assert client.get().status_code == 200
    assert client.get().status_code == 429
    internal = client.get(headers={"X-Internal": "1"})
    assert internal.status_code == 200
    assert "RateLimit" not in internal.headers
    assert client.get(headers={"X-Banned": "1"}).status_code == 403


def test_async_key_func_on_asgi(make_limiter: MakeLimiter) -> None:
    async def key(req: falcon.Request) -> str:
        return "tenant:" + (req.get_header("X-Tenant") or "none")

    middleware = RateLimitMiddleware(make_limiter("1/minute"), key_func=key)
    client = Client("asgi", middleware, {"/": resource(on_get=responder("asgi", "r"))})
    assert client.get(headers={"X-Tenant": "a"}).status_code == 200
    assert client.get(headers={"X-Tenant": "a"}).status_code == 429
    assert client.get(headers={"X-Tenant": "b"}).status_code == 200


class KeySpy:
    """Delegates to a real limiter and records the keys it is asked about."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.rates = limiter.rates
        self.storage_url = limiter.storage_url
        self.keys: list[str] = []

    def hit(self, key: str, cost: int = 1) -> Any:
        self.keys.append(key)
        return self.limiter.hit(key, cost)


def test_long_keys_are_capped_but_stay_distinct(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    spy = KeySpy(make_limiter("1/minute"))
    client = make_client(spy, key_func=lambda req: req.get_header("X-Key"))
    prefix = "k" * 1000

    assert client.get(headers={"X-Key": prefix + "a"}).status_code == 200
    assert client.get(headers={"X-Key": prefix + "b"}).status_code == 200
    assert client.get(headers={"X-Key": prefix + "a"}).status_code == 429
    assert client.get(headers={"X-Key": "short"}).status_code == 200

    assert [len(key) for key in spy.keys] == [MAX_KEY_LENGTH] * 3 + [5]
    assert spy.keys[0] != spy.keys[1]
    assert spy.keys[0] == spy.keys[2]
    assert spy.keys[3] == "short"


@pytest.mark.redis
def test_limits_through_redis(
    kind: str, redis_url: str, make_client: Callable[..., Client]
) -> None:
    limiter = Limiter("3/minute", storage=redis_url, on_storage_error="raise")
    client = make_client(
        limiter,
        {
            "/": resource(on_get=responder(kind, "root")),
            "/o": resource(on_get=limit("1/minute")(responder(kind, "o"))),
        },
    )
    try:
        assert [client.get().status_code for _ in range(4)] == [200, 200, 200, 429]
        assert [client.get("/o").status_code for _ in range(2)] == [200, 429]
        assert client.get(remote_addr=OTHER).headers["RateLimit"] == (
            '"default";r=2;t=60'
        )
    finally:
        client.middleware.close()
        limiter.close()


# --- failures, 404, OPTIONS -----------------------------------------------------------


def test_storage_errors_never_become_500(
    kind: str, make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limiter = Limiter("1/minute", storage=down, on_storage_error="raise")
    with pytest.raises(StorageError):
        limiter.hit("probe")
    client = make_client(
        limiter,
        {
            "/": resource(on_get=responder(kind, "root")),
            "/o": resource(on_get=limit("1/s")(responder(kind, "o"))),
        },
    )

    with caplog.at_level(logging.WARNING, logger="shardlimit.falcon"):
        results = [client.get() for _ in range(3)] + [client.get("/o")]

    assert [r.status_code for r in results] == [200, 200, 200, 200]
    assert "RateLimit" not in results[0].headers
    warnings = [r for r in caplog.records if r.name == "shardlimit.falcon"]
    assert len(warnings) == 1
    assert "StorageError" in warnings[0].getMessage()
    client.middleware.close()
    limiter.close()


class BrokenLimiter:
    """A limiter whose every call fails with an unexpected error."""

    rates = (Rate(1, 60.0),)
    storage_url = "memory://"

    def hit(self, key: str, cost: int = 1) -> Any:
        raise ZeroDivisionError("bug in the limiter")

    def with_rates(self, rates: Any) -> Any:
        raise KeyError("cannot derive")


def test_unexpected_limiter_errors_never_become_500(
    kind: str, make_client: Callable[..., Client], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(
        BrokenLimiter(),
        {
            "/": resource(on_get=responder(kind, "root")),
            "/o": resource(on_get=limit("1/s")(responder(kind, "o"))),
        },
    )
    with caplog.at_level(logging.WARNING, logger="shardlimit.falcon"):
        statuses = [client.get(path).status_code for path in ("/", "/", "/o", "/o")]
        statuses.append(client.get("/nowhere").status_code)

    assert statuses == [200, 200, 200, 200, 404]
    messages = [r.getMessage() for r in caplog.records if r.name == "shardlimit.falcon"]
    assert len(messages) == 2
    assert "ZeroDivisionError" in messages[0]
    assert "KeyError" in messages[1]


def test_unrouted_requests_count_and_turn_into_429(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("2/minute"))
    results = [client.get("/nowhere/1"), client.get("/nowhere/2"), client.get("/")]

    assert [r.status_code for r in results] == [404, 404, 429]
    assert results[0].headers["RateLimit"] == '"default";r=1;t=60'
    refused = client.get("/nowhere/3")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "60"


def test_options_preflight_is_not_counted_by_default(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    preflight = {
        "Origin": "https://example.com",
        "Access-Control-Request-Method": "GET",
    }
    client = make_client(make_limiter("1/minute"))
    assert client.get().status_code == 200
    for _ in range(3):
        result = client.request("OPTIONS", "/", headers=preflight)
        assert result.status_code == 200
        assert "RateLimit" not in result.headers
    assert client.get().status_code == 429

    counting = make_client(make_limiter("1/minute"), exempt_methods=())
    assert counting.request("OPTIONS", "/").status_code == 200
    assert counting.request("OPTIONS", "/").status_code == 429


def test_method_not_allowed_is_counted(
    make_limiter: MakeLimiter, make_client: Callable[..., Client]
) -> None:
    client = make_client(make_limiter("1/minute"))
    assert client.request("DELETE", "/").status_code == 405
    assert client.get().status_code == 429


# --- header styles --------------------------------------------------------------------

IETF = ("RateLimit", "RateLimit-Policy")
LEGACY = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.mark.parametrize(
    ("style", "present"),
    [("both", IETF + LEGACY), ("ietf", IETF), ("legacy", LEGACY), ("none", ())],
)
def test_header_styles(
    style: str,
    present: tuple[str, ...],
    make_limiter: MakeLimiter,
    make_client: Callable[..., Client],
) -> None:
    client = make_client(make_limiter("1/minute"), headers=style)
    allowed, refused = client.get(), client.get()
    for result in (allowed, refused):
        sent = {name for name in IETF + LEGACY if name in result.headers}
        assert sent == set(present)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"  # always, whatever the style


def test_bad_middleware_options(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter("1/s")
    with pytest.raises(ConfigError, match=r"headers.*'loud'"):
        RateLimitMiddleware(limiter, headers="loud")
    with pytest.raises(ConfigError, match="key_func"):
        RateLimitMiddleware(limiter, key_func="peer")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="trusted_proxies"):
        RateLimitMiddleware(limiter, trusted_proxies=["10.0.0.0/33"])
