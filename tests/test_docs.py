"""The documentation stays true, and nothing in the tree cites documents a clone of it does not contain.

``docs/contract.md`` is the contract integrators and operators read; ``docs/security.md`` names the tests that hold
each promise. These tests fail when a problem code the gateway can answer, a token-endpoint error, or a setting it
reads is missing from the contract's tables (or listed there without existing), when an index entry of the contract
points at no heading, when a doc names a test or a file that does not exist, when a docstring, comment or doc
names a module, a name in one or a file that does not exist (a stale docstring after a move), and when any file
of the repository cites the documents a fresh clone does not have.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

import app
from app.auth.schemas import OAuthErrorResponse
from app.config import Settings
from app.errors import GatewayError
from mock_csdlqg.config import MockSettings

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract.md"
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

# Documents that live beside the project on developers' machines but not in a clone of it. Each pattern is written
# so that this file's own text does not match it.
OUTSIDE_THE_TREE = re.compile(
    r"\bAPI(-PART2)?\.md|\bSECURITY\.md|\bSTYLE\.md|\.\./shared\b"
    r"|\b(vietnam-fact[s]|identity-system[s]|exchange-gateway[s]|statistics-disclosur[e]|performance-baselin[e])\b"
)
_SKIPPED_DIRS = frozenset(
    {".git", ".venv", "var", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache"}
)


def _repository_files() -> list[Path]:
    """Every file of the repository: tracked or new (not ignored); a walk of the tree outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return [
            path
            for path in ROOT.rglob("*")
            if path.is_file() and not _SKIPPED_DIRS & set(path.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed.decode("utf-8").split("\0") if name]


def test_no_file_cites_documents_outside_the_repository() -> None:
    cited: list[str] = []
    for path in _repository_files():
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if found := OUTSIDE_THE_TREE.search(line):
                cited.append(f"{path.relative_to(ROOT)}:{number}: {found.group(0)}")
    assert not cited, (
        "cite docs/contract.md or docs/security.md (page and section) instead of files a clone does not have:\n"
        + "\n".join(cited)
    )


# --- the contract's tables ----------------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` inside a cell is not a separator)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def _tables(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Every table of a Markdown text: its header cells and its body rows."""
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            rows.append(_cells(line))
            continue
        if len(rows) >= 2:
            yield rows[0], [row for row in rows[2:] if row]
        rows = []


def _first_column(header: str) -> set[str]:
    """The names in backticks in the first column of every contract table whose first header is ``header``."""
    names: set[str] = set()
    for head, body in _tables(CONTRACT.read_text(encoding="utf-8")):
        if head and head[0] == header:
            for row in body:
                names.update(re.findall(r"`([^`]+)`", row[0]))
    return names


def _subclasses(root: type[GatewayError]) -> Iterator[type[GatewayError]]:
    for child in root.__subclasses__():
        yield child
        yield from _subclasses(child)


def _gateway_problem_codes() -> set[str]:
    """The ``code`` of every problem class of the gateway (each of its modules imported, so every class exists)."""
    for module in pkgutil.walk_packages(app.__path__, "app."):
        importlib.import_module(module.name)
    return {GatewayError.code} | {error.code for error in _subclasses(GatewayError)}


def test_every_problem_code_is_in_the_contract_and_every_listed_code_exists() -> None:
    codes = _gateway_problem_codes()
    listed = _first_column("code")
    assert codes - listed == set(), "add these codes to the table of docs/contract.md, Error codes"
    assert listed - codes == set(), (
        "the table of docs/contract.md, Error codes, lists codes the gateway lacks"
    )


def test_every_token_endpoint_error_is_in_the_contract() -> None:
    errors = set(typing.get_args(OAuthErrorResponse.model_fields["error"].annotation))
    assert errors
    assert _first_column("error") == errors, (
        "docs/contract.md, Access tokens: the table of token-endpoint errors"
    )


def _environment_names(settings: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads: prefix and name, nested groups with the delimiter, aliases as such."""
    prefix = settings.model_config.get("env_prefix", "")
    delimiter = settings.model_config.get("env_nested_delimiter") or "__"
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        group = field.annotation
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
        elif isinstance(group, type) and issubclass(group, BaseModel):
            names.update(f"{prefix}{name}{delimiter}{member}".upper() for member in group.model_fields)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def test_every_setting_is_in_the_contract_and_every_listed_setting_exists() -> None:
    read = _environment_names(Settings) | _environment_names(MockSettings)
    listed = _first_column("variable")
    assert read - listed == set(), "add these settings to the table of docs/contract.md, Settings"
    assert listed - read == set(), "the table of docs/contract.md, Settings, lists variables nothing reads"


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rules) gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contract_index_points_at_its_headings() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    anchors = {_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert linked
    assert linked - anchors == set(), "docs/contract.md links to headings it does not have"


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_the_tests_a_page_names_exist(page: Path) -> None:
    missing = [
        f"{path}::{name}"
        for path, name in re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", page.read_text(encoding="utf-8"))
        if not (ROOT / path).is_file()
        or not re.search(rf"^\s*(async )?def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, f"{page.name} names tests that do not exist: {missing}"


_REPOSITORY_PATH = re.compile(
    r"(?<![\w/.-])((?:app|vnid|mock_csdlqg|tests|bench|docs|migrations|openapi|scripts|docker)/[\w./-]*\w"
    r"\.(?:py|md|json|sh|toml|ini))"
)


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_the_files_a_page_names_exist(page: Path) -> None:
    missing = sorted(
        {
            path
            for path in _REPOSITORY_PATH.findall(page.read_text(encoding="utf-8"))
            if not (ROOT / path).exists()
        }
    )
    assert not missing, f"{page.name} names files that do not exist (moved? say where to now): {missing}"


# --- docstrings and comments ---------------------------------------------------------------------------------

SOURCE_DIRS = ("app", "mock_csdlqg", "vnid", "bench", "scripts", "migrations", "tests")
_DOTTED_NAME = re.compile(r"`{1,2}((?:app|mock_csdlqg|vnid)(?:\.\w+)+)(?:\(\))?`{1,2}")
# ``app.state.dancu`` is the FastAPI instance's state, not the ``app.state`` module.
_NOT_MODULE_PATHS = frozenset({"app.state.dancu"})


def _sources() -> list[Path]:
    return sorted(path for folder in SOURCE_DIRS for path in (ROOT / folder).rglob("*.py"))


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module of the tree, or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_the_modules_and_names_code_and_docs_cite_exist() -> None:
    stale = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in [*_sources(), *DOCS]
        for name in set(_DOTTED_NAME.findall(path.read_text(encoding="utf-8")))
        if name not in _NOT_MODULE_PATHS and not _resolves(name)
    )
    assert not stale, (
        "docstrings, comments or docs name what no longer exists (moved? say where to now):\n"
        + ("\n".join(stale))
    )


def test_the_files_code_names_exist() -> None:
    missing = sorted(
        {
            f"{path.relative_to(ROOT)}: {named}"
            for path in _sources()
            for named in _REPOSITORY_PATH.findall(path.read_text(encoding="utf-8"))
            if not (ROOT / named).exists()
        }
    )
    assert not missing, f"docstrings or comments name files that do not exist: {missing}"
