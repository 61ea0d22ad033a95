"""The gateway's settings: one surface, named exactly as in docs/contract.md, Settings.

Every value comes from the environment (prefix ``DANCU_``) or an optional ``.env``; only ``AUDIT``, ``ADMIN``,
``CONSOLE``, ``KEYS`` and ``STATS`` are nested groups (``DANCU_AUDIT__CHECKPOINT_DIR``). Secrets are ``SecretStr`` and no error
raised here ever includes a value: settings errors end up on operators' terminals and in CI logs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.addresses import trusted_networks

Profile = Literal["dev", "prod"]
BackendKind = Literal["embedded", "http"]

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MIN_HMAC_KEY_BYTES = 32
_FERNET_KEY_BYTES = 32
# Random 32-byte keys have ~28 distinct byte values; a key with fewer than this is typed or patterned.
_MIN_DISTINCT_KEY_BYTES = 12


class ProductionSettingsError(ValueError):
    """The ``prod`` profile refuses these settings; the message names settings, never their values."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the prod profile refuses these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class KeysSettings(_Group):
    """``DANCU_KEYS__*``."""

    encryption_key: SecretStr | None = None
    """Fernet key encrypting the signing keys stored in the database (generated under ./var/keys in dev)."""


class AuditSettings(_Group):
    """``DANCU_AUDIT__*``."""

    subject_keys: SecretStr | None = None
    """HMAC keys for ``subject_ref`` as ``kid:base64,...``; the first one writes, all are searched."""
    checkpoint_key_file: Path = Path("./var/keys/checkpoint.pem")
    checkpoint_dir: Path = Path("./var/checkpoints")
    checkpoint_every_events: PositiveInt = 1000
    checkpoint_every_seconds: PositiveInt = 300

    def subject_key_ring(self) -> list[tuple[str, bytes]]:
        """The parsed ``subject_keys``, writing key first; ValueError (naming no key) when malformed."""
        if self.subject_keys is None:
            return []
        ring: list[tuple[str, bytes]] = []
        for position, entry in enumerate(self.subject_keys.get_secret_value().split(","), start=1):
            kid, sep, encoded = entry.strip().partition(":")
            if not sep or not _KID.fullmatch(kid):
                raise ValueError(f"DANCU_AUDIT__SUBJECT_KEYS entry {position} is not `kid:base64`")
            key = _decode_base64(encoded)
            if key is None:
                raise ValueError(f"DANCU_AUDIT__SUBJECT_KEYS entry {position} ({kid}) is not valid base64")
            ring.append((kid, key))
        if len({kid for kid, _ in ring}) != len(ring):
            raise ValueError("DANCU_AUDIT__SUBJECT_KEYS names a kid twice")
        return ring


class AdminSettings(_Group):
    """``DANCU_ADMIN__*``."""

    require_approval: bool = False
    """Four-eyes approval for REST changes that widen access."""


class ConsoleSettings(_Group):
    """``DANCU_CONSOLE__*``."""

    require_totp: bool | None = None
    """Every operator must sign in with an authenticator code; unset: ``true`` in ``prod``, ``false`` in ``dev``."""
    analyst_provinces: str = "*"
    """The provinces an operator with ``analyst`` may count in the console: ``*`` (every province) or 2025
    province codes, comma-separated (docs/console.md, Statistics)."""

    @field_validator("analyst_provinces")
    @classmethod
    def _province_codes(cls, value: str) -> str:
        value = value.strip()
        if value == "*":
            return value
        codes = [code.strip() for code in value.split(",")]
        if not codes or any(not re.fullmatch(r"[0-9]{2}", code) for code in codes):
            raise ValueError("must be * or 2025 province codes, comma-separated")
        from vnid import PROVINCES_2025  # the 34 units of 2025; only read when the setting names some

        if any(code not in PROVINCES_2025 for code in codes):
            raise ValueError("names a code that is not a 2025 province")
        return ",".join(codes)

    def analyst_province_set(self) -> frozenset[str] | None:
        """The codes of ``analyst_provinces``; None for every province."""
        return None if self.analyst_provinces == "*" else frozenset(self.analyst_provinces.split(","))


class StatsSettings(_Group):
    """``DANCU_STATS__*``: the disclosure control of population statistics (docs/statistics.md)."""

    threshold: int = Field(default=10, ge=1, le=1000)
    """k: a cell of 1 to k-1 residents is suppressed, and no published count is below k."""
    max_noise: int = Field(default=2, ge=0, le=50)
    """d: the cell-key noise lies in [-d, d]."""


