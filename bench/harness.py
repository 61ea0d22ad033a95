"""`make bench`: the gateway's hot paths under wrk at 64 connections, beside bare FastAPI, in one run.

Starts everything it measures on free loopback ports: bare FastAPI, the gateway on the embedded backend (its own
database SQLite in WAL), the mock service and a second gateway on the http backend, and a gateway whose own
database is PostgreSQL (a fresh ``dancu_bench_<hex>`` database on ``--postgres-url``, migrated, dropped at the
end, also on failure or Ctrl-C) with one uvicorn worker and with two. Seeds the mock (1,000,000 residents by
default, SQLite, read by every gateway), registers clients through the CLI, drives each endpoint with wrk (two
runs after a 2 s warm-up), reads each server's CPU time and RSS from /proc, prints one table and the goals of
the performance issue computed from it, and writes both to docs/performance.md with the command.
Prints figures; asserts nothing.

Row keys (``--only``, ``--profile``)::

    bare         GET /bare on bare FastAPI (always measured: every ratio needs it)
    healthz      GET /healthz of the gateway (SQLite)
    token        POST /oauth2/token (client credentials)
    verify       POST /v1/citizens/verify, embedded backend, gateway DB SQLite
    read         POST /v1/citizens/lookup, embedded backend
    household    POST /v1/citizens/household, embedded backend
    batch        POST /v1/citizens/verify/batch with 100 items
    audit        POST /v1/audit/events/search (50 newest)
    verify_http  verify through the http backend to the mock service
    verify_pg    verify, embedded backend, gateway DB PostgreSQL, 1 worker (limits in process): the goal
    verify_pg_redis  the same with Redis for the limits and the jti store (what several workers need)
    verify_pg2   the same with Redis and ``--workers 2`` (its ratio is to verify_pg_redis: same set-up)

Usage: .venv/bin/python bench/harness.py [--count 1000000] [--duration 10] [--runs 2] [--only KEYS]
       [--profile KEY] [--postgres-url URL] [--redis-url URL] [--no-write | --write]

docs/performance.md is rewritten only by a full run (no --only; default --count, --duration and --runs);
``--write`` forces it, ``--no-write`` prevents it. ``make bench BENCH_ARGS="--only bare,verify --count 20000"``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._proc import server_workers, status_mib, tree_cpu_seconds
from bench.lookup_bench import free_port, server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PURPOSE = "BENCH-1.000001"
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
GATEWAY_PROTOCOL = "app.server:GatewayHttpProtocol"
"""What `dancu serve` runs: httptools plus the header and body-stall timeouts (bare FastAPI keeps httptools)."""
DEFAULTS = {"count": 1_000_000, "duration": 10, "runs": 2}
WARMUP_SECONDS = 2
ROWS = {
    "bare": "GET /bare (FastAPI)",
    "healthz": "GET /healthz",
    "token": "POST /oauth2/token",
    "verify": "verify (embedded)",
    "read": "read (embedded)",
    "household": "household (embedded)",
    "batch": "batch verify ×100 (embedded)",
    "audit": "audit search (50, newest)",
    "verify_http": "verify (http → mock)",
    "verify_pg": "verify (embedded, PostgreSQL)",
    "verify_pg_redis": "verify (embedded, PostgreSQL, Redis)",
    "verify_pg2": "verify (embedded, PostgreSQL, 2 workers)",
}
SQLITE_ROWS = ("healthz", "token", "verify", "read", "household", "batch", "audit")
PG_ROWS = ("verify_pg", "verify_pg_redis", "verify_pg2")
RSS_GOAL_MIB = 150.0


@dataclass
class Server:
    """One server under test: its process group's root and the memory of its workers."""

    label: str
    root: int
    workers: int
    gateway: bool
    startup_mib: float = float("nan")
    """Largest VmRSS of one worker right after /healthz first answered (before any load)."""
    startup_sum_mib: float = float("nan")
    after_mib: float = float("nan")
    """Largest VmRSS of one worker after the last run measured on this server."""
    after_sum_mib: float = float("nan")
    peak_mib: float = float("nan")
    """Largest VmHWM (peak resident) of one worker so far."""

    def sample(self) -> tuple[float, float, float]:
        """(largest VmRSS of one worker, VmRSS summed over the workers, largest VmHWM), in MiB."""
        pids = server_workers(self.root)
        rss = [status_mib(pid, "VmRSS") for pid in pids]
        return max(rss), sum(rss), max(status_mib(pid, "VmHWM") for pid in pids)

    def wait_for_workers(self, timeout: float = 60) -> None:
        """With --workers N: until N workers run and have settled (their RSS stops growing), then start-up RSS."""
        deadline = time.monotonic() + timeout
        last = -1.0
        while time.monotonic() < deadline:
            pids = server_workers(self.root)
            if len(pids) >= self.workers or self.workers == 1:
                now = sum(status_mib(pid, "VmRSS") for pid in pids)
                if abs(now - last) < 0.5:
                    break
                last = now
            time.sleep(0.5)
        self.startup_mib, self.startup_sum_mib, self.peak_mib = self.sample()


