"""Seeding figures: wall time of `mock-csdlqg seed`, database size and peak memory, for 100k and 1M residents.

Usage: .venv/bin/python bench/seed_bench.py [--counts 100000,1000000] [--runs 1] [--postgres URL]
The 1M goal is <= 60 s on this 2-core machine (issue 2). Nothing here asserts: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._proc import run_measured

SEED_CMD = str(Path(sys.executable).with_name("mock-csdlqg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--postgres", help="also seed into this PostgreSQL URL (it replaces the csdlqg_* tables)"
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    print(
        f"machine: {os.cpu_count()} CPUs; command: mock-csdlqg seed --count N --database-url sqlite:///<new file>"
    )
    print(
        f"{'target':<10} {'count':>10} {'run':>4} {'wall s':>8} {'res/s':>10} {'db MiB':>9} {'peak RSS MiB':>13}"
    )
    for count in counts:
        for run in range(1, args.runs + 1):
            workdir = Path(tempfile.mkdtemp(prefix="dancu-seed-bench-"))
            db = workdir / "mock.db"
            try:
                result = run_measured(
                    [SEED_CMD, "seed", "--count", str(count), "--database-url", f"sqlite:///{db}", "--quiet"]
                )
                size = db.stat().st_size / 2**20 if db.exists() else float("nan")
                print(
                    f"{'sqlite':<10} {count:>10,} {run:>4} {result.seconds:>8.1f} {count / result.seconds:>10,.0f} "
                    f"{size:>9.0f} {result.peak_tree_rss_mib:>13.0f}"
                    + ("" if result.returncode == 0 else f"  (exit {result.returncode})")
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        if args.postgres:
            result = run_measured(
                [SEED_CMD, "seed", "--count", str(count), "--database-url", args.postgres, "--quiet"]
            )
            print(
                f"{'postgres':<10} {count:>10,} {1:>4} {result.seconds:>8.1f} {count / result.seconds:>10,.0f} "
                f"{'-':>9} {result.peak_tree_rss_mib:>13.0f}"
            )
    print("peak RSS is the summed resident memory of the seeding process and its generator workers.")


if __name__ == "__main__":
    main()
