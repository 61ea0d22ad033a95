"""``dancu stats population`` (docs/contract.md, section 10 and 14): the same perturbed table as the REST API,
as text or CSV, audited with actor ``cli``; refusals on stderr with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli, upgrade_database
from tests.harness import MOCK_AS_OF as AS_OF
from tests.stats.conftest import MAX_NOISE, THRESHOLD
from tests.stats_reference import Person, raw_counts

runner = CliRunner()


@pytest.fixture
def gateway_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stats_mock_db: str) -> Path:
    path = tmp_path / "dancu.db"
    upgrade_database(f"sqlite:///{path}")
    monkeypatch.setenv("DANCU_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("MOCK_CSDLQG_DATABASE_URL", stats_mock_db)
    return path


def stats_events(path: Path) -> list[tuple[str, str, str, int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT actor, outcome, action, status_code, detail FROM audit_events "
            "WHERE action = 'stats.population' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


def test_a_csv_table_by_ward_and_sex(gateway_db: Path, people: list[Person]) -> None:
    result = runner.invoke(
        cli, ["stats", "population", "--province", "52", "--group-by", "ward,sex", "--csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["ward_code", "ward_name", "sex", "count", "suppressed"]
    raw = raw_counts(people, province="52", as_of=AS_OF, group_by=["ward", "sex"])
    assert {(r["ward_code"], r["sex"]) for r in rows} == set(raw)
    for row in rows:
        n = raw[(row["ward_code"], row["sex"])]
        if n < THRESHOLD:
            assert (row["count"], row["suppressed"]) == ("", "true")
        else:
            assert abs(int(row["count"]) - n) <= MAX_NOISE
    ((actor, outcome, action, status, detail),) = stats_events(gateway_db)
    assert (actor, outcome, action, status) == ("cli", "allowed", "stats.population", 200)
    assert json.loads(detail)["group_by"] == ["ward", "sex"]


def test_the_text_table_and_json_agree(gateway_db: Path) -> None:
    args = ["stats", "population", "--province", "52", "--group-by", "age_group", "--sex", "female"]
    text = runner.invoke(cli, args)
    as_json = runner.invoke(cli, [*args, "--json"])
    assert text.exit_code == as_json.exit_code == 0
    answer = json.loads(as_json.stdout)
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["age_group", "count"]
    for line, item in zip(lines[1:], answer["items"], strict=False):
        assert line.split() == [item["age_group"], "suppressed" if item["suppressed"] else str(item["count"])]
    assert lines[-1].startswith(f"total {answer['total']['count']}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--province", "52", "--group-by", "sex,sex"], "group_by.1"),
        (["--province", "52", "--group-by", "religion"], "group_by.0"),
        (["--group-by", "sex"], "province"),
        (["--province", "52", "--wards", "26734"], "wards.0"),
        (["--province", "52", "--as-of", "2026-13-01"], "--as-of"),
    ],
)
def test_refusals_exit_2_naming_the_member(gateway_db: Path, args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["stats", "population", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("dancu: ")
    assert message in result.stderr
