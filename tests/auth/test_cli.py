"""`dancu bootstrap-admin`, `clients`, `purposes` and `keys`: thin, scriptable, one transaction each.

Synchronous tests: the commands run their own event loop.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DANCU_DATABASE_URL", sqlite_url)
    return Path(sqlite_url.removeprefix("sqlite:///"))


def rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def test_bootstrap_admin_json_is_exactly_one_object(database: Path) -> None:
    result = runner.invoke(cli, ["bootstrap-admin", "--name", "Quản trị", "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"client_id", "client_secret"}
    assert result.stdout == json.dumps(printed) + "\n"
    assert rows(database, "SELECT scopes FROM grants") == [('["admin"]',)]
    assert rows(database, "SELECT action, actor FROM audit_events ORDER BY seq") == [
        ("admin.client.create", "cli"),
        ("admin.grant.replace", "cli"),
    ]
    again = runner.invoke(cli, ["bootstrap-admin", "--name", "Again", "--json"])
    assert again.exit_code == 2
    assert again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1


def test_clients_create_with_every_option(database: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks_file = tmp_path / "jwks.json"
    public = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    jwks_file.write_text(json.dumps({"keys": [public]}))
    assert (
        runner.invoke(
            cli, ["purposes", "add", "--code", "P1", "--title", "Cấp CCCD", "--legal-basis", "Luật 26/2023"]
        ).exit_code
        == 0
    )

    result = runner.invoke(
        cli,
        [
            "clients",
            "create",
            "--name",
            "Cổng DVC Gia Lai",
            "--scopes",
            "citizen.verify,citizen.read",
            "--fields",
            "*,ethnicity",
            "--provinces",
            "52,79",
            "--purposes",
            "P1",
            "--verify-details",
            "--rate-limit",
            "120",
            "--distinct-per-day",
            "300",
            "--jwks",
            str(jwks_file),
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    grant = rows(
        database,
        "SELECT scopes, fields, provinces, purposes, verify_details, rate_limit_per_minute, distinct_subjects_per_day "
        "FROM grants",
    )
    assert grant == [
        ('["citizen.verify", "citizen.read"]', '["*", "ethnicity"]', '["52", "79"]', '["P1"]', 1, 120, 300)
    ]
    [(client_id, name, secret_hash, jwks)] = rows(
        database, "SELECT client_id, name, secret_hash, jwks FROM clients"
    )
    assert client_id == created["client_id"]
    assert name == "Cổng DVC Gia Lai"
    assert created["client_secret"] not in secret_hash
    assert json.loads(jwks)["keys"][0]["kid"] == "k1"
    assert [a for (a,) in rows(database, "SELECT action FROM audit_events ORDER BY seq")] == [
        "admin.purpose.create",
        "admin.client.create",
        "admin.grant.replace",
        "admin.client.jwks",
    ]


def test_clients_create_without_json_prints_the_secret_once(database: Path) -> None:
    result = runner.invoke(cli, ["clients", "create", "--name", "Portal"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("client_id: c_")
    assert lines[1].startswith("client_secret: ")
    assert rows(database, "SELECT scopes, provinces FROM grants") == [("[]", "[]")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--provinces", "079"], "provinces.0"),
        (["--scopes", "admin,citizen.read"], "scopes"),
        (["--fields", "personal_id"], "fields.0"),
        (["--purposes", "UNREGISTERED"], "purposes.0"),
        (["--rate-limit", "0"], "rate_limit_per_minute"),
    ],
)
def test_clients_create_refuses_an_invalid_grant_and_changes_nothing(
    database: Path, options: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["clients", "create", "--name", "Portal", "--json", *options])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "079" not in result.stderr
    assert "UNREGISTERED" not in result.stderr
    assert rows(database, "SELECT count(*) FROM clients") == [(0,)]
    assert rows(database, "SELECT count(*) FROM audit_events") == [(0,)]


def test_clients_create_refuses_a_private_jwk(database: Path, tmp_path: Path) -> None:
    jwks_file = tmp_path / "jwks.json"
    private = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    jwks_file.write_text(json.dumps({"keys": [private]}))

    result = runner.invoke(cli, ["clients", "create", "--name", "P", "--jwks", str(jwks_file)])

    assert result.exit_code == 2
    assert private["d"] not in result.output
    assert rows(database, "SELECT count(*) FROM clients") == [(0,)]


def test_suspend_and_reinstate(database: Path) -> None:
    client_id = json.loads(runner.invoke(cli, ["clients", "create", "--name", "P", "--json"]).stdout)[
        "client_id"
    ]

    suspended = runner.invoke(cli, ["clients", "suspend", client_id])
    status_after_suspend = rows(database, "SELECT status FROM clients")
    reinstated = runner.invoke(cli, ["clients", "reinstate", client_id])
    unknown = runner.invoke(cli, ["clients", "suspend", "c_nobody"])

    assert suspended.exit_code == 0
    assert reinstated.exit_code == 0
    assert status_after_suspend == [("suspended",)]
    assert rows(database, "SELECT status FROM clients") == [("active",)]
    assert unknown.exit_code == 2
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_purposes_add_twice_is_refused(database: Path) -> None:
    options = [
        "purposes",
        "add",
        "--code",
        "1.001234.000.00.00.H12",
        "--title",
        "Đăng ký thường trú",
        "--legal-basis",
        "Luật Cư trú 2020, Điều 20",
    ]

    first = runner.invoke(cli, options)
    second = runner.invoke(cli, options)
    bad = runner.invoke(cli, ["purposes", "add", "--code", "no spaces", "--title", "T", "--legal-basis", "L"])

    assert first.exit_code == 0
    assert second.exit_code == 2
    assert "already registered" in second.stderr
    assert bad.exit_code == 2
    assert rows(database, "SELECT code, title FROM purposes") == [
        ("1.001234.000.00.00.H12", "Đăng ký thường trú")
    ]


def test_keys_rotate(database: Path) -> None:
    first = runner.invoke(cli, ["keys", "rotate"])
    second = runner.invoke(cli, ["keys", "rotate"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    keys = rows(database, "SELECT kid, active FROM signing_keys ORDER BY created_at")
    assert len(keys) == 3  # the first key, made on first use, and two rotations
    assert [active for _, active in keys] == [0, 0, 1]
    assert keys[-1][0] in second.stdout
    assert "PRIVATE" not in str(rows(database, "SELECT private_key_encrypted FROM signing_keys"))


def test_an_unmigrated_database_is_one_line_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANCU_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")

    result = runner.invoke(cli, ["clients", "create", "--name", "P", "--json"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "dancu db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
