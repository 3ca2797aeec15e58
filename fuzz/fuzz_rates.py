"""Fuzz target: ``shardlimit.parse_rates``.

python fuzz/fuzz_rates.py [iterations] [--atheris ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import main
from fuzz.checks import check_rates_text
from fuzz.strategies import rate_texts


def from_bytes(data: bytes) -> str:
    """Atheris input: the bytes as text (undecodable bytes as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


if __name__ == "__main__":
    main("rates", check_rates_text, rate_texts(), from_bytes)
