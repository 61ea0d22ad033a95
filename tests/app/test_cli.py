from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import PROJECT_ROOT, cli, openapi_json
from app.config import Settings
from app.logs import log_config
from app.main import create_app

runner = CliRunner()


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records what `dancu serve` would start instead of starting it."""
    calls: list[dict[str, Any]] = []

    def run(app: str, **options: Any) -> None:
        calls.append({"app": app, **options, "issuer": os.environ.get("DANCU_ISSUER")})

    monkeypatch.setattr("uvicorn.run", run)
    monkeypatch.delenv("DANCU_ISSUER", raising=False)  # restored afterwards: serve sets it
    return calls


def test_serve_defaults_to_loopback_and_derives_the_issuer(uvicorn_calls: list[dict[str, Any]]) -> None:
    result = runner.invoke(cli, ["serve"])

    assert result.exit_code == 0, result.output
    assert uvicorn_calls == [
        {
            "app": "app.main:app",
            "host": "127.0.0.1",
            "port": 8000,
            "workers": 1,
            "server_header": False,
            "http": "app.server:GatewayHttpProtocol",
            "log_config": log_config("info", access_log=False),
            "access_log": False,
            "issuer": "http://127.0.0.1:8000",
        }
    ]


def test_serve_keeps_a_configured_issuer(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANCU_ISSUER", "https://gateway.example")

    result = runner.invoke(cli, ["serve", "--host", "::1", "--port", "9000"])

    assert result.exit_code == 0, result.output
    assert uvicorn_calls[0]["issuer"] == "https://gateway.example"


def test_serve_refuses_several_workers_without_redis(uvicorn_calls: list[dict[str, Any]]) -> None:
    result = runner.invoke(cli, ["serve", "--workers", "2"])

    assert result.exit_code == 2
    assert "DANCU_REDIS_URL" in result.output
    assert uvicorn_calls == []


def test_serve_runs_several_workers_with_redis(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANCU_REDIS_URL", "redis://127.0.0.1:6379/0")

    result = runner.invoke(cli, ["serve", "--workers", "4"])

    assert result.exit_code == 0, result.output
    assert uvicorn_calls[0]["workers"] == 4


def test_serve_refuses_a_prod_profile_it_cannot_honour(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANCU_PROFILE", "prod")
    monkeypatch.setenv("DANCU_KEYS__ENCRYPTION_KEY", "changeme")

    result = runner.invoke(cli, ["serve"])

    assert result.exit_code == 2
    assert "DANCU_DATABASE_URL" in result.output
    assert "DANCU_KEYS__ENCRYPTION_KEY" in result.output
    assert "changeme" not in result.output
    assert uvicorn_calls == []


def test_db_upgrade_finds_its_migrations_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "state" / "dancu.db"
    monkeypatch.setenv("DANCU_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.chdir(tmp_path)  # not the repository: no ./migrations here

    result = runner.invoke(cli, ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "purposes" in tables


def test_openapi_export_writes_the_app_document(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "gateway.json"

    result = runner.invoke(cli, ["openapi", "export", "--out", str(out)])

    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text) == create_app().openapi()
    assert text == openapi_json(create_app())
    mock_document = json.loads((out.parent / "csdlqg.json").read_text(encoding="utf-8"))
    assert "/api/v1/residents/lookup" in mock_document["paths"], "the mock's contract is exported beside it"


def test_published_openapi_document_matches_the_code() -> None:
    published = PROJECT_ROOT / "openapi" / "gateway.json"

    assert published.read_text(encoding="utf-8") == openapi_json(create_app(Settings(_env_file=None))), (
        "openapi/gateway.json is stale: run `dancu openapi export`"
    )
