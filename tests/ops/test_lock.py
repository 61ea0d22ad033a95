"""The reproducible install (README, Install): `requirements/*.lock` pin every dependency of pyproject.toml
with hashes, and `make install`, `.ci/run` (through `make test`) and the Dockerfile install from them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    found = set()
    for requirement in requirements:
        match = _NAME.match(requirement.strip())
        assert match, requirement
        found.add(canonical(match.group(1)))
    return found


def pinned(lock: Path) -> dict[str, str]:
    """``name -> version`` of a pip-compile lock; each pin must carry at least one ``--hash``."""
    text = lock.read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.split("\n", 1)[0]
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", first)
        if match:
            assert "--hash=sha256:" in block, f"{lock.name}: {first} has no hash"
            pins[canonical(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize(
    ("lock", "groups"), [("main.lock", ["dependencies"]), ("dev.lock", ["dependencies", "dev"])]
)
def test_the_lock_pins_every_dependency_with_hashes(lock: str, groups: list[str]) -> None:
    wanted: set[str] = set()
    for group in groups:
        wanted |= requirement_names(
            PROJECT["dependencies"] if group == "dependencies" else PROJECT["optional-dependencies"][group]
        )
    pins = pinned(ROOT / "requirements" / lock)

    missing = sorted(wanted - set(pins))
    assert missing == [], f"run `make lock`: {lock} lacks {missing}"


def test_the_main_lock_agrees_with_the_dev_lock() -> None:
    main, dev = pinned(ROOT / "requirements" / "main.lock"), pinned(ROOT / "requirements" / "dev.lock")
    assert {name: dev.get(name) for name in main} == main


def test_make_install_and_the_image_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes --requirement requirements/dev.lock" in makefile
    assert "pip install --require-hashes --requirement requirements/main.lock" in dockerfile
    assert "make test" in (ROOT / ".ci" / "run").read_text(
        encoding="utf-8"
    )  # which installs through make install
