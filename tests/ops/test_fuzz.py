"""Schemathesis over every operation of the published contract (``openapi/gateway.json``), once per role.

Cases are drawn from the document with a fixed seed (``derandomize``), sent to the in-process gateway through
the test's own event loop (``httpx.ASGITransport``), and judged by schemathesis' checks: no 5xx, a documented
status code, a documented content type, a body that fits the documented schema. Without a token every
operation but the public ones must answer 401.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import PURPOSE, Gateway

pytestmark = pytest.mark.slow

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "gateway.json"
BASE_URL = "http://testserver"
EXAMPLES = 20
"""Cases per operation and generation mode: enough to reach the error paths, small enough for ~a minute."""
PUBLIC = ("/healthz", "/readyz", "/metrics", "/oauth2/token", "/.well-known/")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SENDABLE = ("method", "url", "headers", "params", "data", "json", "files")


def contract() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(json.loads(CONTRACT.read_text(encoding="utf-8")))


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


def draw(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> list[Case[Any]]:
    """Up to ``EXAMPLES`` cases of ``operation``, the same ones on every run."""
    drawn: list[Case[Any]] = []

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def collect(case: Case[Any]) -> None:
        drawn.append(case)

    try:
        collect()
    except hypothesis.errors.Unsatisfiable:
        # No parameters and no body: there is nothing a negative case could get wrong.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return drawn


async def send(gw: Gateway, case: Case[Any], headers: Mapping[str, str]) -> Any:
    """Send ``case`` to the in-process gateway exactly as schemathesis would put it on the wire."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=dict(headers))
    if "Authorization" not in headers:
        kwargs["headers"].pop("Authorization", None)
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in SENDABLE}).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    assert body is None or isinstance(body, bytes)
    headers_sent = {
        k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in prepared.headers.items()
    }
    return await gw.http.request(prepared.method, prepared.url, headers=headers_sent, content=body)


async def fuzz(
    gw: Gateway,
    headers: Mapping[str, str],
    *,
    extra: Callable[[Case[Any], Any], None] | None = None,
) -> int:
    """Every operation, positive and negative cases; collects all failures and reports them together."""
    failures: list[str] = []
    sent = 0
    for result in contract().get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for case in draw(operation, mode):
                response = await send(gw, case, headers)
                sent += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                    if extra is not None:
                        extra(case, response)
                except schemathesis.errors.FailureGroup as group:
                    found = "; ".join(f"{f.title}: {f.message}" for f in group.exceptions)
                    failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {found}")
                except AssertionError as err:
                    failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {err}")
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures)
    return sent


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_portal_role(sqlite_gateway: Gateway) -> None:
    portal = await sqlite_gateway.register()
    assert await fuzz(sqlite_gateway, {**bearer(portal.token), "X-Purpose": PURPOSE}) > 0


async def test_admin_role(sqlite_gateway: Gateway) -> None:
    admin = await sqlite_gateway.register(
        scopes=("admin",), fields=(), provinces=(), purposes=(), verify_details=False
    )
    assert await fuzz(sqlite_gateway, bearer(admin.token)) > 0


async def test_auditor_role(sqlite_gateway: Gateway) -> None:
    auditor = await sqlite_gateway.register(
        scopes=("audit.read",), fields=(), provinces=(), purposes=(), verify_details=False
    )
    assert await fuzz(sqlite_gateway, bearer(auditor.token)) > 0


async def test_no_token(sqlite_gateway: Gateway) -> None:
    def refused_unless_public(case: Case[Any], response: Any) -> None:
        if not is_public(case.operation.path):
            assert response.status_code == 401, f"{case.operation.label} answered {response.status_code}"
            assert response.headers["www-authenticate"].startswith("Bearer")

    assert await fuzz(sqlite_gateway, {}, extra=refused_unless_public) > 0
