"""`make bench`: the gateway's hot paths under wrk at 64 connections, beside bare FastAPI, in one run.

Starts everything it measures on free loopback ports (bare FastAPI, the gateway on the embedded backend, the
mock service and a second gateway on the http backend), seeds the mock (1,000,000 residents by default), registers
clients through the CLI, drives each endpoint with wrk (two runs each), reads each server's CPU time and RSS from
/proc, prints one table and writes it to docs/performance.md with the command. Prints figures; asserts nothing.

Usage: .venv/bin/python bench/harness.py [--count 1000000] [--duration 10] [--runs 2] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lookup_bench import cpu_seconds, free_port, server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PURPOSE = "BENCH-1.000001"
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


@dataclass
class Row:
    name: str
    runs: list[dict[str, float]]
    rss_mib: float
    unit: int = 1
    """Identities per request (batch verify: 100), for the identities/s column."""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk_run(url: str, duration: int, script: Path, pid: int) -> dict[str, float]:
    import re

    before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    cpu = cpu_seconds(pid) - before

    def ms(pct: str) -> float:
        m = re.search(rf"{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")

    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": ms("50"),
        "p99": ms("99"),
        "cpu_us": cpu / max(total, 1) * 1e6,
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def lua(path: Path, method: str, route: str, headers: dict[str, str], bodies: Sequence[str] | None) -> Path:
    lines = [f'wrk.method = "{method}"', f'wrk.path = "{route}"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if bodies:
        lines.append("local bodies = {" + ",".join("[==[" + b + "]==]" for b in bodies) + "}")
        lines.append("math.randomseed(7)")
        lines.append(
            "request = function() return wrk.format(nil, nil, nil, bodies[math.random(#bodies)]) end"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def residents(db: Path, n: int) -> list[dict[str, object]]:
    """A random sample of residents of province 52 (the clients' grant), with what verify needs."""
    conn = sqlite3.connect(db)
    try:
        (top,) = conn.execute("SELECT max(stt) FROM csdlqg_cong_dan").fetchone()
        rng = random.Random(11)
        out: list[dict[str, object]] = []
        while len(out) < n:
            row = conn.execute(
                "SELECT ban_ghi FROM csdlqg_cong_dan WHERE ma_tinh = '52' AND stt >= ? ORDER BY stt LIMIT 1",
                (rng.randint(1, top),),
            ).fetchone()
            if row:
                record = json.loads(row[0])
                if record["ngayMat"] is None and record["maHo"]:
                    out.append(record)
        return out
    finally:
        conn.close()


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(BIN / "dancu"), *args], env=env, cwd=env["BENCH_CWD"], capture_output=True, text=True, check=True
    ).stdout


