"""Mock lookup throughput and p99 at 64 connections (wrk), beside a bare FastAPI endpoint in the same run.

Usage: .venv/bin/python bench/lookup_bench.py [--count 100000] [--database-url URL] [--duration 10] [--runs 2]
Needs wrk (Debian: apt-get install wrk). Loopback only; every server it starts is stopped at the end.
Each server is one uvicorn worker (uvloop + httptools); wrk shares the 2 cores with it, so the ratio to
the bare endpoint is the figure to compare across machines. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = "bench-key-" + os.urandom(8).hex()
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def server(cmd: Sequence[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server did not start: {cmd[0]}") from None
                time.sleep(0.2)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wrk(url: str, duration: int, script: Path | None, pid: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script is not None:
        cmd += ["-s", str(script)]
    before = cpu_seconds(pid)
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    cpu = cpu_seconds(pid) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99_match = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99_match is not None
    p99 = float(p99_match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_match.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": p99,
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "cpu_us_per_req": cpu / max(total, 1) * 1e6,
    }


def lua_script(ids: list[str], path: Path) -> Path:
    path.write_text(
        "local ids = {" + ",".join(json.dumps(i) for i in ids) + "}\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-Api-Key"] = "{API_KEY}"\n'
        "math.randomseed(42)\n"
        "request = function()\n"
        "  local id = ids[math.random(#ids)]\n"
        '  return wrk.format(nil, "/api/v1/residents/lookup", nil, \'{"soDinhDanh":"\' .. id .. \'"}\')\n'
        "end\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--database-url", help="an already seeded mock database (default: seed --count into a temp file)"
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="dancu-lookup-bench-"))
    try:
        url = args.database_url
        if url is None:
            url = f"sqlite:///{workdir / 'mock.db'}"
            subprocess.run(
                [BIN / "mock-csdlqg", "seed", "--count", str(args.count), "--database-url", url, "-q"],
                check=True,
            )
        mock_port, bare_port = free_port(), free_port()
        mock_cmd = [
            str(BIN / "mock-csdlqg"),
            "serve",
            "--port",
            str(mock_port),
            "--database-url",
            url,
            "--log-level",
            "warning",
        ]
        bare_cmd = [str(BIN / "python"), "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port),
                    "--log-level", "warning", "--no-access-log"]  # fmt: skip
        results: dict[str, list[dict[str, float]]] = {"bare": [], "lookup": []}
        with server(bare_cmd, bare_port) as pid:
            wrk(f"http://127.0.0.1:{bare_port}/bare", 2, None, pid)  # warm-up
            for _ in range(args.runs):
                results["bare"].append(wrk(f"http://127.0.0.1:{bare_port}/bare", args.duration, None, pid))
        with server(mock_cmd, mock_port, {"MOCK_CSDLQG_API_KEY": API_KEY}) as pid:
            req = urllib.request.Request(
                f"http://127.0.0.1:{mock_port}/_mock/sample?n=1000&seed=1", headers={"X-Api-Key": API_KEY}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                ids = json.load(resp)["items"]
            script = lua_script(ids, workdir / "lookup.lua")
            target = f"http://127.0.0.1:{mock_port}"
            wrk(target, 2, script, pid)  # warm-up
            for _ in range(args.runs):
                results["lookup"].append(wrk(target, args.duration, script, pid))
        print(
            f"wrk -t1 -c64 -d{args.duration}s --latency; mock DB: {url.split('://')[0]}, {len(ids)} sampled IDs"
        )
        print(
            f"{'endpoint':<30} {'run':>3} {'req/s':>9} {'p99 ms':>8} {'CPU us/req':>11} {'non-2xx':>8} {'vs bare':>8}"
        )
        bare_mean = sum(r["rps"] for r in results["bare"]) / len(results["bare"])
        for name, label in (("bare", "GET /bare (FastAPI)"), ("lookup", "POST /api/v1/residents/lookup")):
            for i, r in enumerate(results[name], 1):
                print(
                    f"{label:<30} {i:>3} {r['rps']:>9,.0f} {r['p99_ms']:>8.2f} {r['cpu_us_per_req']:>11.0f} "
                    f"{r['non2xx']:>8.0f} {r['rps'] / bare_mean:>7.0%}"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
