"""The `dancu` commands that mirror the admin API: tables for people, one JSON object with --json, actor `cli`.

Synchronous tests: the commands run their own event loop.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from typer.testing import CliRunner, Result

from app.cli import cli

runner = CliRunner()
PURPOSE = "1.001234.000.00.00.H12"


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DANCU_DATABASE_URL", sqlite_url)
    return Path(sqlite_url.removeprefix("sqlite:///"))


def rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


def dancu(*args: str) -> Result:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result


def as_json(*args: str) -> Any:
    """The command's stdout, which must be exactly one JSON object."""
    result = dancu(*args, "--json")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def new_client(name: str = "Cổng DVC tỉnh Gia Lai", *options: str) -> dict[str, str]:
    created: dict[str, str] = as_json("clients", "create", "--name", name, *options)
    return created


def test_bootstrap_admin_then_a_second_admin_through_the_cli(database: Path) -> None:
    first = as_json("bootstrap-admin", "--name", "Quản trị 1")
    second = new_client("Quản trị 2", "--scopes", "admin")

    assert set(first) == set(second) == {"client_id", "client_secret"}
    assert rows(database, "SELECT scopes FROM grants ORDER BY client_id") == [('["admin"]',), ('["admin"]',)]
    assert {actor for (actor,) in rows(database, "SELECT DISTINCT actor FROM audit_events")} == {"cli"}


def test_clients_list_table_and_json(database: Path) -> None:
    made = [new_client(f"Cổng {n}")["client_id"] for n in range(3)]
    dancu("clients", "suspend", made[1])

    table = dancu("clients", "list").stdout.splitlines()
    listed = as_json("clients", "list")

    assert table[0].split() == ["client_id", "status", "name", "created_at"]
    assert len(table) == 4
    assert any(made[1] in line and "suspended" in line for line in table)
    assert {line.split("  ")[0] for line in table[1:]} == set(made)
    assert all(f"Cổng {n}" in "\n".join(table) for n in range(3))
    assert [c["client_id"] for c in listed["items"]] == sorted(made)
    assert [c["status"] for c in listed["items"] if c["client_id"] == made[1]] == ["suspended"]
    assert all("client_secret" not in c for c in listed["items"])


def test_clients_show(database: Path) -> None:
    dancu(
        "purposes", "add", "--code", PURPOSE, "--title", "Đăng ký thường trú", "--legal-basis", "Luật Cư trú"
    )
    created = new_client(
        "Cổng DVC",
        "--scopes",
        "citizen.verify",
        "--provinces",
        "52",
        "--purposes",
        PURPOSE,
        "--verify-details",
    )

    text = dancu("clients", "show", created["client_id"]).stdout
    shown = as_json("clients", "show", created["client_id"])
    missing = runner.invoke(cli, ["clients", "show", "c_nobody"])

    assert created["client_secret"] not in text + json.dumps(shown)
    assert "Cổng DVC" in text
    assert "grant:" in text
    assert "citizen.verify" in text
    assert shown["client_id"] == created["client_id"]
    assert shown["grant"]["provinces"] == ["52"]
    assert shown["grant"]["verify_details"] is True
    assert missing.exit_code == 2
    assert missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1


def test_clients_rotate_secret(database: Path) -> None:
    created = new_client()
    before = rows(database, "SELECT secret_hash FROM clients")

    rotated = as_json("clients", "rotate-secret", created["client_id"])
    text = dancu("clients", "rotate-secret", created["client_id"])

    assert set(rotated) == {"client_id", "client_secret"}
    assert rotated["client_id"] == created["client_id"]
    assert rotated["client_secret"] != created["client_secret"]
    assert rows(database, "SELECT secret_hash FROM clients") != before
    assert text.stdout.startswith(f"client_id: {created['client_id']}\nclient_secret: ")
    assert "shown this once" in text.stderr
    events = rows(database, "SELECT action, actor, detail FROM audit_events WHERE action LIKE '%secret%'")
    assert [(a, b) for a, b, _ in events] == [("admin.client.secret_rotate", "cli")] * 2
    assert rotated["client_secret"] not in str(rows(database, "SELECT detail FROM audit_events"))


