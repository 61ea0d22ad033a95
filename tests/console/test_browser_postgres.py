"""The sign-in and four-eyes journeys of ``test_browser.py`` again, on PostgreSQL: the database a province runs,
where sessions, lockouts and pending changes live for every replica (docs/console.md).

The tests are those of ``test_browser.py``, collected here a second time; the ``console`` fixture of this module
serves the gateway on a fresh migrated PostgreSQL database instead of a SQLite file. Screenshots come from the
SQLite run only.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.console.test_browser import (  # noqa: F401 - fixtures and the tests run again here
    Console,
    browser,
    browser_settings,
    page,
    served,
    test_a_disabled_operator_s_session_ends,
    test_a_page_the_roles_do_not_allow_is_403_without_a_link,
    test_csrf_refusal_changes_nothing,
    test_enrolment_then_login_with_a_code,
    test_login_without_a_code_first_password_change_and_dashboard,
    test_self_approval_refused_and_another_approver_s_approval_applies,
    test_session_expiry_and_logout,
    test_wrong_password_lockout_and_its_end,
)
from tests.harness import fresh_postgres


@pytest.fixture(autouse=True)
def _no_screenshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANCU_TEST_SCREENSHOTS", raising=False)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Console]:
    folder: Path = tmp_path_factory.mktemp("console-browser-pg")
    # Created and dropped in a thread: Playwright's sync API keeps an event loop registered on this one.
    database = fresh_postgres(postgres_url)
    with ThreadPoolExecutor(1) as pool:
        database_url = pool.submit(database.__enter__).result()
    try:
        yield from _served(folder, database_url)
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(database.__exit__, None, None, None).result()


def _served(folder: Path, database_url: str) -> Iterator[Console]:
    settings = browser_settings(folder, database_url, admin={"require_approval": True})
    with served(settings, "console-browser-pg") as console:
        yield console
