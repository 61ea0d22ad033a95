"""Fixtures for the console tests: the gateway in process on a migrated SQLite database, operators made as the
CLI makes them, and a browser-less client that signs in through the pages (the Playwright tests are in
``test_browser.py``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.cli import upgrade_database
from app.config import Settings
from app.main import create_app
from app.operators import credentials
from app.operators.service import OperatorService
from app.state import AppState

BASE_URL = "http://testserver"
ENCRYPTION_KEY = Fernet.generate_key().decode()
SUBJECT_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUY="
NEW_PASSWORD = "Ngựa-vằn-bay-qua-sông-42"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')


@pytest.fixture(scope="session")
def console_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-template") / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def console_db(console_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "dancu.db"
    shutil.copyfile(console_template, path)
    return f"sqlite:///{path}"


def console_settings(database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "keys": {"encryption_key": ENCRYPTION_KEY},
        "audit": {"subject_keys": SUBJECT_KEYS},
        **extra,
    }
    return Settings(_env_file=None, **values)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def secret_of(html: str) -> str:
    found = _SECRET.search(html)
    assert found, "no secret on the page"
    return found.group(1)


@dataclass
class Site:
    """The gateway in process, and ways to make operators and sign them in."""

    app: FastAPI
    stack: AsyncExitStack

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.dancu
        return state

    async def operator(self, username: str, roles: str, display_name: str = "Nguyễn Thị Lan") -> str:
        """A new operator as `dancu operators create` makes it; its initial password."""
        async with self.state.sessionmaker() as session:
            service = OperatorService(session, Fernet(ENCRYPTION_KEY.encode()))
            _view, password = await service.create(username, display_name, roles.split(","))
            await session.commit()
            return password

    async def browser(self) -> httpx.AsyncClient:
        return await self.stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url=BASE_URL)
        )

    async def signed_in(
        self, username: str, roles: str, *, totp: bool = False
    ) -> tuple[httpx.AsyncClient, str]:
        """A client signed in as a new operator whose first password change is done (and, with ``totp``,
        an authenticator enrolled); the client and the TOTP secret (empty without one)."""
        password = await self.operator(username, roles)
        client = await self.browser()
        await login(client, username, password)
        page = await client.get("/console/password")
        answer = await client.post(
            "/console/password",
            data={
                "csrf_token": csrf_of(page.text),
                "current": password,
                "new": NEW_PASSWORD,
                "confirm": NEW_PASSWORD,
            },
        )
        assert answer.status_code == 303, answer.text
        secret = ""
        if totp:
            page = await client.get("/console/enrol")
            secret = secret_of(page.text)
            code = credentials.code_at(secret, credentials.current_step() - 1)
            done = await client.post("/console/enrol", data={"csrf_token": csrf_of(page.text), "code": code})
            assert done.status_code == 303, done.text
        return client, secret

    async def events(self, prefix: str = "operator.") -> list[AuditEventRow]:
        async with self.state.sessionmaker() as session:
            rows = await session.scalars(
                select(AuditEventRow)
                .where(AuditEventRow.action.startswith(prefix))
                .order_by(AuditEventRow.seq)
            )
            return list(rows)


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await client.get("/console/login")
    return await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(page.text), "username": username, "password": password},
    )


async def running(settings: Settings) -> AsyncIterator[Site]:
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield Site(app, stack)


@pytest.fixture
async def site(console_db: str) -> AsyncIterator[Site]:
    async for running_site in running(console_settings(console_db)):
        yield running_site


async def make_client(site: Site, name: str = "Cổng DVC tỉnh Gia Lai") -> str:
    """A client as `dancu clients create` makes it (actor ``cli``), with a small grant; its client_id."""
    from app.audit.writer import AdminLog
    from app.auth.dependencies import KEYS
    from app.auth.schemas import ClientCreate, GrantIn
    from app.auth.service import CLI_ACTOR, AuthService

    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        created = await service.create_client(ClientCreate(name=name))
        await service.replace_grant(
            created.client.client_id,
            GrantIn(scopes=["citizen.verify"], provinces=["52"], rate_limit_per_minute=60),
        )
        await session.commit()
        return created.client.client_id


@pytest.fixture
async def four_eyes_site(console_db: str) -> AsyncIterator[Site]:
    async for running_site in running(console_settings(console_db, admin={"require_approval": True})):
        yield running_site