@dataclass
class Row:
    key: str
    name: str
    server: Server
    runs: list[dict[str, float]] = field(default_factory=list)
    unit: int = 1
    """Identities per request (batch verify: 100), for the identities/s column."""


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    rows: dict[str, Row] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    postgres_version: str | None = None
    redis: bool = False
    """Whether the PostgreSQL rows ran with Redis (limits and the jti store shared by the workers)."""

    def wanted(self, *keys: str) -> bool:
        selected: set[str] = self.args.only
        return any(key in selected for key in keys)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("note: " + text, flush=True)

    @contextmanager
    def serve(
        self, label: str, cmd: Sequence[str], port: int, env: dict[str, str] | None, *, workers: int = 1
    ) -> Iterator[Server]:
        with server(cmd, port, env) as pid:
            srv = Server(label, pid, workers, gateway=label.startswith("gateway"))
            srv.wait_for_workers()
            self.servers.append(srv)
            yield srv
            if math.isnan(srv.after_mib):  # nothing measured on it directly (the mock behind a gateway)
                srv.after_mib, srv.after_sum_mib, srv.peak_mib = srv.sample()

    def measure(self, key: str, srv: Server, url: str, script: Path, unit: int = 1) -> None:
        if key not in self.args.only:
            return
        row = Row(key, ROWS[key], srv, unit=unit)
        wrk_run(url, WARMUP_SECONDS, script, srv.root)
        for i in range(self.args.runs):
            profiling = i == 0 and self.args.profile == key
            profiler = start_profile(self.work, srv.root, self.args.duration) if profiling else None
            run = wrk_run(url, self.args.duration, script, srv.root)
            if profiler is not None:
                finish_profile(*profiler, key=key, label=f"{row.name} on {srv.label}")
            run["rss"], run["rss_sum"], run["peak"] = srv.sample()
            row.runs.append(run)
        last = row.runs[-1]
        srv.after_mib, srv.after_sum_mib, srv.peak_mib = last["rss"], last["rss_sum"], last["peak"]
        self.rows[key] = row
        print(f"  measured {row.name}: " + ", ".join(f"{r['rps']:,.0f} req/s" for r in row.runs), flush=True)


# ----------------------------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    """wrk on PATH, else Debian's package installed with apt-get (as root, or through passwordless sudo)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt and prefix is not None:
        print("wrk is missing: installing Debian's package (apt-get install wrk)", flush=True)

        def apt_get(*args: str) -> bool:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            done = subprocess.run([*prefix, apt, *args], check=False, capture_output=True, env=env)
            return done.returncode == 0

        # without package lists (a fresh machine) the install fails: update them once, then again
        if not apt_get("install", "-y", "-qq", "wrk"):
            apt_get("update", "-qq")
            apt_get("install", "-y", "-qq", "wrk")
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed and could not be installed (Debian: apt-get install wrk)")
    return found


def wrk_run(url: str, duration: int, script: Path, root: int) -> dict[str, float]:
    """One wrk run; CPU is that of the server's whole process group (every worker) over the run."""
    before = tree_cpu_seconds(root)
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    cpu = tree_cpu_seconds(root) - before

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


# ------------------------------------------------------------------------------------------- py-spy


def pyspy() -> str | None:
    candidate = BIN / "py-spy"
    return str(candidate) if candidate.is_file() else shutil.which("py-spy")


