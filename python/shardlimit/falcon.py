"""Rate limiting for Falcon apps, WSGI (``falcon.App``) and ASGI (``falcon.asgi.App``).

::

    limiter = shardlimit.Limiter("100/minute")
    app = falcon.App(middleware=[RateLimitMiddleware(limiter)])

    class Uploads:
        @limit("5/second")          # its own budget instead of the default one
        def on_post(self, req, resp): ...

    @exempt                         # every responder of the resource
    class Health:
        def on_get(self, req, resp): ...

What the middleware does, and why:

* **Which requests count.** Every routed request, except the methods in
  ``exempt_methods`` (``OPTIONS`` by default: browsers send a CORS preflight before a
  cross-origin request, and counting it would halve the client's budget and turn a
  throttled request into an opaque CORS error). Unrouted requests that end in
  ``404 Not Found`` count against the default rates too, so probing for URLs is not
  free; a client over its limit gets ``429`` instead of the ``404``. Sinks, static
  routes and WebSocket connections are not limited: Falcon runs no resource middleware
  for them.
* **Overrides.** ``@limit(rates)`` on a responder or a resource class replaces the
  default rates there. Each distinct set of rates gets one limiter derived with
  :meth:`Limiter.with_rates <shardlimit.Limiter.with_rates>`, created on first use and
  closed by :meth:`RateLimitMiddleware.close`. The budget is per client and per
  decorated responder or class, named by its qualified name (``module.Class.on_post``,
  the same in every process, so Redis shares it); ``scope=`` names a budget several
  share. A responder's rule wins over its class's. The decorators wrap a responder
  (so that it can decide for itself on a route being learned, below); decorators
  around them must keep the function's attributes, as :func:`functools.wraps` does.
* **Suffixed routes.** Falcon does not tell middleware which responder a route runs.
  When a resource has suffixed responders (``on_get_item``) whose rules differ, the
  middleware learns each route's responder on the route's first request in each
  process: that first request is counted but not refused if it turns out to reach an
  undecorated responder; every later request is decided before the responder runs.
* **Client keys.** ``key_func(req)`` returns the key, or ``None`` to leave the request
  unlimited; it may raise a ``falcon.HTTPError`` to refuse it. The default,
  :class:`ClientAddress`, is the peer address, and believes ``X-Forwarded-For`` only
  from ``trusted_proxies``; IPv6 clients are keyed by their ``/64``. Keys longer than
  :data:`MAX_KEY_LENGTH` (256) characters are shortened to 215 characters plus ``#``
  and a 40-digit hash of the whole key before they reach the limiter, so a client
  cannot make the store hold huge keys, and distinct keys stay distinct.
* **Headers.** ``headers="ietf"`` sends ``RateLimit-Policy`` and ``RateLimit`` as in
  draft-ietf-httpapi-ratelimit-headers (``"default";q=100;w=60`` and
  ``"default";r=42;t=17``); ``"legacy"`` sends ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until reset);
  ``"both"`` (the default) sends both; ``"none"`` neither. The policy of the default
  rates is named ``"default"``, that of an override ``"route"``; a limiter with
  several rates names each ``"default-100/1m"``, ``"route-5/1s"`` and so on. ``w`` and
  ``t`` are whole seconds, rounded up. A ``429`` always carries ``Retry-After`` in
  whole seconds, rounded up, and an ``application/problem+json`` body (RFC 9457),
  written by the middleware itself: Falcon's error handlers and serializers do not
  see it, so it is the same whatever the request's ``Accept``.
* **Failures.** If the limiter raises (a :class:`~shardlimit.StorageError` or
  anything else), the request goes through unlimited and without rate-limit headers;
  the first failure of each exception type is logged at WARNING. A broken limiter
  never turns into a ``500`` for the client.
* **ASGI.** Limiters on a network store (Redis) are called in a worker thread
  (:func:`asyncio.to_thread`), so the event loop never waits on the network; the
  memory store answers in well under a microsecond and is called inline.
  ``key_func`` may be a coroutine function there.

:attr:`req.context.rate_limit` holds the :class:`~shardlimit.Decision` of a limited
request, for responders that want to show it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import ipaddress
import json
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import falcon

from shardlimit.errors import ConfigError
from shardlimit.rates import Rate, parse_rates

if TYPE_CHECKING:
    from shardlimit import Decision, Limiter

__all__ = [
    "HEADER_STYLES",
    "MAX_KEY_LENGTH",
    "ClientAddress",
    "RateLimitMiddleware",
    "exempt",
    "header_key",
    "limit",
]

logger = logging.getLogger(__name__)

#: Longest key handed to the limiter; longer keys are shortened and hashed.
MAX_KEY_LENGTH: Final = 256
#: The accepted values of ``RateLimitMiddleware(headers=...)``.
HEADER_STYLES: Final = ("ietf", "legacy", "both", "none")
#: Policy name of the middleware's own rates in the ``RateLimit`` fields.
DEFAULT_POLICY: Final = "default"
#: Policy name of the rates given by :func:`limit`.
OVERRIDE_POLICY: Final = "route"

_RULE_ATTR = "__shardlimit_rule__"
_STATE_ATTR = "_shardlimit_state"
_HASH_CHARS = 40
_PROBLEM_TYPE = "application/problem+json"
_NOT_FOUND = 404

KeyFunc = Callable[[falcon.Request], "str | Awaitable[str | None] | None"]
_T = TypeVar("_T")


# --- rules: what the decorators attach ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    rates: tuple[Rate, ...] | None  # None: the middleware's own limiter
    scope: str = ""  # prefixed to the key of an override
    exempt: bool = False


_DEFAULT = _Rule(None)
_EXEMPT = _Rule(None, exempt=True)
_AMBIGUOUS = _Rule(None, scope="<ambiguous>", exempt=True)  # never cached


def limit(
    rates: str | Rate | Iterable[Rate], *, scope: str | None = None
) -> Callable[[_T], _T]:
    """Give a responder or a resource class its own rates instead of the default.

    ``rates`` is anything :func:`~shardlimit.parse_rates` reads (``"5/second"``,
    ``"10/s; 100/h"``); a bad one raises :class:`~shardlimit.ConfigError` at once.
    Each decorated responder or class has its own budget per client; give several
    the same ``scope`` to share one.
    """
    parsed = parse_rates(rates)
    if scope is not None and not (isinstance(scope, str) and scope):
        raise ConfigError(f"limit(scope=...) must be a non-empty string, got {scope!r}")

    def decorate(target: _T) -> _T:
        name = scope or _qualified_name(target)
        return _attach(target, _Rule(parsed, scope=name), "limit")

    return decorate


def exempt(target: _T) -> _T:
    """Exclude a responder, or every responder of a resource class, from limiting."""
    return _attach(target, _EXEMPT, "exempt")


def _qualified_name(target: object) -> str:
    module = getattr(target, "__module__", "?")
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


def _attach(target: _T, rule: _Rule, decorator: str) -> _T:
    if isinstance(target, type):
        setattr(target, _RULE_ATTR, rule)
        return target
    if not inspect.isfunction(target):
        raise TypeError(
            f"@{decorator} applies to a responder function or a resource class, "
            f"got {target!r}"
        )
    function = getattr(target, "__wrapped__", target) if _rule_of(target) else target
    wrapper = _wrap_responder(function, rule)
    setattr(wrapper, _RULE_ATTR, rule)
    return cast("_T", wrapper)


def _rule_of(obj: object) -> _Rule | None:
    rule = getattr(obj, _RULE_ATTR, None)
    return rule if isinstance(rule, _Rule) else None


def _wrap_responder(function: Callable[..., Any], rule: _Rule) -> Callable[..., Any]:
    """Wrap a responder so it can decide for itself on a route not yet learned."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_responder(
            resource: object, req: Any, resp: Any, *args: Any, **kwargs: Any
        ) -> Any:
            state = _pending_state(req)
            if state is not None and not await state.middleware._learn_async(
                req, resp, rule
            ):
                return None
            return await function(resource, req, resp, *args, **kwargs)

        return async_responder

    @functools.wraps(function)
    def responder(
        resource: object, req: Any, resp: Any, *args: Any, **kwargs: Any
    ) -> Any:
        state = _pending_state(req)
        if state is not None and not state.middleware._learn(req, resp, rule):
            return None
        return function(resource, req, resp, *args, **kwargs)

    return responder


