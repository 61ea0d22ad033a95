"""`mock-csdlqg seed` as operators run it, on SQLite and PostgreSQL, and the store it leaves behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mock_csdlqg.cli import cli
from mock_csdlqg.personas import personas
from mock_csdlqg.store import StoreError, StoreMissing, open_store, parse_url

runner = CliRunner()


async def _count_and_info(url: str) -> tuple[int, dict[str, str]]:
    store = await open_store(url)
    try:
        return await store.count(), await store.info()
    finally:
        await store.close()


def test_seed_sqlite_reports_and_records_its_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    result = runner.invoke(
        cli, ["seed", "--count", "50", "--seed", "9", "--provinces", "79,01", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    assert f"seeded 50 residents + {len(personas())} personas" in result.output
    count, info = asyncio.run(_count_and_info(url))
    assert count == 50 + len(personas())
    assert info == {
        "as_of": "2026-01-01",
        "count": "50",
        "format_version": "1",
        "personas": str(len(personas())),
        "provinces": "79,01",
        "seed": "9",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provinces", "064"], "unknown 2025 province code"),
        (["--provinces", "52,99"], "unknown 2025 province code"),
        (["--as-of", "2026-13-01"], "YYYY-MM-DD"),
        (["--count", "-1"], "count"),
    ],
)
def test_seed_refuses_bad_arguments_and_leaves_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "m.db"
    result = runner.invoke(cli, ["seed", "--database-url", f"sqlite:///{db}", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not db.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_seed_postgres_replaces_the_content(postgres_url: str) -> None:
    for count in (120, 30):
        result = runner.invoke(cli, ["seed", "--count", str(count), "--database-url", postgres_url, "-q"])
        assert result.exit_code == 0, result.output
        total, info = asyncio.run(_count_and_info(postgres_url))
        assert total == count + len(personas())
        assert info["count"] == str(count)


def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing):
        asyncio.run(open_store(f"sqlite:///{tmp_path / 'absent.db'}"))
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./var/m.db", ("sqlite", "./var/m.db")),
        ("sqlite+aiosqlite:////abs/m.db", ("sqlite", "/abs/m.db")),
        ("postgresql://u@h:5432/d", ("postgresql", "postgresql://u@h:5432/d")),
        ("postgresql+asyncpg://u@h/d", ("postgresql", "postgresql://u@h/d")),
    ],
)
def test_database_urls_may_name_the_driver(url: str, expected: tuple[str, str]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://h/d", "sqlite://", "sqlite:///:memory:"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        parse_url(url)