def token(base: str, client: dict[str, str]) -> str:
    request = urllib.request.Request(  # noqa: S310 - loopback, http only
        base + "/oauth2/token",
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return str(json.load(response)["access_token"])


def measure(name: str, url: str, script: Path, pid: int, args: argparse.Namespace, unit: int = 1) -> Row:
    wrk_run(url, 2, script, pid)  # warm-up
    runs = [wrk_run(url, args.duration, script, pid) for _ in range(args.runs)]
    row = Row(name, runs, rss_mib(pid), unit)
    print(f"  measured {name}: " + ", ".join(f"{r['rps']:,.0f} req/s" for r in runs), flush=True)
    return row


def table(rows: list[Row], bare: float) -> str:
    head = (
        "| endpoint | run | req/s | identities/s | p50 ms | p99 ms | server CPU µs/req | RSS MiB | non-2xx | vs bare |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for row in rows:
        for i, r in enumerate(row.runs, 1):
            body += (
                f"| {row.name} | {i} | {r['rps']:,.0f} | {r['rps'] * row.unit:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                f"{r['cpu_us']:,.0f} | {row.rss_mib:.0f} | {r['non2xx'] + r['errors']:.0f} | {r['rps'] / bare:.1%} |\n"
            )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/performance.md")
    args = parser.parse_args()
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="dancu-bench-"))
    try:
        mock_db = work / "mock.db"
        started = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "mock-csdlqg"),
                "seed",
                "--count",
                str(args.count),
                "--database-url",
                f"sqlite:///{mock_db}",
                "-q",
            ],
            check=True,
        )
        print(f"seeded {args.count:,} residents in {time.perf_counter() - started:.1f} s", flush=True)
        sample = residents(mock_db, 2000)
        mock_key = "bench-" + os.urandom(8).hex()
        env = {
            **os.environ,
            "BENCH_CWD": str(work),
            "DANCU_DATABASE_URL": f"sqlite:///{work / 'dancu.db'}",
            "MOCK_CSDLQG_DATABASE_URL": f"sqlite:///{mock_db}",
            "MOCK_CSDLQG_API_KEY": mock_key,
            "DANCU_BACKEND_API_KEY": mock_key,
            # explicit keys: the CLI (run in the work dir) and the servers (run in the repo) must share them
            "DANCU_KEYS__ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "DANCU_AUDIT__SUBJECT_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
            "DANCU_AUDIT__CHECKPOINT_KEY_FILE": str(work / "keys" / "checkpoint.pem"),
            "DANCU_AUDIT__CHECKPOINT_DIR": str(work / "checkpoints"),
        }
        cli(env, "db", "upgrade")
        cli(
            env,
            "purposes",
            "add",
            "--code",
            PURPOSE,
            "--title",
            "Đo hiệu năng",
            "--legal-basis",
            "Không áp dụng",
        )
        portal = json.loads(
            cli(
                env,
                "clients",
                "create",
                "--name",
                "bench portal",
                "--scopes",
                "citizen.verify,citizen.read,household.read",
                "--fields",
                "*",
                "--provinces",
                "52",
                "--purposes",
                PURPOSE,
                "--verify-details",
                "--rate-limit",
                "1000000000",
                "--distinct-per-day",
                "1000000000",
                "--json",
            )
        )
        auditor = json.loads(
            cli(env, "clients", "create", "--name", "bench auditor", "--scopes", "audit.read", "--json")
        )
        bare_port, gw_port, mock_port, gw_http_port = free_port(), free_port(), free_port(), free_port()
        uvicorn = [str(BIN / "python"), "-m", "uvicorn"]
        rows: list[Row] = []
        with server(
            [*uvicorn, "bench.bare_app:app", "--port", str(bare_port), *UVICORN_FLAGS], bare_port
        ) as pid:
            rows.append(
                measure(
                    "GET /bare (FastAPI)",
                    f"http://127.0.0.1:{bare_port}/bare",
                    lua(work / "bare.lua", "GET", "/bare", {}, None),
                    pid,
                    args,
                )
            )
        bare = min(r["rps"] for r in rows[0].runs)

        gw_env = {**env, "DANCU_ISSUER": f"http://127.0.0.1:{gw_port}"}
        gateway = [*uvicorn, "app.main:app", "--port", str(gw_port), *UVICORN_FLAGS]
        verify_bodies = [
            json.dumps(
                {"personal_id": r["soDinhDanh"], "full_name": r["hoVaTen"], "date_of_birth": r["ngaySinh"]},
                ensure_ascii=False,
            )
            for r in sample
        ]
        lookup_bodies = [json.dumps({"personal_id": r["soDinhDanh"]}) for r in sample]
        batch_bodies = [
            json.dumps({"items": [json.loads(b) for b in verify_bodies[i : i + 100]]}, ensure_ascii=False)
            for i in range(0, 1000, 100)
        ]
        search_bodies = [json.dumps({"limit": 50, "order": "desc"})]
        with server(gateway, gw_port, {**gw_env, "BENCH": "1"}) as pid:
            base = f"http://127.0.0.1:{gw_port}"
            rows.append(
                measure("GET /healthz", base, lua(work / "h.lua", "GET", "/healthz", {}, None), pid, args)
            )
            basic = base64.b64encode(f"{portal['client_id']}:{portal['client_secret']}".encode()).decode()
            token_lua = lua(
                work / "t.lua", "POST", "/oauth2/token",
                {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"},
                ["grant_type=client_credentials"],
            )  # fmt: skip
            rows.append(measure("POST /oauth2/token", base, token_lua, pid, args))
            headers = {
                "Authorization": "Bearer " + token(base, portal),
                "X-Purpose": PURPOSE,
                "Content-Type": "application/json",
            }
            rows.append(
                measure(
                    "verify (embedded)",
                    base,
                    lua(work / "v.lua", "POST", "/v1/citizens/verify", headers, verify_bodies),
                    pid,
                    args,
                )
            )
            rows.append(
                measure(
                    "read (embedded)",
                    base,
                    lua(work / "r.lua", "POST", "/v1/citizens/lookup", headers, lookup_bodies),
                    pid,
                    args,
                )
            )
            rows.append(
                measure(
                    "household (embedded)",
                    base,
                    lua(work / "hh.lua", "POST", "/v1/citizens/household", headers, lookup_bodies),
                    pid,
                    args,
                )
            )
            rows.append(
                measure(
                    "batch verify ×100 (embedded)",
                    base,
                    lua(work / "b.lua", "POST", "/v1/citizens/verify/batch", headers, batch_bodies),
                    pid,
                    args,
                    unit=100,
                )
            )
            audit_headers = {
                "Authorization": "Bearer " + token(base, auditor),
                "Content-Type": "application/json",
            }
            rows.append(
                measure(
                    "audit search (50, newest)",
                    base,
                    lua(work / "a.lua", "POST", "/v1/audit/events/search", audit_headers, search_bodies),
                    pid,
                    args,
                )
            )
        mock = [
            str(BIN / "mock-csdlqg"),
            "serve",
            "--port",
            str(mock_port),
            "--database-url",
            f"sqlite:///{mock_db}",
            "--log-level",
            "warning",
        ]
        with server(mock, mock_port, env):
            http_env = {**gw_env, "DANCU_BACKEND": "http", "DANCU_BACKEND_URL": f"http://127.0.0.1:{mock_port}",
                        "DANCU_ISSUER": f"http://127.0.0.1:{gw_http_port}"}  # fmt: skip
            with server(
                [*uvicorn, "app.main:app", "--port", str(gw_http_port), *UVICORN_FLAGS],
                gw_http_port,
                http_env,
            ) as pid:
                base = f"http://127.0.0.1:{gw_http_port}"
                headers["Authorization"] = "Bearer " + token(base, portal)
                rows.append(
                    measure(
                        "verify (http → mock)",
                        base,
                        lua(work / "vh.lua", "POST", "/v1/citizens/verify", headers, verify_bodies),
                        pid,
                        args,
                    )
                )
        versions = ", ".join(
            f"{p} {version(p)}" for p in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "python-jose")
        )
        header = (
            f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; {versions}.\n"
            f"wrk -t1 -c64 -d{args.duration}s --latency, {args.runs} runs after a 2 s warm-up; one uvicorn worker per "
            f"server with `{' '.join(UVICORN_FLAGS)}`; mock: {args.count:,} residents (SQLite); gateway: SQLite (WAL), "
            "every 2xx audited before it is answered. CPU and RSS are the server process's own (from /proc); "
            "RSS after the last run.\n"
        )
        result = table(rows, bare)
        print()
        print(header)
        print(result)
        if not args.no_write:
            write_doc(header, result, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_doc(header: str, result: str, args: argparse.Namespace) -> None:
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Performance\n\n"
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    command = ".venv/bin/python bench/harness.py" + (
        ""
        if (args.count, args.duration, args.runs) == (1_000_000, 10, 2)
        else f" --count {args.count} --duration {args.duration} --runs {args.runs}"
    )
    block = (
        f"{start}\nLatest run ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), `make bench` "
        f"(`{command}`):\n\n{header}\n{result}{end}"
    )
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")
    print(f"wrote {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