def start_profile(work: Path, root: int, duration: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy recording the server's processes for one run (raw collapsed stacks), or None without py-spy."""
    exe = pyspy()
    if exe is None:
        print("  --profile: py-spy is not installed (pip install py-spy); measuring without it", flush=True)
        return None
    raw = work / f"profile-{os.getpid()}-{root}.raw"
    proc = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(root),
            "--subprocesses",
            "--gil",
            "--rate",
            "100",
            "--duration",
            str(duration),
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # let it attach before the load starts
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        print(f"  --profile: py-spy could not attach ({err[-200:]}); measuring without it", flush=True)
        return None
    return proc, raw


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def _frame_key(frame: str) -> str:
    """``func (file:line)`` → ``func (file)``, the file shortened to the repo or to site-packages."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def top_functions(raw_text: str, n: int = 25) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top ``n`` by own samples, top ``n`` by inclusive samples) of py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame_key(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    # frames in (nearly) every sample, the event loop and uvicorn's entry points, say nothing: left out
    telling = Counter({name: count for name, count in inclusive.items() if count < 0.95 * total})
    return total, own.most_common(n), telling.most_common(n)


def finish_profile(proc: subprocess.Popen[bytes], raw: Path, *, key: str, label: str) -> None:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if not raw.is_file():
        print("  --profile: py-spy wrote nothing", flush=True)
        return
    total, own, inclusive = top_functions(raw.read_text(errors="replace"))
    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = out_dir / f"profile-{key}-{stamp}.txt"
    shutil.copyfile(raw, out_dir / f"profile-{key}-{stamp}.raw")
    lines = [
        f"py-spy record --subprocesses --gil --rate 100 --format raw: {label}, first measured run "
        f"(wrk -t1 -c64); {total} samples of the thread holding the GIL (what runs Python; time in SQLite, "
        "OpenSSL or the kernel with the GIL released is not in them).",
        "",
        "top 25 functions by own samples:",
        *(f"{n:>7} {n / max(total, 1):6.1%}  {name}" for name, n in own),
        "",
        "top 25 functions by inclusive samples (itself and what it called; frames in 95% of samples or more left out):",
        *(f"{n:>7} {n / max(total, 1):6.1%}  {name}" for name, n in inclusive),
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"  profile: {out.relative_to(ROOT)} (raw stacks beside it; py-spy pauses the server 100 times a second, "
        "so that run's figures are a little lower)",
        flush=True,
    )


# -------------------------------------------------------------------------------------- the gateway


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


def register(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Migrate the gateway's database of ``env``; register the purpose, the portal and the auditor."""
    cli(env, "db", "upgrade")
    cli(
        env, "purposes", "add", "--code", PURPOSE, "--title", "Đo hiệu năng", "--legal-basis", "Không áp dụng"
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
    return portal, auditor


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


def api_headers(base: str, client: dict[str, str]) -> dict[str, str]:
    return {
        "Authorization": "Bearer " + token(base, client),
        "X-Purpose": PURPOSE,
        "Content-Type": "application/json",
    }


# --------------------------------------------------------------------------------- PostgreSQL, Redis


def _plain_postgres(url: str) -> str:
    """asyncpg wants ``postgresql://``; accept a SQLAlchemy-style driver suffix."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _pg_admin(url: str, *statements: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(_plain_postgres(url), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@contextmanager
def postgres_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """(URL, server version) of a fresh ``dancu_bench_<hex>`` database, dropped on the way out whatever happens."""
    name = "dancu_bench_" + secrets.token_hex(6)
    server_version = asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(_plain_postgres(admin_url), name), server_version
    finally:
        # servers are stopped by now; FORCE ends any connection left behind
        with _signals_deferred():
            asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        print(f"dropped PostgreSQL database {name}", flush=True)


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A key prefix of this run's own on the Redis at ``url``; its keys are deleted on the way out."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    client.ping()
    prefix = f"dancu-bench-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        with _signals_deferred():
            try:
                keys = list(client.scan_iter(match=prefix + "*", count=1000))
                if keys:
                    client.delete(*keys)
            except redis.RedisError as err:
                print(f"could not delete the Redis keys {prefix}*: {type(err).__name__}", flush=True)
            client.close()


def _safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{parts.username}:***@{netloc}", parts.path, "", ""))


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:200] if text else type(err).__name__


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Clean-up that a second Ctrl-C must not cut short (the database drop, the Redis keys)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------- the run


def seed(bench: Bench) -> Path:
    mock_db = bench.work / "mock.db"
    started = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "mock-csdlqg"),
            "seed",
            "--count",
            str(bench.args.count),
            "--database-url",
            f"sqlite:///{mock_db}",
            "-q",
        ],
        check=True,
    )
    print(f"seeded {bench.args.count:,} residents in {time.perf_counter() - started:.1f} s", flush=True)
    return mock_db


def run(bench: Bench) -> None:
    work = bench.work
    uvicorn = [str(BIN / "python"), "-m", "uvicorn"]
    bare_port = free_port()
    with bench.serve(
        "bare FastAPI",
        [*uvicorn, "bench.bare_app:app", "--port", str(bare_port), *UVICORN_FLAGS],
        bare_port,
        None,
    ) as srv:
        bench.measure(
            "bare",
            srv,
            f"http://127.0.0.1:{bare_port}/bare",
            lua(work / "bare.lua", "GET", "/bare", {}, None),
        )
    if not bench.wanted(*SQLITE_ROWS, "verify_http", *PG_ROWS):
        return
    mock_db = seed(bench)
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
    env.pop("DANCU_REDIS_URL", None)
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

    def gateway(port: int, *extra: str) -> list[str]:
        flags = [GATEWAY_PROTOCOL if flag == "httptools" else flag for flag in UVICORN_FLAGS]
        return [*uvicorn, "app.main:app", "--port", str(port), *flags, *extra]

    portal, auditor = register(env) if bench.wanted(*SQLITE_ROWS, "verify_http") else ({}, {})
    if bench.wanted(*SQLITE_ROWS):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with bench.serve("gateway (SQLite)", gateway(port), port, {**env, "DANCU_ISSUER": base}) as srv:
            bench.measure("healthz", srv, base, lua(work / "h.lua", "GET", "/healthz", {}, None))
            basic = base64.b64encode(f"{portal['client_id']}:{portal['client_secret']}".encode()).decode()
            form = {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"}
            bench.measure(
                "token",
                srv,
                base,
                lua(work / "t.lua", "POST", "/oauth2/token", form, ["grant_type=client_credentials"]),
            )
            headers = api_headers(base, portal)
            bench.measure(
                "verify",
                srv,
                base,
                lua(work / "v.lua", "POST", "/v1/citizens/verify", headers, verify_bodies),
            )
            bench.measure(
                "read", srv, base, lua(work / "r.lua", "POST", "/v1/citizens/lookup", headers, lookup_bodies)
            )
            bench.measure(
                "household",
                srv,
                base,
                lua(work / "hh.lua", "POST", "/v1/citizens/household", headers, lookup_bodies),
            )
            bench.measure(
                "batch",
                srv,
                base,
                lua(work / "b.lua", "POST", "/v1/citizens/verify/batch", headers, batch_bodies),
                unit=100,
            )
            audit = {"Authorization": "Bearer " + token(base, auditor), "Content-Type": "application/json"}
            bench.measure(
                "audit",
                srv,
                base,
                lua(work / "a.lua", "POST", "/v1/audit/events/search", audit, search_bodies),
            )
    if bench.wanted("verify_http"):
        mock_port, port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
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
        with bench.serve("mock service", mock, mock_port, env):
            http_env = {
                **env,
                "DANCU_BACKEND": "http",
                "DANCU_BACKEND_URL": f"http://127.0.0.1:{mock_port}",
                "DANCU_ISSUER": base,
            }
            with bench.serve("gateway (http backend)", gateway(port), port, http_env) as srv:
                script = lua(
                    work / "vh.lua", "POST", "/v1/citizens/verify", api_headers(base, portal), verify_bodies
                )
                bench.measure("verify_http", srv, base, script)
    if bench.wanted(*PG_ROWS):
        run_postgres(bench, env, gateway, verify_bodies)


def run_postgres(
    bench: Bench, env: dict[str, str], gateway: Callable[..., list[str]], verify_bodies: list[str]
) -> None:
    """verify with the gateway's own database on PostgreSQL, one worker and two; the mock stays SQLite."""
    args, work = bench.args, bench.work
    with ExitStack() as stack:
        try:
            pg_url, bench.postgres_version = stack.enter_context(postgres_database(args.postgres_url))
        except Exception as err:  # any reason it cannot be used: reported, the run carries on
            bench.note(
                f"PostgreSQL rows skipped: no database could be created on {_safe_url(args.postgres_url)} "
                f"({_describe(err)})"
            )
            return
        pg_env = {**env, "DANCU_DATABASE_URL": pg_url}
        redis_env: dict[str, str] | None = None
        try:
            prefix = stack.enter_context(redis_prefix(args.redis_url))
            redis_env = {**pg_env, "DANCU_REDIS_URL": args.redis_url, "DANCU_REDIS_KEY_PREFIX": prefix}
            bench.redis = True
        except Exception as err:  # two workers need shared limits: those rows are skipped
            bench.note(
                f"Redis at {_safe_url(args.redis_url)} is not reachable ({_describe(err)}): the PostgreSQL rows "
                "with Redis (verify_pg_redis, verify_pg2) are skipped"
            )
        portal, _ = register(pg_env)
        for key, workers, with_redis in (
            ("verify_pg", 1, False),
            ("verify_pg_redis", 1, True),
            ("verify_pg2", 2, True),
        ):
            if not bench.wanted(key) or (with_redis and redis_env is None):
                continue
            row_env = redis_env if with_redis and redis_env is not None else pg_env
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            extra = ["--workers", str(workers)] if workers > 1 else []
            label = f"gateway (PostgreSQL{', Redis' if with_redis else ''}, {workers} worker{'s' if workers > 1 else ''})"
            with bench.serve(
                label, gateway(port, *extra), port, {**row_env, "DANCU_ISSUER": base}, workers=workers
            ) as srv:
                script = lua(
                    work / f"{key}.lua",
                    "POST",
                    "/v1/citizens/verify",
                    api_headers(base, portal),
                    verify_bodies,
                )
                bench.measure(key, srv, base, script)


# -------------------------------------------------------------------------------------------- report


def bare_rps(bench: Bench) -> float:
    """The worse of the bare runs: every ratio divides by it."""
    return min(r["rps"] for r in bench.rows["bare"].runs)


def _rss_cell(mib: float, total: float, workers: int) -> str:
    return f"{mib:.0f}" if workers == 1 else f"{mib:.0f} per worker (Σ {total:.0f})"


def table(bench: Bench) -> str:
    bare = bare_rps(bench)
    out = (
        "| endpoint | run | req/s | identities/s | p50 ms | p99 ms | server CPU µs/req | RSS MiB | peak RSS MiB "
        "| errors | vs bare |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for key in ROWS:
        row = bench.rows.get(key)
        for i, r in enumerate(row.runs if row else [], 1):
            assert row is not None
            out += (
                f"| {row.name} | {i} | {r['rps']:,.0f} | {r['rps'] * row.unit:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                f"| {r['cpu_us']:,.0f} | {_rss_cell(r['rss'], r['rss_sum'], row.server.workers)} | {r['peak']:.0f} "
                f"| {r['non2xx'] + r['errors']:.0f} | {r['rps'] / bare:.1%} |\n"
            )
    return out


def memory_table(bench: Bench) -> str:
    out = (
        "| server | workers | RSS at start-up MiB | RSS after its last run MiB | peak RSS MiB |\n"
        "|---|---|---|---|---|\n"
    )
    for s in bench.servers:
        out += (
            f"| {s.label} | {s.workers} | {_rss_cell(s.startup_mib, s.startup_sum_mib, s.workers)} "
            f"| {_rss_cell(s.after_mib, s.after_sum_mib, s.workers)} | {s.peak_mib:.0f} |\n"
        )
    return out


def goals(bench: Bench) -> str:
    """One row per goal of the performance issue, from this run: the worse of the runs, RSS after the last run."""
    bare = bare_rps(bench)
    rows: list[tuple[str, str, str, str]] = []

    def missing(key: str) -> str:
        if key in PG_ROWS and any(n.startswith("PostgreSQL rows skipped") for n in bench.notes):
            return "not measured (PostgreSQL unreachable)"
        return "not measured in this run"

    def ratio_goal(goal: str, key: str, target: float) -> None:
        row = bench.rows.get(key)
        if row is None:
            rows.append((goal, f"≥ {target:.0%} of bare", missing(key), "open"))
            return
        worst = min(r["rps"] for r in row.runs)
        ok = worst / bare >= target
        rows.append(
            (
                goal,
                f"≥ {target:.0%} of bare",
                f"{worst / bare:.1%} ({worst:,.0f} of {bare:,.0f} req/s)",
                _status(ok),
            )
        )

    ratio_goal("verify, embedded backend: requests/s", "verify", 0.25)
    if (row := bench.rows.get("verify")) is not None:
        p99 = max(r["p99"] for r in row.runs)
        rows.append(("verify, embedded backend: p99", "≤ 50 ms", f"{p99:,.1f} ms", _status(p99 <= 50)))
    else:
        rows.append(("verify, embedded backend: p99", "≤ 50 ms", missing("verify"), "open"))
    ratio_goal("read", "read", 0.25)
    if (row := bench.rows.get("batch")) is not None:
        ids = min(r["rps"] for r in row.runs) * row.unit
        rows.append(
            ("batch verify of 100", "≥ 3,000 identities/s", f"{ids:,.0f} identities/s", _status(ids >= 3000))
        )
    else:
        rows.append(("batch verify of 100", "≥ 3,000 identities/s", missing("batch"), "open"))
    ratio_goal("verify on PostgreSQL (1 worker)", "verify_pg", 0.15)
    gateway_rows = [row for row in bench.rows.values() if row.server.gateway]
    if gateway_rows:
        worst_row = max(gateway_rows, key=lambda row: row.runs[-1]["rss"])
        rss = worst_row.runs[-1]["rss"]
        where = f"{rss:.0f} MiB (after {worst_row.name}, {worst_row.server.label})"
        rows.append(
            ("gateway RSS per worker", f"≤ {RSS_GOAL_MIB:.0f} MiB", where, _status(rss <= RSS_GOAL_MIB))
        )
    else:
        rows.append(
            ("gateway RSS per worker", f"≤ {RSS_GOAL_MIB:.0f} MiB", "not measured in this run", "open")
        )
    one, two = bench.rows.get("verify_pg_redis"), bench.rows.get("verify_pg2")
    if one is not None and two is not None:
        x = min(r["rps"] for r in two.runs) / min(r["rps"] for r in one.runs)
        rows.append(("PostgreSQL verify: 2 workers ÷ 1 worker", "reported, no goal", f"{x:.2f}×", "—"))
    else:
        rows.append(
            ("PostgreSQL verify: 2 workers ÷ 1 worker", "reported, no goal", missing("verify_pg2"), "—")
        )
    return "| goal | target | measured (worse of the runs) | status |\n|---|---|---|---|\n" + "".join(
        f"| {g} | {t} | {m} | {s} |\n" for g, t, m, s in rows
    )


def _status(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _version(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} (not installed)"


def header(bench: Bench) -> str:
    args = bench.args
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(
        " ["
    )[0]
    packages = ", ".join(
        _version(p)
        for p in (
            "fastapi",
            "starlette",
            "uvicorn",
            "uvloop",
            "httptools",
            "pydantic",
            "sqlalchemy",
            "aiosqlite",
            "asyncpg",
            "python-jose",
        )
    )
    postgres = f", PostgreSQL {bench.postgres_version}" if bench.postgres_version else ""
    redis_used = bench.redis
    text = (
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}{postgres}, {wrk_version or 'wrk'}; {packages}.\n"
        f"wrk -t1 -c64 -d{args.duration}s --latency, {args.runs} run{'s' if args.runs > 1 else ''} after a {WARMUP_SECONDS} s warm-up (wrk runs on "
        f"the same cores). Every server: uvicorn `{' '.join(UVICORN_FLAGS)}` (the gateways with `--http "
        f"{GATEWAY_PROTOCOL}`, httptools with the header timeouts), one worker unless the row says 2 "
        f"(`--workers 2`). Mock: {args.count:,} residents (SQLite), read in process by every gateway but the http "
        "one. Gateway database: SQLite (WAL) or, in the PostgreSQL rows, a fresh PostgreSQL database"
        f"{' (the rows that say Redis: with Redis for limits and the jti store)' if redis_used else ''}; every 2xx audited before it is "
        "answered.\n"
        "Server CPU: user + system time of the server's whole process tree over the run (both workers and the "
        "supervisor under --workers 2), per request. RSS: VmRSS of one worker after that run (under --workers 2 "
        "the larger worker, Σ = both workers, supervisor excluded); peak RSS: VmHWM, the worker's peak since it "
        "started (a gateway serves several rows in turn). Ratios divide by the worse bare run.\n"
    )
    return text + "".join(f"Note: {n}\n" for n in bench.notes)


def write_doc(bench: Bench, head: str, result: str, memory: str, goal_table: str) -> None:
    args = bench.args
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Performance\n\n"
    flags = [f"--{k} {getattr(args, k)}" for k, v in DEFAULTS.items() if getattr(args, k) != v]
    if args.only != set(ROWS):
        flags.append("--only " + ",".join(k for k in ROWS if k in args.only))
    command = " ".join([".venv/bin/python bench/harness.py", *flags])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = _replace_block(
        text,
        "bench",
        f"Latest run ({when}), `make bench` (`{command}`):\n\n{head}\n{result}\nMemory of each server "
        f"(per worker):\n\n{memory}",
    )
    text = _replace_block(
        text, "goals", f"Computed by `{command}` ({when}) from the table below.\n\n{goal_table}"
    )
    doc.write_text(text, encoding="utf-8")
    print(f"wrote {doc.relative_to(ROOT)}")


def _replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}{end}"
    if start in text and end in text:
        return text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    return text.rstrip() + "\n\n" + block + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=DEFAULTS["count"], help="residents seeded into the mock")
    parser.add_argument("--duration", type=int, default=DEFAULTS["duration"], help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=DEFAULTS["runs"], help="measured runs per row")
    parser.add_argument(
        "--only", help="comma-separated row keys (bare is always measured): " + ",".join(ROWS)
    )
    parser.add_argument(
        "--profile", metavar="KEY", help="py-spy the server during that row's first measured run"
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where the PostgreSQL rows create (and drop) their database",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="Redis of the PostgreSQL rows (a key prefix of their own, deleted at the end)",
    )
    write = parser.add_mutually_exclusive_group()
    write.add_argument(
        "--write", action="store_true", help="update docs/performance.md even for a partial run"
    )
    write.add_argument("--no-write", action="store_true", help="do not update docs/performance.md")
    args = parser.parse_args(argv)
    if args.count < 1000 or args.duration < 1 or args.runs < 1:
        parser.error("--count must be at least 1000, --duration and --runs at least 1")
    if args.only:
        only = {k.strip() for k in args.only.split(",") if k.strip()}
        if unknown := only - set(ROWS):
            parser.error(f"unknown row keys {', '.join(sorted(unknown))}; known: {', '.join(ROWS)}")
        args.only = only | {"bare"}
    else:
        args.only = set(ROWS)
    if args.profile is not None and args.profile not in args.only:
        parser.error(
            f"--profile {args.profile}: not a row of this run ({', '.join(k for k in ROWS if k in args.only)})"
        )
    full = args.only == set(ROWS) and all(getattr(args, k) == v for k, v in DEFAULTS.items())
    args.write_doc = args.write or (full and not args.no_write)
    return args


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="dancu-bench-"))
    bench = Bench(args, work)
    try:
        run(bench)
        head, result, memory, goal_table = header(bench), table(bench), memory_table(bench), goals(bench)
        print()
        print(head)
        print(result)
        print("Memory of each server (per worker):\n")
        print(memory)
        print("Goals of the performance issue (worse of the runs; RSS after the last run):\n")
        print(goal_table)
        if args.write_doc:
            write_doc(bench, head, result, memory, goal_table)
        else:
            print("docs/performance.md left as it is (a partial run; --write forces it)")
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the servers it started are stopped, its PostgreSQL database (if any) dropped",
            file=sys.stderr,
        )
        sys.exit(130)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
