"""The registry opens what settings name; the fake stays out of it and behaves as the Protocol says."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.backends.base import RESIDENT_FIELDS, Backend, HouseholdMember
from app.backends.embedded import EmbeddedBackend
from app.backends.errors import UpstreamTimeout, UpstreamUnavailable
from app.backends.fake import FakeBackend, resident
from app.backends.http import HttpBackend
from app.backends.registry import BACKENDS, open_backend
from app.config import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


async def test_embedded_opens_the_mock_database(mock_sqlite_url: str) -> None:
    backend = await open_backend(settings(backend="embedded", mock_csdlqg_database_url=mock_sqlite_url))
    try:
        assert isinstance(backend, EmbeddedBackend)
        assert backend.name == "embedded"
        await backend.check()
    finally:
        await backend.close()


async def test_embedded_starts_without_its_database(tmp_path: Path) -> None:
    backend = await open_backend(
        settings(backend="embedded", mock_csdlqg_database_url=f"sqlite:///{tmp_path}/absent.db")
    )
    try:
        with pytest.raises(UpstreamUnavailable):
            await backend.check()
    finally:
        await backend.close()


async def test_http_takes_url_and_key_from_settings() -> None:
    backend = await open_backend(
        settings(backend="http", backend_url="http://127.0.0.1:9", backend_api_key=SecretStr("k" * 24))
    )
    try:
        assert isinstance(backend, HttpBackend)
        assert backend.name == "http"
        assert backend.base_url == "http://127.0.0.1:9"
        with pytest.raises((UpstreamUnavailable, UpstreamTimeout)):
            await backend.check()  # nothing listens on the discard port
    finally:
        await backend.close()


def test_the_fake_is_not_configurable() -> None:
    assert set(BACKENDS) == {"embedded", "http"}


# --------------------------------------------------------------------------------------------- the fake


async def test_the_fake_answers_and_records_calls() -> None:
    head = resident("052068000108", household_id="H1", relation_to_head="head")
    backend: Backend = FakeBackend([head, resident("052170000109")])
    assert isinstance(backend, FakeBackend)
    household = backend.add_household(
        "H1",
        HouseholdMember("052068000108", "Nguyễn Văn An", "head"),
        HouseholdMember("052170000109", "Nguyễn Thị An", "spouse"),
    )
    assert await backend.get("052068000108") == head
    assert await backend.get("052099000999") is None
    assert set(await backend.get_many(["052068000108", "052099000999"])) == {"052068000108"}
    assert await backend.household("H1") == household
    await backend.check()
    assert [name for name, _ in backend.calls] == ["get", "get", "get_many", "household", "check"]
    await backend.close()
    assert backend.closed


async def test_the_fake_injects_failures() -> None:
    backend = FakeBackend([resident("052068000108")])
    backend.fail_next(UpstreamTimeout(), times=2)
    for _ in range(2):
        with pytest.raises(UpstreamTimeout):
            await backend.get("052068000108")
    assert await backend.get("052068000108") is not None
    backend.fail_always(UpstreamUnavailable())
    with pytest.raises(UpstreamUnavailable):
        await backend.get_many(["052068000108"])
    backend.fail_always(None)
    backend.failures_by_id["052068000108"] = UpstreamUnavailable()
    with pytest.raises(UpstreamUnavailable):
        await backend.get_many(["052170000109", "052068000108"])
    backend.healthy = False
    with pytest.raises(UpstreamUnavailable):
        await backend.check()


def test_resident_is_complete_and_agrees_with_its_id() -> None:
    man_1990 = resident("052090000118")
    woman_2003 = resident("079303000113", province="79", full_name="Lê Thị Hoa")
    assert tuple(man_1990.fields) == RESIDENT_FIELDS
    assert (man_1990.fields["gender"], man_1990.fields["date_of_birth"][:4]) == ("male", "1990")
    assert (woman_2003.fields["gender"], woman_2003.fields["date_of_birth"][:4]) == ("female", "2003")
    assert woman_2003.province == "79"
    assert woman_2003.fields["full_name"] == "Lê Thị Hoa"
    with pytest.raises(ValueError, match="not resident fields"):
        resident("052090000118", surname="x")


async def test_the_http_client_follows_no_redirect_trusts_no_environment_and_verifies_tls() -> None:
    async with HttpBackend("https://csdlqg.example", None) as backend:
        client = backend._client
        assert client is not None
        assert client.follow_redirects is False
        assert client.trust_env is False
        context: ssl.SSLContext = client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
