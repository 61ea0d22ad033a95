"""The staging stack (docker-compose.yml, .env.example, docker/nginx/staging.conf). No Docker engine runs here, so
the file is validated against the Compose Specification's JSON schema (vendored in tests/ops/compose_spec with
its licence) and read for what the stack must be: two replicas sharing one configuration of real settings, the
mock with faults, nothing reachable but nginx, nginx's slow-client limits at or below the gateway's, and every
variable the file reads documented in .env.example.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import BaseModel

from app.cli import PROJECT_ROOT
from app.config import Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
NGINX = PROJECT_ROOT / "docker" / "nginx" / "staging.conf"
ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
SCHEMA = Path(__file__).with_name("compose_spec") / "compose-spec.json"
GATEWAYS = ("gateway-1", "gateway-2")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ``${X}``, ``${X:-default}``, ``${X:?error}``, and ``$$`` for a literal ``$``."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise KeyError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return VARIABLE.sub(one, value).replace("$$", "$")


def filled_in() -> dict[str, str]:
    """.env.example with every empty value filled in the way its comments say."""
    values = env_example()
    made = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "STAGING_MOCK_API_KEY": secrets.token_urlsafe(24),
        "STAGING_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "STAGING_SUBJECT_KEYS": "staging1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    return {name: value or made[name] for name, value in values.items()}


def gateway_environment(service: str) -> dict[str, str]:
    environment: dict[str, str] = compose()["services"][service]["environment"]
    variables = filled_in()
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


def setting_names() -> set[str]:
    """Every environment variable app.config.Settings reads (nested groups with a double underscore)."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"DANCU_{name}__{member}".upper() for member in annotation.model_fields}
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
        else:
            names.add(f"DANCU_{name}".upper())
    return names


