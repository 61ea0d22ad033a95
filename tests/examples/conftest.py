"""A served gateway for the client examples of examples/: a real `dancu serve` process on a free port, the mock
national database seeded with its personas, the demo purpose and a portal client registered with the CLI as an
operator would (a secret, and an EC and an RSA public key for private_key_jwt).

Each language runs only where its runtime is installed; with DANCU_TEST_REQUIRE_SERVICES=1 (CI) a missing one
is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.cli import upgrade_database
from tests.harness import (
    REQUIRE_SERVICES,
    VENV_BIN,
    free_port,
    gateway_environment,
    seeded_mock,
    wait_until_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PURPOSE = "DEMO-1.000001"
RUN_TIMEOUT_SECONDS = 120
START_TIMEOUT_SECONDS = 120.0
"""How long `dancu serve` may take to answer /healthz: importing the gateway takes seconds on a loaded machine."""


@dataclass(frozen=True)
class Language:
    name: str
    command: tuple[str, ...]
    runtime: str
    """The program that must be on PATH."""
    probe: tuple[str, ...] = ()
    """A command that exits 0 when the runtime has what the example needs (PHP: the curl extension)."""


LANGUAGES = {
    "node": Language("node", ("node", str(EXAMPLES / "node" / "example.mjs")), "node"),
    "java": Language("java", ("java", str(EXAMPLES / "java" / "Example.java")), "java"),
    "php": Language(
        "php",
        ("php", str(EXAMPLES / "php" / "example.php")),
        "php",
        probe=("php", "-r", "exit(extension_loaded('curl') && extension_loaded('openssl') ? 0 : 1);"),
    ),
    "python": Language("python", (sys.executable, str(EXAMPLES / "python" / "example.py")), sys.executable),
}


def require_runtime(language: Language) -> None:
    """Skip (or, under CI, fail) when the language's runtime is missing."""
    missing = shutil.which(language.runtime) is None or (
        bool(language.probe)
        and subprocess.run(language.probe, capture_output=True, check=False).returncode != 0
    )
    if not missing:
        return
    message = f"{language.name}: {' '.join(language.probe) or language.runtime} is not available"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and DANCU_TEST_REQUIRE_SERVICES=1 (.ci/run installs it)", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class Key:
    kid: str
    alg: str
    pem: Path


@dataclass(frozen=True)
class Portal:
    """The served gateway and the portal client the examples run as."""

    url: str
    database: Path
    client_id: str
    client_secret: str
    keys: Mapping[str, Key]
    """By algorithm: ES256, RS256."""

    def environment(self, alg: str = "ES256", url: str | None = None, **extra: str) -> dict[str, str]:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DANCU_", "MOCK_CSDLQG_"))
        }
        environment.update(
            {
                "DANCU_GATEWAY": url or self.url,
                "DANCU_CLIENT_ID": self.client_id,
                "DANCU_CLIENT_SECRET": self.client_secret,
                "DANCU_PRIVATE_KEY_FILE": str(self.keys[alg].pem),
                "DANCU_KEY_ID": self.keys[alg].kid,
                "DANCU_PURPOSE": PURPOSE,
                **extra,
            }
        )
        return environment


def _keys(work: Path) -> tuple[dict[str, Key], dict[str, object]]:
    """An EC P-256 and an RSA key pair: private keys as PKCS#8 PEM files, public keys as a JWK Set."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pairs: dict[str, tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, str, str]] = {
        "ES256": (ec_key, ECAlgorithm.to_jwk(ec_key.public_key()), "portal-ec-1"),
        "RS256": (rsa_key, RSAAlgorithm.to_jwk(rsa_key.public_key()), "portal-rsa-1"),
    }
    keys: dict[str, Key] = {}
    public: list[object] = []
    for alg, (private, jwk, kid) in pairs.items():
        pem = work / f"{kid}.pem"
        pem.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        pem.chmod(0o600)
        keys[alg] = Key(kid, alg, pem)
        public.append({**json.loads(jwk), "kid": kid, "use": "sig"})
    return keys, {"keys": public}


@contextmanager
def served(environment: Mapping[str, str], cwd: Path) -> Iterator[str]:
    """A real `dancu serve` process on a free loopback port (its log in ``cwd``); yields its base URL."""
    port = free_port()
    with (cwd / f"serve-{port}.log").open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "dancu"), "serve", "--port", str(port)],
            cwd=cwd,
            env=dict(environment),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, process, timeout=START_TIMEOUT_SECONDS)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _dancu(environment: Mapping[str, str], cwd: Path, *args: str) -> str:
    return subprocess.run(
        [str(VENV_BIN / "dancu"), *args],
        env=dict(environment),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@contextmanager
def served_portal(tmp_path_factory: pytest.TempPathFactory, name: str, **settings: str) -> Iterator[Portal]:
    """`dancu serve` on a migrated database and the seeded mock, with the demo purpose and a portal client
    registered through the CLI; ``settings``: more DANCU_* variables for the gateway."""
    work = tmp_path_factory.mktemp(name)
    database = work / "dancu.db"
    upgrade_database(f"sqlite:///{database}")
    environment = gateway_environment(
        f"sqlite:///{database}", seeded_mock(tmp_path_factory, f"{name}-mock"), **settings
    )
    # dancu serve derives its issuer from --host/--port, so the metadata's token_endpoint is the served one.
    environment.pop("DANCU_ISSUER")
    keys, jwks = _keys(work)
    (work / "portal-jwks.json").write_text(json.dumps(jwks), encoding="utf-8")
    _dancu(
        environment,
        work,
        *("purposes", "add", "--code", PURPOSE, "--title", "Thủ tục minh họa (demo)"),
        *("--legal-basis", "Luật Căn cước 2023, Điều 10"),
    )
    created = json.loads(
        _dancu(
            environment,
            work,
            *("clients", "create", "--name", "Cổng dịch vụ công thử nghiệm"),
            *("--scopes", "citizen.verify,citizen.read,household.read", "--fields", "*", "--provinces", "52"),
            *("--purposes", PURPOSE, "--verify-details", "--jwks", str(work / "portal-jwks.json"), "--json"),
        )
    )
    with served(environment, work) as url:
        yield Portal(url, database, created["client_id"], created["client_secret"], keys)


@pytest.fixture(scope="package")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    with served_portal(tmp_path_factory, "examples") as served_one:
        yield served_one


@dataclass(frozen=True)
class Run:
    returncode: int
    lines: list[str]
    stderr: str

    def starting(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]

    def fields(self, line: str) -> dict[str, str]:
        """``key=value`` members of one output line."""
        return dict(part.split("=", 1) for part in line.split() if "=" in part)


def run_example(language: Language, environment: Mapping[str, str], cwd: Path) -> Run:
    completed = subprocess.run(
        language.command,
        env=dict(environment),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    return Run(completed.returncode, completed.stdout.splitlines(), completed.stderr)


def language_params(names: Sequence[str] = tuple(LANGUAGES)) -> list[object]:
    return [pytest.param(LANGUAGES[name], id=name) for name in names]
