from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.config import ProductionSettingsError, Settings
from app.db import async_database_url
from app.main import create_app

PASSWORD = "pg-pass-4f9c"
PLACEHOLDER = "changeme"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.fixture
def prod(tmp_path: Path) -> dict[str, Any]:
    """Settings the prod profile accepts."""
    key_file = tmp_path / "checkpoint.pem"
    key_file.write_text("not parsed by the settings check\n")
    return {
        "profile": "prod",
        "database_url": f"postgresql://dancu:{PASSWORD}@db.internal/dancu",
        "backend": "http",
        "keys": {"encryption_key": b64(os.urandom(32))},
        "audit": {
            "subject_keys": f"k2:{b64(os.urandom(32))},k1:{b64(os.urandom(32))}",
            "checkpoint_key_file": key_file,
        },
    }


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings(_env_file=None)

    assert settings.profile == "dev"
    assert settings.database_url == "sqlite:///./var/dancu.db"
    assert settings.backend == "embedded"
    assert settings.backend_url == "http://127.0.0.1:8100"
    assert settings.backend_api_key is None
    assert settings.redis_url is None
    assert settings.issuer is None
    assert settings.audience == "dancu-gateway"
    assert settings.token_ttl_seconds == 300
    assert settings.batch_max_items == 100
    assert settings.metrics_token_required is False
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.mock_csdlqg_database_url == "sqlite:///./var/mock_csdlqg.db"
    assert settings.keys.encryption_key is None
    assert settings.audit.subject_keys is None
    assert settings.audit.checkpoint_key_file == Path("var/keys/checkpoint.pem")
    assert settings.audit.checkpoint_dir == Path("var/checkpoints")
    assert settings.audit.checkpoint_every_events == 1000
    assert settings.audit.checkpoint_every_seconds == 300
    assert settings.admin.require_approval is False


def test_environment_names_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DANCU_PROFILE": "dev",
        "DANCU_BACKEND": "http",
        "DANCU_BACKEND_API_KEY": "k" * 20,
        "DANCU_REDIS_URL": "redis://127.0.0.1:6379/0",
        "DANCU_ISSUER": "https://gw.example",
        "DANCU_TOKEN_TTL_SECONDS": "60",
        "DANCU_BATCH_MAX_ITEMS": "7",
        "DANCU_METRICS_TOKEN_REQUIRED": "true",
        "DANCU_KEYS__ENCRYPTION_KEY": "fernet",
        "DANCU_AUDIT__SUBJECT_KEYS": "k1:AAAA",
        "DANCU_AUDIT__CHECKPOINT_DIR": "/srv/checkpoints",
        "DANCU_AUDIT__CHECKPOINT_EVERY_EVENTS": "5",
        "DANCU_ADMIN__REQUIRE_APPROVAL": "1",
        "MOCK_CSDLQG_DATABASE_URL": "sqlite:////srv/mock.db",
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)

    assert settings.backend == "http"
    assert settings.backend_api_key is not None
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.issuer == "https://gw.example"
    assert (settings.token_ttl_seconds, settings.batch_max_items) == (60, 7)
    assert settings.metrics_token_required is True
    assert settings.keys.encryption_key is not None
    assert settings.keys.encryption_key.get_secret_value() == "fernet"
    assert settings.audit.checkpoint_dir == Path("/srv/checkpoints")
    assert settings.audit.checkpoint_every_events == 5
    assert settings.admin.require_approval is True
    assert settings.mock_csdlqg_database_url == "sqlite:////srv/mock.db"
    assert "fernet" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DANCU_AUDIENCE=from-dotenv\nDANCU_AUDIT__CHECKPOINT_EVERY_SECONDS=30\n")

    settings = Settings(_env_file=env_file)

    assert settings.audience == "from-dotenv"
    assert settings.audit.checkpoint_every_seconds == 30


def test_invalid_values_are_reported_without_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None, token_ttl_seconds=f"{PASSWORD}", keys={"encryption_key": 1, "typo": PASSWORD}
        )

    assert PASSWORD not in str(caught.value)
    assert {error["type"] for error in caught.value.errors()} >= {"int_parsing", "extra_forbidden"}


