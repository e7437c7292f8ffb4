"""Run the benchmark suite and print every figure beside its baseline and target.

    .venv/bin/python benchmarks/run.py                  # full sizes (make bench)
    .venv/bin/python benchmarks/run.py --quick          # smaller sizes, a smoke run
    .venv/bin/python benchmarks/run.py --only store     # one benchmark
    .venv/bin/python benchmarks/run.py --json out.json  # also write all figures as JSON

Benchmarks are not tests: they print figures and never fail on timing. The
exit status is non-zero only when a benchmark could not run at all. Each
benchmark lives in ``bench_<name>.py`` and is imported only when selected.
See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ORCH_ENV, Figure, format_table, machine  # noqa: E402

#: In figure order: chain (1-4), cached_large (5), hashing (6), store (7), plan (8), startup (9),
#: executors (10-12).
BENCHMARKS = ("chain", "cached_large", "hashing", "store", "plan", "startup", "executors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the orchestrator; prints figures, asserts nothing.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (1e6 rows, 200 MB) for a smoke run in about a minute")
    parser.add_argument("--only", metavar="NAME", choices=BENCHMARKS,
                        help=f"run one benchmark: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    args = parser.parse_args(argv)

    # Measure the defaults: a variable exported in the caller's shell would change the run loop.
    cleared = {name: os.environ.pop(name) for name in ORCH_ENV if name in os.environ}
    started = datetime.datetime.now().astimezone()
    names = [args.only] if args.only else list(BENCHMARKS)
    figures: list[Figure] = []
    failed: list[str] = []
    timings: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"[{name}] {module.TITLE}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            figures += module.run(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        timings[name] = time.perf_counter() - start
        print(f"[{name}] done in {timings[name]:.1f} s", file=sys.stderr, flush=True)

    info = machine()
    print(f"\norchestrator benchmarks, {started:%Y-%m-%d %H:%M %Z}, "
          f"{'quick' if args.quick else 'full'} sizes, {info['cpus']} CPUs, Python {info['python']}, "
          f"code {info['code']}")
    if cleared:
        print(f"(ignored for this run: {', '.join(f'{k}={v}' for k, v in cleared.items())})")
    print()
    print(format_table(figures))
    missed = [f.label for f in figures if f.meets is False]
    print(f"\n{sum(f.meets is True for f in figures)} figures meet their target, {len(missed)} miss it; "
          f"total {sum(timings.values()):.0f} s.")
    if failed:
        print(f"benchmarks that could not run: {', '.join(failed)}")

    if args.json:
        doc = {
            "date": started.isoformat(timespec="seconds"),
            "quick": args.quick,
            "machine": info,
            "seconds": timings,
            "failed": failed,
            "figures": [asdict(f) for f in figures],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
