"""``GET /metrics``: what it counts, how it labels, and who may read it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.citizens.errors import LimitsUnavailable
from app.citizens.limits import MemoryLimiter
from app.health.metrics import GatewayMetrics, InstrumentedLimiter
from mock_csdlqg.personas import personas
from tests.harness import HCM, HEAD, UNKNOWN, Client, Gateway, gateway_settings, running


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` in a Prometheus text document, with its labels."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(v for found, v in samples(text, name) if labels.items() <= found.items())


async def scrape(gw: Gateway, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await gw.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


async def admin(gw: Gateway) -> Client:
    return await gw.register(scopes=("admin",), fields=(), provinces=(), purposes=(), verify_details=False)


async def test_requests_are_counted_by_route_template_method_status_and_client(
    sqlite_gateway: Gateway,
) -> None:
    gw = sqlite_gateway
    portal = await gw.register()
    operator = await admin(gw)

    assert (await gw.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD})).status_code == 200
    assert (await gw.call(portal, "/v1/citizens/lookup", {"personal_id": UNKNOWN})).status_code == 404
    shown = await gw.http.get(
        f"/v1/admin/clients/{portal.client_id}", headers={"Authorization": f"Bearer {operator.token}"}
    )
    assert shown.status_code == 200
    assert (await gw.http.get("/v1/nowhere/052068000108")).status_code == 404
    assert (await gw.http.post("/v1/citizens/lookup", json={"personal_id": HEAD})).status_code == 401
    text = await scrape(gw)

    requests = "dancu_http_requests_total"
    lookup = {"route": "/v1/citizens/lookup", "method": "POST", "client_id": portal.client_id}
    assert value(text, requests, **lookup, status="200") == 1
    assert value(text, requests, **lookup, status="404") == 1
    assert value(text, requests, route="/v1/citizens/lookup", status="401", client_id="anonymous") == 1
    assert (
        value(
            text,
            requests,
            route="/v1/admin/clients/{client_id}",
            method="GET",
            status="200",
            client_id=operator.client_id,
        )
        == 1
    )
    assert value(text, requests, route="unmatched", status="404", client_id="anonymous") == 1
    routes = {labels["route"] for labels, _ in samples(text, requests)}
    assert not any(portal.client_id in route or "052068000108" in route for route in routes)
    assert value(text, "dancu_http_request_duration_seconds_count", route="/v1/citizens/lookup") == 3

    # The counts move with the next requests; the scrape itself is counted too.
    assert (await gw.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD})).status_code == 200
    again = await scrape(gw)
    assert value(again, requests, **lookup, status="200") == 2
    assert value(again, requests, route="/metrics", status="200", client_id="anonymous") == 1


async def test_upstream_and_audit_writes_are_timed(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    portal = await gw.register()
    before = await scrape(gw)

    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD})
    await gw.call(portal, "/v1/citizens/household", {"personal_id": HEAD})
    after = await scrape(gw)

    upstream = "dancu_upstream_call_duration_seconds_count"
    assert value(after, upstream, operation="get", outcome="ok") >= 2
    assert value(after, upstream, operation="household", outcome="ok") == 1
    audit = "dancu_audit_write_duration_seconds_count"
    assert value(after, audit, outcome="ok") - value(before, audit, outcome="ok") == 2
    assert value(after, "dancu_audit_events_written_total") > value(
        before, "dancu_audit_events_written_total"
    )
    assert value(after, "dancu_audit_queue_depth") == 0
    # The embedded backend has no circuit breaker: no breaker series at all.
    assert samples(after, "dancu_upstream_breaker_state") == []


async def test_the_breaker_state_of_the_http_backend_is_exported(gateway: Gateway) -> None:
    text = await scrape(gateway)

    states = {labels["state"]: v for labels, v in samples(text, "dancu_upstream_breaker_state")}
    if gateway.backend == "http":
        assert states == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    else:
        assert states == {}


async def test_rate_limit_refusals_are_counted_by_code(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    text = await scrape(gw)
    refusals = {labels["code"]: v for labels, v in samples(text, "dancu_rate_limit_refusals_total")}
    assert refusals == {
        "rate_limited": 0,
        "subject_quota_exceeded": 0,
        "verification_attempts_exceeded": 0,
        "limits_unavailable": 0,
    }

    slow = await gw.register(rate_limit_per_minute=1)
    assert (await gw.call(slow, "/v1/citizens/lookup", {"personal_id": HEAD})).status_code == 200
    assert (await gw.call(slow, "/v1/citizens/lookup", {"personal_id": HEAD})).status_code == 429
    narrow = await gw.register(distinct_subjects_per_day=1)
    assert (await gw.call(narrow, "/v1/citizens/lookup", {"personal_id": HEAD})).status_code == 200
    assert (await gw.call(narrow, "/v1/citizens/lookup", {"personal_id": HCM})).status_code == 429
    text = await scrape(gw)

    assert value(text, "dancu_rate_limit_refusals_total", code="rate_limited") == 1
    assert value(text, "dancu_rate_limit_refusals_total", code="subject_quota_exceeded") == 1


async def test_an_unreachable_limits_store_is_counted() -> None:
    class Down(MemoryLimiter):
        async def hit_request(self, client_id: str, per_minute: int, hits: int = 1) -> None:
            raise LimitsUnavailable()

    metrics = GatewayMetrics()
    limiter = InstrumentedLimiter(Down(), metrics)

    with pytest.raises(LimitsUnavailable):
        await limiter.hit_request("c", 10)

    text = metrics.render().decode()
    assert value(text, "dancu_rate_limit_refusals_total", code="limits_unavailable") == 1


def test_the_audit_queue_depth_comes_from_a_callback() -> None:
    metrics = GatewayMetrics()
    metrics.watch_audit_queue(lambda: 7)

    assert value(metrics.render().decode(), "dancu_audit_queue_depth") == 7


def test_each_app_has_its_own_registry() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.refused("rate_limited")

    assert value(first.render().decode(), "dancu_rate_limit_refusals_total", code="rate_limited") == 1
    assert value(second.render().decode(), "dancu_rate_limit_refusals_total", code="rate_limited") == 0


async def test_an_oversized_body_is_counted_with_its_413(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    response = await gw.http.post(
        "/v1/citizens/lookup", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413

    text = await scrape(gw)
    assert value(text, "dancu_http_requests_total", status="413", client_id="anonymous") == 1


async def test_no_personal_data_reaches_the_metrics(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    portal = await gw.register(provinces=("*",))
    ids = [p.personal_id for p in personas()]
    names: list[str] = []
    for pid in ids:
        answer = await gw.call(portal, "/v1/citizens/lookup", {"personal_id": pid, "fields": ["full_name"]})
        if answer.status_code == 200:
            names.append(answer.json()["full_name"])
        await gw.call(portal, "/v1/citizens/household", {"personal_id": pid})
        await gw.call(portal, "/v1/citizens/verify", {"personal_id": pid, "full_name": "Nguyễn Văn A"})
    await gw.call(portal, "/v1/citizens/lookup", {"personal_id": "123"})
    assert names

    text = await scrape(gw)
    for secret in [*ids, *names]:
        assert secret not in text


# --- DANCU_METRICS_TOKEN_REQUIRED -------------------------------------------------------------------


@pytest.fixture
async def guarded(migrated_sqlite: Path, tmp_path: Path, mock_db: str) -> AsyncIterator[Gateway]:
    """The gateway with ``DANCU_METRICS_TOKEN_REQUIRED=true``."""
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    settings = gateway_settings(f"sqlite:///{path}", mock_db, "embedded", None, metrics_token_required=True)
    async with running(settings, "embedded") as gw:
        yield gw


async def test_metrics_are_open_by_default(sqlite_gateway: Gateway) -> None:
    portal = await sqlite_gateway.register()

    for headers in ({}, {"Authorization": f"Bearer {portal.token}"}, {"Authorization": "Bearer nonsense"}):
        assert (await sqlite_gateway.http.get("/metrics", headers=headers)).status_code == 200


async def test_a_required_token_must_carry_metrics_read_admin_or_audit_read(guarded: Gateway) -> None:
    gw = guarded
    portal = await gw.register()
    operator = await admin(gw)
    auditor = await gw.register(
        scopes=("audit.read",), fields=(), provinces=(), purposes=(), verify_details=False
    )

    missing = await gw.http.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "invalid_token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = await gw.http.get("/metrics", headers={"Authorization": "Bearer not.a.token"})
    assert (forged.status_code, forged.json()["code"]) == (401, "invalid_token")
    citizen = await gw.http.get("/metrics", headers={"Authorization": f"Bearer {portal.token}"})
    assert (citizen.status_code, citizen.json()["code"]) == (403, "insufficient_scope")

    text = await scrape(gw, operator.token)
    await scrape(gw, auditor.token)
    scraper = await gw.register(
        scopes=("metrics.read",), fields=(), provinces=(), purposes=(), verify_details=False
    )
    await scrape(gw, scraper.token)  # least privilege: a token that can do nothing else
    refused = await gw.http.post(
        "/v1/audit/events/search", json={}, headers={"Authorization": f"Bearer {scraper.token}"}
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert (
        value(
            text,
            "dancu_http_requests_total",
            route="/metrics",
            status="403",
            client_id="anonymous",
        )
        == 1
    )


async def test_the_metrics_route_is_documented(sqlite_gateway: Gateway) -> None:
    spec = (await sqlite_gateway.http.get("/openapi.json")).json()
    operation = spec["paths"]["/metrics"]["get"]

    assert "text/plain; version=0.0.4; charset=utf-8" in operation["responses"]["200"]["content"]
    assert {"401", "403"} <= set(operation["responses"])
    # Open by default, a token only with the setting: both are documented.
    # Any one of the scopes will do: each is its own requirement (OpenAPI reads scopes in one as "all").
    assert operation["security"] == [
        {"OAuth2": ["metrics.read"]},
        {"OAuth2": ["admin"]},
        {"OAuth2": ["audit.read"]},
        {},
    ]


def test_a_histogram_bucket_label_is_not_a_path() -> None:
    # The request histogram carries route and method only: no status or client label multiplies it.
    metrics = GatewayMetrics()
    scope = {"type": "http", "method": "BREW", "path": "/x", "state": {}}
    metrics.observe_request(scope, 404, 0.01)

    text = metrics.render().decode()
    assert value(text, "dancu_http_requests_total", route="unmatched", method="other", status="404") == 1
    labels = {tuple(sorted(found)) for found, _ in samples(text, "dancu_http_request_duration_seconds_count")}
    assert labels == {("method", "route")}