def _pending_state(req: Any) -> _Pending | None:
    state = getattr(getattr(req, "context", None), _STATE_ATTR, None)
    return state if isinstance(state, _Pending) and state.route is not None else None


def _resolve(resource: object, method: str) -> _Rule:
    """Return the rule for ``method`` on ``resource``, or ``_AMBIGUOUS``."""
    fallback = _rule_of(type(resource)) or _DEFAULT
    plain = f"on_{method.lower()}"
    names = [n for n in dir(resource) if n == plain or n.startswith(plain + "_")]
    rules = {_rule_of(getattr(resource, name, None)) or fallback for name in names}
    if not rules:
        return fallback  # Falcon answers 405 (or OPTIONS) itself
    if len(rules) == 1:
        return rules.pop()
    return _AMBIGUOUS


# --- client keys ----------------------------------------------------------------------


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


#: The longest text that can be an address as proxies write it (``[v6%zone]:port``);
#: longer hop texts are refused before parsing, so the parser's cache holds at most
#: 4096 short texts, however long the hops a client sends through a trusted proxy.
_MAX_ADDRESS_TEXT = 64


def _parse_ip(text: str) -> _IPAddress | None:
    """Parse an address as proxies write it: bare, ``[v6]:port`` or ``v4:port``."""
    text = text.strip()
    if len(text) > _MAX_ADDRESS_TEXT:
        return None
    return _parse_short_ip(text)


