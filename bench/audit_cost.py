"""What auditing costs per request: CPU µs of `POST /v1/citizens/verify` with and without its audit event.

Usage: .venv/bin/python bench/audit_cost.py [--requests 2000] [--rounds 3] [--concurrency 1] [--database-url URL]

In process, over the ASGI app (no network, no server): the same verification of a persona, once with the real
audit writer (one chained event, committed by the writer's group commit: head lock, insert, head update,
commit in a transaction of its own) and once with the writer swapped for a no-op. ``--concurrency N`` keeps N
requests in flight (default 1: one after the other, where every transaction carries one request's event; with
more, concurrent requests share transactions). CPU is `time.process_time()` of this process (the SQLite
writer's thread included; on PostgreSQL the server's own CPU is not). Rounds alternate with/without to cancel
drift; the figures are medians over the rounds. Also prints the canonical form + SHA-256 of one event on its
own. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.fernet import Fernet

from app.audit.chain import GENESIS_HASH, event_hash
from app.audit.dependencies import AUDIT
from app.audit.writer import AdminLog, AuditEvent
from app.auth.dependencies import KEYS
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from mock_csdlqg.generator.pipeline import seed_database

PURPOSE = "1.001234.000.00.00.H12"
BODY = {"personal_id": "052068000108", "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}


async def no_audit(events: Sequence[AuditEvent]) -> None:
    """The writer swapped out: nothing is recorded (for measuring only)."""


async def register(app: Any, http: httpx.AsyncClient) -> str:
    state = app.state.dancu
    async with state.sessionmaker() as session:
        service = AuthService(session, state[KEYS].secrets, AdminLog(session, actor="bench"))
        await service.add_purpose(
            PurposeIn(code=PURPOSE, title="Đăng ký thường trú", legal_basis="Luật Cư trú")
        )
        created = await service.create_client(ClientCreate(name="bench"))
        await service.replace_grant(
            created.client.client_id,
            GrantIn(
                scopes=["citizen.verify"],
                fields=["*"],
                provinces=["52"],
                purposes=[PURPOSE],
                verify_details=True,
                rate_limit_per_minute=10_000_000,
                distinct_subjects_per_day=10_000_000,
            ),
        )
        await session.commit()
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(created.client.client_id, created.client_secret),
    )
    token: str = response.json()["access_token"]
    return token


async def run(
    http: httpx.AsyncClient, headers: dict[str, str], count: int, concurrency: int = 1
) -> tuple[float, float]:
    """CPU and wall seconds for ``count`` verifications, ``concurrency`` of them in flight at a time."""

    async def one_after_the_other(share: int) -> None:
        for _ in range(share):
            response = await http.post("/v1/citizens/verify", json=BODY, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")

    cpu, wall = time.process_time(), time.perf_counter()
    shares = [count // concurrency + (n < count % concurrency) for n in range(concurrency)]
    await asyncio.gather(*(one_after_the_other(share) for share in shares))
    return time.process_time() - cpu, time.perf_counter() - wall


def hash_cost(count: int = 20000) -> float:
    """µs of CPU for the canonical form and SHA-256 of one event."""
    event = {
        "event_id": "5d0c2f8e-91a4-4b7e-8e3f-6a2b1c0d9e87",
        "seq": 123456,
        "at": datetime.now(UTC),
        "request_id": "req-7f3a",
        "client_id": "c_4f1d2a9b8c7e6d5f4a3b2c1d",
        "actor": "c_4f1d2a9b8c7e6d5f4a3b2c1d",
        "action": "citizen.verify",
        "purpose": PURPOSE,
        "dossier_id": "HS-2026/0042",
        "subject_ref": "k1:" + "ab" * 32,
        "fields": ["full_name", "date_of_birth"],
        "sensitive_fields": [],
        "outcome": "allowed",
        "status_code": 200,
        "reason": None,
        "detail": None,
        "prev_hash": GENESIS_HASH,
    }
    start = time.process_time()
    for _ in range(count):
        event_hash(event)
    return (time.process_time() - start) / count * 1e6


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="dancu-audit-bench-"))
    mock = f"sqlite:///{workdir / 'mock.db'}"
    await seed_database(mock, count=0, seed=5, as_of=date(2026, 1, 1), workers=1)
    database_url = args.database_url or f"sqlite:///{workdir / 'dancu.db'}"
    await asyncio.to_thread(upgrade_database, database_url)
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        MOCK_CSDLQG_DATABASE_URL=mock,
        keys={"encryption_key": Fernet.generate_key().decode()},
        audit={
            "subject_keys": "k1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY=",
            "checkpoint_key_file": workdir / "checkpoint.pem",
            "checkpoint_dir": workdir / "checkpoints",
        },
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench") as http,
    ):
        headers = {"Authorization": f"Bearer {await register(app, http)}", "X-Purpose": PURPOSE}
        writer = app.state.dancu[AUDIT]
        real_write = writer.write
        await run(http, headers, 300)  # warm up: imports, caches, pool
        with_audit: list[tuple[float, float]] = []
        without: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            writer.write = real_write
            with_audit.append(await run(http, headers, args.requests, args.concurrency))
            writer.write = no_audit
            without.append(await run(http, headers, args.requests, args.concurrency))
        writer.write = real_write

    requests: int = args.requests

    def per_request(samples: list[tuple[float, float]], index: int) -> float:
        return statistics.median(s[index] for s in samples) / requests * 1e6

    backend = database_url.split(":", 1)[0]
    print(
        f"POST /v1/citizens/verify, in process, {args.requests} requests x {args.rounds} rounds, "
        f"{args.concurrency} in flight, {backend}"
    )
    print(f"{'':<22}{'CPU µs/req':>12}{'wall µs/req':>13}")
    cpu_with, wall_with = per_request(with_audit, 0), per_request(with_audit, 1)
    cpu_without, wall_without = per_request(without, 0), per_request(without, 1)
    print(f"{'with audit event':<22}{cpu_with:>12.0f}{wall_with:>13.0f}")
    print(f"{'without (no-op)':<22}{cpu_without:>12.0f}{wall_without:>13.0f}")
    print(
        f"{'cost of auditing':<22}{cpu_with - cpu_without:>12.0f}{wall_with - wall_without:>13.0f}"
        f"   ({(cpu_with - cpu_without) / cpu_with:.0%} of the request's CPU)"
    )
    print(f"canonical form + SHA-256 of one event alone: {hash_cost():.1f} µs CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at a time")
    parser.add_argument(
        "--database-url", help="a migrated-or-empty gateway database (default: a new SQLite file)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
