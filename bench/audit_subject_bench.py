"""The console's audit search by personal ID for a resident with many events (docs/performance.md).

Usage: .venv/bin/python bench/audit_subject_bench.py [--events 1000000] [--every 50] [--requests 200]
       [--postgres-url URL]

Makes a PostgreSQL database of its own (dropped at the end), migrates it, and fills ``audit_events`` with
``--events`` rows by one ``INSERT ... SELECT generate_series`` (not a valid chain: this measures reads only;
the chain head is moved past them so the reads' own events append). 200,000 residents have about five events
each; the searched one has every ``--every``-th event (50: 20,000 of 1,000,000). Prints the query plans
(custom, and the generic one a cached prepared statement gets), then signs an auditor in to the gateway in
process (ASGI, no network) and times ``--requests`` views of the first result page, and 50 searches (the POST
and the page it redirects to). Server time in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import time
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from app.audit.writer import SubjectHasher
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from app.operators.service import OperatorService

SEARCHED = "052068000108"
SUBJECT_KEYS = "k1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="
PASSWORD = "Ngựa-vằn-bay-qua-sông-42"  # noqa: S105 - the bench operator's, in a database dropped at the end
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    if found is None:
        raise SystemExit("no CSRF token on the page")
    return found.group(1)


def _line(name: str, times: list[float]) -> str:
    times = sorted(times)
    p95 = times[max(0, round(len(times) * 0.95) - 1)]
    return f"{name}: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"


async def _seed(url: str, events: int, every: int, searched_ref: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.execute(  # numbers only are formatted in (argparse ints); the ref is a parameter
            f"""
            INSERT INTO audit_events (seq, event_id, at, request_id, client_id, actor, action, purpose,
              dossier_id, subject_ref, fields, sensitive_fields, outcome, status_code, reason, detail,
              prev_hash, hash, format)
            SELECT g, md5('e' || g)::uuid::text, now() - make_interval(secs => ({events} - g) * 2), 'r' || g,
              'c_' || (g % 50), 'c_' || (g % 50), 'citizen.read', 'p', null,
              CASE WHEN g % {every} = 7 THEN $1::text
                   ELSE 'k1:' || md5('s' || (g % 200000)) || md5('t' || (g % 200000)) END,
              '["full_name"]', '[]', 'allowed', 200, null, null,
              md5('p' || g) || md5('q' || g), md5('h' || g) || md5('i' || g), 2
            FROM generate_series(1, {events}) g""",  # noqa: S608
            searched_ref,
        )
        await conn.execute(
            "UPDATE audit_chain_head SET seq = $1, hash = repeat('f', 64) WHERE id = 1", events
        )
        await conn.execute("ANALYZE audit_events")
        print(f"{events:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        query = "SELECT * FROM audit_events WHERE subject_ref IN ($1) ORDER BY seq DESC LIMIT $2"
        literal = query.replace("$1", f"'{searched_ref}'").replace("$2", "51")  # a hex ref, no quote in it
        custom = await conn.fetch("EXPLAIN ANALYZE " + literal)
        print("plan:\n  " + "\n  ".join(row[0] for row in custom))
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE q(text, int) AS {query}")
        generic = await conn.fetch(f"EXPLAIN ANALYZE EXECUTE q('{searched_ref}', 51)")
        print("generic plan:\n  " + "\n  ".join(row[0] for row in generic))
    finally:
        await conn.close()


async def _signed_in(app: Any, key: str) -> httpx.AsyncClient:
    state = app.state.dancu
    async with state.sessionmaker() as session:
        service = OperatorService(session, Fernet(key.encode()))
        _view, initial = await service.create("kiemtoan", "Bench", ["auditor"])
        await session.commit()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench")
    page = await client.get("/console/login")
    await client.post(
        "/console/login", data={"csrf_token": _csrf(page.text), "username": "kiemtoan", "password": initial}
    )
    page = await client.get("/console/password")
    changed = await client.post(
        "/console/password",
        data={"csrf_token": _csrf(page.text), "current": initial, "new": PASSWORD, "confirm": PASSWORD},
    )
    if changed.status_code != 303:
        raise SystemExit(f"password change: {changed.status_code}")
    return client


async def main(args: argparse.Namespace) -> None:
    name = "dancu_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(args.postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(upgrade_database, url)
        key = Fernet.generate_key().decode()
        settings = Settings(
            _env_file=None,
            database_url=url,
            keys={"encryption_key": key},
            audit={"subject_keys": SUBJECT_KEYS},
        )
        searched_ref = SubjectHasher(settings.audit.subject_key_ring()).ref(SEARCHED)
        await _seed(url, args.events, args.every, searched_ref)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            client = await _signed_in(app, key)
            try:
                form = await client.get("/console/audit")
                data = {"csrf_token": _csrf(form.text), "personal_id": SEARCHED}
                location = (await client.post("/console/audit", data=data)).headers["location"]
                views = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    page = await client.get(location)
                    views.append((time.perf_counter() - started) * 1000)
                    if page.status_code != 200:
                        raise SystemExit(f"result page: {page.status_code}")
                print(_line(f"GET /console/audit/r/<token> ({args.requests} views)", views))
                searches = []
                for _ in range(50):
                    started = time.perf_counter()
                    posted = await client.post("/console/audit", data=data)
                    await client.get(posted.headers["location"])
                    searches.append((time.perf_counter() - started) * 1000)
                print(_line("POST /console/audit + its result page (50)", searches))
            finally:
                await client.aclose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50, help="the searched resident has every n-th event")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DANCU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    asyncio.run(main(parser.parse_args()))
