"""The sandbox (DANCU_SANDBOX, docs/contract.md section 17): a portal rehearses upstream faults with
``X-Sandbox-Fault``, on the embedded backend (simulated) and on the mock service over HTTP (forwarded as
``X-Mock-Fault``) alike, and gets the gateway's usual problems, audited as real upstream faults are.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.backends.embedded import EmbeddedBackend
from app.backends.http import HttpBackend
from app.citizens.dependencies import BACKEND
from app.health.metrics import InstrumentedBackend
from tests.citizens.test_endpoints import problem
from tests.harness import HEAD, UNKNOWN, Backoff, Gateway, gateway_settings, running

LOOKUP = "/v1/citizens/lookup"
VERIFY = "/v1/citizens/verify"
HOUSEHOLD = "/v1/citizens/household"


async def _gateway(
    request: pytest.FixtureRequest, migrated_sqlite: Path, tmp_path: Path, mock_db: str, sandbox: bool
) -> AsyncIterator[Gateway]:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    live = request.getfixturevalue("live_mock") if request.param == "http" else None
    settings = gateway_settings(f"sqlite:///{path}", mock_db, request.param, live, sandbox=sandbox)
    async with running(settings, request.param) as gw:
        yield gw


@pytest.fixture(params=["embedded", "http"])
async def sandbox(
    request: pytest.FixtureRequest, migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> AsyncIterator[Gateway]:
    """A sandbox gateway, once on the embedded mock and once on the mock service (faults on) over HTTP."""
    async for gw in _gateway(request, migrated_sqlite, tmp_path, mock_db, sandbox=True):
        yield gw


@pytest.fixture(params=["embedded", "http"])
async def not_sandbox(
    request: pytest.FixtureRequest, migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> AsyncIterator[Gateway]:
    async for gw in _gateway(request, migrated_sqlite, tmp_path, mock_db, sandbox=False):
        yield gw


def upstream_of(gw: Gateway) -> EmbeddedBackend | HttpBackend:
    """The gateway's backend itself (the state holds it wrapped in its metrics)."""
    backend = gw.state[BACKEND]
    inner = backend.inner if isinstance(backend, InstrumentedBackend) else backend
    assert isinstance(inner, EmbeddedBackend | HttpBackend)
    return inner


def rehearse(fault: str) -> dict[str, str]:
    return {"X-Sandbox-Fault": fault}


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("status=503", 503, "upstream_unavailable"),
        ("status=500", 503, "upstream_unavailable"),
        ("status=400", 503, "upstream_unavailable"),
        ("malformed", 502, "upstream_bad_response"),
        ("wrong_id", 502, "upstream_identity_mismatch"),
        ("latency=20; wrong_id", 502, "upstream_identity_mismatch"),
    ],
)
async def test_a_rehearsed_fault_is_the_usual_problem_and_audited(
    sandbox: Gateway, fault: str, status: int, code: str
) -> None:
    client = await sandbox.register()
    response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse(fault))
    problem(response, status, code)
    assert "Nguyễn" not in response.text
    if status == 503:
        assert int(response.headers["retry-after"]) == (1 if fault == "status=503" else 5)
    event = (await sandbox.events())[-1]
    assert (event.action, event.outcome, event.status_code, event.reason) == (
        "citizen.read",
        "error",
        status,
        code,
    )