@functools.lru_cache(maxsize=4096)
def _parse_short_ip(text: str) -> _IPAddress | None:
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """Key requests by client address, believing ``X-Forwarded-For`` only from proxies.

    ``trusted_proxies`` lists addresses and CIDR networks, IPv4 or IPv6 (strings or
    :mod:`ipaddress` objects). When the peer is one of them, the ``X-Forwarded-For``
    chain is walked from the right, skipping trusted hops; the first untrusted hop is
    the client. From any other peer the header is ignored, so a client cannot pick its
    own key. IPv6 clients are keyed by their ``/ipv6_prefix`` network (default ``/64``,
    the block one site usually holds), so rotating addresses inside it does not give
    a client a fresh budget; ``ipv6_prefix=128`` keys single addresses.
    """

    def __init__(
        self,
        trusted_proxies: Iterable[str | _Network | _IPAddress] = (),
        *,
        ipv6_prefix: int = 64,
    ) -> None:
        """Parse the trusted networks; raise ConfigError on a bad one."""
        if isinstance(trusted_proxies, str):
            trusted_proxies = [
                p for p in trusted_proxies.replace(",", " ").split() if p
            ]
        networks: list[_Network] = []
        for proxy in trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(proxy, strict=False))
            except (TypeError, ValueError):
                raise ConfigError(
                    f"trusted_proxies: {proxy!r} is not an IP address or network "
                    "(such as 10.0.0.0/8, 192.168.1.10 or fd00::/8)"
                ) from None
        if isinstance(ipv6_prefix, bool) or ipv6_prefix not in range(1, 129):
            raise ConfigError(f"ipv6_prefix must be from 1 to 128, got {ipv6_prefix!r}")
        self.trusted_proxies: tuple[_Network, ...] = tuple(networks)
        self.ipv6_prefix = ipv6_prefix

    def __call__(self, req: falcon.Request) -> str:
        """Return the client address of ``req`` as a key."""
        peer = req.remote_addr or "unknown"
        if self.trusted_proxies and self._trusted(peer):
            forwarded = req.get_header("X-Forwarded-For")
            if forwarded:
                return self._client_from_chain(forwarded)
        return self._key(peer) if ":" in peer else peer  # IPv4 needs no parsing

    def _trusted(self, text: str) -> bool:
        address = _parse_ip(text)
        return address is not None and any(
            address in network for network in self.trusted_proxies
        )

    def _client_from_chain(self, chain: str) -> str:
        hop = ""
        for entry in reversed(chain.split(",")):
            hop = entry.strip()
            if hop and not self._trusted(hop):
                break
        return self._key(hop or "unknown")

    def _key(self, text: str) -> str:
        if ":" not in text:
            return text  # IPv4, the common case, needs no parsing
        address = _parse_ip(text)
        if address is None:
            return text
        if isinstance(address, ipaddress.IPv6Address) and self.ipv6_prefix < 128:  # noqa: PLR2004
            return str(
                ipaddress.ip_network(f"{address}/{self.ipv6_prefix}", strict=False)
            )
        return str(address)


