"""The properties every fuzz target checks, shared with tests/test_fuzz_inputs.py.

Each ``check_*`` function takes one input, runs the parser on it and raises
``AssertionError`` (with the input in the message) if the parser:

* raised anything but its documented error (``ConfigError`` for rates, durations and
  settings; nothing at all for the middleware's key extraction);
* rejected the input with a message that does not name the bad value;
* accepted it but returned something inconsistent (a rate that does not match the
  text, a key that does not come from the peer or the right hop).

A hang is caught by :func:`hang_guard`, which interrupts a parse after a bound that
is orders of magnitude above a normal parse (microseconds).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import falcon
import falcon.testing

from shardlimit import ConfigError, Rate, parse_duration, parse_rates
from shardlimit.config import VARIABLES, Settings, load_settings
from shardlimit.falcon import MAX_KEY_LENGTH, ClientAddress

__all__ = [
    "Hang",
    "check_config_environment",
    "check_config_yaml",
    "check_duration",
    "check_forwarded_for",
    "check_rates_text",
    "hang_guard",
    "request",
]


#: The longest rejection message that still reads as one (a YAML alias bomb must
#: not be formatted whole into it).
MAX_MESSAGE = 20_000


class Hang(BaseException):
    """A parse took longer than the hang guard allows."""


@contextlib.contextmanager
def hang_guard(seconds: float, what: object) -> Iterator[None]:
    """Raise :class:`Hang` naming ``what`` if the block runs longer than ``seconds``.

    Uses ``SIGALRM``, which interrupts a regular expression in C too; main thread
    only. Nested guards are not supported.
    """

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds}s for input {_show(what)}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _show(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# --- rates ----------------------------------------------------------------------------


def check_rates_text(text: str) -> tuple[Rate, ...] | None:
    """Parse ``text`` with parse_rates; only a ConfigError naming the bad part."""
    try:
        rates = parse_rates(text)
    except ConfigError as exc:
        message = str(exc)
        parts = [part.strip() for part in re.split(r"[;,]", text)]
        named = repr(text) in message or any(
            part and repr(part) in message for part in parts
        )
        assert named, f"rejection of {_show(text)} does not name it: {message!r}"
        return None
    except Exception as exc:
        raise AssertionError(
            f"parse_rates({_show(text)}) raised {type(exc).__name__}: {exc}"
        ) from exc
    assert rates, f"parse_rates({_show(text)}) returned no rate"
    assert all(isinstance(rate, Rate) for rate in rates)
    parts = [part for part in re.split(r"[;,]", text) if part.strip()]
    assert len(rates) == len(parts), f"{_show(text)}: {len(parts)} parts, {rates}"
    for rate in rates:
        assert 1 <= rate.limit <= 2**32 - 1
        assert rate.period_ns >= 1
    return rates


def check_rate_round_trip(rate: Rate) -> None:
    """``parse_rates(str(rate))`` gives back the rate (as the core counts it)."""
    text = str(rate)
    try:
        (back,) = parse_rates(text)
    except ConfigError as exc:
        raise AssertionError(f"str({rate!r}) = {text!r} does not parse: {exc}") from exc
    assert (back.limit, back.period_ns) == (rate.limit, rate.period_ns), (
        f"str({rate!r}) = {text!r} reads back as {back!r}"
    )


# --- durations ------------------------------------------------------------------------


def check_duration(value: Any, name: str = "SOME_SETTING") -> float | None:
    """Parse ``value`` with parse_duration; only a ConfigError naming both."""
    try:
        seconds = parse_duration(value, name=name)
    except ConfigError as exc:
        message = str(exc)
        assert name in message, f"rejection of {_show(value)} omits {name!r}: {message}"
        assert repr(value) in message or str(value) in message, (
            f"rejection of {_show(value)} does not name it: {message!r}"
        )
        return None
    except Exception as exc:
        raise AssertionError(
            f"parse_duration({_show(value)}) raised {type(exc).__name__}: {exc}"
        ) from exc
    assert isinstance(seconds, float)
    assert seconds >= 0
    assert seconds != float("inf")
    return seconds


# --- settings -------------------------------------------------------------------------


def _empty_config() -> Path:
    handle, name = tempfile.mkstemp(suffix=".yaml", prefix="shardlimit-fuzz-")
    os.close(handle)
    return Path(name)


def check_config_environment(environ: Mapping[str, str]) -> Settings | None:
    """load_settings on ``environ``; a rejection names the variable and its value."""
    path = _empty_config()
    try:
        return load_settings(environ, config_file=path)
    except ConfigError as exc:
        message = str(exc)
        bad = [
            var
            for var, value in environ.items()
            if var in VARIABLES and f"{var}={value!r}" in message
        ]
        assert bad, f"rejection of {_show(dict(environ))} names no variable: {message}"
        return None
    except Exception as exc:
        raise AssertionError(
            f"load_settings({_show(dict(environ))}) raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        path.unlink()


def check_config_yaml(content: bytes) -> Settings | None:
    """load_settings on a file of ``content``; a rejection names the file."""
    path = _empty_config()
    try:
        path.write_bytes(content)
        return load_settings({}, config_file=path)
    except ConfigError as exc:
        message = str(exc)
        assert str(path) in message, f"rejection does not name the file: {message}"
        assert len(message) < MAX_MESSAGE, (
            f"rejection of {_show(content)} is {len(message)} characters long"
        )
        return None
    except Exception as exc:
        raise AssertionError(
            f"load_settings(file of {_show(content)}) raised "
            f"{type(exc).__name__}: {_show(str(exc))}"
        ) from exc
    finally:
        path.unlink()


# --- the middleware's client key ------------------------------------------------------


def request(peer: str | None, headers: Mapping[str, str]) -> falcon.Request:
    """Build a WSGI request from ``peer`` with ``headers`` (latin-1 text values)."""
    environ = falcon.testing.create_environ(path="/", remote_addr=peer)
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return falcon.Request(environ)


def _is_trusted(text: str, trusted: ClientAddress) -> bool:
    # Written for the check, from the documented behaviour: a bare, bracketed or
    # ported address that falls in one of the trusted networks.
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in trusted.trusted_proxies)


def check_forwarded_for(
    key_func: ClientAddress, peer: str | None, forwarded: str | None
) -> str:
    """Return the client key of a request from ``peer`` with ``X-Forwarded-For``.

    Never raises; returns a non-empty ``str``. From an untrusted peer the header is
    ignored; from a trusted one, entries left of the first untrusted hop (counted
    from the right) never matter, so a client cannot choose its key by prepending.
    """
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    try:
        key = key_func(request(peer, headers))
        alone = key_func(request(peer, {}))
    except Exception as exc:
        raise AssertionError(
            f"key of peer {_show(peer)} with X-Forwarded-For {_show(forwarded)} "
            f"raised {type(exc).__name__}: {exc}"
        ) from exc
    assert isinstance(key, str)
    assert key, f"empty key for peer {peer!r}, X-Forwarded-For {_show(forwarded)}"
    peer_text = request(peer, {}).remote_addr
    if not _is_trusted(peer_text, key_func) or not forwarded:
        assert key == alone, f"untrusted peer {peer!r} chose its key {key!r}"
        return key
    hops = forwarded.split(",")
    for index in range(len(hops) - 1, -1, -1):
        hop = hops[index].strip()
        if hop and not _is_trusted(hop, key_func):
            spoofed = ",".join(["6.6.6.6", "::6", "garbage", *hops[index:]])
            again = key_func(request(peer, {"X-Forwarded-For": spoofed}))
            assert again == key, (
                f"prepending to X-Forwarded-For {_show(forwarded)} changed the key "
                f"from {key!r} to {again!r}"
            )
            # The key is the one that client would have connecting directly.
            direct = ClientAddress(ipv6_prefix=key_func.ipv6_prefix)(request(hop, {}))
            assert key == direct, (
                f"X-Forwarded-For {_show(forwarded)} from {peer!r}: key {key!r}, but "
                f"{hop!r} connecting directly gets {direct!r}"
            )
            break
    return key


def capped(key: str) -> bool:
    """Whether a key the middleware handed to the limiter respects the cap."""
    return len(key) <= MAX_KEY_LENGTH
