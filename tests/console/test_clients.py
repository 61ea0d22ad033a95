"""The console's clients and grant pages (docs/contract.md, section 15; docs/console.md), without a browser:
every change through AdminService as ``op:<username>``, the API's refusals beside their controls in
Vietnamese, CSRF, the ``admin`` role, and a client secret shown once."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app.admin.models import AdminChange
from app.audit.writer import AdminLog
from app.auth.dependencies import KEYS
from app.auth.schemas import GrantOut, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from tests.console.conftest import Site, csrf_of, make_client

_SECRET = re.compile(r'data-testid="client-secret">([^<]+)<')
_CLIENT_ID = re.compile(r'data-testid="client-id">([^<]+)<')
_URLS = re.compile(r'(?:href|action|src)="([^"]*)"')
_TWELVE_DIGITS = re.compile(r"\d{12}")
_CLIENT_IDS = re.compile(r"c_[0-9a-f]{24}")
"""A client id is 24 random hex digits: 12 decimal ones in a row turn up in about one in 20 (no personal ID)."""
PURPOSE = "1.001234.000.00.00.H12"


async def _grant(site: Site, client_id: str) -> GrantOut:
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        return await service.get_grant(client_id)


async def _purpose(site: Site) -> None:
    async with site.state.sessionmaker() as session:
        service = AuthService(session, site.state[KEYS].secrets, AdminLog(session, actor=CLI_ACTOR))
        await service.add_purpose(
            PurposeIn(code=PURPOSE, title="Đăng ký thường trú", legal_basis="Luật Cư trú 2020, Điều 20")
        )
        await session.commit()


async def _create(
    browser: httpx.AsyncClient, name: str = "Cổng dịch vụ công tỉnh Gia Lai"
) -> tuple[str, str]:
    page = await browser.get("/console/clients/new")
    assert page.status_code == 200
    created = await browser.post(
        "/console/clients/new",
        data={"csrf_token": csrf_of(page.text), "name": name, "contact_email": "cntt@gialai.gov.vn"},
    )
    assert created.status_code == 201, created.text
    secret = _SECRET.search(created.text)
    client_id = _CLIENT_ID.search(created.text)
    assert secret
    assert client_id
    return client_id.group(1), secret.group(1)


def _errors_of(html: str, control: str) -> str:
    found = re.search(rf'data-testid="error-{re.escape(control)}"[^>]*>(.*?)</ul>', html, re.S)
    assert found, f"no error beside {control}"
    return found.group(1)


async def test_create_shows_the_secret_once_and_it_is_a_working_secret(site: Site) -> None:
    browser, _ = await site.signed_in("quantri", "admin")
    client_id, secret = await _create(browser)
    detail = await browser.get(f"/console/clients/{client_id}")
    listed = await browser.get("/console/clients")
    for later in (detail, listed):
        assert later.status_code == 200
        assert secret not in later.text
        assert 'data-testid="client-secret"' not in later.text
    assert listed.text.count('data-testid="client-row"') == 1
    assert detail.headers["cache-control"] == "no-store"
    token = await browser.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 400  # authenticated: its grant allows no scope yet
    assert token.json()["error"] == "invalid_scope"
    events = [(e.action, e.actor) for e in await site.events("admin.")]
    assert events == [("admin.client.create", "op:quantri")]


async def test_create_refused_beside_the_field_and_without_csrf(site: Site) -> None:
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get("/console/clients/new")
    refused = await browser.post(
        "/console/clients/new",
        data={"csrf_token": csrf_of(page.text), "name": "  ", "contact_email": "not an address"},
    )
    assert refused.status_code == 422
    assert _errors_of(refused.text, "name")
    assert _errors_of(refused.text, "contact_email")
    forged = await browser.post("/console/clients/new", data={"csrf_token": "forged", "name": "X"})
    assert forged.status_code == 403
    missing = await browser.post("/console/clients/new", data={"name": "X"})
    assert missing.status_code == 403
    assert await site.events("admin.") == []


async def test_pages_and_changes_are_403_without_admin(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("duyet", "approver,auditor")
    page = await browser.get("/console/account")
    csrf = csrf_of(page.text)
    for path in ("/console/clients", "/console/clients/new", f"/console/clients/{client_id}"):
        assert (await browser.get(path)).status_code == 403, path
    assert (await browser.get(f"/console/clients/{client_id}/grant")).status_code == 403
    for path, data in (
        ("/console/clients/new", {"name": "X"}),
        (f"/console/clients/{client_id}/status", {"status": "suspended", "reason": "x"}),
        (f"/console/clients/{client_id}/secret", {}),
        (f"/console/clients/{client_id}/grant", {"scopes": "admin"}),
        (f"/console/clients/{client_id}/jwks", {"jwks": '{"keys": []}'}),
        (f"/console/clients/{client_id}/edit", {"name": "X"}),
    ):
        answer = await browser.post(path, data={"csrf_token": csrf, **data})
        assert answer.status_code == 403, path
    assert [e.actor for e in await site.events("admin.")] == ["cli", "cli"]  # make_client's two


async def test_grant_editor_boxes_sensitive_fields_and_provinces(site: Site) -> None:
    await _purpose(site)
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get(f"/console/clients/{client_id}/grant")
    assert page.status_code == 200
    for words in ("Nhóm máu", "nhạy cảm", "Gia Lai", "Thành phố Hồ Chí Minh", "Đăng ký thường trú"):
        assert words in page.text, words
    assert page.text.count('name="fields" value=') == 27  # "*" and the 26 fields
    assert page.text.count('name="provinces" value=') == 35  # "*" and the 34 provinces
    saved = await browser.post(
        f"/console/clients/{client_id}/grant",
        data={
            "csrf_token": csrf_of(page.text),
            "editor": "1",
            "scopes": ["citizen.read", "citizen.verify"],
            "fields": ["*", "full_name", "religion"],
            "provinces": ["52", "79"],
            "purposes": [PURPOSE],
            "rate_limit_per_minute": "120",
            "distinct_subjects_per_day": "1000",
            "valid_from": "",
            "valid_until": "2027-01-01T00:00",
            "require_end_user": "1",
        },
    )
    assert saved.status_code == 303, saved.text
    grant = await _grant(site, client_id)
    assert set(grant.scopes) == {"citizen.read", "citizen.verify"}
    assert grant.fields == ["*", "religion"]  # a named non-sensitive field is already in "*"
    assert set(grant.provinces) == {"52", "79"}
    assert grant.purposes == [PURPOSE]
    assert (grant.rate_limit_per_minute, grant.distinct_subjects_per_day) == (120, 1000)
    assert grant.valid_until is not None
    assert grant.valid_until.isoformat().startswith("2026-12-31T17:00")
    assert not grant.verify_details
    assert grant.require_end_user
    shown = await browser.get(saved.headers["location"])
    assert 'data-testid="grant-saved"' in shown.text
    assert re.search(r'value="religion" checked', shown.text)
    assert not re.search(r'value="ethnicity" checked', shown.text)
    assert 'value="2027-01-01T00:00"' in shown.text  # Vietnam time again
    event = (await site.events("admin.grant"))[-1]
    assert event.actor == "op:quantri"


async def test_grant_refusals_stand_beside_their_controls_in_vietnamese(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get(f"/console/clients/{client_id}/grant")
    form: dict[str, Any] = {
        "csrf_token": csrf_of(page.text),
        "editor": "1",
        "scopes": ["admin", "citizen.read"],
        "fields": ["full_name", "nonsense"],
        "provinces": ["*", "52"],
        "purposes": ["NOT-REGISTERED"],
        "rate_limit_per_minute": "0",
        "distinct_subjects_per_day": "100",
        "valid_from": "2027-01-02T00:00",
        "valid_until": "2027-01-01T00:00",
    }
    refused = await browser.post(f"/console/clients/{client_id}/grant", data=form)
    assert refused.status_code == 422
    assert _errors_of(refused.text, "rate_limit_per_minute")  # the schema's refusal first
    form["rate_limit_per_minute"] = "60"
    refused = await browser.post(f"/console/clients/{client_id}/grant", data=form)
    assert refused.status_code == 422
    assert "Tách biệt nhiệm vụ" in _errors_of(refused.text, "scopes")
    assert "nonsense: Trường không tồn tại." in _errors_of(refused.text, "fields")
    assert 'data-testid="error-provinces"' not in refused.text  # the "all" box stands for every province
    assert "chưa được đăng ký" in _errors_of(refused.text, "purposes")
    assert "phải sau" in _errors_of(refused.text, "valid_until")
    three_digits = await browser.post(  # a script's form: the old three-digit prefix of an ID
        f"/console/clients/{client_id}/grant", data={"csrf_token": form["csrf_token"], "provinces": "079"}
    )
    assert three_digits.status_code == 422
    assert "079: Mã tỉnh không hợp lệ" in _errors_of(three_digits.text, "provinces")
    grant = await _grant(site, client_id)
    assert grant.scopes == ["citizen.verify"]
    assert grant.rate_limit_per_minute == 60
    assert [e.action for e in await site.events("admin.")] == ["admin.client.create", "admin.grant.replace"]


async def test_edit_suspend_with_a_reason_and_reinstate(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get(f"/console/clients/{client_id}")
    csrf = csrf_of(page.text)
    no_reason = await browser.post(
        f"/console/clients/{client_id}/status",
        data={"csrf_token": csrf, "status": "suspended", "reason": " "},
    )
    assert no_reason.status_code == 422
    assert "Hãy nêu lý do" in _errors_of(no_reason.text, "reason")
    suspended = await browser.post(
        f"/console/clients/{client_id}/status",
        data={"csrf_token": csrf, "status": "suspended", "reason": "Công văn 15/CV-CA ngày 01/12"},
    )
    assert suspended.status_code == 303
    page = await browser.get(suspended.headers["location"])
    assert 'data-testid="client-reinstate"' in page.text
    listed = await browser.get("/console/clients", params={"status": "suspended", "q": "gia lai"})
    assert listed.text.count('data-testid="client-row"') == 1
    assert (await browser.get("/console/clients", params={"status": "active"})).text.count(
        'data-testid="client-row"'
    ) == 0
    assert (await browser.get("/console/clients", params={"q": "khánh hòa"})).text.count(
        'data-testid="client-row"'
    ) == 0
    reinstated = await browser.post(
        f"/console/clients/{client_id}/status",
        data={"csrf_token": csrf, "status": "active", "reason": "Đã khắc phục"},
    )
    assert reinstated.status_code == 303
    edited = await browser.post(
        f"/console/clients/{client_id}/edit",
        data={"csrf_token": csrf, "name": "Cổng DVC Gia Lai (mới)", "description": "", "contact_email": ""},
    )
    assert edited.status_code == 303
    updates = await site.events("admin.client.update")
    assert [(e.actor, (e.detail or {}).get("reason")) for e in updates] == [
        ("op:quantri", "Công văn 15/CV-CA ngày 01/12"),
        ("op:quantri", "Đã khắc phục"),
        ("op:quantri", None),
    ]
    assert updates[0].detail is not None
    assert updates[0].detail["after"]["status"] == "suspended"


async def test_rotation_shows_the_new_secret_once(site: Site) -> None:
    browser, _ = await site.signed_in("quantri", "admin")
    client_id, first = await _create(browser)
    page = await browser.get(f"/console/clients/{client_id}")
    rotated = await browser.post(
        f"/console/clients/{client_id}/secret",
        data={"csrf_token": csrf_of(page.text), "grace_seconds": "3600"},
    )
    assert rotated.status_code == 200
    second = _SECRET.search(rotated.text)
    assert second
    assert second.group(1) != first
    again = await browser.get(f"/console/clients/{client_id}")
    assert second.group(1) not in again.text
    for secret in (first, second.group(1)):  # the old one within its grace hour
        token = await browser.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert token.json().get("error") == "invalid_scope"


async def test_four_eyes_rotation_of_another_client_is_pending(four_eyes_site: Site) -> None:
    site = four_eyes_site
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get(f"/console/clients/{client_id}")
    held = await browser.post(f"/console/clients/{client_id}/secret", data={"csrf_token": csrf_of(page.text)})
    assert held.status_code == 202
    assert 'data-testid="client-pending"' in held.text
    assert 'data-testid="client-secret"' not in held.text
    async with site.state.sessionmaker() as session:
        change = await session.scalar(select(AdminChange))
        assert change is not None
        assert change.action == "admin.client.secret_rotate"
        assert change.requested_by == "op:quantri"


async def test_jwks_pasted_checked_beside_the_field(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    page = await browser.get(f"/console/clients/{client_id}")
    csrf = csrf_of(page.text)
    path = f"/console/clients/{client_id}/jwks"
    not_json = await browser.post(path, data={"csrf_token": csrf, "jwks": "{keys: nope"})
    assert not_json.status_code == 422
    assert "Không đọc được JSON" in _errors_of(not_json.text, "jwks")
    private = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    refused = await browser.post(path, data={"csrf_token": csrf, "jwks": json.dumps({"keys": [private]})})
    assert refused.status_code == 422
    assert "Khóa thứ 1: Đây là khóa bí mật" in _errors_of(refused.text, "jwks")
    assert private["d"] not in refused.text  # a pasted private key is not shown back
    public = {
        **jwt.algorithms.ECAlgorithm.to_jwk(
            ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
        ),
        "kid": "gialai-2026",
    }
    saved = await browser.post(path, data={"csrf_token": csrf, "jwks": json.dumps({"keys": [public]})})
    assert saved.status_code == 303, saved.text
    shown = await browser.get(saved.headers["location"])
    assert "gialai-2026" in shown.text
    assert [e.action for e in await site.events("admin.client.jwks")] == ["admin.client.jwks"]


async def test_no_personal_id_in_any_url_of_the_admin_pages(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    for path in (
        "/console/clients",
        "/console/clients/new",
        f"/console/clients/{client_id}",
        f"/console/clients/{client_id}/grant",
    ):
        page = await browser.get(path)
        assert page.status_code == 200, path
        for url in _URLS.findall(page.text):
            assert not _TWELVE_DIGITS.search(_CLIENT_IDS.sub("c_ID", url)), url
        assert "<script>" not in page.text  # scripts only from files (the CSP forbids inline ones)
    copy = await browser.get("/console/static/console-copy.js")
    assert copy.status_code == 200
    assert copy.headers["content-type"].startswith("text/javascript")


async def test_refusals_follow_the_language_switch(site: Site) -> None:
    client_id = await make_client(site)
    browser, _ = await site.signed_in("quantri", "admin")
    browser.cookies.set("dancu_lang", "en", path="/console")
    page = await browser.get(f"/console/clients/{client_id}/grant")
    assert "Every non-sensitive field" in page.text
    refused = await browser.post(
        f"/console/clients/{client_id}/grant",
        data={"csrf_token": csrf_of(page.text), "editor": "1", "scopes": ["admin", "audit.read"]},
    )
    assert refused.status_code == 422
    assert "Separation of duties" in _errors_of(refused.text, "scopes")


async def test_secret_authentication_turned_off_only_for_a_client_with_keys(site: Site) -> None:
    browser, _ = await site.signed_in("quantri", "admin")
    client_id, secret = await _create(browser)
    page = await browser.get(f"/console/clients/{client_id}")
    csrf = csrf_of(page.text)
    assert 'data-testid="client-secret-off"' in page.text
    path = f"/console/clients/{client_id}/secret/off"

    assert (await browser.post(path)).status_code == 403  # no CSRF token: nothing changes
    refused = await browser.post(path, data={"csrf_token": csrf})
    assert refused.status_code == 409  # no registered keys: it would lock the client out
    assert 'data-testid="client-error"' in refused.text
    assert await site.events("admin.client.secret_disable") == []

    public = {
        **jwt.algorithms.ECAlgorithm.to_jwk(
            ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
        ),
        "kid": "gialai-2026",
    }
    keys = await browser.post(
        f"/console/clients/{client_id}/jwks",
        data={"csrf_token": csrf, "jwks": json.dumps({"keys": [public]})},
    )
    assert keys.status_code == 303
    turned_off = await browser.post(path, data={"csrf_token": csrf})
    assert turned_off.status_code == 303
    shown = await browser.get(turned_off.headers["location"])
    assert "Đã tắt đăng nhập bằng mã bí mật" in shown.text
    assert 'data-testid="client-secret-off"' not in shown.text
    token = await browser.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 401  # the secret no longer authenticates
    events = [(e.action, e.actor) for e in await site.events("admin.client.secret_disable")]
    assert events == [("admin.client.secret_disable", "op:quantri")]
