"""Hypothesis strategies for the fuzz targets and tests/test_fuzz_inputs.py.

Each mixes three kinds of input: arbitrary text, text built from the grammar's own
pieces (so most inputs get deep into the parser), and values known to be awkward
(huge numbers, odd whitespace, separators alone, non-ASCII digits and letters).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

from shardlimit import Rate
from shardlimit.config import VARIABLES

__all__ = [
    "duration_values",
    "environments",
    "forwarded_values",
    "peers",
    "rate_texts",
    "rates",
    "yaml_documents",
]

UNITS = (
    "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes",
    "h", "hr", "hour", "hours", "d", "day", "days", "ms", "millisecond",
    "milliseconds", "S", "MIN", "Hours", "fortnight", "w", "", "\u017f", "\u212a",
    "µs", "ns",
)  # fmt: skip
SPACE = st.sampled_from(("", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\x0b"))
NUMBERS = st.one_of(
    st.integers(0, 10**6).map(str),
    st.integers(0, 2**64).map(str),
    st.sampled_from(
        (
            "0",
            "00",
            "1",
            "4294967295",
            "4294967296",
            "1" * 40,
            "\u0663",
            "\uff11",
            "1.5",
        )
    ),
    st.floats(0, 1e7, allow_nan=False).map(repr),
    st.decimals(0, 1000, places=3, allow_nan=False).map(str),
)


def _join(parts: list[str]) -> str:
    return "".join(parts)


def one_rate() -> st.SearchStrategy[str]:
    """Draw a single rate built from the grammar's pieces (valid or nearly so)."""
    return st.tuples(
        SPACE,
        NUMBERS,
        SPACE,
        st.sampled_from(("/", " per ", "per", " PER ", "//", " / ", "\\", "per  ")),
        st.one_of(st.just(""), NUMBERS),
        SPACE,
        st.sampled_from(UNITS),
        SPACE,
    ).map(lambda parts: _join(list(parts)))


def rate_texts() -> st.SearchStrategy[str]:
    """Text for parse_rates: grammar-built lists, noise, and arbitrary text."""
    grammar = st.lists(one_rate(), min_size=1, max_size=4).flatmap(
        lambda rates: st.sampled_from((";", ",", "; ", ";;", " , ")).map(
            lambda sep: sep.join(rates)
        )
    )
    noise = st.text(alphabet="0123456789/;,. persminhdSMHD\t", max_size=40)
    return st.one_of(grammar, grammar, noise, st.text(max_size=60))


def rates() -> st.SearchStrategy[Rate]:
    """Rate objects over the whole valid range of limits and periods."""
    period = st.one_of(
        st.floats(1e-9, 10 * 365 * 86400.0, allow_nan=False),
        st.integers(1, 10**6).map(float),
        st.integers(1, 10**6).map(lambda ms: ms / 1000),
        st.sampled_from((1e-9, 1.5, 0.0015, 0.25, 90.0, 3600.0, 86400.0 * 7)),
    )
    return st.builds(Rate, st.integers(1, 2**32 - 1), period)


def duration_values() -> st.SearchStrategy[Any]:
    """Values for parse_duration: text in and out of the grammar, numbers, others."""
    grammar = st.tuples(SPACE, NUMBERS, SPACE, st.sampled_from(UNITS), SPACE).map(
        lambda parts: _join(list(parts))
    )
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**30), 10**30),
        st.sampled_from((10**400, -(10**400), 2**1024, 0, -0.0, True, False)),
    )
    others = st.sampled_from((None, b"30s", ["30s"], {"s": 1}, object))
    return st.one_of(grammar, grammar, numbers, others, st.text(max_size=40))


def environments() -> st.SearchStrategy[dict[str, str]]:
    """Environment mappings: a few of the documented variables with odd values."""
    value = st.one_of(
        st.text(max_size=30),
        NUMBERS,
        st.tuples(NUMBERS, st.sampled_from(UNITS)).map(_join_pair),
        st.sampled_from(
            (
                "memory://",
                "memory://x",
                "redis://",
                "redis://:6379",
                "redis://h:99999",
                "redis+cluster://h:7000/1",
                "rediss://u:p@h/0",
                "off",
                "OFF",
                ":6060",
                "[::1]:6060",
                "::1:6060",
                "10.0.0.0/8, fd00::/8",
                "10.0.0.0/33",
                "token_bucket",
                " sliding_window ",
                "9" * 5000,
            )
        ),
    )
    return st.dictionaries(
        st.sampled_from(sorted(VARIABLES)), value, min_size=1, max_size=4
    )


def _join_pair(pair: tuple[str, str]) -> str:
    return pair[0] + pair[1]


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(("30s", "100", "memory://", "off", "10.0.0.0/8", 10**400)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def yaml_documents() -> st.SearchStrategy[bytes]:
    """Draw config files: known and unknown keys with random values; raw bytes."""
    keys = st.one_of(st.sampled_from([var.lower() for var in VARIABLES]), st.text())
    mappings = st.dictionaries(keys, _VALUES, max_size=4).map(
        lambda doc: yaml.safe_dump(doc, allow_unicode=True).encode()
    )
    return st.one_of(
        mappings,
        mappings,
        _VALUES.map(lambda doc: yaml.safe_dump(doc).encode()),
        st.binary(max_size=80),
        st.text(max_size=80).map(str.encode),
    )


def peers() -> st.SearchStrategy[str]:
    """Peer addresses as servers report them, and odd ones."""
    return st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.sampled_from(
            (
                "10.0.0.1",
                "10.255.255.255",
                "fd00::1",
                "::ffff:10.0.0.7",
                "127.0.0.1",
                "",
                "unix",
                "fe80::1%eth0",
                "[::1]:8080",
                "1.2.3.4:80",
                "garbage",
            )
        ),
        st.text(max_size=20),
    )


def hops() -> st.SearchStrategy[str]:
    """One X-Forwarded-For entry: an address, an address with a port, or junk."""
    return st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.ip_addresses(v=4).map(lambda ip: f"{ip}:{443}"),
        st.ip_addresses(v=6).map(lambda ip: f"[{ip}]:8080"),
        st.sampled_from(
            (
                "10.1.2.3",
                "fd00::9",
                "unknown",
                "",
                " ",
                "fe80::1%eth0",
                "[::1",
                "::ffff:10.0.0.1",
                "1.2.3",
                "999.1.1.1",
                "_hidden",
                '"quoted"',
            )
        ),
        # Header values reach WSGI as latin-1 text: bytes 0x80-0xff (invalid UTF-8)
        # arrive as the characters U+0080-U+00FF.
        st.text(
            alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF),
            max_size=30,
        ),
    )


def forwarded_values() -> st.SearchStrategy[str]:
    """X-Forwarded-For header values: chains of hops, and arbitrary latin-1 text."""
    chains = st.lists(hops(), max_size=40).flatmap(
        lambda entries: st.sampled_from((",", ", ", " ,")).map(
            lambda sep: sep.join(entries)
        )
    )
    latin1 = st.text(
        alphabet=st.characters(min_codepoint=0x09, max_codepoint=0xFF),
        max_size=200,
    ).map(lambda text: text.replace("\n", " ").replace("\r", " "))
    return st.one_of(chains, chains, latin1)
