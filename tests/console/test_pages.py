"""The console over HTTP without a browser (docs/contract.md, section 15): sign-in, stages, roles, CSRF,
headers, sessions read from the database on every request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db import utcnow
from app.operators import credentials
from app.operators.models import Operator
from tests.console.conftest import NEW_PASSWORD, Site, console_settings, csrf_of, login, running
from tests.harness import fresh_postgres


async def test_without_a_session_the_console_sends_to_the_login_page(site: Site) -> None:
    client = await site.browser()
    answer = await client.get("/console/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"
    page = await client.get("/console/login")
    assert page.status_code == 200
    assert 'lang="vi"' in page.text
    assert 'data-testid="login-username"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    script = await client.get("/console/static/htmx.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    licence = await client.get("/console/static/htmx.LICENSE.txt")
    assert "Zero-Clause BSD" in licence.text


async def test_first_login_then_dashboard_with_the_roles_navigation(site: Site) -> None:
    client, _ = await site.signed_in("kiemtoan", "auditor,analyst")
    page = await client.get("/console/")
    assert page.status_code == 200, page.text
    for testid in (
        "nav-dashboard",
        "nav-audit",
        "nav-integrity",
        "nav-report",
        "nav-statistics",
        "nav-alerts",
    ):
        assert f'data-testid="{testid}"' in page.text
    for testid in ("nav-clients", "nav-approvals"):
        assert f'data-testid="{testid}"' not in page.text
    assert (await client.get("/console/clients")).status_code == 403
    assert (await client.get("/console/approvals")).status_code == 403
    assert (await client.get("/console/statistics")).status_code == 200
    english = await client.get("/console/lang", params={"to": "en", "next": "/console/account"})
    assert english.headers["location"] == "/console/account"
    account = await client.get("/console/account")
    assert "My account" in account.text
    assert (await client.get("/console/lang", params={"to": "vi", "next": "//evil.example"})).headers[
        "location"
    ] == "/console/"


async def test_a_stage_page_is_all_a_first_login_opens(site: Site) -> None:
    password = await site.operator("lan", "admin")
    client = await site.browser()
    answer = await login(client, "lan", password)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/password"
    cookie = answer.headers["set-cookie"]
    assert "dancu_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    assert "Path=/console" in cookie
    assert (await client.get("/console/")).headers["location"] == "/console/password"
    assert (await client.get("/console/account")).headers["location"] == "/console/password"


async def test_wrong_password_and_unknown_user_get_the_same_page(site: Site) -> None:
    await site.operator("lan", "admin")
    client = await site.browser()
    wrong = await login(client, "lan", "definitely wrong")
    unknown = await login(client, "nobody", "definitely wrong")
    assert wrong.status_code == unknown.status_code == 401
    assert 'data-testid="login-error"' in wrong.text
    assert wrong.text.replace(csrf_of(wrong.text), "") == unknown.text.replace(csrf_of(unknown.text), "")


async def test_login_without_the_login_csrf_cookie_is_refused(site: Site) -> None:
    password = await site.operator("lan", "admin")
    client = await site.browser()
    answer = await client.post(
        "/console/login", data={"csrf_token": "forged", "username": "lan", "password": password}
    )
    assert answer.status_code == 403
    assert not list(await site.events("operator.login"))


async def test_a_post_without_the_session_csrf_token_is_403_and_changes_nothing(site: Site) -> None:
    client, _ = await site.signed_in("lan", "admin")
    before = len(await site.events())
    for data in ({}, {"csrf_token": "wrong"}):
        refused = await client.post("/console/logout", data=data)
        assert refused.status_code == 403
        refused = await client.post(
            "/console/password",
            data={
                **data,
                "current": NEW_PASSWORD,
                "new": "Another-long-pass-99",
                "confirm": "Another-long-pass-99",
            },
        )
        assert refused.status_code == 403
    assert len(await site.events()) == before
    assert (await client.get("/console/")).status_code == 200  # still signed in, same password
    page = await client.get("/console/")
    out = await client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert (await client.get("/console/")).status_code == 303
    assert (await site.events())[-1].action == "operator.logout"


async def test_disabling_an_operator_ends_its_session_at_the_next_request(site: Site) -> None:
    client, _ = await site.signed_in("lan", "approver")
    assert (await client.get("/console/")).status_code == 200
    async with site.state.sessionmaker() as session:
        await session.execute(update(Operator).values(status="disabled"))
        await session.commit()
    assert (await client.get("/console/")).headers["location"] == "/console/login"


async def test_login_with_a_code_and_a_replayed_code(site: Site) -> None:
    _client, secret = await site.signed_in("lan", "admin", totp=True)
    other = await site.browser()
    first = await login(other, "lan", NEW_PASSWORD)
    assert first.headers["location"] == "/console/login/code"
    page = await other.get("/console/login/code")
    assert 'data-testid="login-totp"' in page.text
    code = credentials.code_at(secret, credentials.current_step())
    done = await other.post("/console/login/code", data={"csrf_token": csrf_of(page.text), "code": code})
    assert done.status_code == 303
    assert done.headers["location"] == "/console/"
    assert (await other.get("/console/")).status_code == 200
    third = await site.browser()
    await login(third, "lan", NEW_PASSWORD)
    page = await third.get("/console/login/code")
    replay = await third.post("/console/login/code", data={"csrf_token": csrf_of(page.text), "code": code})
    assert replay.status_code == 401
    event = (await site.events("operator.login"))[-1]
    assert (event.outcome, event.reason, event.actor) == ("denied", "totp_invalid", "op:lan")
    assert event.detail == {"step": "code", "replay": True}


async def test_lockout_then_its_end(site: Site) -> None:
    client, _ = await site.signed_in("lan", "admin")
    other = await site.browser()
    for _ in range(5):
        assert (await login(other, "lan", "wrong password 1")).status_code == 401
    assert (await login(other, "lan", NEW_PASSWORD)).status_code == 401
    assert (await client.get("/console/")).status_code == 303  # the lock ended the open session
    async with site.state.sessionmaker() as session:
        await session.execute(update(Operator).values(locked_until=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert (await login(other, "lan", NEW_PASSWORD)).status_code == 303


@pytest.fixture
def postgres_console_db(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as database_url:
        yield database_url


@pytest.mark.postgres
async def test_two_gateways_on_one_postgresql_share_sessions_and_a_disable(postgres_console_db: str) -> None:
    """Replicas share the sessions table: a session made on one is valid on the other, and a disable made
    anywhere ends it on both at their next request (each request reads the session and operator rows)."""
    settings = console_settings(postgres_console_db)
    async for first in running(settings):
        async for second in running(settings):
            client, _ = await first.signed_in("lan", "analyst")
            other = await second.browser()
            other.cookies.set("dancu_session", client.cookies["dancu_session"], path="/console")
            assert (await other.get("/console/account")).status_code == 200
            async with first.state.sessionmaker() as session:
                await session.execute(update(Operator).values(status="disabled"))
                await session.commit()
            for replica in (client, other):
                answer = await replica.get("/console/account")
                assert answer.headers.get("location") == "/console/login"


async def test_operator_events_record_the_address_behind_a_trusted_proxy(console_db: str) -> None:
    async for site in running(console_settings(console_db, trusted_proxies="127.0.0.0/8")):
        password = await site.operator("lan", "analyst")
        client = await site.browser()
        client.headers["X-Forwarded-For"] = "6.6.6.6, 198.51.100.23"
        await login(client, "lan", password)
        event = (await site.events("operator.login"))[-1]
        assert event.client_ip == "198.51.100.23"