async def test_the_rehearsed_503_is_retried_as_a_real_one(
    sandbox: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The http backend retries a 503 twice, waiting the mock's Retry-After of 1 s; the embedded one retries and
    waits as it does: a portal rehearses the time a real outage takes too. The waits are recorded, not spent."""
    backoff = Backoff()
    monkeypatch.setattr(upstream_of(sandbox), "_sleep", backoff)
    client = await sandbox.register()
    response = await sandbox.call(
        client, VERIFY, {"personal_id": HEAD, "gender": "male"}, headers=rehearse("status=503")
    )
    problem(response, 503, "upstream_unavailable")
    assert backoff.delays == [1.0, 1.0]


async def test_a_rehearsed_404_is_not_on_record(sandbox: Gateway) -> None:
    client = await sandbox.register()
    problem(
        await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse("status=404")),
        404,
        "not_found",
    )
    problem(
        await sandbox.call(client, HOUSEHOLD, {"personal_id": HEAD}, headers=rehearse("status=404")),
        404,
        "not_found",
    )


async def test_an_answer_that_found_nobody_is_not_transformed(sandbox: Gateway) -> None:
    """The mock transforms only what found something: an unknown resident stays unknown."""
    client = await sandbox.register()
    response = await sandbox.call(
        client, LOOKUP, {"personal_id": UNKNOWN}, headers=rehearse("malformed;wrong_id")
    )
    problem(response, 404, "not_found")


async def test_a_rehearsed_slow_upstream_is_504(sandbox: Gateway) -> None:
    backend = upstream_of(sandbox)
    backend.deadline = 1.5  # the default is 5 s
    client = await sandbox.register()
    for fault in ("latency=3000", "latency=2000", "trickle"):
        response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse(fault))
        problem(response, 504, "upstream_timeout")
    response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse("latency=100"))
    assert response.status_code == 200, response.text


async def test_rehearsals_do_not_open_the_breaker(sandbox: Gateway) -> None:
    """One portal's rehearsals must not fail the other portals' calls."""
    client = await sandbox.register()
    for _ in range(6):
        response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse("status=500"))
        problem(response, 503, "upstream_unavailable")
    backend = upstream_of(sandbox)
    if isinstance(backend, HttpBackend):
        assert backend.breaker_state == "closed"
        assert backend.retries_refused == 0
    assert (await sandbox.call(client, LOOKUP, {"personal_id": HEAD})).status_code == 200


@pytest.mark.parametrize(
    "fault", ["status=200", "status=503;status=500", "latency=60001", "crash", "status=5O3"]
)
async def test_a_fault_outside_the_vocabulary_is_422(sandbox: Gateway, fault: str) -> None:
    client = await sandbox.register()
    response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse(fault))
    body = problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["header", "X-Sandbox-Fault"]
    assert body["errors"][0]["code"] == "invalid_sandbox_fault"


@pytest.mark.parametrize("fault", ["", "none", " none ; "])
async def test_no_fault_is_an_ordinary_call(sandbox: Gateway, fault: str) -> None:
    client = await sandbox.register()
    response = await sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse(fault))
    assert response.status_code == 200, response.text


async def test_without_the_sandbox_the_header_is_ignored(not_sandbox: Gateway) -> None:
    client = await not_sandbox.register()
    for fault in ("status=503", "malformed", "not even a fault"):
        response = await not_sandbox.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse(fault))
        assert response.status_code == 200, response.text


async def test_without_the_sandbox_nothing_is_forwarded(
    migrated_sqlite: Path, tmp_path: Path, mock_db: str
) -> None:
    """The http backend of a gateway without the sandbox sends no X-Mock-Fault, whatever the portal sent."""
    seen: list[httpx.Headers] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(404, json={"code": "not_found"})

    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    for sandbox_on in (False, True):
        settings = gateway_settings(
            f"sqlite:///{path}", mock_db, "http", "http://127.0.0.1:9", sandbox=sandbox_on
        )
        async with running(settings, "http") as gw:
            http = upstream_of(gw)
            assert isinstance(http, HttpBackend)
            await http.close()
            http._transport = httpx.MockTransport(upstream)  # the upstream this test plays
            await http.open()
            client = await gw.register()
            await gw.call(client, LOOKUP, {"personal_id": HEAD}, headers=rehearse("status=404;latency=5"))
    assert [headers.get("x-mock-fault") for headers in seen] == [None, "latency=5;status=404"]
    assert all(headers.get("x-sandbox-fault") is None for headers in seen)
