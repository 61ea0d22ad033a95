"""Property: whatever the grant, a lookup answers only granted fields (and exactly those asked)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.backends.base import RESIDENT_FIELDS, SENSITIVE_FIELDS
from tests.harness import HEAD, JRAI, Gateway

GRANTABLE = sorted(set(RESIDENT_FIELDS) - {"personal_id"})
ORDINARY = sorted(set(GRANTABLE) - SENSITIVE_FIELDS)

grants = st.one_of(
    st.lists(st.sampled_from(GRANTABLE), min_size=1, unique=True),
    st.lists(st.sampled_from(sorted(SENSITIVE_FIELDS)), unique=True).map(lambda s: ["*", *s]),
)


def expanded(grant: list[str]) -> set[str]:
    return (set(ORDINARY) | (set(grant) - {"*"})) if "*" in grant else set(grant)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grant=grants,
    ask=st.lists(st.sampled_from(GRANTABLE), min_size=1, max_size=6, unique=True),
    data=st.data(),
)
async def test_response_keys_are_a_subset_of_the_grant(
    sqlite_gateway: Gateway, grant: list[str], ask: list[str], data: st.DataObject
) -> None:
    gw = sqlite_gateway
    client = getattr(gw, "_property_client", None)
    if client is None:
        client = await gw.register(scopes=("citizen.read",))
        gw._property_client = client  # type: ignore[attr-defined]
    await gw.replace_grant(client.client_id, fields=grant)
    allowed = expanded(grant)
    resident = data.draw(st.sampled_from([HEAD, JRAI]))

    everything = await gw.call(client, "/v1/citizens/lookup", {"personal_id": resident})
    assert everything.status_code == 200, everything.text
    assert set(everything.json()) == allowed | {"personal_id", "_meta"}

    response = await gw.call(client, "/v1/citizens/lookup", {"personal_id": resident, "fields": ask})
    if set(ask) <= allowed:
        assert response.status_code == 200
        assert set(response.json()) == set(ask) | {"personal_id", "_meta"}
    else:
        assert response.status_code == 403
        assert response.json()["fields"] == sorted(set(ask) - allowed)