def header_key(name: str, *, fallback: KeyFunc | None = None) -> KeyFunc:
    """Key requests by the value of header ``name`` (an API key, a tenant id).

    Requests without the header are keyed by ``fallback(req)``, by default the peer
    address (:class:`ClientAddress` without proxies), so leaving the header out does
    not escape the limit. Header keys are prefixed with the header name, so they never
    share a budget with an address.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"header_key: name must be a header name, got {name!r}")
    prefix = name.lower() + ":"
    otherwise: KeyFunc = fallback if fallback is not None else ClientAddress()

    def key(req: falcon.Request) -> str | Awaitable[str | None] | None:
        value = req.get_header(name)
        return prefix + value if value else otherwise(req)

    return key


def _check_key(key: object) -> str | None:
    if key is None or isinstance(key, str):
        return key
    raise TypeError(f"key_func must return a str or None, got {key!r}")


def _cap(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=20)
    return f"{key[: MAX_KEY_LENGTH - _HASH_CHARS - 1]}#{digest.hexdigest()}"


# --- header values ----------------------------------------------------------------


def _seconds(value: float) -> int:
    """Whole seconds, rounded up; 0 for anything not positive and finite."""
    return math.ceil(value) if 0 < value < math.inf else 0


class _Policy:
    """A limiter's precomputed ``RateLimit-Policy`` value and policy names by rate."""

    __slots__ = ("header", "names", "single")

    def __init__(self, prefix: str, rates: tuple[Rate, ...]) -> None:
        if len(rates) == 1:
            self.names = {rates[0]: prefix}
        else:
            self.names = {rate: f"{prefix}-{rate}" for rate in rates}
        self.single = prefix if len(rates) == 1 else None
        self.header = ", ".join(
            f'"{self.names[rate]}";q={rate.limit};w={max(1, _seconds(rate.period))}'
            for rate in rates
        )

    def name(self, rate: Rate) -> str:
        return self.single or self.names.get(rate) or next(iter(self.names.values()))


class _Pending:
    """A request on a route whose responder is not known yet (see "Suffixed routes")."""

    __slots__ = ("middleware", "route")

    def __init__(self, middleware: RateLimitMiddleware, route: _RouteKey) -> None:
        self.middleware = middleware
        self.route: _RouteKey | None = route

    def settle(self) -> _RouteKey | None:
        """Return the route, once: the first of the responder and the hook wins."""
        route, self.route = self.route, None
        return route


_RouteKey = tuple[int, "str | None", str]


# --- the middleware ---------------------------------------------------------------


