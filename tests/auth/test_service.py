"""The administration use cases: validation, separation of duties, secrets, JWKS, and their audit events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEventRow
from app.audit.writer import AdminLog
from app.auth.errors import AdminExists, ClientNotFound, Conflict, PurposeExists
from app.auth.models import Client
from app.auth.schemas import ClientCreate, ClientUpdate, GrantIn, PurposeIn
from app.auth.service import AuthService, parse
from app.errors import ValidationFailed
from tests.harness import Gateway


@pytest.fixture
async def session(sqlite_gateway: Gateway) -> AsyncIterator[AsyncSession]:
    async with sqlite_gateway.state.sessionmaker() as session:
        yield session


@pytest.fixture
def service(sqlite_gateway: Gateway, session: AsyncSession) -> AuthService:
    return AuthService(
        session, sqlite_gateway.keys.secrets, AdminLog(session, actor="admin-1", request_id="req-1")
    )


async def events(session: AsyncSession) -> list[AuditEventRow]:
    return list((await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq))).all())


async def problems(service: AuthService, client_id: str, **grant: Any) -> list[tuple[list[str | int], str]]:
    with pytest.raises(ValidationFailed) as raised:
        await service.replace_grant(client_id, GrantIn(**grant))
    assert raised.value.status == 422
    return [(error["loc"], error["code"]) for error in raised.value.errors]


async def test_grant_validation(service: AuthService) -> None:
    client_id = (await service.create_client(ClientCreate(name="Portal"))).client.client_id
    await service.add_purpose(PurposeIn(code="P1", title="Cấp CCCD", legal_basis="Luật 26/2023/QH15"))

    assert await problems(service, client_id, scopes=["citizen.read", "citizen.write"]) == [
        (["scopes", 1], "unknown_scope")
    ]
    assert await problems(service, client_id, fields=["*", "full_name", "shoe_size", "personal_id"]) == [
        (["fields", 2], "unknown_field"),
        (["fields", 3], "personal_id_not_grantable"),
    ]
    assert await problems(service, client_id, provinces=["52", "079", "99", "7"]) == [
        (["provinces", 1], "invalid_province"),
        (["provinces", 2], "invalid_province"),
        (["provinces", 3], "invalid_province"),
    ]
    assert await problems(service, client_id, provinces=["*", "52"]) == [(["provinces"], "invalid_province")]
    assert await problems(service, client_id, purposes=["P1", "P2"]) == [(["purposes", 1], "unknown_purpose")]

    grant = await service.replace_grant(
        client_id,
        GrantIn(
            scopes=["citizen.read", "citizen.verify"],
            fields=["*", "ethnicity"],
            provinces=["52", "79"],
            purposes=["P1"],
            verify_details=True,
        ),
    )
    assert grant.scopes == ["citizen.verify", "citizen.read"]
    assert grant.fields == ["*", "ethnicity"]
    assert (grant.rate_limit_per_minute, grant.distinct_subjects_per_day) == (600, 5000)


@pytest.mark.parametrize(
    "scopes",
    [
        ["admin", "citizen.read"],
        ["admin", "audit.read"],
        ["audit.read", "citizen.verify"],
        ["audit.read", "household.read"],
    ],
)
async def test_separation_of_duties(service: AuthService, scopes: list[str]) -> None:
    client_id = (await service.create_client(ClientCreate(name="Mixed"))).client.client_id

    assert await problems(service, client_id, scopes=scopes) == [(["scopes"], "separation_of_duties")]


async def test_audit_scopes_may_go_together(service: AuthService) -> None:
    client_id = (await service.create_client(ClientCreate(name="Auditor"))).client.client_id

    grant = await service.replace_grant(client_id, GrantIn(scopes=["audit.subject_report", "audit.read"]))

    assert grant.scopes == ["audit.read", "audit.subject_report"]


def test_grant_and_purpose_schemas_refuse_unknown_members_and_bad_codes() -> None:
    with pytest.raises(ValidationFailed) as unknown:
        parse(GrantIn, {"scopes": [], "superuser": True})
    with pytest.raises(ValidationFailed) as code:
        parse(PurposeIn, {"code": "bad code!", "title": "T", "legal_basis": "L"})
    with pytest.raises(ValidationFailed) as limits:
        parse(GrantIn, {"rate_limit_per_minute": 0})

    assert unknown.value.errors[0]["code"] == "extra_forbidden"
    assert code.value.errors[0]["loc"] == ["code"]
    assert "bad code!" not in str(code.value.errors)
    assert limits.value.errors[0]["loc"] == ["rate_limit_per_minute"]
    assert parse(PurposeIn, {"code": "1.001234.000.00.00.H12", "title": "T", "legal_basis": "L"})


async def test_purpose_registered_twice_is_a_409_conflict(service: AuthService) -> None:
    await service.add_purpose(PurposeIn(code="P1", title="Hòa", legal_basis="Điều 1"))

    with pytest.raises(PurposeExists) as raised:
        await service.add_purpose(PurposeIn(code="P1", title="Other", legal_basis="Other"))

    assert isinstance(raised.value, Conflict)
    assert (raised.value.status, raised.value.code) == (409, "conflict")


async def test_secrets_are_stored_as_keyed_hashes(
    sqlite_gateway: Gateway, service: AuthService, session: AsyncSession, sqlite_url: str
) -> None:
    created = await service.create_client(ClientCreate(name="Portal"))
    rotated = (await service.rotate_secret(created.client.client_id)).client_secret
    await session.commit()

    row = await session.get(Client, created.client.client_id)
    assert row is not None
    assert row.secret_hash == sqlite_gateway.keys.secrets.hash(rotated)
    assert len(created.client_secret) >= 43  # 256 bits, base64url
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for secret in (created.client_secret, rotated):
        assert secret.encode() not in stored
    for event in await events(session):
        assert created.client_secret not in str(event.detail)
        assert row.secret_hash not in str(event.detail)


async def test_a_rotated_secret_replaces_the_old_one(sqlite_gateway: Gateway) -> None:
    client = await sqlite_gateway.register()
    async with sqlite_gateway.state.sessionmaker() as session:
        new_secret = (await sqlite_gateway.service(session).rotate_secret(client.client_id)).client_secret
        await session.commit()

    old = await sqlite_gateway.token_response(client)
    new = await sqlite_gateway.token_response(type(client)(client.client_id, new_secret))

    assert old.status_code == 401
    assert new.status_code == 200


async def test_changes_and_their_audit_events_commit_together(
    service: AuthService, session: AsyncSession
) -> None:
    created = await service.create_client(ClientCreate(name="Portal", contact_email="it@gialai.gov.vn"))
    client_id = created.client.client_id
    await service.update_client(client_id, ClientUpdate(status="suspended"))
    await session.rollback()

    assert await events(session) == []
    with pytest.raises(ClientNotFound):
        await service.get_client(client_id)

    created = await service.create_client(ClientCreate(name="Portal"))
    client_id = created.client.client_id
    await service.replace_grant(client_id, GrantIn(scopes=["citizen.verify"]))
    await service.update_client(client_id, ClientUpdate(status="suspended"))
    await service.update_client(client_id, ClientUpdate(status="suspended"))  # no change: no event
    await service.add_purpose(PurposeIn(code="P9", title="T", legal_basis="L"))
    await session.commit()

    recorded = await events(session)
    assert [e.action for e in recorded] == [
        "admin.client.create",
        "admin.grant.replace",
        "admin.client.update",
        "admin.purpose.create",
    ]
    assert {(e.actor, e.request_id, e.outcome) for e in recorded} == {("admin-1", "req-1", "allowed")}
    assert recorded[2].client_id == client_id
    assert recorded[2].detail == {
        "before": {"name": "Portal", "description": None, "contact_email": None, "status": "active"},
        "after": {"name": "Portal", "description": None, "contact_email": None, "status": "suspended"},
    }
    assert recorded[1].detail is not None
    assert recorded[1].detail["after"]["scopes"] == ["citizen.verify"]


def ec_jwk(kid: str = "k1") -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


@pytest.mark.parametrize(
    ("jwks", "code"),
    [
        pytest.param(
            {
                "keys": [
                    jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
                ]
            },
            "private_key",
            id="ec-private",
        ),
        pytest.param(
            {
                "keys": [
                    jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)
                ]
            },
            "private_key",
            id="rsa-private",
        ),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private_key", id="symmetric"),
        pytest.param(
            {
                "keys": [
                    jwt.algorithms.RSAAlgorithm.to_jwk(
                        rsa.generate_private_key(65537, 1024).public_key(),  # noqa: S505 - the weak key under test
                        as_dict=True,
                    )
                ]
            },
            "weak_key",
            id="rsa-1024",
        ),
        pytest.param(
            {
                "keys": [
                    jwt.algorithms.ECAlgorithm.to_jwk(
                        ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True
                    )
                ]
            },
            "unsupported_key",
            id="p-384",
        ),
        pytest.param({"keys": [{**ec_jwk(), "alg": "RS256"}]}, "unsupported_key", id="alg-disagrees"),
        pytest.param(
            {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, "invalid_jwk", id="garbage"
        ),
        pytest.param({"keys": [ec_jwk("same"), ec_jwk("same")]}, "duplicate_kid", id="duplicate-kid"),
        pytest.param({"keys": "none"}, "invalid_jwks", id="not-a-set"),
    ],
)
async def test_set_jwks_accepts_public_keys_only(
    service: AuthService, jwks: dict[str, Any], code: str
) -> None:
    client_id = (await service.create_client(ClientCreate(name="Portal"))).client.client_id

    with pytest.raises(ValidationFailed) as raised:
        await service.set_jwks(client_id, jwks)

    assert raised.value.status == 422
    assert [e["code"] for e in raised.value.errors] == [code]


async def test_set_jwks_stores_public_keys(service: AuthService, session: AsyncSession) -> None:
    client_id = (await service.create_client(ClientCreate(name="Portal"))).client.client_id
    rsa_public = jwt.algorithms.RSAAlgorithm.to_jwk(
        rsa.generate_private_key(65537, 2048).public_key(), as_dict=True
    )

    client = await service.set_jwks(client_id, {"keys": [ec_jwk(), {**rsa_public, "kid": "r", "use": "sig"}]})

    assert client.jwks is not None
    assert [k["kid"] for k in client.jwks["keys"]] == ["k1", "r"]
    event = (await events(session))[-1]
    assert event.action == "admin.client.jwks"
    assert event.detail is not None
    assert [k["kid"] for k in event.detail["after"]["keys"]] == ["k1", "r"]


async def test_bootstrap_admin_happens_once(service: AuthService) -> None:
    created = await service.bootstrap_admin("Quản trị")

    grant = await service.get_grant(created.client.client_id)
    assert grant.scopes == ["admin"]
    with pytest.raises(AdminExists):
        await service.bootstrap_admin("Again")


async def test_unknown_clients_are_not_found(service: AuthService) -> None:
    for call in (
        service.get_client("c_nobody"),
        service.get_grant("c_nobody"),
        service.rotate_secret("c_nobody"),
        service.replace_grant("c_nobody", GrantIn()),
    ):
        with pytest.raises(ClientNotFound):
            await call
