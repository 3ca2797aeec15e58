"""Fuzz target: ``shardlimit.parse_duration`` (text, numbers and other objects).

python fuzz/fuzz_duration.py [iterations] [--atheris ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import main
from fuzz.checks import check_duration
from fuzz.strategies import duration_values


def from_bytes(data: bytes) -> str:
    """Atheris input: the bytes as text (undecodable bytes as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


if __name__ == "__main__":
    main("durations", check_duration, duration_values(), from_bytes)
