"""``DANCU_PROFILE=prod``: unsafe settings stop ``dancu serve`` before it binds, each problem named, no value
printed; the upstream must be reached over TLS unless it is on the same machine."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import ProductionSettingsError, Settings
from app.main import create_app
from tests.harness import free_port

DANCU = Path(sys.executable).with_name("dancu")

SECRETS = {
    "DANCU_KEYS__ENCRYPTION_KEY": "placeholder-fernet-QX7Z",
    "DANCU_AUDIT__SUBJECT_KEYS": "k1:" + base64.b64encode(b"short-key-QX7Z").decode(),
    "DANCU_BACKEND_API_KEY": "changeme-QX7Z",
}
UNSAFE = {
    "DANCU_PROFILE": "prod",
    "DANCU_DATABASE_URL": "sqlite:///./var/dancu.db",
    "DANCU_BACKEND": "embedded",
    "DANCU_BACKEND_URL": "http://csdlqg.example.gov.vn:8100",
    "DANCU_AUDIT__CHECKPOINT_KEY_FILE": "./var/keys/absent.pem",
    **SECRETS,
}
PROBLEMS = (
    "DANCU_DATABASE_URL",
    "DANCU_BACKEND is",
    "DANCU_BACKEND_URL",
    "DANCU_KEYS__ENCRYPTION_KEY",
    "DANCU_AUDIT__SUBJECT_KEYS",
    "DANCU_AUDIT__CHECKPOINT_KEY_FILE",
    "DANCU_BACKEND_API_KEY",
)


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment without any gateway or mock setting, plus ``values``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith("DANCU_") or name.startswith("MOCK_CSDLQG_"))
    }
    return {**env, **values}


def test_serve_in_prod_with_unsafe_settings_exits_naming_each_problem(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [str(DANCU), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_environment(**UNSAFE),
        capture_output=True,
        text=True,
        timeout=300,  # a server that bound would never exit: the timeout fails the test (generous: CI may be loaded)
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    problems = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("- ")]
    for name in PROBLEMS:
        assert sum(line.startswith(f"- {name}") for line in problems) == 1, (name, problems)
    assert len(problems) == len(PROBLEMS)
    for value in SECRETS.values():
        assert value not in output
        assert value.split(":")[-1] not in output
    assert "QX7Z" not in output
    assert not (tmp_path / "var").exists()  # nothing generated, nothing migrated


@pytest.fixture
def prod(tmp_path: Path) -> dict[str, Any]:
    """Settings the prod profile accepts."""
    key_file = tmp_path / "checkpoint.pem"
    key_file.write_text("not parsed by the settings check\n")
    return {
        "profile": "prod",
        "database_url": "postgresql://dancu:pw@db.internal/dancu",
        "backend": "http",
        "backend_url": "https://csdlqg.example.gov.vn",
        "keys": {"encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode()},
        "audit": {
            "subject_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
            "checkpoint_key_file": key_file,
        },
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://csdlqg.example.gov.vn",
        "https://10.0.0.5:8443/base",
        "http://127.0.0.1:8100",
        "http://127.8.9.10:8100",
        "http://localhost:8100",
        "http://[::1]:8100",
    ],
)
def test_prod_takes_https_or_a_loopback_upstream(prod: dict[str, Any], url: str) -> None:
    Settings(_env_file=None, **{**prod, "backend_url": url}).check_production()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://csdlqg.example.gov.vn", "plain http://"),
        ("http://10.0.0.5:8100", "plain http://"),
        ("http://0.0.0.0:8100", "plain http://"),
        ("ftp://csdlqg.example.gov.vn", "not an http(s) URL"),
        ("csdlqg.example.gov.vn", "not an http(s) URL"),
        ("https://", "not an http(s) URL"),
    ],
)
def test_prod_refuses_plain_http_to_another_machine(prod: dict[str, Any], url: str, problem: str) -> None:
    with pytest.raises(ProductionSettingsError) as caught:
        Settings(_env_file=None, **{**prod, "backend_url": url}).check_production()

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("DANCU_BACKEND_URL")
    assert problem in caught.value.problems[0]
    assert "example" not in str(caught.value)  # the URL itself is not repeated (it may hold credentials)


def test_dev_takes_any_upstream_url() -> None:
    Settings(_env_file=None, backend_url="http://csdlqg.example.gov.vn").check_production()


async def test_prod_serves_no_docs_page_schema_or_redirect(prod: dict[str, Any]) -> None:
    app = create_app(Settings(_env_file=None, **prod))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        statuses = [
            (await client.get(path)).status_code
            for path in ("/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")
        ]

    assert statuses == [404, 404, 404, 404]
