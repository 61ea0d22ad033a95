"""Appending: one linear chain under concurrent writers, administrative events in the change's transaction,
checkpoints on schedule and on demand, the integrity API, the command line, and no data without evidence."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import delete, select
from typer.testing import CliRunner

from app.audit.chain import GENESIS_HASH, append, read_head
from app.audit.checkpoints import latest_checkpoint, latest_checkpoint_file, verify_checkpoint
from app.audit.models import AuditChainHead, AuditCheckpointRow, AuditEventRow
from app.audit.writer import AdminLog, AuditEvent, AuditWriter, _record
from app.auth.dependencies import KEYS
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import AuthService
from app.cli import cli
from app.db import utcnow
from app.jws import SigningKey
from app.main import create_app
from tests.audit.conftest import (
    ENCRYPTION_KEY,
    HEAD,
    PURPOSE,
    SUBJECT_KEYS,
    Log,
    audit_settings,
    open_log,
)

runner = CliRunner()


async def write_batch(writer: AuditWriter, number: int) -> None:
    """Three events of one request, as a batch verification writes them."""
    await writer.write(
        [
            AuditEvent(
                action="citizen.verify",
                outcome="allowed",
                status_code=200,
                actor="c_portal",
                client_id="c_portal",
                request_id=f"batch-{number}",
                subject=HEAD,
            )
            for _ in range(3)
        ]
    )


async def test_concurrent_writes_are_contiguous_and_verify(log: Log) -> None:
    # A second engine on the same database stands in for a second process (its own connections and pool).
    other = open_log(log.settings)
    try:
        writers = [log.writer, other.writer]
        await asyncio.gather(*(write_batch(writers[i % 2], i) for i in range(24)))
    finally:
        await other.close()
    rows = await log.rows()
    assert [r.seq for r in rows] == list(range(1, 73))
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))
    assert rows[0].prev_hash == GENESIS_HASH
    # The events of one write are appended together, under one lock of the head
    by_request: dict[str | None, list[int]] = {}
    for row in rows:
        by_request.setdefault(row.request_id, []).append(row.seq)
    assert all(seqs == list(range(seqs[0], seqs[0] + 3)) for seqs in by_request.values())
    assert (await log.verify()).ok
    async with log.sessionmaker() as session:
        head = await read_head(session)
    assert head is not None
    assert (head.seq, head.hash) == (72, rows[-1].hash)


async def test_admin_events_chain_in_the_changes_transaction(log: Log) -> None:
    await log.write(2)
    async with log.sessionmaker() as session:
        service = AuthService(session, _hasher(), AdminLog(session, actor="admin-1"))
        await service.add_purpose(PurposeIn(code="P1", title="Đăng ký thường trú", legal_basis="Luật Cư trú"))
        await session.rollback()  # the change and its event go together
    await log.write(1)
    async with log.sessionmaker() as session:
        service = AuthService(session, _hasher(), AdminLog(session, actor="admin-1"))
        created = await service.create_client(ClientCreate(name="Cổng DVC"))
        await service.replace_grant(created.client.client_id, GrantIn(scopes=["citizen.verify"]))
        await session.commit()
    rows = await log.rows()
    assert [(r.seq, r.action) for r in rows] == [
        (1, "citizen.read"),
        (2, "citizen.read"),
        (3, "citizen.read"),
        (4, "admin.client.create"),
        (5, "admin.grant.replace"),
    ]
    assert rows[3].detail is not None
    assert rows[3].detail["after"]["name"] == "Cổng DVC"
    assert (await log.verify()).ok


async def test_the_driver_path_and_the_sqlalchemy_path_make_the_same_chain(log: Log) -> None:
    """The writer's fast path (stdlib sqlite3 or asyncpg) and ``append`` on a SQLAlchemy connection or
    session take turns on one chain."""
    await log.write(2)
    async with log.engine.begin() as connection:
        await append(
            connection, [_record(AuditEvent("citizen.read", "allowed", 200, "c_portal"), None, utcnow())]
        )
    await log.write(1)
    async with log.sessionmaker() as session:
        await append(
            session, [_record(AuditEvent("citizen.read", "denied", 404, "c_portal"), None, utcnow())]
        )
        await session.commit()
    await log.write(1)
    rows = await log.rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert (rows[2].actor, rows[4].outcome) == ("c_portal", "denied")
    assert (await log.verify()).ok


def _hasher() -> Any:
    from app.auth.keys import SecretHasher

    return SecretHasher(ENCRYPTION_KEY.encode())


async def test_a_missing_head_row_is_made_again_after_the_last_event(log: Log) -> None:
    await log.write(3)
    async with log.engine.begin() as connection:
        await connection.execute(delete(AuditChainHead))  # e.g. tables emptied by hand
    await log.write(2)
    assert [r.seq for r in await log.rows()] == [1, 2, 3, 4, 5]
    assert (await log.verify()).ok


async def test_checkpoints_every_n_events_every_t_seconds_and_at_shutdown(
    database_url: str, tmp_path: Path
) -> None:
    log = open_log(
        audit_settings(database_url, tmp_path, checkpoint_every_events=5, checkpoint_every_seconds=1)
    )
    try:
        log.checkpoints.start()
        await log.write(6)
        first = await _wait_for_checkpoint(log, at_least=5)
        await log.write(1)  # fewer than N: the T-second rule makes the next one
        second = await _wait_for_checkpoint(log, at_least=7)
        assert first.seq >= 5
        assert second.seq == 7
        await log.write(2)
        await log.checkpoints.stop()  # a clean shutdown leaves no tail unsigned
        async with log.sessionmaker() as session:
            last = await latest_checkpoint(session)
        assert last is not None
        assert last.seq == 9
        files = sorted(p.name for p in log.directory.glob("checkpoint-*.json"))
        assert files[-1] == last.file_name()
        assert not list(log.directory.glob(".*"))  # no temporary file left behind
        on_disk = json.loads((log.directory / files[-1]).read_text())
        assert on_disk == last.document()
        assert verify_checkpoint(on_disk, log.checkpoints.key) == last
        report = await log.verify()
        assert (report.ok, report.checked, report.checkpoint_seq) == (True, 9, 9)
    finally:
        await log.checkpoints.stop()
        await log.close()


async def _wait_for_checkpoint(log: Log, at_least: int) -> Any:
    deadline = time.monotonic() + 10
    while True:
        async with log.sessionmaker() as session:
            found = await latest_checkpoint(session)
        if found is not None and found.seq >= at_least:
            return found
        assert time.monotonic() < deadline, "no checkpoint was made"
        await asyncio.sleep(0.05)


async def test_the_checkpoint_key_file_is_private_and_never_in_the_database(log: Log) -> None:
    path = log.settings.audit.checkpoint_key_file
    assert path.stat().st_mode & 0o777 == 0o600
    await log.checkpoints.make()
    async with log.sessionmaker() as session:
        row = await session.scalar(select(AuditCheckpointRow))
    assert row is not None
    assert "PRIVATE" not in row.jws
    assert row.kid == log.checkpoints.key.kid


# --- the gateway in process ----------------------------------------------------------------------------


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    log_dir: Path

    @property
    def state(self) -> Any:
        return self.app.state.dancu

    async def register(self, scopes: list[str]) -> str:
        async with self.state.sessionmaker() as session:
            service = AuthService(session, self.state[KEYS].secrets, AdminLog(session, actor="test"))
            if not await service.list_purposes():
                await service.add_purpose(
                    PurposeIn(code=PURPOSE, title="Thủ tục", legal_basis="Luật 26/2023")
                )
            created = await service.create_client(ClientCreate(name="Client"))
            await service.replace_grant(
                created.client.client_id,
                GrantIn(
                    scopes=scopes,
                    fields=["*"],
                    provinces=["52"],
                    purposes=[PURPOSE] if "citizen.verify" in scopes else [],
                ),
            )
            await session.commit()
        response = await self.http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(created.client.client_id, created.client_secret),
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path, audit_mock_db: str) -> AsyncIterator[Gateway]:
    settings = audit_settings(database_url, tmp_path).model_copy(
        update={"mock_csdlqg_database_url": audit_mock_db, "backend": "embedded"}
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        yield Gateway(app, http, settings.audit.checkpoint_dir)


async def test_integrity_and_checkpoints_over_http(gateway: Gateway) -> None:
    auditor = {"Authorization": f"Bearer {await gateway.register(['audit.read'])}", "X-Request-Id": "aud-1"}
    portal = await gateway.register(["citizen.verify"])

    empty = await gateway.http.get("/v1/audit/checkpoints/latest", headers=auditor)
    assert empty.status_code == 404
    assert empty.json()["code"] == "not_found"

    made = await gateway.http.post("/v1/audit/checkpoints", headers=auditor)
    assert made.status_code == 201, made.text
    checkpoint = made.json()
    assert set(checkpoint) == {"log_id", "seq", "hash", "at", "kid", "jws"}
    # Anyone can check it with the key published in the JWKS
    jwks = (await gateway.http.get("/.well-known/jwks.json")).json()["keys"]
    published = next(k for k in jwks if k["kid"] == checkpoint["kid"])
    assert verify_checkpoint(checkpoint, SigningKey.from_public_jwk(published)) is not None
    assert (gateway.log_dir / latest_checkpoint_file(gateway.log_dir).name).exists()  # type: ignore[union-attr]

    latest = await gateway.http.get("/v1/audit/checkpoints/latest", headers=auditor)
    assert latest.json() == checkpoint

    integrity = await gateway.http.get("/v1/audit/integrity", headers=auditor)
    assert integrity.status_code == 200
    body = integrity.json()
    assert body == {
        "ok": True,
        "checked": body["checked"],
        "first_bad_seq": None,
        "problem": None,
        "checkpoint_seq": checkpoint["seq"],
    }

    # Reading the audit log is itself audited
    async with gateway.state.sessionmaker() as session:
        reads = (
            await session.execute(
                select(AuditEventRow.action, AuditEventRow.status_code, AuditEventRow.outcome)
                .where(AuditEventRow.request_id == "aud-1")
                .order_by(AuditEventRow.seq)
            )
        ).all()
    assert [tuple(r) for r in reads] == [
        ("audit.checkpoint", 404, "denied"),
        ("audit.checkpoint", 201, "allowed"),
        ("audit.checkpoint", 200, "allowed"),
        ("audit.integrity", 200, "allowed"),
    ]

    # audit.read only
    wrong = await gateway.http.get("/v1/audit/integrity", headers={"Authorization": f"Bearer {portal}"})
    assert wrong.status_code == 403
    assert (await gateway.http.post("/v1/audit/checkpoints")).status_code == 401


async def test_the_integrity_api_reports_damage(gateway: Gateway) -> None:
    auditor = {"Authorization": f"Bearer {await gateway.register(['audit.read'])}"}
    assert (await gateway.http.post("/v1/audit/checkpoints", headers=auditor)).status_code == 201
    engine = gateway.state.engine
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        else:
            await connection.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        await connection.exec_driver_sql("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
        if engine.dialect.name == "postgresql":
            await connection.exec_driver_sql("ALTER TABLE audit_events ENABLE TRIGGER USER")
    body = (await gateway.http.get("/v1/audit/integrity", headers=auditor)).json()
    assert (body["ok"], body["problem"], body["first_bad_seq"], body["checked"]) == (False, "modified", 2, 1)


async def test_no_data_without_a_chained_event(
    audit_template: Path, tmp_path: Path, audit_mock_db: str
) -> None:
    """The chain head cannot be locked: 503 audit_unavailable, and nothing about the resident."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(audit_template, path)
    settings = audit_settings(f"sqlite:///{path}", tmp_path).model_copy(
        update={"mock_csdlqg_database_url": audit_mock_db}
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        gateway = Gateway(app, http, settings.audit.checkpoint_dir)
        token = await gateway.register(["citizen.verify"])
        async with gateway.state.engine.begin() as connection:
            await connection.exec_driver_sql("DROP TABLE audit_chain_head")
        response = await http.post(
            "/v1/citizens/verify",
            json={"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"},
            headers={"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE},
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "audit_unavailable"
    assert "match" not in response.json()
    for leaked in (HEAD, "Nguyễn", "Thành", "1968", "attestation"):
        assert leaked not in response.text
    with sqlite3.connect(path) as connection:
        assert connection.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'citizen.verify'"
        ).fetchone() == (0,)


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, audit_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    path.write_bytes(audit_template.read_bytes())
    for name, value in {
        "DANCU_DATABASE_URL": f"sqlite:///{path}",
        "DANCU_KEYS__ENCRYPTION_KEY": ENCRYPTION_KEY,
        "DANCU_AUDIT__SUBJECT_KEYS": SUBJECT_KEYS,
        "DANCU_AUDIT__CHECKPOINT_KEY_FILE": str(tmp_path / "keys" / "checkpoint.pem"),
        "DANCU_AUDIT__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    }.items():
        monkeypatch.setenv(name, value)
    return path


def test_dancu_audit_verify_exit_codes(cli_env: Path, tmp_path: Path) -> None:
    fresh = runner.invoke(cli, ["audit", "verify"])
    assert (fresh.exit_code, fresh.stdout) == (
        0,
        "audit log intact: 0 events checked; no signed checkpoint\n",
    )

    settings = audit_settings(f"sqlite:///{cli_env}", tmp_path)

    async def populate() -> None:
        log = open_log(settings)
        try:
            await log.write(12)
        finally:
            await log.close()

    asyncio.run(populate())
    made = runner.invoke(cli, ["audit", "checkpoint"])
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("checkpoint at seq 12: ")

    intact = runner.invoke(cli, ["audit", "verify"])
    assert (intact.exit_code, intact.stdout) == (
        0,
        "audit log intact: 12 events checked; latest checkpoint at seq 12\n",
    )

    # An auditor holds only the public key: enough to verify
    public = tmp_path / "checkpoint.pub.pem"
    private = serialization.load_pem_private_key((tmp_path / "keys" / "checkpoint.pem").read_bytes(), None)
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    as_auditor = runner.invoke(
        cli, ["audit", "verify"], env={"DANCU_AUDIT__CHECKPOINT_KEY_FILE": str(public)}
    )
    assert as_auditor.exit_code == 0, as_auditor.output

    with sqlite3.connect(cli_env) as connection:
        connection.execute("DROP TRIGGER audit_events_no_update")
        connection.execute("UPDATE audit_events SET status_code = 404 WHERE seq = 7")
    damaged = runner.invoke(cli, ["audit", "verify"])
    assert damaged.exit_code == 1
    assert damaged.stdout == (
        "audit log damaged: modified at seq 7 (6 events intact before it; latest checkpoint at seq 12)\n"
    )

    checkpoint = latest_checkpoint_file(tmp_path / "checkpoints")
    assert checkpoint is not None
    given = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(checkpoint)])
    assert given.exit_code == 1
    assert "modified at seq 7" in given.stdout

    missing = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    assert missing.stdout == ""
    (tmp_path / "garbage.json").write_text("{not json")
    garbage = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(tmp_path / "garbage.json")])
    assert garbage.exit_code == 2

    forged = json.loads(checkpoint.read_text())
    forged["seq"] = 3
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    bad = runner.invoke(cli, ["audit", "verify", "--checkpoint", str(tmp_path / "forged.json")])
    assert bad.exit_code == 1
    assert bad.stdout.startswith(
        "audit log damaged: bad_checkpoint_signature (the checkpoint in --checkpoint "
    )


def test_dancu_audit_verify_without_a_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DANCU_DATABASE_URL", f"sqlite:///{tmp_path}/never-migrated.db")
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 2
    assert "cannot read the audit log" in result.stderr


async def test_stopping_while_the_checkpointer_is_being_woken_still_stops(
    database_url: str, tmp_path: Path
) -> None:
    """Shutdown under load: events arrive (they wake the checkpoint task) in the very tick it is cancelled.
    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation whose inner wait completes in that tick;
    the task then ran on and the lifespan's shutdown waited for it forever (found with bench load)."""
    log = open_log(audit_settings(database_url, tmp_path, checkpoint_every_events=1))
    try:
        for _ in range(20):
            log.checkpoints.start()
            await asyncio.sleep(0)  # the task is waiting for its wake-up
            log.checkpoints.note_appended(1)  # wakes it ...
            await asyncio.wait_for(log.checkpoints.stop(), 10)  # ... as it is cancelled
    finally:
        await log.checkpoints.stop()
        await log.close()
