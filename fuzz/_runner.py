r"""Run one fuzz target: under atheris when it is installed, else with hypothesis.

Every target script calls :func:`main` with a function that checks one input (see
``fuzz/checks.py``), a hypothesis strategy that draws inputs, and a function that
turns atheris's bytes into an input. The corpus (``fuzz/corpus/<name>.txt``, one
input per line, ``\\n`` and ``\\xNN`` escapes allowed) always runs first.

    python fuzz/fuzz_rates.py              # 20000 generated inputs (hypothesis)
    python fuzz/fuzz_rates.py 200000       # more
    python fuzz/fuzz_rates.py 20000 --keep-going   # count every distinct failure
    python fuzz/fuzz_rates.py --atheris -atheris_runs=1000000   # coverage-guided

At the end it prints the inputs tried, how many were accepted and rejected, and the
slowest input. A failure prints the input and exits 1; with ``--keep-going`` the run
goes on, and each distinct failure (by its first line, numbers masked) is printed
once at the end with its count.
"""

from __future__ import annotations

import ast
import collections
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.checks import Hang, hang_guard  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: Seconds one input may take before it counts as a hang (a parse takes microseconds).
HANG_SECONDS = 5.0


def read_corpus(name: str) -> list[str]:
    """Return the inputs of ``fuzz/corpus/<name>.txt`` (escapes decoded)."""
    path = ROOT / "fuzz" / "corpus" / f"{name}.txt"
    inputs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        inputs.append(ast.literal_eval(f'"""{line}"""') if "\\" in line else line)
    return inputs


class Tally:
    """Counts and the slowest input, for the closing report."""

    def __init__(self, *, keep_going: bool = False) -> None:
        self.tried = 0
        self.accepted = 0
        self.slowest = (0.0, "")
        self.keep_going = keep_going
        self.failures: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}

    def run(self, check: Callable[[Any], Any], value: Any) -> None:
        started = time.perf_counter()
        try:
            with hang_guard(HANG_SECONDS, value):
                result = check(value)
        except (AssertionError, Hang) as exc:
            if not self.keep_going:
                raise
            self.tried += 1
            kind = _kind(exc)
            self.failures[kind] += 1
            self.examples.setdefault(kind, str(exc)[:300])
            return
        took = time.perf_counter() - started
        self.tried += 1
        self.accepted += result is not None
        if took > self.slowest[0]:
            self.slowest = (took, repr(value)[:80])

    def report(self, name: str) -> None:
        took, value = self.slowest
        failed = sum(self.failures.values())
        print(
            f"{name}: {self.tried} inputs tried, {self.accepted} accepted, "
            f"{self.tried - self.accepted - failed} rejected cleanly, {failed} "
            f"failed; slowest {took * 1e3:.2f} ms ({value})"
        )
        for kind, count in self.failures.most_common():
            print(f"  {count} x {self.examples[kind]}")


def _kind(exc: BaseException) -> str:
    """Return a failure's first line, numbers and quoted text masked, to group them."""
    line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    raised = re.match(r"(\w+)\(.* raised (\w+)", line)
    if raised:
        return f"{raised[1]}(...) raised {raised[2]}"
    line = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", line)
    return line[:120]


def main(
    name: str,
    check: Callable[[Any], Any],
    strategy: st.SearchStrategy[Any],
    from_bytes: Callable[[bytes], Any],
    corpus_input: Callable[[str], Any] = lambda line: line,
) -> None:
    """Run the corpus, then the generated inputs; exit 1 on the first failure."""
    tally = Tally(keep_going="--keep-going" in sys.argv)
    try:
        for line in read_corpus(name):
            tally.run(check, corpus_input(line))
        if "--atheris" in sys.argv:
            run_atheris(check, from_bytes, tally)
        else:
            args = [a for a in sys.argv[1:] if not a.startswith("-")]
            run_hypothesis(check, strategy, int(args[0]) if args else 20_000, tally)
    except (AssertionError, Hang) as exc:
        print(f"{name}: FAILED after {tally.tried} inputs: {exc}", file=sys.stderr)
        sys.exit(1)
    tally.report(name)
    if tally.failures:
        sys.exit(1)


def run_hypothesis(
    check: Callable[[Any], Any],
    strategy: st.SearchStrategy[Any],
    examples: int,
    tally: Tally,
) -> None:
    """Draw ``examples`` inputs from ``strategy``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def each(value: Any) -> None:
        tally.run(check, value)

    each()


def run_atheris(
    check: Callable[[Any], Any], from_bytes: Callable[[bytes], Any], tally: Tally
) -> None:
    """Hand the target to atheris (coverage-guided); needs ``pip install atheris``."""
    try:
        import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris, or drop --atheris")
    argv = [arg for arg in sys.argv if arg != "--atheris"]
    atheris.Setup(argv, lambda data: tally.run(check, from_bytes(data)))
    atheris.Fuzz()