def test_prod_accepts_complete_settings(prod: dict[str, Any]) -> None:
    Settings(_env_file=None, **prod).check_production()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database_url": f"sqlite:///./{PASSWORD}.db"}, "DANCU_DATABASE_URL"),
        ({"backend": "embedded"}, "DANCU_BACKEND"),
        ({"keys": {}}, "DANCU_KEYS__ENCRYPTION_KEY"),
        ({"keys": {"encryption_key": PLACEHOLDER}}, "DANCU_KEYS__ENCRYPTION_KEY"),
        ({"keys": {"encryption_key": b64(b"0" * 32)}}, "DANCU_KEYS__ENCRYPTION_KEY"),
        ({"audit": {}}, "DANCU_AUDIT__SUBJECT_KEYS"),
        ({"audit": {"subject_keys": f"k1:{PLACEHOLDER}"}}, "DANCU_AUDIT__SUBJECT_KEYS"),
        ({"audit": {"subject_keys": PLACEHOLDER}}, "DANCU_AUDIT__SUBJECT_KEYS"),
        ({"audit": {"subject_keys": f"k1:{b64(os.urandom(8))}"}}, "DANCU_AUDIT__SUBJECT_KEYS"),
        ({"backend_api_key": PLACEHOLDER}, "DANCU_BACKEND_API_KEY"),
        ({"sandbox": True}, "DANCU_SANDBOX"),
    ],
)
def test_prod_refuses(prod: dict[str, Any], change: dict[str, Any], named: str) -> None:
    settings = Settings(_env_file=None, **{**prod, **change})

    with pytest.raises(ProductionSettingsError) as caught:
        settings.check_production()

    message = str(caught.value)
    assert named in message
    assert PASSWORD not in message
    assert PLACEHOLDER not in message


def test_prod_refuses_a_missing_checkpoint_key_file(prod: dict[str, Any], tmp_path: Path) -> None:
    prod["audit"]["checkpoint_key_file"] = tmp_path / "absent.pem"

    with pytest.raises(ProductionSettingsError, match="DANCU_AUDIT__CHECKPOINT_KEY_FILE"):
        Settings(_env_file=None, **prod).check_production()


def test_prod_lists_every_problem_at_once() -> None:
    with pytest.raises(ProductionSettingsError) as caught:
        Settings(_env_file=None, profile="prod").check_production()

    assert len(caught.value.problems) == 5


def test_dev_accepts_what_prod_refuses() -> None:
    Settings(_env_file=None).check_production()


def test_create_app_refuses_to_build_in_prod_with_bad_settings() -> None:
    with pytest.raises(ProductionSettingsError):
        create_app(Settings(_env_file=None, profile="prod"))


async def test_prod_serves_no_docs(prod: dict[str, Any]) -> None:
    app = create_app(Settings(_env_file=None, **prod))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")

    assert (docs.status_code, spec.status_code) == (404, 404)


def test_subject_key_ring_keeps_the_writing_key_first() -> None:
    first, second = os.urandom(32), os.urandom(32)
    settings = Settings(
        _env_file=None,
        audit={"subject_keys": f"2026a:{b64(first)}, 2025b:{base64.b64encode(second).decode().rstrip('=')}"},
    )

    assert settings.audit.subject_key_ring() == [("2026a", first), ("2025b", second)]


@pytest.mark.parametrize("value", ["nokid", ":AAAA", "a b:AAAA", "k1:!!!", "k1:AAAA,k1:BBBB"])
def test_subject_key_ring_refuses_malformed_values(value: str) -> None:
    settings = Settings(_env_file=None, audit={"subject_keys": value})

    with pytest.raises(ValueError, match="DANCU_AUDIT__SUBJECT_KEYS") as caught:
        settings.audit.subject_key_ring()

    assert "AAAA" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./var/dancu.db", "sqlite+aiosqlite:///./var/dancu.db"),
        ("sqlite+aiosqlite:////abs/dancu.db", "sqlite+aiosqlite:////abs/dancu.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgresql+asyncpg://u:p@h/d?ssl=require", "postgresql+asyncpg://u:p@h/d?ssl=require"),
        ("postgres://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
    ],
)
def test_database_urls_get_their_async_driver(url: str, expected: str) -> None:
    assert async_database_url(url) == expected


@pytest.mark.parametrize(
    "url", [f"mysql://u:{PASSWORD}@h/d", f"postgresql+psycopg://u:{PASSWORD}@h/d", f"u:{PASSWORD}@h/d"]
)
def test_unsupported_database_urls_are_refused_without_echo(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://") as caught:
        async_database_url(url)

    assert PASSWORD not in str(caught.value)
