"""Fuzzing the parsers and the middleware's key extraction with hypothesis.

The properties live in ``fuzz/checks.py`` and the input generators in
``fuzz/strategies.py``, shared with the runnable targets in ``fuzz/`` (which run far
more inputs: ``python fuzz/fuzz_rates.py 200000``). Here each property runs a few
hundred inputs, plus the awkward cases the fuzzers found, pinned as examples:

* ``parse_rates``, ``parse_duration``, ``Rate`` and the settings loader raise only
  ``ConfigError``, whose message names the bad value (and the variable or file);
* none of them hangs on long adversarial text;
* ``str(rate)`` reads back as the same rate;
* the client key never raises, ignores ``X-Forwarded-For`` from untrusted peers,
  cannot be chosen by prepending entries, and is the key the client would get
  connecting directly; IPv6 clients share their /64;
* through a Falcon app, hostile header values never produce a 5xx and every key
  handed to the limiter is at most ``MAX_KEY_LENGTH`` characters.
"""

from __future__ import annotations

import ipaddress
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest
from fuzz.checks import (
    check_config_environment,
    check_config_yaml,
    check_duration,
    check_forwarded_for,
    check_rate_round_trip,
    check_rates_text,
    hang_guard,
    request,
)
from fuzz.strategies import (
    duration_values,
    environments,
    forwarded_values,
    peers,
    rate_texts,
    rates,
    yaml_documents,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shardlimit import ConfigError, Limiter, Rate, parse_rates
from shardlimit.falcon import (
    MAX_KEY_LENGTH,
    ClientAddress,
    RateLimitMiddleware,
    header_key,
)

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: Seconds any one parse may take before it counts as a hang (a parse takes µs).
HANG = 5.0

HUGE_DIGITS = "9" * 5000  # above Python's 4300-digit limit for int(str)


# --- rates ----------------------------------------------------------------------------


@FUZZ
@given(rate_texts())
@example("1" * 5000 + "/s")
@example("10/" + "9" * 400 + "s")
@example("٣/s")
def test_parse_rates_accepts_or_names_the_bad_part(text: str) -> None:
    with hang_guard(HANG, text):
        check_rates_text(text)


UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "second": 1.0, "min": 60.0, "h": 3600.0}


@FUZZ
@given(
    limit=st.integers(1, 2**32 - 1),
    count=st.one_of(st.none(), st.integers(1, 1000)),
    unit=st.sampled_from(sorted(UNIT_SECONDS)),
    form=st.sampled_from(("{l}/{c}{u}", "{l} per {c} {u}", " {l}/{c} {u} ")),
)
def test_parse_rates_reads_what_the_grammar_says(
    limit: int, count: int | None, unit: str, form: str
) -> None:
    text = form.format(l=limit, c="" if count is None else count, u=unit)
    (rate,) = parse_rates(text)
    assert rate == Rate(limit, (count or 1) * UNIT_SECONDS[unit])


@FUZZ
@given(rates())
@example(Rate(7, 0.0015))
@example(Rate(1, 1e-9))
@example(Rate(1, 1234567.5))
def test_str_of_a_rate_reads_back_as_the_same_rate(rate: Rate) -> None:
    """``Rate.__str__`` promises "the text form parse_rates reads back"."""
    check_rate_round_trip(rate)


@FUZZ
@given(limit=st.one_of(st.integers(), st.floats(), st.text(max_size=3), st.none()),
       period=duration_values())  # fmt: skip
@example(limit=1, period=10**400)
def test_rate_objects_raise_config_error_only(limit: Any, period: Any) -> None:
    try:
        Rate(limit, period)
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "Rate" in message


# --- durations ------------------------------------------------------------------------


