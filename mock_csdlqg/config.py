"""The mock's settings (pydantic-settings): the names of docs/contract.md, Settings."""

from __future__ import annotations

from functools import cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MockSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOCK_CSDLQG_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./var/mock_csdlqg.db"
    api_key: SecretStr | None = Field(default=None, description="callers send it as X-Api-Key")
    faults: bool = Field(default=False, description="enable fault injection (also `serve --faults`)")
    test_outbox: bool = Field(
        default=False, description="serve GET /_mock/outbox, the SMS sent (also `serve --test-outbox`)"
    )
    max_batch: int = 1000


@cache
def get_settings() -> MockSettings:
    return MockSettings()