class Settings(BaseSettings):
    """Everything the gateway reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="DANCU_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
        validate_by_name=True,
    )

    profile: Profile = "dev"
    database_url: str = "sqlite:///./var/dancu.db"
    backend: BackendKind = "embedded"
    backend_url: str = "http://127.0.0.1:8100"
    backend_api_key: SecretStr | None = None
    redis_url: str | None = None
    redis_key_prefix: str = "dancu:"
    """Every Redis key the gateway writes starts with this (replicas of one gateway share it)."""
    issuer: str | None = None
    """None: ``http://<host>:<port>`` of ``dancu serve``, which exports it to its workers."""
    audience: str = "dancu-gateway"
    token_ttl_seconds: PositiveInt = 300
    batch_max_items: PositiveInt = 100
    verify_mismatches_per_subject_per_day: int = Field(default=5, ge=1, le=1000)
    """A client's mismatching verification answers per resident and UTC day (docs/contract.md, Verification)."""
    attestation_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=300, le=10 * 366 * 24 * 3600)
    """The ``exp`` of a verification attestation, counted from its ``iat`` (docs/contract.md, Verification)."""
    metrics_token_required: bool = False
    sandbox: bool = False
    """A portal may rehearse upstream faults with ``X-Sandbox-Fault`` (``app.sandbox``); refused by ``prod``."""
    max_body_bytes: PositiveInt = 1024 * 1024
    """Request bodies above this are refused with 413 before the application reads them."""
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """``dancu serve`` closes a connection whose request headers are not complete this long after it opened
    (or after its previous answer), and answers 408 to a request body that stalls this long (``app.server``)."""
    access_refresh_seconds: float = Field(default=0.25, ge=0.01, le=0.5)
    """How often each process reads the access version (``app.auth.access``). docs/contract.md, Access tokens,
    lets another process see a suspension or grant change at most 1 s late, so this stays well below that (a
    process that cannot read the version for 1 s reads clients and grants from the database on every request
    until it can again)."""
    trusted_proxies: str = ""
    """Comma-separated CIDRs of the reverse proxies in front of the gateway: behind one of them, an event's
    ``client_ip`` is the rightmost ``X-Forwarded-For`` address that is not a proxy (``app.addresses``)."""

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        trusted_networks(value)  # a malformed entry stops the gateway at start-up, in every profile
        return value

    mock_csdlqg_database_url: str = Field(
        default="sqlite:///./var/mock_csdlqg.db", validation_alias="MOCK_CSDLQG_DATABASE_URL"
    )

    keys: KeysSettings = KeysSettings()
    audit: AuditSettings = AuditSettings()
    admin: AdminSettings = AdminSettings()
    console: ConsoleSettings = ConsoleSettings()
    stats: StatsSettings = StatsSettings()

    @property
    def console_requires_totp(self) -> bool:
        """``DANCU_CONSOLE__REQUIRE_TOTP``, or the profile's default when it is unset."""
        if self.console.require_totp is not None:
            return self.console.require_totp
        return self.profile == "prod"

    def production_problems(self) -> list[str]:
        """What the ``prod`` profile would refuse in these settings (empty when they pass)."""
        problems: list[str] = []
        if self.database_url.lower().startswith("sqlite"):
            problems.append("DANCU_DATABASE_URL points at SQLite; use PostgreSQL")
        if self.backend == "embedded":
            problems.append("DANCU_BACKEND is `embedded` (the mock's database); use `http`")
        if (scheme := _upstream_scheme(self.backend_url)) is None:
            problems.append("DANCU_BACKEND_URL is not an http(s) URL")
        elif scheme == "http" and not _loopback(self.backend_url):
            problems.append(
                "DANCU_BACKEND_URL uses plain http:// to a non-loopback host; use https:// "
                "(plain http only to a TLS proxy on the same machine)"
            )
        if self.keys.encryption_key is None:
            problems.append("DANCU_KEYS__ENCRYPTION_KEY is not set (generated keys are for dev only)")
        elif not _fernet_key(self.keys.encryption_key.get_secret_value()):
            problems.append("DANCU_KEYS__ENCRYPTION_KEY is not a Fernet key or looks like a placeholder")
        if self.audit.subject_keys is None:
            problems.append("DANCU_AUDIT__SUBJECT_KEYS is not set (generated keys are for dev only)")
        else:
            try:
                ring = self.audit.subject_key_ring()
            except ValueError as err:
                problems.append(str(err))
            else:
                problems.extend(
                    f"DANCU_AUDIT__SUBJECT_KEYS key {kid!r} is shorter than {_MIN_HMAC_KEY_BYTES} bytes "
                    "or looks like a placeholder"
                    for kid, key_bytes in ring
                    if not _random_enough(key_bytes, _MIN_HMAC_KEY_BYTES)
                )
        if not self.audit.checkpoint_key_file.is_file():
            problems.append("DANCU_AUDIT__CHECKPOINT_KEY_FILE does not name an existing file")
        if self.sandbox:
            problems.append(
                "DANCU_SANDBOX is true (callers could make the gateway fail on purpose); the sandbox is for "
                "staging and development only"
            )
        if self.backend_api_key is not None and not _random_enough(
            self.backend_api_key.get_secret_value().encode(), 16
        ):
            problems.append("DANCU_BACKEND_API_KEY looks like a placeholder")
        return problems

    def check_production(self) -> None:
        """ProductionSettingsError when the ``prod`` profile refuses these settings; no-op in ``dev``."""
        if self.profile == "prod" and (problems := self.production_problems()):
            raise ProductionSettingsError(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


def _decode_base64(text: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is not base64."""
    text = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _upstream_scheme(url: str) -> str | None:
    """``http`` or ``https`` when ``url`` is one with a host, else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme if scheme in ("http", "https") and parts.hostname else None


def _loopback(url: str) -> bool:
    host = urlsplit(url.strip()).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _random_enough(key: bytes, min_bytes: int) -> bool:
    return len(key) >= min_bytes and len(set(key)) >= min(_MIN_DISTINCT_KEY_BYTES, min_bytes // 2)


def _fernet_key(value: str) -> bool:
    key = _decode_base64(value)
    return key is not None and len(key) == _FERNET_KEY_BYTES and _random_enough(key, _FERNET_KEY_BYTES)
