"""When the chain cannot take a new event, the integrity check still answers (docs/contract.md, "Audit").

Someone holding the database appends a well-formed event after the real head. Every append then collides with
it (``seq`` and ``prev_hash`` are unique), so no event can be written. That is exactly when an auditor needs
``GET /v1/audit/integrity``: it answers ``ok: false``, ``problem: "inserted"`` and the first bad ``seq``, and
logs that its own event could not be recorded. Citizen routes keep failing closed (503 ``audit_unavailable``),
``/readyz`` answers 503 saying why, and ``dancu audit verify`` reports the damage (exit 1). On SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from app.audit.chain import event_hash
from app.audit.models import AuditEventRow
from app.cli import cli
from app.config import get_settings
from tests.audit_api.conftest import K1, Site, auditor
from tests.harness import ENCRYPTION_KEY, HEAD, Gateway

VERIFY = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}


async def forge_after_head(gw: Gateway) -> int:
    """Append a perfectly chained event behind the gateway's back (the head row not moved); its ``seq``."""
    async with gw.state.engine.begin() as connection:
        last = (
            (
                await connection.execute(
                    select(AuditEventRow.__table__).order_by(AuditEventRow.seq.desc()).limit(1)
                )
            )
            .one()
            ._mapping
        )
        forged: dict[str, Any] = {
            **last,
            "event_id": "f0f0f0f0-0000-4000-8000-000000000000",
            "seq": last["seq"] + 1,
            "request_id": "forged",
            "outcome": "denied",
            "status_code": 404,
            "reason": "out_of_scope",
            "fields": [],
            "sensitive_fields": [],
            "prev_hash": last["hash"],
        }
        forged["hash"] = event_hash(forged)
        await connection.execute(insert(AuditEventRow).values(forged))
    return int(forged["seq"])


async def event_count(gw: Gateway) -> int:
    async with gw.state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)


def audit_verify(database_url: str) -> Any:
    """``dancu audit verify`` on the gateway's database, with the gateway's keys and directory (the working
    directory's ./var, as the test gateway has them)."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(
            cli,
            ["audit", "verify"],
            env={
                "DANCU_DATABASE_URL": database_url,
                "DANCU_KEYS__ENCRYPTION_KEY": ENCRYPTION_KEY,
                "DANCU_AUDIT__SUBJECT_KEYS": K1,
            },
        )
    finally:
        get_settings.cache_clear()


async def test_a_forged_event_after_the_head_blocks_the_log_and_every_check_says_so(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    async with site.start() as gw:
        portal = await gw.register()
        audit = await auditor(gw)
        assert (await gw.call(portal, "/v1/citizens/verify", VERIFY)).status_code == 200
        made = await audit.post("/v1/audit/checkpoints", None)
        assert made.status_code == 201, made.text
        assert (await audit.get("/v1/audit/integrity")).json()["ok"] is True
        assert (await gw.http.get("/readyz")).status_code == 200

        bad_seq = await forge_after_head(gw)
        stored = await event_count(gw)

        # The integrity check answers, though its own event cannot be written, and logs that.
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="app.audit.integrity_router"):
            response = await audit.get("/v1/audit/integrity")
        assert response.status_code == 200, response.text
        report = response.json()
        assert (report["ok"], report["problem"], report["first_bad_seq"]) == (False, "inserted", bad_seq)
        assert report["checked"] == bad_seq - 1
        assert report["checkpoint_seq"] == made.json()["seq"]
        assert await event_count(gw) == stored  # nothing could be recorded
        logged = [r.getMessage() for r in caplog.records if "could not be recorded" in r.getMessage()]
        assert logged == [
            f"audit.integrity by client {audit.client.client_id} could not be recorded: the audit log takes "
            "no new event; answered anyway (run `dancu audit verify`)"
        ]

        # Citizen routes fail closed: no data without its event.
        refused = await gw.call(portal, "/v1/citizens/verify", VERIFY)
        assert refused.status_code == 503
        assert refused.json()["code"] == "audit_unavailable"
        assert "match" not in refused.json()
        assert await event_count(gw) == stored

        # /readyz says why, in the operator's language.
        ready = await gw.http.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert (body["code"], body["checks"]["audit"], body["checks"]["database"]) == (
            "not_ready",
            "failed",
            "ok",
        )
        assert (
            f"audit: the audit log cannot take new events: the event at seq {bad_seq} was not written"
            in (body["detail"])
        )
        assert "dancu audit verify" in body["detail"]
        vietnamese = (await gw.http.get("/readyz", headers={"Accept-Language": "vi"})).json()
        assert (
            f"nhật ký kiểm toán không ghi thêm được sự kiện: sự kiện ở seq {bad_seq}" in vietnamese["detail"]
        )

    # The command line reports the damage too: where and how, exit 1.
    result = await asyncio.to_thread(audit_verify, site.database_url)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(
        f"audit log damaged: inserted at seq {bad_seq} ({bad_seq - 1} events intact"
    )


async def test_an_intact_log_is_ready_and_its_integrity_checks_are_recorded(site: Site) -> None:
    async with site.start() as gw:
        audit = await auditor(gw)
        ready = await gw.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["audit"] == "ok"
        before = await event_count(gw)
        assert (await audit.get("/v1/audit/integrity")).json()["ok"] is True
        assert await event_count(gw) == before + 1
        (event,) = (await audit.search(action="audit.integrity"))["items"]
        assert (event["outcome"], event["client_id"]) == ("allowed", audit.client.client_id)