def validator() -> jsonschema.protocols.Validator:
    """The validator for the draft the schema names (2020-12 at the vendored version)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:

    errors = [f"{list(error.path)}: {error.message}" for error in validator().iter_errors(compose())]

    assert errors == []


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("a misspelt member", lambda doc: doc["services"]["proxy"].update(port=["8080:8080"])),
        ("a wrong type", lambda doc: doc["services"]["redis"].update(networks=5)),
        (
            "an unknown condition",
            lambda doc: doc["services"]["mock"]["depends_on"]["mock-seed"].update(condition="done"),
        ),
    ],
)
def test_the_schema_check_finds_mistakes(where: str, change: Any) -> None:
    document = copy.deepcopy(compose())
    change(document)
    assert list(validator().iter_errors(document)), where


def test_the_stack_has_what_staging_needs() -> None:
    services = compose()["services"]

    assert set(services) >= {"postgres", "redis", "mock", "proxy", *GATEWAYS}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["proxy"]["image"].startswith("nginx:")
    assert "--faults" in services["mock"]["command"]
    # The two replicas are one configuration: same image, same settings (one issuer, one database, one Redis).
    first, second = (services[name] for name in GATEWAYS)
    assert first == second
    assert gateway_environment(GATEWAYS[0])["DANCU_REDIS_URL"].startswith("redis://")
    assert gateway_environment(GATEWAYS[0])["DANCU_BACKEND_URL"] == "http://mock:8100"


def test_only_nginx_is_reachable_from_outside() -> None:
    document = compose()
    services = document["services"]

    assert [name for name, service in services.items() if "ports" in service] == ["proxy"]
    assert document["networks"]["internal"]["internal"] is True
    for name, service in services.items():
        expected = ["edge", "internal"] if name == "proxy" else ["internal"]
        assert service["networks"] == expected, name


def test_the_replicas_set_real_settings_and_differ_from_production_only_in_their_upstream_and_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment = gateway_environment(GATEWAYS[0])
    settings_names = {name for name in environment if name.startswith("DANCU_")}
    assert settings_names <= setting_names()
    # The rest belong to uvicorn (FORWARDED_ALLOW_IPS) and to the container's entrypoint.
    entrypoint = ENTRYPOINT.read_text(encoding="utf-8")
    for name in set(environment) - settings_names - {"FORWARDED_ALLOW_IPS"}:
        assert f"{name}:-" in entrypoint, name

    checkpoint_key = tmp_path / "checkpoint.pem"
    checkpoint_key.write_text("a key file")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DANCU_AUDIT__CHECKPOINT_KEY_FILE", str(checkpoint_key))
    settings = Settings(_env_file=None)

    assert settings.backend == "http"
    assert settings.header_timeout_seconds == 10
    assert settings.console_requires_totp
    assert settings.admin.require_approval
    assert settings.sandbox  # portals rehearse upstream faults (docs/contract.md section 17)
    problems = [problem.split(" ")[0] for problem in settings.production_problems()]
    assert problems == ["DANCU_BACKEND_URL", "DANCU_SANDBOX"]


def test_every_variable_the_stack_reads_is_in_env_example() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = {match.group(1) for match in VARIABLE.finditer(text.replace("$$", ""))}
    documented = env_example()

    assert used == set(documented)
    # Its own names: a .env in the project root must not change what `make run` or the tests do.
    assert not [name for name in documented if name.startswith(("DANCU_", "MOCK_CSDLQG_"))]
    # Secrets are required (`${X:?...}`), never given a default in the compose file.
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "STAGING_MOCK_API_KEY", "STAGING_ENCRYPTION_KEY"):
        assert documented[name] == ""
        assert re.search(r"\$\{" + name + r":\?", text), name
    assert documented["STAGING_SUBJECT_KEYS"] == ""
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_nginx_holds_slow_clients_to_at_most_the_gateways_limits() -> None:
    conf = NGINX.read_text(encoding="utf-8")
    environment = gateway_environment(GATEWAYS[0])
    header_timeout = float(environment["DANCU_HEADER_TIMEOUT_SECONDS"])

    def seconds(directive: str) -> float:
        match = re.search(rf"^\s*{directive}\s+(\d+)s;", conf, re.MULTILINE)
        assert match, directive
        return float(match.group(1))

    assert seconds("client_header_timeout") <= header_timeout
    assert seconds("client_body_timeout") <= header_timeout
    body = re.search(r"client_max_body_size\s+(\d+)m;", conf)
    assert body
    assert int(body.group(1)) * 1024 * 1024 <= Settings(_env_file=None).max_body_bytes
    assert re.search(r'proxy_set_header\s+Connection\s+"";', conf)  # no h2c or other Upgrade offer passes
    assert re.search(r"limit_conn\s+dancu_conn\s+\d+;", conf)
    # The upstream is exactly the replicas, on the port their entrypoint serves.
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", conf, re.MULTILINE)
    assert sorted(servers) == [f"{name}:8000" for name in GATEWAYS]
    # The file compose mounts is this one.
    assert (
        "./docker/nginx/staging.conf:/etc/nginx/conf.d/default.conf:ro"
        in compose()["services"]["proxy"]["volumes"]
    )
    assert os.path.basename(NGINX) == "staging.conf"


def test_no_secret_is_on_a_command_line() -> None:
    """Command lines show in `ps` and `docker inspect`: secrets reach the containers through their environment."""
    secret_names = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "STAGING_MOCK_API_KEY", "STAGING_ENCRYPTION_KEY"}
    secret_names.add("STAGING_SUBJECT_KEYS")
    for name, service in compose()["services"].items():
        command = json.dumps(service.get("command", [])) + json.dumps(service.get("entrypoint", []))
        assert not {match.group(1) for match in VARIABLE.finditer(command)} & secret_names, name


def test_nginx_applies_every_directive_of_the_deploy_guide() -> None:
    """docker/nginx/staging.conf is docs/deploy.md section 10's configuration (but for TLS and HTTP/2)."""
    guide = (PROJECT_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = guide[guide.index("## 10. Slow clients") :]
    block = section[section.index("```nginx") : section.index("```", section.index("```nginx") + 3)]
    directives = {
        line.split()[0]
        for line in block.splitlines()[1:]
        if line.strip() and not line.strip().startswith(("#", "}"))
    }
    conf = NGINX.read_text(encoding="utf-8")
    used = {
        line.split()[0] for line in conf.splitlines() if line.strip() and not line.strip().startswith("#")
    }

    assert directives - {"listen", "http2"} <= used
