"""The fast path and the declared route answer every citizen case alike (``app.citizens.fast``).

Each case is sent twice on the same gateway, each time by its own client with the same grant (limits and
quotas start from nothing for both): once as a portal sends it (the fast path first), once with the fast path
switched off (the route as declared answers). Status, headers, body and the request's audit events must be
the same, except what differs between any two calls: ids, the signature over them, the time, the client.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEventRow
from app.backends.errors import (
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.citizens.dependencies import BACKEND, LIMITER
from app.citizens.errors import LimitsUnavailable
from app.citizens.fast import CitizenFastPath
from tests.harness import HCM, HEAD, NAME_D, PURPOSE, UNKNOWN, Client, Gateway, gateway_settings, running

VERIFY = "/v1/citizens/verify"
BATCH = "/v1/citizens/verify/batch"
LOOKUP = "/v1/citizens/lookup"
HOUSEHOLD = "/v1/citizens/household"
THANH = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}

Fault = Callable[[Gateway, pytest.MonkeyPatch], None]


def _raising(error: Exception) -> Callable[..., Awaitable[Any]]:
    async def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


def upstream(method: str, error: Exception) -> Fault:
    """The backend's ``method`` fails with ``error``."""

    def apply(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(gw.state[BACKEND], method, _raising(error))

    return apply


def sandbox(fault: str) -> dict[str, str]:
    """The rehearsed upstream fault ``fault`` (docs/contract.md section 17)."""
    return {"X-Sandbox-Fault": fault}


def limits_down(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gw.state[LIMITER], "admit", _raising(LimitsUnavailable()))


@dataclass(frozen=True)
class Case:
    path: str
    body: Any = None
    content: bytes | None = None
    """A raw body instead of ``body`` (malformed JSON)."""
    headers: dict[str, str] = field(default_factory=dict)
    purpose: str | None = PURPOSE
    token: str | None = "client"
    """``client``: the client's own token; None: no Authorization header; anything else: sent as is."""
    grant: dict[str, Any] = field(default_factory=dict)
    before: tuple[tuple[str, Any], ...] = ()
    """Calls the client makes first (to use up a limit or a quota)."""
    fault: Fault | None = None


CASES: dict[str, Case] = {
    # answered
    "verify-match": Case(VERIFY, THANH, headers={"X-Dossier-Id": "HS-1", "Accept-Language": "vi"}),
    "verify-mismatch": Case(VERIFY, {**THANH, "full_name": "Nguyễn Văn Thanh"}),
    "verify-unknown": Case(VERIFY, {"personal_id": UNKNOWN, "gender": "male"}),
    "verify-no-details": Case(VERIFY, THANH, grant={"verify_details": False}),
    "batch": Case(BATCH, {"items": [THANH, {"personal_id": "123"}, {"personal_id": NAME_D, "gender": "x"}]}),
    "lookup": Case(LOOKUP, {"personal_id": HEAD, "fields": ["full_name", "date_of_birth"]}),
    "lookup-all-granted": Case(LOOKUP, {"personal_id": HEAD}, grant={"fields": ["full_name", "gender"]}),
    "household": Case(HOUSEHOLD, {"personal_id": HEAD}),
    # refused
    "lookup-unknown": Case(LOOKUP, {"personal_id": UNKNOWN}),
    "lookup-out-of-province": Case(LOOKUP, {"personal_id": HCM}),
    "household-out-of-province": Case(HOUSEHOLD, {"personal_id": HCM}),
    "purpose-required": Case(VERIFY, THANH, purpose=None),
    "purpose-not-granted": Case(LOOKUP, {"personal_id": HEAD}, purpose="1.000000.000.00.00.H99"),
    "no-token": Case(VERIFY, THANH, token=None),
    "bad-token": Case(VERIFY, THANH, token="Bearer nonsense"),
    "not-bearer": Case(VERIFY, THANH, token="Basic bm9uc2Vuc2U="),
    "insufficient-scope": Case(LOOKUP, {"personal_id": HEAD}, grant={"scopes": ["citizen.verify"]}),
    "field-not-allowed": Case(
        LOOKUP, {"personal_id": HEAD, "fields": ["ethnicity"]}, grant={"fields": ["gender"]}
    ),
    "rate-limited": Case(VERIFY, THANH, grant={"rate_limit_per_minute": 1}, before=((VERIFY, THANH),)),
    "quota-exceeded": Case(
        LOOKUP,
        {"personal_id": NAME_D},
        grant={"distinct_subjects_per_day": 1},
        before=((LOOKUP, {"personal_id": HEAD}),),
    ),
    "batch-quota": Case(
        BATCH,
        {"items": [THANH, {"personal_id": NAME_D, "gender": "male"}]},
        grant={"distinct_subjects_per_day": 1},
    ),
    "batch-too-large": Case(BATCH, {"items": [{"personal_id": HEAD, "gender": "male"}] * 101}),
    "invalid-personal-id": Case(VERIFY, {"personal_id": "999999999999", "gender": "male"}),
    # not valid
    "unknown-member": Case(VERIFY, {**THANH, "unknown": 1}),
    "no-personal-id": Case(LOOKUP, {"fields": ["full_name"]}),
    "wrong-type": Case(HOUSEHOLD, {"personal_id": 52068000108}),
    "not-an-object": Case(VERIFY, [THANH]),
    "empty-body": Case(VERIFY, content=b""),
    "malformed-json": Case(VERIFY, content=b'{"personal_id": '),
    "not-utf8": Case(VERIFY, content=b'{"personal_id": "\xff"}'),
    "nan": Case(VERIFY, content=b'{"personal_id": "052068000108", "gender": "male", "x": NaN}'),
    "form-body": Case(
        VERIFY,
        content=b"personal_id=052068000108",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "purpose-too-long": Case(VERIFY, THANH, purpose="P" * 65),
    "dossier-too-long": Case(VERIFY, THANH, headers={"X-Dossier-Id": "D" * 65}),
    "malformed-json-without-token": Case(VERIFY, content=b"{", token=None),
    # upstream and dependency faults
    "verify-upstream-timeout": Case(VERIFY, THANH, fault=upstream("get", UpstreamTimeout())),
    "lookup-upstream-unavailable": Case(
        LOOKUP, {"personal_id": HEAD}, fault=upstream("get", UpstreamUnavailable())
    ),
    "lookup-upstream-bad": Case(LOOKUP, {"personal_id": HEAD}, fault=upstream("get", UpstreamBadResponse())),
    "household-identity-mismatch": Case(
        HOUSEHOLD, {"personal_id": HEAD}, fault=upstream("household", UpstreamIdentityMismatch())
    ),
    "batch-upstream-timeout": Case(BATCH, {"items": [THANH]}, fault=upstream("get_many", UpstreamTimeout())),
    "limits-unavailable": Case(VERIFY, THANH, fault=limits_down),
    # the end user (X-End-User; a grant with require_end_user)
    "end-user": Case(VERIFY, THANH, headers={"X-End-User": "can.bo:lan@hue.gov.vn"}),
    "end-user-required-given": Case(
        LOOKUP, {"personal_id": HEAD}, headers={"X-End-User": "lan"}, grant={"require_end_user": True}
    ),
    "end-user-malformed": Case(VERIFY, THANH, headers={"X-End-User": "Lan Nguyen"}),
    "end-user-too-long": Case(LOOKUP, {"personal_id": HEAD}, headers={"X-End-User": "u" * 129}),
    "end-user-empty": Case(HOUSEHOLD, {"personal_id": HEAD}, headers={"X-End-User": ""}),
    "end-user-malformed-required": Case(
        VERIFY, THANH, headers={"X-End-User": "a/b"}, grant={"require_end_user": True}
    ),
    "end-user-missing": Case(
        LOOKUP, {"personal_id": HEAD, "fields": ["full_name"]}, grant={"require_end_user": True}
    ),
    "end-user-missing-verify": Case(VERIFY, THANH, grant={"require_end_user": True}),
    "end-user-missing-batch": Case(
        BATCH, {"items": [THANH, {"personal_id": NAME_D, "gender": "male"}]}, grant={"require_end_user": True}
    ),
    "end-user-missing-household": Case(HOUSEHOLD, {"personal_id": HEAD}, grant={"require_end_user": True}),
    "end-user-missing-purpose-first": Case(VERIFY, THANH, purpose=None, grant={"require_end_user": True}),
    # rehearsed upstream faults (the gateway runs with DANCU_SANDBOX=true)
    "sandbox-verify-503": Case(VERIFY, THANH, headers=sandbox("status=503")),
    "sandbox-batch-500": Case(BATCH, {"items": [THANH]}, headers=sandbox("status=500")),
    "sandbox-lookup-malformed": Case(LOOKUP, {"personal_id": HEAD}, headers=sandbox("malformed")),
    "sandbox-lookup-404": Case(LOOKUP, {"personal_id": HEAD}, headers=sandbox("status=404")),
    "sandbox-household-wrong-id": Case(
        HOUSEHOLD, {"personal_id": HEAD}, headers=sandbox("latency=5;wrong_id")
    ),
    "sandbox-none": Case(VERIFY, THANH, headers=sandbox("none")),
    "sandbox-invalid": Case(VERIFY, THANH, headers=sandbox("status=200")),
    "sandbox-invalid-without-token": Case(VERIFY, THANH, token=None, headers=sandbox("crash")),
}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The gateway's tables on SQLite (a copy of a migrated file), then on PostgreSQL (a fresh database)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("migrated_postgres")
        return url
    path = tmp_path / "dancu.db"
    shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
    return f"sqlite:///{path}"


@pytest.fixture
async def gw(database_url: str, mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway on the embedded backend, a sandbox (without X-Sandbox-Fault it answers as any gateway)."""
    settings = gateway_settings(database_url, mock_db, "embedded", None, sandbox=True)
    async with running(settings, "embedded") as gateway:
        yield gateway


@contextmanager
def declared_route_only() -> Iterator[None]:
    """Every citizen request goes to routing, as if no route had a fast path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CitizenFastPath, "fast_for", lambda _self, _scope: None)
        yield


_VARYING = re.compile(r'"(verification_id|attestation|retrieved_at|request_id)": ?"[^"]*"')


async def _send(gw: Gateway, case: Case, client: Client, request_id: str) -> tuple[int, dict[str, str], str]:
    headers = {"X-Request-Id": request_id, **case.headers}
    if case.token == "client":
        headers["Authorization"] = f"Bearer {client.token}"
    elif case.token is not None:
        headers["Authorization"] = case.token
    if case.purpose is not None:
        headers["X-Purpose"] = case.purpose
    if case.content is not None:
        headers.setdefault("Content-Type", "application/json")
        response = await gw.http.post(case.path, content=case.content, headers=headers)
    else:
        response = await gw.http.post(case.path, json=case.body, headers=headers)
    kept = {k: v for k, v in response.headers.items() if k not in ("content-length", "x-request-id")}
    if "retry-after" in kept:  # the seconds until a window ends: the two calls may be a second apart
        assert 0 < int(kept["retry-after"]) <= 86_400
        kept["retry-after"] = "…"
    return response.status_code, kept, _VARYING.sub(r'"\1": "…"', response.text)


async def _events(gw: Gateway, request_id: str, client: Client) -> list[dict[str, Any]]:
    async with gw.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq)
        )
        mine = {client.client_id: "client"}
        return [
            {
                "client_id": mine.get(row.client_id or "", row.client_id),
                "actor": mine.get(row.actor, row.actor),
                **{
                    name: getattr(row, name)
                    for name in (
                        "action",
                        "purpose",
                        "dossier_id",
                        "subject_ref",
                        "fields",
                        "sensitive_fields",
                        "outcome",
                        "status_code",
                        "reason",
                        "detail",
                        "end_user",
                        "client_ip",
                    )
                },
            }
            for row in rows.all()
        ]


async def _through(
    gw: Gateway, case: Case, name: str, side: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, str], str, list[dict[str, Any]]]:
    client = await gw.register(**case.grant)
    for path, body in case.before:
        await gw.call(client, path, body)
    request_id = f"eq-{name}-{side}"
    with monkeypatch.context() as patch:
        if case.fault is not None:
            case.fault(gw, patch)
        status, headers, body = await _send(gw, case, client, request_id)
    return status, headers, body, await _events(gw, request_id, client)


@pytest.mark.parametrize("name", list(CASES))
async def test_the_fast_path_answers_as_the_declared_route(
    gw: Gateway, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    fast = await _through(gw, case, name, "fast", monkeypatch)
    with declared_route_only():
        declared = await _through(gw, case, name, "declared", monkeypatch)
    assert fast[0] == declared[0], (fast[2], declared[2])
    assert fast[1] == declared[1]
    assert fast[2] == declared[2]
    assert fast[3] == declared[3]