@FUZZ
@given(value=duration_values(), name=st.from_regex(r"[A-Z_]{1,12}", fullmatch=True))
@example(value=10**400, name="WINDOW_SIZE")
@example(value=float("nan"), name="GC")
def test_parse_duration_accepts_or_names_the_variable_and_value(
    value: Any, name: str
) -> None:
    with hang_guard(HANG, value):
        check_duration(value, name)


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        ("rates", "1 per" + " " * 2_000 + "x!"),
        ("rates", "1" + " " * 10_000 + "x"),
        ("rates", "1/" + " " * 10_000 + "s!"),
        ("rates", "1" * 4_000 + "/"),
        ("rates", ";" * 10_000),
        ("rates", "1/s;" * 5_000),
        ("rates", "1/" + "1" * 4_000 + ".5x"),
        ("duration", "1" + " " * 10_000 + "!"),
        ("duration", "1" * 4_000 + "." + "1" * 4_000 + "x"),
    ],
    ids=lambda value: value if len(value) < 12 else f"{value[:6]}...{len(value)}",
)
def test_no_parser_hangs_on_long_adversarial_text(parser: str, text: str) -> None:
    """Each parse takes microseconds; a super-linear regular expression takes
    minutes on these (the guard stops it after HANG seconds)."""
    with hang_guard(HANG, text):
        if parser == "rates":
            check_rates_text(text)
        else:
            check_duration(text)


# --- settings -------------------------------------------------------------------------


@FUZZ
@given(environments())
@example({"STORE_MAX_KEYS": HUGE_DIGITS})
@example({"WINDOW_SIZE": "9" * 400 + "d"})
def test_settings_from_the_environment_reject_with_the_variable(
    environ: dict[str, str],
) -> None:
    check_config_environment(environ)


@FUZZ
@given(yaml_documents())
@example(b"rate_limit: \xff\xfe\n")
@example(b"window_size: " + b"9" * 400 + b"\n")
@example(b"rate_limit: " + HUGE_DIGITS.encode() + b"\n")
def test_settings_files_reject_with_the_file_name(content: bytes) -> None:
    with hang_guard(HANG, content):
        check_config_yaml(content)


