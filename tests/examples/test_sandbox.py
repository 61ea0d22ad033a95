"""Portals rehearse upstream failures against a sandbox gateway (DANCU_SANDBOX=true, docs/contract.md section 17):
each example sends `X-Sandbox-Fault: status=503` on one verification (DANCU_SANDBOX_FAULT) and must handle the
503 as section 8 of docs/integration.md says: retried while `Retry-After` is short enough, then reported with its
code, the rest of its run unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.examples.conftest import (
    PURPOSE,
    Language,
    Portal,
    language_params,
    require_runtime,
    run_example,
    served_portal,
)

pytestmark = pytest.mark.skipif(
    "sandbox" not in Settings.model_fields, reason="the gateway has no sandbox setting (DANCU_SANDBOX) yet"
)
MAX_WAIT_S = 10  # the examples' own limit (examples/README.md)


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A sandbox gateway of its own for each run: a rehearsed failure must not reach another test's answers."""
    with served_portal(tmp_path_factory, "sandbox", DANCU_SANDBOX="true") as served_one:
        yield served_one


def rehearsed(portal: Portal, fault: str) -> httpx.Response:
    """What the sandbox answers a verification with ``fault``, asked directly."""
    with httpx.Client(base_url=portal.url, timeout=30) as http:
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(portal.client_id, portal.client_secret),
        ).json()["access_token"]
        return http.post(
            "/v1/citizens/verify",
            json={"personal_id": "052068000108", "gender": "male"},
            headers={"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE, "X-Sandbox-Fault": fault},
        )


@pytest.mark.slow
@pytest.mark.parametrize("language", language_params())
def test_the_example_rehearses_an_upstream_failure(
    language: Language, sandbox: Portal, tmp_path: Path
) -> None:
    require_runtime(language)
    answer = rehearsed(sandbox, "status=503")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    retry_after = int(answer.headers["retry-after"])

    run = run_example(language, sandbox.environment(DANCU_SANDBOX_FAULT="status=503"), tmp_path)

    assert run.returncode == 0, "\n".join([*run.lines, run.stderr[-3000:]])
    assert run.lines[-1] == "done"
    *_, last = [run.fields(line) for line in run.starting("problem: ")]
    assert (last["status"], last["code"]) == ("503", answer.json()["code"])
    waits = retry_after <= MAX_WAIT_S
    assert last["retried"] == ("2" if waits else "0")
    assert len(run.starting("retry: status=503 ")) == (2 if waits else 0)
    # Only the rehearsed call failed: everything before it was answered as usual.
    assert [run.fields(line)["match"] for line in run.starting("verify: ")] == ["true", "true"]
