r"""Fuzz target: the settings loader, ``shardlimit.config.load_settings``.

Two inputs per case: environment variables with odd values, and a YAML file (random
mappings and raw bytes). Corpus lines are YAML documents (``\\n`` for new lines).

    python fuzz/fuzz_config.py [iterations] [--atheris ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz._runner import main
from fuzz.checks import check_config_environment, check_config_yaml
from fuzz.strategies import environments, yaml_documents
from hypothesis import strategies as st


def check(case: Any) -> object:
    """Check a case: a dict is an environment, bytes are a config file."""
    if isinstance(case, dict):
        return check_config_environment(case)
    return check_config_yaml(case)


def from_bytes(data: bytes) -> bytes:
    """Atheris input: the bytes are the file."""
    return data


if __name__ == "__main__":
    main(
        "config",
        check,
        st.one_of(environments(), yaml_documents()),
        from_bytes,
        corpus_input=lambda line: line.encode("utf-8", "surrogateescape"),
    )
