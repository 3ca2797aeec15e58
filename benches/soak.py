"""The long proofs, with figures: key floods, leak soaks, concurrency soaks, fuzzing.

Runs the workloads of ``tests/test_flood.py`` at full size, each flood and leak soak
in a fresh interpreter (so RSS is the store's), then the fuzz targets of ``fuzz/``,
and prints what was tried and what held, as markdown tables (also written to
``benches/results/soak.md``). It exits 1 if any check failed; it asserts nothing
about speed.

Usage: ``.venv/bin/python benches/soak.py [--quick] [--only flood,leak,threads,fuzz]``
(``--quick`` runs a tenth of the sizes; the default takes some minutes).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import test_flood as workloads  # noqa: E402

from shardlimit import ALGORITHMS, Limiter, ManualClock  # noqa: E402

MB = 1 << 20
FUZZ_TARGETS = ("rates", "duration", "config", "forwarded")


def mb(value: float) -> str:
    return f"{value / MB:.1f}"


def verdict(check: Callable[[dict[str, Any]], None], result: dict[str, Any]) -> str:
    try:
        check(result)
    except AssertionError as exc:
        return f"FAILED: {str(exc).splitlines()[0]}"
    return "held"


def floods(scale: float) -> list[str]:
    max_keys, flood = int(1_000_000 * scale), int(10_000_000 * scale)
    rows = [
        "| algorithm | keys flooded | max_keys | held | rejected (documented) "
        "| RSS full MB | RSS after flood MB | bytes/key (RSS) | store estimate "
        "| bound | time s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for algorithm in ALGORITHMS:
        started = time.perf_counter()
        r = workloads.in_child(
            "key_flood", algorithm=algorithm, max_keys=max_keys, flood=flood
        )
        took = time.perf_counter() - started
        rows.append(
            f"| {algorithm} | {r['keys_flooded']:,} | {r['max_keys']:,} "
            f"| {r['keys_held']:,} | {r['rejected_full']:,} "
            f"({r['rejected_full'] - r['wrong_denials']:,}) "
            f"| {mb(r['rss_full'])} | {mb(r['rss_flooded'])} "
            f"| {r['rss_per_key']:.0f} | {r['memory_bytes'] / r['max_keys']:.0f} "
            f"| {verdict(workloads.check_flood, r)} | {took:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def leaks(scale: float) -> list[str]:
    hits = int(10_000_000 * scale)
    rows = [
        "| algorithm | hits | distinct keys | peak keys | keys after last window "
        "| GC runs | RSS MB (first, mid, last) | plateau | time s |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for algorithm in ALGORITHMS:
        started = time.perf_counter()
        r = workloads.in_child("leak_soak", algorithm=algorithm, hits=hits)
        took = time.perf_counter() - started
        samples = r["rss_samples"]
        trace = ", ".join(
            mb(s) for s in (samples[0], samples[len(samples) // 2], samples[-1])
        )
        rows.append(
            f"| {algorithm} | {r['hits']:,} | {r['distinct_keys']:,} "
            f"| {r['peak_keys']:,} | {r['keys_after']} | {r['gc_runs']} | {trace} "
            f"| {verdict(workloads.check_leak, r)} | {took:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def threads(scale: float) -> list[str]:
    keys, limit, phases = 256, 50, max(2, int(40 * scale))
    rows = [
        "| algorithm | threads | hits | keys x phases | admitted | expected "
        "| over-admitted | finished | time s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for algorithm in ALGORITHMS:
        clock = ManualClock(1_000.0)
        started = time.perf_counter()
        with Limiter(
            f"{limit}/1s", algorithm=algorithm, clock=clock, gc_interval=None
        ) as limiter:
            r = workloads.concurrency_soak(
                limiter, clock, threads=32, keys=keys, hits_per_thread=2_000,
                phases=phases, period=1.0, limit=limit, timeout=600.0,
            )  # fmt: skip
        took = time.perf_counter() - started
        ok = verdict(lambda r: workloads.check_concurrency(r, keys, limit), r)
        rows.append(
            f"| {algorithm} | 32 | {32 * 2_000 * phases:,} | {keys} x {phases} "
            f"| {r['admitted']:,} | {keys * limit * phases:,} "
            f"| {len(r['over_admitted'])} | {ok} | {took:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows


def fuzzing(scale: float) -> list[str]:
    iterations = max(1_000, int(50_000 * scale))
    rows = [
        "| target | inputs tried | accepted | rejected cleanly | failed | time s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    pattern = re.compile(
        r"(\d+) inputs tried, (\d+) accepted, (\d+) rejected cleanly, (\d+) failed"
    )
    for target in FUZZ_TARGETS:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(ROOT / "fuzz" / f"fuzz_{target}.py"),
             str(iterations), "--keep-going"],
            capture_output=True, text=True, timeout=3_600, check=False, cwd=ROOT,
        )  # fmt: skip
        took = time.perf_counter() - started
        found = pattern.search(result.stdout)
        if found is None:
            rows.append(f"| {target} | ? | ? | ? | crashed | {took:.1f} |")
        else:
            tried, accepted, rejected, failed = found.groups()
            rows.append(
                f"| {target} | {int(tried):,} | {int(accepted):,} | {int(rejected):,} "
                f"| {failed}{' FAILED' if failed != '0' else ''} | {took:.1f} |"
            )
        print(rows[-1], flush=True)
        for line in result.stdout.splitlines()[1:]:
            print(f"    {line[:200]}")
    return rows


SECTIONS: dict[str, tuple[str, Callable[[float], list[str]]]] = {
    "flood": ("Key flood (10x max_keys of new keys)", floods),
    "leak": ("Leak soak (rolling keys, GC every 5 ms)", leaks),
    "threads": ("Concurrency soak (32 threads, a sweeper sweeping)", threads),
    "fuzz": ("Fuzzing (fuzz/ targets, hypothesis)", fuzzing),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections to run")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    out = [f"# shardlimit soak ({'quick' if args.quick else 'full'})", ""]
    for name in args.only.split(","):
        title, run = SECTIONS[name]
        print(f"\n## {title}\n", flush=True)
        out += [f"## {title}", "", *run(scale), ""]
    results = ROOT / "benches" / "results"
    results.mkdir(exist_ok=True)
    (results / "soak.md").write_text("\n".join(out))
    text = "\n".join(out)
    return 1 if "FAILED" in text or "| crashed |" in text else 0


if __name__ == "__main__":
    sys.exit(main())
