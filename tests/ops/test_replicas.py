"""Two replicas of the gateway behind one database and one Redis behave as one gateway.

Two real ``dancu serve`` processes on free ports share a fresh PostgreSQL database, one Redis key prefix, the
key settings and the issuer (docs/contract.md, Settings: "Replicas share the database, Redis, the key settings
and the issuer"). The client is registered with the CLI, as an operator does. Then: the rate limit holds
across both; a suspension made through one replica stops the token at the other (docs/contract.md, Access
tokens: within 1 s; as for every propagation between processes, the test polls for up to 10 s and asserts the
outcome, not the delay); and the audit chain both of them wrote stays one linear chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import (
    ENCRYPTION_KEY,
    HEAD,
    ISSUER,
    PURPOSE,
    SUBJECT_KEYS,
    VENV_BIN,
    fresh_postgres,
    seeded_mock,
    served,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RATE_LIMIT = 10
VERIFY = {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}
POLL_FOR = 10.0


@pytest.fixture(scope="module")
def replica_mock_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "replicas-mock", 50)


@pytest.fixture
def shared_database(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as url:
        yield url


@pytest.fixture
def environment(
    shared_database: str, replica_mock_db: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> dict[str, str]:
    """What every process of the deployment (both replicas and the operator's CLI) is started with."""
    key_file = tmp_path / "keys" / "checkpoint.pem"
    key_file.parent.mkdir(mode=0o700)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DANCU_", "MOCK_CSDLQG_")) or name.startswith("DANCU_TEST_")
    }
    return {
        **inherited,
        "PATH": f"{VENV_BIN}{os.pathsep}{inherited.get('PATH', '')}",
        "DANCU_DATABASE_URL": shared_database,
        "DANCU_BACKEND": "embedded",
        "MOCK_CSDLQG_DATABASE_URL": replica_mock_db,
        "DANCU_REDIS_URL": redis_url,
        "DANCU_REDIS_KEY_PREFIX": f"{redis_prefix}replicas:{os.urandom(4).hex()}:",
        "DANCU_ISSUER": ISSUER,
        "DANCU_KEYS__ENCRYPTION_KEY": ENCRYPTION_KEY,
        "DANCU_AUDIT__SUBJECT_KEYS": SUBJECT_KEYS,
        "DANCU_AUDIT__CHECKPOINT_KEY_FILE": str(key_file),
        "DANCU_AUDIT__CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    }


def dancu(environment: Mapping[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One `dancu` command, bounded in time."""
    return subprocess.run(
        [str(VENV_BIN / "dancu"), *args],
        env=dict(environment),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,  # generous: a fresh interpreter importing the gateway, on a CI machine that may be loaded
        check=False,
    )


def created(environment: Mapping[str, str], cwd: Path, *args: str) -> dict[str, str]:
    done = dancu(environment, cwd, *args, "--json")
    assert done.returncode == 0, done.stderr
    value: dict[str, str] = json.loads(done.stdout)
    return value


def token(http: httpx.Client, client: Mapping[str, str]) -> str:
    response = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def verify(http: httpx.Client, access_token: str) -> httpx.Response:
    return http.post(
        "/v1/citizens/verify",
        json=VERIFY,
        headers={"Authorization": f"Bearer {access_token}", "X-Purpose": PURPOSE},
    )


async def audit_seqs(database_url: str) -> list[int]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch("SELECT seq FROM audit_events ORDER BY seq")
    finally:
        await connection.close()
    return [int(row["seq"]) for row in rows]


def test_two_replicas_share_limits_status_and_one_audit_chain(
    environment: dict[str, str], shared_database: str, tmp_path: Path
) -> None:
    check = dancu(
        environment,
        tmp_path,
        "purposes",
        "add",
        "--code",
        PURPOSE,
        "--title",
        "Đăng ký thường trú",
        "--legal-basis",
        "Luật Cư trú 2020, Điều 20",
    )
    assert check.returncode == 0, check.stderr
    portal = created(
        environment,
        tmp_path,
        "clients",
        "create",
        "--name",
        "Cổng DVC tỉnh Gia Lai",
        "--scopes",
        "citizen.verify",
        "--provinces",
        "*",
        "--purposes",
        PURPOSE,
        "--rate-limit",
        str(RATE_LIMIT),
    )
    admin = created(environment, tmp_path, "bootstrap-admin", "--name", "Quản trị viên")

    with ExitStack() as stack:
        url_a = stack.enter_context(served(environment, tmp_path))
        url_b = stack.enter_context(served(environment, tmp_path))
        a = stack.enter_context(httpx.Client(base_url=url_a, timeout=10))
        b = stack.enter_context(httpx.Client(base_url=url_b, timeout=10))

        # (a) One rate limit across both replicas: at most RATE_LIMIT answers in a minute, the rest 429.
        portal_token = token(a, portal)
        answers = [verify(a if i % 2 == 0 else b, portal_token) for i in range(RATE_LIMIT * 2 + 4)]
        statuses = [r.status_code for r in answers]
        accepted = [s for s in statuses if 200 <= s < 300]
        refused = [r for r in answers if r.status_code == 429]
        assert 0 < len(accepted) <= RATE_LIMIT, statuses
        assert len(accepted) + len(refused) == len(answers), statuses
        assert {r.json()["code"] for r in refused} == {"rate_limited"}
        assert all(r.headers.get("retry-after") for r in refused)

        # (b) Suspended through replica A's admin API: replica B refuses the existing token.
        admin_headers = {"Authorization": f"Bearer {token(a, admin)}"}
        suspended = a.patch(
            f"/v1/admin/clients/{portal['client_id']}", json={"status": "suspended"}, headers=admin_headers
        )
        started = time.monotonic()
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["status"] == "suspended"
        refused_at: float | None = None
        last: httpx.Response | None = None
        while time.monotonic() - started < POLL_FOR:
            last = verify(b, portal_token)
            if last.status_code == 401:
                refused_at = time.monotonic() - started
                break
            time.sleep(0.05)
        assert last is not None
        assert refused_at is not None, f"replica B still answers {last.status_code} after {POLL_FOR} s"
        print(f"suspension reached replica B after {refused_at * 1000:.0f} ms")
        assert last.json()["code"] == "invalid_token"
        assert last.headers["www-authenticate"].startswith("Bearer")
        refused_token = b.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(portal["client_id"], portal["client_secret"]),
        )
        assert refused_token.status_code == 401
        assert refused_token.json()["error"] == "invalid_client"

    # (c) Both replicas (and the CLI) wrote one chain: contiguous seq, and `dancu audit verify` passes.
    seqs = asyncio.run(audit_seqs(shared_database))
    assert len(seqs) > len(answers)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    verified = dancu(environment, tmp_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