def test_clients_rotate_secret_with_grace_set_jwks_and_disable_secret(database: Path, tmp_path: Path) -> None:
    # docs/contract.md, Command line: the key-only client's path, each step an audit event with actor `cli`.
    created = new_client()
    client_id = created["client_id"]
    refused = runner.invoke(cli, ["clients", "disable-secret", client_id])
    jwks = tmp_path / "jwks.json"
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.write_text(
        json.dumps({"keys": [{**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}]})
    )
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [{**ECAlgorithm.to_jwk(key, as_dict=True), "kid": "k1"}]}))

    rotated = as_json("clients", "rotate-secret", client_id, "--grace-seconds", "600")
    refused_private = runner.invoke(cli, ["clients", "set-jwks", client_id, "--jwks", str(private)])
    registered = as_json("clients", "set-jwks", client_id, "--jwks", str(jwks))
    off = as_json("clients", "disable-secret", client_id)

    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert set(rotated) == {"client_id", "client_secret", "previous_secret_until"}
    assert refused_private.exit_code == 2  # private keys are never registered
    assert [k["kid"] for k in registered["jwks"]["keys"]] == ["k1"]
    assert off["secret_enabled"] is False
    assert rows(database, "SELECT secret_enabled, previous_secret_hash FROM clients") == [(0, None)]
    events = rows(
        database, "SELECT action, actor FROM audit_events WHERE action LIKE 'admin.client.%' ORDER BY seq"
    )
    assert events[1:] == [
        ("admin.client.secret_rotate", "cli"),
        ("admin.client.jwks", "cli"),
        ("admin.client.secret_disable", "cli"),
    ]


def test_grants_show_and_set_keep_what_is_not_named(database: Path) -> None:
    dancu(
        "purposes", "add", "--code", PURPOSE, "--title", "Đăng ký thường trú", "--legal-basis", "Luật Cư trú"
    )
    dancu("purposes", "add", "--code", "OTHER", "--title", "Khác", "--legal-basis", "Luật khác")
    client_id = new_client(
        "Cổng", "--scopes", "citizen.verify,citizen.read", "--fields", "*", "--provinces", "52"
    )["client_id"]

    widened = as_json(
        "grants",
        "set",
        client_id,
        "--provinces",
        "52,79",
        "--purposes",
        f"{PURPOSE},OTHER",
        "--rate-limit",
        "90",
    )
    narrowed = as_json("grants", "set", client_id, "--purposes", "", "--no-verify-details")
    windowed = as_json("grants", "set", client_id, "--valid-until", "2030-01-01T07:00:00+07:00")
    cleared = as_json("grants", "set", client_id, "--valid-until", "")
    shown = as_json("grants", "show", client_id)
    table = dancu("grants", "show", client_id).stdout

    assert widened["scopes"] == ["citizen.verify", "citizen.read"]
    assert widened["fields"] == ["*"]
    assert widened["provinces"] == ["52", "79"]
    assert widened["purposes"] == [PURPOSE, "OTHER"]
    assert widened["rate_limit_per_minute"] == 90
    assert narrowed["purposes"] == []
    assert narrowed["provinces"] == ["52", "79"]
    assert windowed["valid_until"] == "2030-01-01T00:00:00Z"
    assert cleared["valid_until"] is None
    assert shown == cleared
    assert "provinces" in table
    assert "52,79" in table
    assert [
        a for (a,) in rows(database, "SELECT actor FROM audit_events WHERE action = 'admin.grant.replace'")
    ] == ["cli"] * 5


def test_require_end_user_on_the_command_line(database: Path) -> None:
    strict = new_client("Cổng A", "--scopes", "citizen.read", "--require-end-user")["client_id"]
    lax = new_client("Cổng B", "--scopes", "citizen.read")["client_id"]

    created = as_json("grants", "show", strict)
    default = as_json("grants", "show", lax)
    kept = as_json("grants", "set", strict, "--rate-limit", "90")
    turned_off = as_json("grants", "set", strict, "--no-require-end-user")
    turned_on = as_json("grants", "set", lax, "--require-end-user")

    assert created["require_end_user"] is True
    assert default["require_end_user"] is False
    assert kept["require_end_user"] is True, "grants set keeps what it is not told to change"
    assert turned_off["require_end_user"] is False
    assert turned_on["require_end_user"] is True
    assert "require_end_user" in dancu("grants", "show", lax).stdout


