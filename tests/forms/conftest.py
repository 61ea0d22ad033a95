"""Fixtures for the forms tests: the citizens suite's gateway (embedded and http backends), plus an
administrator and the default templates installed as ``dancu forms install-defaults`` installs them."""

from __future__ import annotations

from typing import Any

from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.forms.cli import install
from tests.harness import Client, Gateway

ADMIN_SCOPES = ("admin",)


async def install_defaults(gw: Gateway) -> list[tuple[str, str]]:
    async with gw.state.sessionmaker() as session:
        done = await install(session, gw.state[KEYS], AdminLog(session, actor="test"))
        await session.commit()
    return done


async def admin_of(gw: Gateway) -> Client:
    return await gw.register(
        scopes=ADMIN_SCOPES, fields=(), provinces=("*",), purposes=(), verify_details=False
    )


def bearer(client: Client, **extra: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {client.token}", **extra}