def test_a_yaml_alias_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Nine levels of aliases: 300 bytes that expand to 43 million strings.

    The loader may refuse the value; it must not format it whole into its message
    (hundreds of megabytes at this depth, gigabytes at the next). Run in a child
    limited to 1 GiB of address space.
    """
    levels = ["&l0 [x, x, x, x, x, x, x, x, x]"] + [
        f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 8)
    ]
    config = tmp_path / "bomb.yaml"
    config.write_text(f"rate_limit: [{', '.join(levels)}]\n")
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from shardlimit import ConfigError
        from shardlimit.config import load_settings
        try:
            load_settings({{}}, config_file={str(config)!r})
        except ConfigError as exc:
            print(len(str(exc)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) < 20_000, f"a {result.stdout.strip()}-character message"


# --- the client key -------------------------------------------------------------------

TRUSTED = ClientAddress(["10.0.0.0/8", "fd00::/8"])


@FUZZ
@given(peer=peers(), forwarded=st.one_of(st.none(), forwarded_values()))
@example(peer="10.0.0.1", forwarded="fe80::1%eth0")
@example(peer="10.0.0.1", forwarded="6.6.6.6, ::ffff:10.0.0.9, 10.0.0.2")
@example(peer="fd00::1", forwarded=",".join(["1.1.1.1"] * 2_000))
@example(peer="::ffff:10.0.0.7", forwarded="203.0.113.9:443")
def test_the_client_key_comes_from_the_peer_or_the_right_hop(
    peer: str, forwarded: str | None
) -> None:
    check_forwarded_for(TRUSTED, peer, forwarded)


@FUZZ
@given(ip=st.ip_addresses(v=6), low=st.integers(0, 2**64 - 1))
def test_ipv6_clients_are_keyed_by_their_64(
    ip: ipaddress.IPv6Address, low: int
) -> None:
    sibling = ipaddress.IPv6Address((int(ip) >> 64 << 64) | low)
    if ip.ipv4_mapped or sibling.ipv4_mapped:
        return
    key_func = ClientAddress()
    assert key_func(request(str(ip), {})) == key_func(request(str(sibling), {}))
    single = ClientAddress(ipv6_prefix=128)
    same = single(request(str(ip), {})) == single(request(str(sibling), {}))
    assert same == (ip == sibling)


# --- through the middleware -----------------------------------------------------------


class RecordingLimiter:
    """A real memory limiter that remembers the keys the middleware hands it."""

    def __init__(self, limiter: Limiter, keys: list[str]) -> None:
        self._limiter = limiter
        self.keys = keys
        self.rates = limiter.rates
        self.storage_url = limiter.storage_url

    def hit(self, key: str, cost: int = 1) -> Any:
        self.keys.append(key)
        return self._limiter.hit(key, cost)

    def with_rates(self, rates: Any) -> RecordingLimiter:
        return RecordingLimiter(self._limiter.with_rates(rates), self.keys)

    def close(self) -> None:
        self._limiter.close()


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[falcon.testing.TestClient, list[str]]]:
    keys: list[str] = []
    limiter = RecordingLimiter(Limiter("1000000/s", gc_interval=None), keys)
    by_address = RateLimitMiddleware(
        limiter,  # type: ignore[arg-type]
        trusted_proxies=["10.0.0.0/8"],
    )
    by_header = RateLimitMiddleware(
        limiter,  # type: ignore[arg-type]
        key_func=header_key("X-API-Key"),
    )
    app = falcon.App(middleware=[by_address, by_header])
    app.add_route("/", Hello())
    yield falcon.testing.TestClient(app), keys
    limiter.close()


LATIN1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300
)


@FUZZ
@given(
    peer=peers(),
    forwarded=st.one_of(st.none(), forwarded_values()),
    api_key=st.one_of(st.none(), LATIN1, st.integers(0, 20_000).map(lambda n: "k" * n)),
    path=st.sampled_from(("/", "/missing", "/%ff", "/" + "a" * 2_000)),
)
@example(peer="10.0.0.1", forwarded="1.1.1.1, " * 3_000, api_key=None, path="/")
@example(peer="10.0.0.1", forwarded=None, api_key="\xff\xfe" * 4_000, path="/")
def test_hostile_headers_get_a_sane_answer_and_capped_keys(
    recorded: tuple[falcon.testing.TestClient, list[str]],
    peer: str,
    forwarded: str | None,
    api_key: str | None,
    path: str,
) -> None:
    client, keys = recorded
    keys.clear()
    headers = {}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    if api_key:
        headers["X-API-Key"] = api_key
    result = client.simulate_get(path, headers=headers, remote_addr=peer or None)
    assert result.status_code in (200, 404, 429), result.text[:300]
    assert keys, "the request was not counted"
    for key in keys:
        assert len(key) <= MAX_KEY_LENGTH, f"a {len(key)}-character key"
    if api_key and len(api_key) > MAX_KEY_LENGTH:
        # Long keys are shortened with a hash of the whole key: distinct keys stay
        # distinct.
        assert any(key.startswith("x-api-key:") for key in keys)


def test_the_fuzz_targets_run(tmp_path: Path) -> None:
    """Each runnable target runs its corpus and a few generated inputs."""
    targets = sorted((ROOT / "fuzz").glob("fuzz_*.py"))
    assert {t.stem for t in targets} >= {
        "fuzz_rates",
        "fuzz_duration",
        "fuzz_config",
        "fuzz_forwarded",
    }
    for corpus in ("rates", "durations", "config", "forwarded"):
        assert (ROOT / "fuzz" / "corpus" / f"{corpus}.txt").is_file()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "fuzz_forwarded.py"), "50"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inputs tried" in result.stdout
    assert math.isfinite(float(result.stdout.split()[1]))