@pytest.mark.parametrize(
    ("options", "where"),
    [
        (["--scopes", "admin,citizen.read"], "scopes"),
        (["--provinces", "079"], "provinces.0"),
        (["--purposes", "UNREGISTERED"], "purposes.0"),
        (["--valid-until", "2030-01-01"], "valid_until"),
        (["--rate-limit", "0"], "rate_limit_per_minute"),
    ],
)
def test_grants_set_refuses_an_invalid_grant(database: Path, options: list[str], where: str) -> None:
    client_id = new_client()["client_id"]
    before = rows(database, "SELECT * FROM grants")

    result = runner.invoke(cli, ["grants", "set", client_id, "--json", *options])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert where in result.stderr
    assert "UNREGISTERED" not in result.stderr
    assert rows(database, "SELECT * FROM grants") == before


def test_purposes_list(database: Path) -> None:
    dancu(
        "purposes", "add", "--code", "B", "--title", "Cấp thẻ Căn cước", "--legal-basis", "Luật Căn cước 2023"
    )
    dancu(
        "purposes", "add", "--code", "A", "--title", "Đăng ký thường trú", "--legal-basis", "Luật Cư trú 2020"
    )

    table = dancu("purposes", "list").stdout.splitlines()
    listed = as_json("purposes", "list")

    assert table[0].split() == ["code", "title", "legal_basis", "retired_at"]
    assert table[1].startswith("A ")
    assert "Cấp thẻ Căn cước" in table[2]
    assert [p["code"] for p in listed["items"]] == ["A", "B"]
    assert listed["items"][1]["legal_basis"] == "Luật Căn cước 2023"


def test_keys_rotate_and_list(database: Path) -> None:
    dancu("keys", "rotate")
    dancu("keys", "rotate")

    listed = as_json("keys", "list")
    table = dancu("keys", "list").stdout.splitlines()

    assert len(listed["items"]) == 3
    assert [k["active"] for k in listed["items"]] == [False, False, True]
    assert all(k["retired_at"] for k in listed["items"][:2])
    assert table[0].split() == ["kid", "alg", "active", "created_at", "retired_at"]
    assert listed["items"][-1]["kid"] in table[3]
    assert "yes" in table[3]
    assert all("PRIVATE" not in line for line in table)


def test_suspend_and_reinstate_are_audited_as_cli(database: Path) -> None:
    client_id = new_client()["client_id"]

    dancu("clients", "suspend", client_id)
    dancu("clients", "reinstate", client_id)

    events = rows(
        database, "SELECT action, actor, detail FROM audit_events WHERE action = 'admin.client.update'"
    )
    assert [(action, actor) for action, actor, _ in events] == [("admin.client.update", "cli")] * 2
    assert [json.loads(detail)["after"]["status"] for _, _, detail in events] == ["suspended", "active"]


def test_changes_print_one_json_object_with_json(database: Path) -> None:
    client_id = new_client()["client_id"]

    suspended = as_json("clients", "suspend", client_id)
    reinstated = as_json("clients", "reinstate", client_id)
    purpose = as_json(
        "purposes", "add", "--code", PURPOSE, "--title", "Đăng ký thường trú", "--legal-basis", "Luật"
    )
    key = as_json("keys", "rotate")

    assert (suspended["client_id"], suspended["status"]) == (client_id, "suspended")
    assert reinstated["status"] == "active"
    assert "client_secret" not in suspended
    assert (purpose["code"], purpose["title"]) == (PURPOSE, "Đăng ký thường trú")
    assert key["active"] is True
    assert rows(database, "SELECT kid FROM signing_keys WHERE active") == [(key["kid"],)]


def test_purposes_retire_refused_while_granted_then_retired(database: Path) -> None:
    dancu(
        "purposes", "add", "--code", PURPOSE, "--title", "Đăng ký thường trú", "--legal-basis", "Luật Cư trú"
    )
    client_id = new_client("Cổng", "--scopes", "citizen.verify", "--purposes", PURPOSE)["client_id"]

    refused = runner.invoke(cli, ["purposes", "retire", PURPOSE])
    assert refused.exit_code == 2
    assert "still in a client's grant" in refused.output
    assert rows(database, "SELECT retired_at FROM purposes") == [(None,)]

    as_json("grants", "set", client_id, "--purposes", "")
    retired = as_json("purposes", "retire", PURPOSE)
    assert retired["code"] == PURPOSE
    assert retired["retired_at"] is not None
    assert [row["retired_at"] for row in as_json("purposes", "list")["items"]] == [retired["retired_at"]]
    assert rows(database, "SELECT action, actor FROM audit_events WHERE action = 'admin.purpose.retire'") == [
        ("admin.purpose.retire", "cli")
    ]
