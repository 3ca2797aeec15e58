"""Fuzz target: the middleware's client key (peer address and X-Forwarded-For).

Each case is a peer address and an ``X-Forwarded-For`` value, keyed by a
``ClientAddress`` that trusts 10.0.0.0/8 and fd00::/8. Corpus lines are header values
(from the trusted peer 10.0.0.1).

    python fuzz/fuzz_forwarded.py [iterations] [--atheris ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import main
from fuzz.checks import check_forwarded_for
from fuzz.strategies import forwarded_values, peers
from hypothesis import strategies as st

from shardlimit.falcon import ClientAddress

KEY_FUNC = ClientAddress(["10.0.0.0/8", "fd00::/8"])


def check(case: tuple[str, str | None]) -> str:
    """Key one request; see check_forwarded_for."""
    peer, forwarded = case
    return check_forwarded_for(KEY_FUNC, peer, forwarded)


def from_bytes(data: bytes) -> tuple[str, str]:
    """Atheris input: a trusted peer and the bytes as a latin-1 header value."""
    text = data.decode("latin-1").replace("\r", " ").replace("\n", " ")
    return "10.0.0.1", text


if __name__ == "__main__":
    main(
        "forwarded",
        check,
        st.tuples(peers(), st.one_of(st.none(), forwarded_values())),
        from_bytes,
        corpus_input=lambda line: ("10.0.0.1", line),
    )
