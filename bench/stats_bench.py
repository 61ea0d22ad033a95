"""Latency of ``POST /v1/statistics/population`` on a province-scale mock (issue 14; docs/performance.md).

Usage: .venv/bin/python bench/stats_bench.py [--count 1000000] [--mock-db PATH] [--requests 30]
       [--http-requests 15] [--no-http]

Seeds a mock of ``--count`` residents (or uses ``--mock-db``, a file `mock-csdlqg seed` wrote), migrates a
gateway database in a temporary directory, registers an analyst client (``stats.read``, province 52), starts
``dancu serve`` (one worker, embedded backend) and sends ``--requests`` queries per shape, one at a time, over
the whole province: no dimension, each dimension alone, every pair, and some triples. The first query of the
run (which loads the province's statistics columns) is reported on its own. Then the same against the http
backend (``mock-csdlqg serve`` beside a second gateway) for a subset of shapes. Prints p50 / p95 / max per
shape in milliseconds; asserts nothing. The goal (issue 14): p50 <= 100 ms and p95 <= 250 ms for every shape of
up to two dimensions on the embedded backend.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._proc import free_port, run, serving

BIN = Path(sys.executable).parent
DIMENSIONS = (
    "ward",
    "age_band",
    "age_group",
    "sex",
    "ethnicity",
    "residence_status",
    "household_size",
    "marital_status",
)
TRIPLES = (
    ("ward", "age_band", "sex"),
    ("ward", "age_group", "residence_status"),
    ("ward", "ethnicity", "age_band"),
    ("age_band", "sex", "marital_status"),
    ("household_size", "age_group", "sex"),
)
HTTP_SHAPES: tuple[tuple[str, ...], ...] = (
    (),
    ("sex",),
    ("ward",),
    ("ward", "sex"),
    ("ward", "age_band"),
    ("ward", "age_band", "sex"),
)
PURPOSE = "TK-BENCH.000001"


def token(base: str, client: dict[str, str]) -> str:
    answer = httpx.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    answer.raise_for_status()
    value: str = answer.json()["access_token"]
    return value


def measure(http: httpx.Client, body: dict[str, Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = http.post("/v1/statistics/population", json=body)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"status {answer.status_code}: {answer.text[:300]}")
        times.append(elapsed)
    return times


def line(shape: Sequence[str], times: list[float], cells: int) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    name = " x ".join(shape) or "(total only)"
    return f"  {name:<40} {cells:>7} {statistics.median(ordered):>8.1f} {p95:>8.1f} {ordered[-1]:>8.1f}"


def bench(
    base: str, client: dict[str, str], shapes: Sequence[tuple[str, ...]], n: int
) -> list[tuple[Any, ...]]:
    headers = {"Authorization": f"Bearer {token(base, client)}", "X-Purpose": PURPOSE}
    results = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        started = time.perf_counter()
        first = http.post("/v1/statistics/population", json={"province": "52", "group_by": ["sex"]})
        print(
            f"  first query (loads the province): {(time.perf_counter() - started) * 1000:.0f} ms, {first.status_code}"
        )
        print(f"  {'shape':<40} {'cells':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for shape in shapes:
            body = {"province": "52", "group_by": list(shape)}
            cells = len(http.post("/v1/statistics/population", json=body).json()["items"])
            times = measure(http, body, n)
            print(line(shape, times, cells), flush=True)
            results.append((shape, times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--mock-db", type=Path, help="a seeded mock SQLite file to use instead of seeding")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--http-requests", type=int, default=15)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dancu-stats-bench-"))
    try:
        mock_db = args.mock_db.resolve() if args.mock_db else work / "mock.db"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DANCU_", "MOCK_CSDLQG_"))},
            "DANCU_DATABASE_URL": f"sqlite:///{work / 'dancu.db'}",
            "MOCK_CSDLQG_DATABASE_URL": f"sqlite:///{mock_db}",
        }
        if not args.mock_db:
            started = time.perf_counter()
            run([str(BIN / "mock-csdlqg"), "seed", "--count", str(args.count), "-q"], env, work)
            print(f"seeded {args.count:,} residents in {time.perf_counter() - started:.1f} s")
        run([str(BIN / "dancu"), "db", "upgrade"], env, work)
        run(
            [str(BIN / "dancu"), "purposes", "add", "--code", PURPOSE, "--title", "Thống kê (bench)",
             "--legal-basis", "Luật Căn cước 2023"],
            env,
            work,
        )  # fmt: skip
        client = json.loads(
            run(
                [str(BIN / "dancu"), "clients", "create", "--name", "Phòng thống kê (bench)", "--scopes",
                 "stats.read", "--provinces", "52", "--purposes", PURPOSE, "--rate-limit", "1000000", "--json"],
                env,
                work,
            )
        )  # fmt: skip
        singles = [(d,) for d in DIMENSIONS]
        pairs = list(itertools.combinations(DIMENSIONS, 2))
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared)")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        print(
            f"embedded backend, one worker (dancu serve --port {port}), {args.requests} requests per shape:"
        )
        with serving([str(BIN / "dancu"), "serve", "--port", str(port)], env, work, f"{base}/healthz"):
            results = bench(base, client, [(), *singles, *pairs, *TRIPLES], args.requests)
        upto2 = [times for shape, times in results if len(shape) <= 2]
        worst50 = max(statistics.median(t) for t in upto2)
        worst95 = max(sorted(t)[round(0.95 * (len(t) - 1))] for t in upto2)
        print(
            f"worst over the {len(upto2)} shapes of up to two dimensions: p50 {worst50:.1f} ms, p95 {worst95:.1f} ms"
        )
        if not args.no_http:
            key = secrets.token_urlsafe(24)
            mock_port, gw_port = free_port(), free_port()
            mock_env = {**env, "MOCK_CSDLQG_API_KEY": key}
            http_env = {
                **env,
                "DANCU_BACKEND": "http",
                "DANCU_BACKEND_URL": f"http://127.0.0.1:{mock_port}",
                "DANCU_BACKEND_API_KEY": key,
            }
            base = f"http://127.0.0.1:{gw_port}"
            print(
                f"http backend (mock-csdlqg serve beside dancu serve), {args.http_requests} requests per shape:"
            )
            with (
                serving([str(BIN / "mock-csdlqg"), "serve", "--port", str(mock_port)], mock_env, work,
                        f"http://127.0.0.1:{mock_port}/healthz"),
                serving([str(BIN / "dancu"), "serve", "--port", str(gw_port)], http_env, work, f"{base}/healthz"),
            ):  # fmt: skip
                bench(base, client, HTTP_SHAPES, args.http_requests)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
