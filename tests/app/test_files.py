"""The gateway's files are its owner's alone (docs/security.md, "Files"): the SQLite database and its WAL,
the generated keys and the checkpoint files are created 0600, their directories 0700, whatever the umask
lets through (the usual 022 would give 0644 and 0755)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.audit.dependencies import CHECKPOINTS
from app.auth.dependencies import KEYS
from app.cli import upgrade_database
from app.config import Settings
from app.files import write_private_file
from app.main import create_app
from app.state import AppState


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
async def test_database_keys_and_checkpoints_are_created_owner_only(tmp_path: Path) -> None:
    # As `make run` lays it out: everything under ./var of the working directory (the test's tmp_path).
    await asyncio.to_thread(upgrade_database, "sqlite:///./var/dancu.db")  # it runs its own event loop
    settings = Settings(_env_file=None, MOCK_CSDLQG_DATABASE_URL=f"sqlite:///{tmp_path}/absent-mock.db")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state: AppState = app.state.dancu
        await state[KEYS].signing_key()  # the first signing key, stored in the database
        await state[CHECKPOINTS].make()  # a checkpoint row and its file

    var = tmp_path / "var"
    files = [
        var / "dancu.db",
        var / "keys" / "encryption.key",
        var / "keys" / "subject.key",
        var / "keys" / "checkpoint.pem",
        *sorted((var / "checkpoints").iterdir()),
    ]
    wal = var / "dancu.db-wal"
    if wal.exists():
        files.append(wal)
    assert len(files) >= 5
    assert {str(path.relative_to(tmp_path)): oct(mode(path)) for path in files} == {
        str(path.relative_to(tmp_path)): oct(0o600) for path in files
    }
    for directory in (var, var / "keys", var / "checkpoints"):
        assert oct(mode(directory)) == oct(0o700), directory


@pytest.mark.usefixtures("usual_umask")
def test_an_existing_database_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    database.touch(mode=0o640)
    database.chmod(0o640)

    upgrade_database(f"sqlite:///{database}")

    assert mode(database) == 0o640


@pytest.mark.usefixtures("usual_umask")
def test_a_private_file_is_written_whole_with_mode_0600_and_no_draft_left(tmp_path: Path) -> None:
    path = tmp_path / "new" / "checkpoint.json"

    assert write_private_file(path, b"first")
    assert write_private_file(path, b"second")

    assert path.read_bytes() == b"second"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.json"]


def test_a_file_made_once_keeps_the_first_writers_content(tmp_path: Path) -> None:
    path = tmp_path / "subject.key"

    assert write_private_file(path, b"first", replace=False)
    assert not write_private_file(path, b"second", replace=False)

    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["subject.key"]