class RateLimitMiddleware:
    """Falcon middleware that limits requests with a :class:`~shardlimit.Limiter`.

    Works in ``falcon.App`` and ``falcon.asgi.App``. See the module documentation for
    which requests count, the headers and what happens when the limiter fails. The
    middleware does not own ``limiter`` (close it yourself); :meth:`close` closes the
    limiters it derived for :func:`limit` overrides. Use one per app.
    """

    def __init__(
        self,
        limiter: Limiter,
        *,
        key_func: KeyFunc | None = None,
        headers: str = "both",
        trusted_proxies: Iterable[str | _Network | _IPAddress] = (),
        exempt_methods: Iterable[str] = ("OPTIONS",),
    ) -> None:
        """Check the options; raise ConfigError naming a bad one."""
        if headers not in HEADER_STYLES:
            raise ConfigError(
                f"headers must be one of {', '.join(HEADER_STYLES)}, got {headers!r}"
            )
        if key_func is not None and not callable(key_func):
            raise ConfigError(f"key_func must be callable, got {key_func!r}")
        self.limiter = limiter
        self.key_func: KeyFunc = key_func or ClientAddress(trusted_proxies)
        self.headers = headers
        self.exempt_methods = frozenset(m.upper() for m in exempt_methods)
        self._ietf = headers in ("ietf", "both")
        self._legacy = headers in ("legacy", "both")
        self._offload = not limiter.storage_url.startswith("memory:")
        self._policy = _Policy(DEFAULT_POLICY, tuple(limiter.rates))
        self._derived: dict[tuple[Rate, ...], tuple[Limiter, _Policy]] = {}
        self._routes: dict[_RouteKey, _Rule] = {}
        self._ambiguous_seen = False
        self._lock = threading.Lock()
        self._reported: set[type[BaseException]] = set()
        self._closed = False

    def close(self) -> None:
        """Close the limiters derived for overrides (not the one passed in)."""
        with self._lock:
            derived, self._derived = list(self._derived.values()), {}
            self._closed = True
        for limiter, _ in derived:
            limiter.close()

    # WSGI hooks ---------------------------------------------------------------------

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: Any
    ) -> None:
        """Decide a routed request before its responder runs; refuse it with 429."""
        rule = self._route_rule(req, resource)
        if not rule.exempt:
            self._decide(req, resp, rule, self.key_func(req))

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        """Count an unrouted 404, or a request whose route was being learned."""
        if resource is None:
            if self._counts_unrouted(req, resp):
                self._decide(req, resp, _DEFAULT, self.key_func(req))
        elif self._ambiguous_seen:
            route = self._settle_route(req, resource)
            if route is not None:
                self._count_after(req, resp, route, self.key_func(req))

    def _route_rule(self, req: falcon.Request, resource: object) -> _Rule:
        """Return the rule of the request's route, learning the route on first use."""
        route = (id(resource), req.uri_template, req.method)
        return self._routes.get(route) or self._new_route(req, resource, route)

    # ASGI hooks ---------------------------------------------------------------------

    async def process_resource_async(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: Any
    ) -> None:
        """Decide a routed request before its responder runs (ASGI)."""
        rule = self._route_rule(req, resource)
        if not rule.exempt:
            await self._decide_async(req, resp, rule)

    async def process_response_async(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        """Count an unrouted 404, or a request whose route was being learned (ASGI)."""
        if resource is None:
            if self._counts_unrouted(req, resp):
                await self._decide_async(req, resp, _DEFAULT)
        elif self._ambiguous_seen:
            route = self._settle_route(req, resource)
            if route is not None:
                key = await self._key_async(req)
                if self._offload:
                    await asyncio.to_thread(self._count_after, req, resp, route, key)
                else:
                    self._count_after(req, resp, route, key)

    # deciding -----------------------------------------------------------------------

    def _new_route(
        self, req: falcon.Request, resource: object, route: _RouteKey
    ) -> _Rule:
        """Find the rule of a route not seen yet, and remember it.

        A route whose responder cannot be told yet gets ``_AMBIGUOUS``, which is not
        remembered: the request is marked pending, for the responder or
        :meth:`process_response` to settle (see "Suffixed routes").
        """
        method = req.method
        exempted = method in self.exempt_methods
        rule = _EXEMPT if exempted else _resolve(resource, method)
        if rule is _AMBIGUOUS:
            self._ambiguous_seen = True
            setattr(req.context, _STATE_ATTR, _Pending(self, route))
        else:
            self._routes[route] = rule
        return rule

    def _learn(self, req: falcon.Request, resp: falcon.Response, rule: _Rule) -> bool:
        """Record a decorated responder's rule for its route, and enforce it."""
        route = self._pending_route(req)
        if route is None:
            return True
        self._routes[route] = rule
        return rule.exempt or self._decide(req, resp, rule, self.key_func(req))

    async def _learn_async(
        self, req: falcon.Request, resp: falcon.Response, rule: _Rule
    ) -> bool:
        """Record a decorated responder's rule and enforce it (ASGI)."""
        route = self._pending_route(req)
        if route is None:
            return True
        self._routes[route] = rule
        return rule.exempt or await self._decide_async(req, resp, rule)

    def _pending_route(self, req: falcon.Request) -> _RouteKey | None:
        state = getattr(req.context, _STATE_ATTR, None)
        return state.settle() if isinstance(state, _Pending) else None

    def _settle_route(self, req: falcon.Request, resource: object) -> _RouteKey | None:
        """Learn that an undecorated responder served a pending route."""
        route = self._pending_route(req)
        if route is not None:
            self._routes[route] = _rule_of(type(resource)) or _DEFAULT
        return route

    def _count_after(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        route: _RouteKey,
        key: object,
    ) -> None:
        """Count a request whose responder has run already; never refuse it."""
        rule, checked = self._routes[route], _check_key(key)
        if not rule.exempt and checked is not None:
            found = self._hit(rule, checked)
            if found is not None:
                req.context.rate_limit = found[0]
                self._write_headers(resp, *found)

    def _counts_unrouted(self, req: falcon.Request, resp: falcon.Response) -> bool:
        return resp.status_code == _NOT_FOUND and req.method not in self.exempt_methods

    def _decide(
        self, req: falcon.Request, resp: falcon.Response, rule: _Rule, key: object
    ) -> bool:
        """Hit the limiter for ``rule``; write a 429 and return False when denied."""
        if key is None:
            return True
        if not isinstance(key, str):
            raise TypeError(f"key_func must return a str or None, got {key!r}")
        found = self._hit(rule, key)
        return found is None or self._answer(req, resp, *found)

    async def _decide_async(
        self, req: falcon.Request, resp: falcon.Response, rule: _Rule
    ) -> bool:
        key = await self._key_async(req)
        if key is None:
            return True
        if not self._offload:
            return self._decide(req, resp, rule, key)
        found = await asyncio.to_thread(self._hit, rule, key)
        return found is None or self._answer(req, resp, *found)

    async def _key_async(self, req: falcon.Request) -> str | None:
        key = self.key_func(req)
        return _check_key(await key if inspect.isawaitable(key) else key)

    def _hit(self, rule: _Rule, key: str) -> tuple[Decision, _Policy] | None:
        """Return the limiter's decision, or None when the limiter failed."""
        if rule.scope:
            key = f"{rule.scope}|{key}"
        if len(key) > MAX_KEY_LENGTH:
            key = _cap(key)
        try:
            if rule.rates is None:
                return self.limiter.hit(key), self._policy
            limiter, policy = self._limiter_for(rule.rates)
            return limiter.hit(key), policy
        except Exception as exc:  # a broken limiter must never become a 500
            self._report(exc)
            return None

    def _limiter_for(self, rates: tuple[Rate, ...]) -> tuple[Limiter, _Policy]:
        found = self._derived.get(rates)
        if found is not None:
            return found
        with self._lock:
            if self._closed:
                raise RuntimeError("the RateLimitMiddleware is closed")
            found = self._derived.get(rates)
            if found is None:
                found = (
                    self.limiter.with_rates(rates),
                    _Policy(OVERRIDE_POLICY, rates),
                )
                self._derived[rates] = found
        return found

    def _answer(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        decision: Decision,
        policy: _Policy,
    ) -> bool:
        """Record ``decision`` and its headers; if denied, write a 429, return False."""
        req.context.rate_limit = decision
        self._write_headers(resp, decision, policy)
        if decision.allowed:
            return True
        _refuse(resp, decision)
        return False

    def _report(self, exc: Exception) -> None:
        kind = type(exc)
        if kind in self._reported:
            return
        with self._lock:
            if kind in self._reported:
                return
            self._reported.add(kind)
        logger.warning(
            "rate limiter failed (%s: %s); letting requests through unlimited. "
            "Further %s errors are not logged.",
            kind.__name__,
            exc,
            kind.__name__,
        )

    # responding ---------------------------------------------------------------------

    def _write_headers(
        self, resp: falcon.Response, decision: Decision, policy: _Policy
    ) -> None:
        reset = _seconds(decision.reset_after)
        fields: tuple[tuple[str, str], ...] = ()
        if self._ietf:
            name = policy.single or policy.name(decision.rate)
            fields = (
                ("RateLimit-Policy", policy.header),
                ("RateLimit", f'"{name}";r={decision.remaining};t={reset}'),
            )
        if self._legacy:
            fields += (
                ("X-RateLimit-Limit", str(decision.limit)),
                ("X-RateLimit-Remaining", str(decision.remaining)),
                ("X-RateLimit-Reset", str(reset)),
            )
        if fields:
            resp.set_headers(fields)  # one call for all: this runs on every request


def _refuse(resp: falcon.Response, decision: Decision) -> None:
    """Turn ``resp`` into a 429 problem-details response for ``decision``."""
    retry_after = max(1, _seconds(decision.retry_after))
    if not math.isfinite(decision.retry_after):
        detail = "The request costs more than the rate limit allows at any time."
    else:
        detail = (
            f"Rate limit of {decision.rate} exceeded; "
            f"retry in {retry_after} second{'s' if retry_after != 1 else ''}."
        )
    body = {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": detail,
    }
    resp.status = falcon.HTTP_429
    resp.text = None
    resp.data = json.dumps(body).encode()
    resp.content_type = _PROBLEM_TYPE
    if math.isfinite(decision.retry_after):
        resp.set_header("Retry-After", str(retry_after))
    resp.complete = True
