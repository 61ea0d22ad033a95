"""Server time of the console's pages with 1,000,000 audit events and 1,000,000 residents (issue 16;
docs/performance.md).

Usage: .venv/bin/python bench/console_bench.py [--events 1000000] [--residents 1000000] [--mock-db PATH]
       [--requests 40] [--postgres-url URL] [--keep]

1. Seeds the mock national database with ``--residents`` residents (``mock-csdlqg seed``; or uses ``--mock-db``,
   a file it wrote; ``--residents 0`` skips it).
2. Makes a PostgreSQL database of its own on ``--postgres-url`` (default ``DANCU_TEST_POSTGRES_URL`` or
   ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, registers a purpose, 20 clients and two
   operators (``quantri``: admin + approver; ``kiemtoan``: auditor) through the gateway's own services.
3. Appends ``--events`` audit events as one valid chain (``app.audit.chain.chain_events``: the same canonical
   form and hashes as the writer) with PostgreSQL's COPY, spread evenly over the last 35 days, oldest first:
   citizen reads and verifications of residents of the mock (``subject_ref`` under the bench's subject key),
   about 4 % denied; one resident has 40 events (the one searched below). Then ``VACUUM ANALYZE``.
4. Starts ``dancu serve`` (one worker) and, over one keep-alive connection, signs both operators in and times
   ``--requests`` requests of each page, one after the other:
   - the dashboard (``GET /console/``; its very first view, which counts the 30-day window once into
     ``console_access_days``, is reported on its own; later views count only the events appended since);
   - the audit search by personal ID (``POST /console/audit``, then the result page it redirects to; both
     timed, and their sum), once the auditor's pages are on the branch (skipped, and said so, before);
   - the integrity page: a full check started by its run button and followed to its end (its duration, and
     the result box polled meanwhile), then its last result (``GET /console/integrity``);
   - the resident report of the searched resident: the POST, the page behind its token, and its PDF.

Times are measured by this client over loopback, so they are the server's time plus a fraction of a
millisecond. Prints p50 / p95 / max in milliseconds; asserts nothing. The goal (issue 16): p95 <= 200 ms for
each page. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from cryptography.fernet import Fernet

from app.audit.chain import MEMBERS, Head, chain_events
from app.audit.writer import AdminLog, SubjectHasher
from app.auth.keys import SecretHasher, load_encryption_key
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.operators.service import OperatorService
from bench._proc import free_port, run, serving

BIN = Path(sys.executable).parent
PURPOSE = "1.001234.000.00.00.H12"
PASSWORD = "Ngựa-vằn-bay-qua-sông-42"  # noqa: S105 - the bench operators' new password
SUBJECT_KEYS = "b1:" + "QmVuY2hTdWJqZWN0S2V5MDEyMzQ1Njc4OUFCQ0RFRkc="
SEARCHED_EVENTS = 40
CLIENTS = 20
SPAN_DAYS = 35
ACTIONS = (("citizen.verify", 60), ("citizen.read", 30), ("household.read", 6), ("audit.search", 4))
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def plain(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


async def admin_sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(plain(url), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# --- setting up ------------------------------------------------------------------------------------------------


async def register(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The purpose, the clients and the operators; the client ids and each operator's initial password."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            hasher = SecretHasher(load_encryption_key(settings))
            service = AuthService(session, hasher, AdminLog(session, actor=CLI_ACTOR))
            await service.add_purpose(
                PurposeIn(code=PURPOSE, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 21")
            )
            clients = []
            for number in range(CLIENTS):
                created = await service.create_client(ClientCreate(name=f"Cổng dịch vụ công số {number + 1}"))
                await service.replace_grant(
                    created.client.client_id,
                    GrantIn(scopes=["citizen.verify", "citizen.read"], provinces=["52"], purposes=[PURPOSE]),
                )
                clients.append(created.client.client_id)
            operators = OperatorService(session, Fernet(load_encryption_key(settings)))
            passwords = {}
            for username, roles in (("quantri", ["admin", "approver"]), ("kiemtoan", ["auditor"])):
                _view, passwords[username] = await operators.create(username, "Cán bộ thử tải", roles)
            await session.commit()
            return clients, passwords
    finally:
        await engine.dispose()


def personal_ids(mock_db: Path | None, wanted: int) -> list[str]:
    """Residents of the mock (every fifth, up to ``wanted``), or made-up IDs without one."""
    if mock_db is not None and mock_db.exists():
        with sqlite3.connect(f"file:{mock_db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT so_dinh_danh FROM csdlqg_cong_dan WHERE stt % 5 = 0 LIMIT ?", (wanted,)
            ).fetchall()
        if rows:
            return [row[0] for row in rows]
    return [f"052{n:09d}" for n in range(wanted)]


def records(
    count: int, clients: Sequence[str], ids: Sequence[str], hasher: SubjectHasher
) -> Iterator[dict[str, Any]]:
    """``count`` events, oldest first, evenly over the last SPAN_DAYS days; ``ids[0]`` has SEARCHED_EVENTS."""
    rng = random.Random(16)
    now = datetime.now(UTC) - timedelta(minutes=1)
    start = now - timedelta(days=SPAN_DAYS)
    step = (now - start) / count
    actions = [name for name, weight in ACTIONS for _ in range(weight)]
    every = max(1, count // SEARCHED_EVENTS)
    refs: dict[str, str] = {}
    for n in range(count):
        action = rng.choice(actions)
        client = rng.choice(clients[: 1 + rng.randrange(len(clients))])  # some clients much busier
        if n % every == every // 2:
            subject, action = ids[0], "citizen.read"
        else:
            subject = ids[1 + rng.randrange(len(ids) - 1)]
        ref = refs.get(subject)
        if ref is None:
            ref = refs[subject] = hasher.ref(subject)
        roll = rng.random()
        outcome = "denied" if roll < 0.04 else "error" if roll < 0.045 else "allowed"
        citizen = action != "audit.search"
        yield {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "at": start + step * n,
            "request_id": secrets.token_urlsafe(16),
            "client_id": client,
            "actor": client,
            "action": action,
            "purpose": PURPOSE if citizen else None,
            "dossier_id": f"HS-{n:08d}" if citizen else None,
            "subject_ref": ref if citizen else None,
            "fields": ["full_name", "date_of_birth"] if action == "citizen.read" else [],
            "sensitive_fields": [],
            "outcome": outcome,
            "status_code": {"allowed": 200, "denied": 403, "error": 502}[outcome],
            "reason": {"allowed": None, "denied": "purpose_not_allowed", "error": "upstream_error"}[outcome],
            "detail": None,
            "end_user": "canbo.motcua@gialai.gov.vn" if citizen else None,
            "client_ip": "10.52.0.7",
            "job_id": None,
        }


async def seed_events(
    url: str, count: int, clients: Sequence[str], ids: Sequence[str], hasher: SubjectHasher
) -> None:
    columns = [*MEMBERS, "hash"]
    conn = await asyncpg.connect(plain(url))
    try:
        row = await conn.fetchrow("SELECT log_id, seq, hash FROM audit_chain_head WHERE id = 1")
        head = Head(row["log_id"], row["seq"], row["hash"])
        batch: list[dict[str, Any]] = []
        made = 0
        started = time.perf_counter()

        async def flush() -> None:
            nonlocal head, made
            events = chain_events(head, batch)
            await conn.copy_records_to_table(
                "audit_events",
                records=[
                    tuple(
                        json.dumps(e[c], ensure_ascii=False)
                        if c in ("fields", "sensitive_fields") or (c == "detail" and e[c] is not None)
                        else e[c]
                        for c in columns
                    )
                    for e in events
                ],
                columns=columns,
            )
            head = Head(head.log_id, events[-1]["seq"], events[-1]["hash"])
            made += len(events)
            batch.clear()
            print(f"\r  {made:,} events ({time.perf_counter() - started:.0f} s)", end="", flush=True)

        async with conn.transaction():
            for record in records(count, clients, ids, hasher):
                batch.append(record)
                if len(batch) == 50_000:
                    await flush()
            if batch:
                await flush()
            await conn.execute(
                "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1", head.seq, head.hash
            )
        print()
        await conn.execute("VACUUM ANALYZE audit_events")
    finally:
        await conn.close()


# --- measuring -------------------------------------------------------------------------------------------------


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    if not found:
        raise SystemExit("no CSRF token on the page")
    return found.group(1)


def sign_in(http: httpx.Client, username: str, password: str) -> None:
    page = http.get("/console/login")
    http.post(
        "/console/login", data={"csrf_token": csrf(page.text), "username": username, "password": password}
    )
    page = http.get("/console/password")
    done = http.post(
        "/console/password",
        data={"csrf_token": csrf(page.text), "current": password, "new": PASSWORD, "confirm": PASSWORD},
    )
    if done.status_code != 303:
        raise SystemExit(f"{username}: the first password change answered {done.status_code}")


def timed(n: int, request: Callable[[], httpx.Response], expect: int = 200) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = request()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != expect:
            raise SystemExit(f"status {answer.status_code}: {answer.text[:300]}")
        times.append(elapsed)
    return times


def line(name: str, times: Sequence[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"  {name:<52} {statistics.median(ordered):>8.1f} {p95:>8.1f} {ordered[-1]:>8.1f}"


def built(answer: httpx.Response) -> bool:
    """A page that exists and is not the marked placeholder."""
    return answer.status_code == 200 and 'data-testid="placeholder"' not in answer.text


def measure(base: str, passwords: dict[str, str], searched: str, n: int) -> None:
    print(f"  {'page':<52} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    with httpx.Client(base_url=base, timeout=120) as admin:
        sign_in(admin, "quantri", passwords["quantri"])
        started = time.perf_counter()
        first = admin.get("/console/")
        print(
            f"  dashboard, first view (counts the 30-day window once): {(time.perf_counter() - started) * 1000:.0f} ms"
        )
        if first.status_code != 200:
            raise SystemExit(f"dashboard: {first.status_code}")
        print(line("GET /console/ (dashboard)", timed(n, lambda: admin.get("/console/"))), flush=True)
        dashboard_cookies = dict(admin.cookies)
    with httpx.Client(base_url=base, timeout=120) as auditor:
        sign_in(auditor, "kiemtoan", passwords["kiemtoan"])
        form_page = auditor.get("/console/audit")
        if built(form_page):
            token = csrf(form_page.text)
            posts: list[float] = []
            results: list[float] = []
            for _ in range(n):
                started = time.perf_counter()
                answer = auditor.post("/console/audit", data={"csrf_token": token, "personal_id": searched})
                posted = time.perf_counter()
                if answer.status_code != 303:
                    raise SystemExit(f"audit search: {answer.status_code} {answer.text[:300]}")
                page = auditor.get(answer.headers["location"])
                done = time.perf_counter()
                rows = page.text.count('data-testid="audit-row"')
                if page.status_code != 200 or rows < SEARCHED_EVENTS:  # (and the searches' own events)
                    raise SystemExit(f"audit result: {page.status_code}, {rows} rows")
                posts.append((posted - started) * 1000)
                results.append((done - posted) * 1000)
            print(line("POST /console/audit (personal ID)", posts))
            print(line(f"GET /console/audit/r/<token> ({SEARCHED_EVENTS} events)", results))
            print(
                line(
                    "search by personal ID, both requests",
                    [a + b for a, b in zip(posts, results, strict=True)],
                )
            )
        else:
            print("  audit search: not on this branch yet (console-audit); skipped")
        integrity = auditor.get("/console/integrity")
        if built(integrity):
            full_check(auditor, csrf(integrity.text))
            print(
                line(
                    "GET /console/integrity (last result)",
                    timed(n, lambda: auditor.get("/console/integrity")),
                )
            )
        else:
            print("  integrity page: not built on this branch yet (console-report); skipped")
        report_form = auditor.get("/console/report")
        if built(report_form):
            report(auditor, csrf(report_form.text), searched, n)
        else:
            print("  resident report: not built on this branch yet (console-report); skipped")
    with httpx.Client(base_url=base, timeout=120, cookies=dashboard_cookies) as admin:
        # Again at the end: the first series runs right after the gateway started and after the big count.
        print(line("GET /console/ (dashboard, again at the end)", timed(n, lambda: admin.get("/console/"))))


_STATUS = re.compile(r'data-testid="integrity-result" data-status="([a-z]+)"')
_PROGRESS = re.compile(r'<progress max="100" value="([0-9]+)"')


def full_check(auditor: httpx.Client, token: str) -> None:
    """Press the integrity page's run button and follow the check in the background to its end, as the
    page does (its result box, every second); print how long it took and what it found."""
    started = time.perf_counter()
    answer = auditor.post("/console/integrity/run", data={"csrf_token": token})
    if answer.status_code != 303:
        raise SystemExit(f"integrity run: {answer.status_code} {answer.text[:300]}")
    polls: list[float] = []
    seen: list[str] = []
    while True:
        polled = time.perf_counter()
        fragment = auditor.get("/console/integrity/result")
        polls.append((time.perf_counter() - polled) * 1000)
        found = _STATUS.search(fragment.text)
        status = found.group(1) if found else "?"
        if status != "running":
            break
        progress = _PROGRESS.search(fragment.text)
        seen.append(progress.group(1) if progress else "?")
        time.sleep(1)
    took = time.perf_counter() - started
    shown = " ".join(seen[:: max(1, len(seen) // 10)])
    print(
        f"  full integrity check from the run button: {took:.1f} s, result {status}; progress seen (%): {shown}"
    )
    print(line("GET /console/integrity/result (while it ran)", polls))


def report(auditor: httpx.Client, token: str, searched: str, n: int) -> None:
    """The resident report of the searched resident: the POST, the page behind its token, and the PDF."""
    posts: list[float] = []
    pages: list[float] = []
    pdfs: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        answer = auditor.post("/console/report", data={"csrf_token": token, "personal_id": searched})
        posted = time.perf_counter()
        if answer.status_code != 303:
            raise SystemExit(f"report: {answer.status_code} {answer.text[:300]}")
        page = auditor.get(answer.headers["location"])
        shown = time.perf_counter()
        rows = page.text.count('data-testid="report-row"')
        if page.status_code != 200 or rows < SEARCHED_EVENTS - 4:  # the audit.search ones are not accesses
            raise SystemExit(f"report page: {page.status_code}, {rows} rows")
        pdf = auditor.get(answer.headers["location"] + "/pdf")
        if pdf.status_code != 200 or not pdf.content.startswith(b"%PDF-"):
            raise SystemExit(f"report pdf: {pdf.status_code}")
        posts.append((posted - started) * 1000)
        pages.append((shown - posted) * 1000)
        pdfs.append((time.perf_counter() - shown) * 1000)
    print(line("POST /console/report (personal ID)", posts))
    print(line("GET /console/report/<token>", pages))
    print(line("GET /console/report/<token>/pdf", pdfs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--mock-db", type=Path, help="a seeded mock SQLite file to use instead of seeding")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DANCU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dancu-console-bench-"))
    name = "dancu_bench_" + secrets.token_hex(4)
    url = with_database(args.postgres_url, name)
    encryption_key = Fernet.generate_key().decode()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared)")
    asyncio.run(admin_sql(args.postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        mock_db = args.mock_db.resolve() if args.mock_db else work / "mock.db"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DANCU_", "MOCK_CSDLQG_"))},
            "DANCU_DATABASE_URL": url,
            "DANCU_KEYS__ENCRYPTION_KEY": encryption_key,
            "DANCU_AUDIT__SUBJECT_KEYS": SUBJECT_KEYS,
            "MOCK_CSDLQG_DATABASE_URL": f"sqlite:///{mock_db}",
        }
        if not args.mock_db and args.residents:
            started = time.perf_counter()
            run([str(BIN / "mock-csdlqg"), "seed", "--count", str(args.residents), "-q"], env, work)
            print(f"seeded {args.residents:,} residents in {time.perf_counter() - started:.1f} s")
        upgrade_database(url)
        settings = Settings(
            _env_file=None,
            database_url=url,
            keys={"encryption_key": encryption_key},
            audit={"subject_keys": SUBJECT_KEYS},
        )
        clients, passwords = asyncio.run(register(settings))
        ids = personal_ids(mock_db if args.residents or args.mock_db else None, 200_000)
        hasher = SubjectHasher(settings.audit.subject_key_ring())
        started = time.perf_counter()
        print(f"appending {args.events:,} chained audit events (COPY):")
        asyncio.run(seed_events(url, args.events, clients, ids, hasher))
        print(f"  done in {time.perf_counter() - started:.1f} s (VACUUM ANALYZE included)")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        print(
            f"dancu serve --port {port} (one worker, PostgreSQL), {args.requests} requests per page, one at a time:"
        )
        with serving([str(BIN / "dancu"), "serve", "--port", str(port)], env, work, f"{base}/healthz"):
            measure(base, passwords, ids[0], args.requests)
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            asyncio.run(admin_sql(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
