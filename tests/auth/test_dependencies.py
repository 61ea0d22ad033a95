"""The scope dependencies: the client and its grant are read on every request, so changes apply at once."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from app.db import utcnow
from tests.harness import Gateway


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_no_token_is_401_with_a_bare_challenge(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer "}):
        response = await gateway.http.get("/_t/read", headers=headers)

        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_token"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_context_expands_the_grant(gateway: Gateway) -> None:
    client = await gateway.register(
        scopes=["citizen.verify", "citizen.read"],
        fields=["*", "ethnicity"],
        provinces=["52", "79"],
        purposes=["1.001234.000.00.00.H12"],
    )
    token = await gateway.token(client, "citizen.read")

    context = (await gateway.http.get("/_t/read", headers=bearer(token))).json()

    expected = {f for f in RESIDENT_FIELDS if f not in SENSITIVE_FIELDS and f != "personal_id"} | {
        "ethnicity"
    }
    assert context["fields"] == sorted(expected)
    assert "religion" not in context["fields"]
    assert "personal_id" not in context["fields"]
    assert context["provinces"] == ["52", "79"]
    assert context["purposes"] == ["1.001234.000.00.00.H12"]
    assert context["token_scopes"] == ["citizen.read"]
    assert context["scopes"] == ["citizen.read", "citizen.verify"]
    assert context["client_name"] == "Cổng DVC tỉnh Gia Lai"


async def test_every_province_is_none(gateway: Gateway) -> None:
    client = await gateway.register(provinces=["*"])

    context = (await gateway.http.get("/_t/read", headers=bearer(await gateway.token(client)))).json()

    assert context["provinces"] is None


async def test_a_token_issued_before_suspension_stops_working_at_once(gateway: Gateway) -> None:
    client = await gateway.register()
    token = await gateway.token(client)
    assert (await gateway.http.get("/_t/read", headers=bearer(token))).status_code == 200

    await gateway.set_status(client.client_id, "suspended")
    assert_refused(await gateway.http.get("/_t/read", headers=bearer(token)))

    await gateway.set_status(client.client_id, "active")
    assert (await gateway.http.get("/_t/read", headers=bearer(token))).status_code == 200


async def test_a_grant_past_valid_until_refuses_existing_tokens(gateway: Gateway) -> None:
    client = await gateway.register()
    token = await gateway.token(client)

    await gateway.replace_grant(
        client.client_id,
        scopes=["citizen.read"],
        fields=["*"],
        provinces=["*"],
        valid_until=utcnow() - timedelta(seconds=1),
    )

    assert_refused(await gateway.http.get("/_t/read", headers=bearer(token)))
    assert (await gateway.token_response(client)).json()["error"] == "invalid_client"


async def test_a_scope_taken_out_of_the_grant_stops_at_once(gateway: Gateway) -> None:
    client = await gateway.register(scopes=["citizen.verify", "citizen.read"])
    token = await gateway.token(client)

    await gateway.replace_grant(client.client_id, scopes=["citizen.verify"])

    assert_refused(await gateway.http.get("/_t/read", headers=bearer(token)))
    verify = (await gateway.http.get("/_t/verify", headers=bearer(token))).json()
    assert verify["token_scopes"] == ["citizen.verify"]


async def test_a_token_without_the_scope_is_403(gateway: Gateway) -> None:
    client = await gateway.register(scopes=["citizen.verify"])

    response = await gateway.http.get("/_t/read", headers=bearer(await gateway.token(client)))

    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


@pytest.mark.parametrize("scope", ["audit.read", "audit.subject_report"])
async def test_subject_report_takes_either_audit_scope(gateway: Gateway, scope: str) -> None:
    client = await gateway.register(scopes=[scope], fields=[], provinces=[])
    token = await gateway.token(client)

    assert (await gateway.http.get("/_t/subject-report", headers=bearer(token))).status_code == 200
    assert (await gateway.http.get("/_t/admin", headers=bearer(token))).status_code == 403


async def test_an_unknown_kid_reloads_the_key_table(gateway: Gateway) -> None:
    # A token signed by a key this process has not loaded yet (another process made it): reload, then verify.
    client = await gateway.register()
    token = await gateway.token(client)
    gateway.keys._keys.clear()  # as if another process had signed it with a key we never loaded
    gateway.keys.token_cache.clear()

    response = await gateway.http.get("/_t/read", headers=bearer(token))

    assert response.status_code == 200  # the reload found the key in the table again
