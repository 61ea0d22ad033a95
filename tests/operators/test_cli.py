"""`dancu operators ...` (docs/contract.md, section 15): thin, scriptable, one transaction each."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DANCU_DATABASE_URL", database_url)
    return database_url


def test_create_list_roles_disable_enable_reset(database: str) -> None:
    created = runner.invoke(
        cli,
        [
            "operators",
            "create",
            "--username",
            "lan",
            "--display-name",
            "Nguyễn Thị Lan",
            "--roles",
            "admin,approver",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    printed = json.loads(created.stdout)
    assert set(printed) == {"username", "initial_password"}
    assert len(printed["initial_password"]) >= 20
    added = runner.invoke(
        cli, ["operators", "add", "--username", "kt", "--display-name", "Kiểm toán", "--roles", "auditor"]
    )
    assert added.exit_code == 0, added.output

    refused = runner.invoke(
        cli, ["operators", "create", "--username", "xy", "--display-name", "X", "--roles", "admin,auditor"]
    )
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert runner.invoke(cli, ["operators", "disable", "lan"]).exit_code == 2  # the last admin
    assert runner.invoke(cli, ["operators", "roles", "kt", "--roles", "auditor,analyst"]).exit_code == 0
    assert runner.invoke(cli, ["operators", "disable", "kt"]).exit_code == 0
    assert runner.invoke(cli, ["operators", "enable", "kt"]).exit_code == 0
    reset = runner.invoke(cli, ["operators", "reset-password", "kt", "--json"])
    assert reset.exit_code == 0
    assert json.loads(reset.stdout)["initial_password"] != printed["initial_password"]
    assert runner.invoke(cli, ["operators", "reset-totp", "kt"]).exit_code == 0
    assert runner.invoke(cli, ["operators", "disable", "nobody"]).exit_code == 2

    listed = json.loads(runner.invoke(cli, ["operators", "list", "--json"]).stdout)["items"]
    assert [(o["username"], o["roles"], o["status"]) for o in listed] == [
        ("kt", ["auditor", "analyst"], "active"),
        ("lan", ["admin", "approver"], "active"),
    ]
    with sqlite3.connect(database.removeprefix("sqlite:///")) as connection:
        actions = connection.execute("SELECT action, actor FROM audit_events ORDER BY seq").fetchall()
    assert actions == [
        ("operator.create", "cli"),
        ("operator.create", "cli"),
        ("operator.roles", "cli"),
        ("operator.disable", "cli"),
        ("operator.enable", "cli"),
        ("operator.password_reset", "cli"),
        ("operator.totp_reset", "cli"),
    ]
