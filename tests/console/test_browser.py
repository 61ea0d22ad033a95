"""The console in a real browser (docs/contract.md, section 15): headless Chromium driven by Playwright.

Debian's ``chromium`` is used (``executable_path``), never Playwright's own download. Without it these tests
skip, unless ``DANCU_TEST_REQUIRE_SERVICES=1`` (CI), where they fail. One browser serves them all;
each test has its own context (cookies) and its own operators on one gateway per module.

``DANCU_TEST_SCREENSHOTS=1`` writes a screenshot of each page into ``docs/console/`` (the pictures of
docs/console.md); a normal run writes nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from app.audit.writer import AdminLog
from app.auth.keys import SecretHasher, load_encryption_key
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService
from app.cli import PROJECT_ROOT
from app.config import Settings
from app.db import create_engine, create_sessionmaker, utcnow
from app.main import create_app
from app.operators import credentials
from app.operators.models import Operator, OperatorSession
from app.operators.service import OperatorService
from tests.console.conftest import ENCRYPTION_KEY, NEW_PASSWORD, SUBJECT_KEYS, console_settings
from tests.harness import REQUIRE_SERVICES, serve_in_thread

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
"""Assertions that wait (up to the default timeout) for a page still loading after a click."""

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = PROJECT_ROOT / "docs" / "console"
POLL_FOR = 10.0
BROWSER_WAIT_MS = 120_000
"""How long a page action or navigation may take (Playwright's default is 30 s): CI may run on a loaded
machine, and the gateway answers from a thread of this process."""


@pytest.fixture(scope="module")
def browser(console_template: Path) -> Iterator[Any]:
    """Chromium, one for every browser test (they are all in this module). Module-scoped, not session-scoped:
    while Playwright's sync API runs it keeps an event loop registered on the main thread, and the async tests
    of other modules could not run their own. Started after the migrated template exists (migrations run an
    event loop of their own)."""
    if not CHROMIUM.exists():
        if REQUIRE_SERVICES:
            pytest.fail("/usr/bin/chromium is missing and DANCU_TEST_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip("no Chromium at /usr/bin/chromium")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Console:
    """One gateway under uvicorn for the module, its database, and ways to set up what a test needs."""

    def __init__(self, url: str, database_url: str, settings: Any) -> None:
        self.url = url
        self.database_url = database_url
        self.settings = settings
        self.secrets = SecretHasher(load_encryption_key(settings))

    def run(self, work: Callable[[Any], Any]) -> Any:
        """``work(session)`` in one committed transaction on the gateway's database (a test's own loop)."""

        async def go() -> Any:
            engine = create_engine(self.settings)
            try:
                async with create_sessionmaker(engine)() as session:
                    result = await work(session)
                    await session.commit()
                    return result
            finally:
                await engine.dispose()

        # In a thread of its own: Playwright's sync API keeps an event loop registered on this one.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, go()).result()

    def operator(self, roles: str, prefix: str = "cb") -> tuple[str, str]:
        """A new operator (a unique username) and its initial password."""
        username = f"{prefix}{secrets.token_hex(3)}"

        async def make(session: Any) -> str:
            service = OperatorService(session, Fernet(ENCRYPTION_KEY.encode()))
            _view, password = await service.create(username, "Nguyễn Thị Lan", roles.split(","))
            return password

        return username, self.run(make)

    def client(self) -> str:
        async def make(session: Any) -> str:
            service = AuthService(session, self.secrets, AdminLog(session, actor=CLI_ACTOR))
            created = await service.create_client(ClientCreate(name="Cổng dịch vụ công tỉnh Gia Lai"))
            await service.replace_grant(
                created.client.client_id,
                GrantIn(scopes=["citizen.verify"], provinces=["52"], rate_limit_per_minute=60),
            )
            return created.client.client_id

        return str(self.run(make))

    def portal(self, name: str, grant: GrantIn, purpose: PurposeIn) -> tuple[str, str]:
        """A calling system: ``purpose`` registered (once), a client named ``name`` with ``grant``; its id
        and secret."""

        async def make(session: Any) -> tuple[str, str]:
            service = AuthService(session, self.secrets, AdminLog(session, actor=CLI_ACTOR))
            if purpose.code not in {p.code for p in await service.list_purposes()}:
                await service.add_purpose(purpose)
            created = await service.create_client(ClientCreate(name=name))
            await service.replace_grant(created.client.client_id, grant)
            return created.client.client_id, created.client_secret

        client_id, secret = self.run(make)
        return str(client_id), str(secret)

    def rate_limit(self, client_id: str) -> int:
        async def read(session: Any) -> int:
            service = AuthService(session, self.secrets, AdminLog(session, actor=CLI_ACTOR))
            return (await service.get_grant(client_id)).rate_limit_per_minute

        return int(self.run(read))

    def execute(self, statement: Any) -> None:
        async def go(session: Any) -> None:
            await session.execute(statement)

        self.run(go)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, console_template: Path) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console-browser")
    settings = browser_settings(
        folder, sqlite_copy(folder, console_template), admin={"require_approval": True}
    )
    with served(settings, "console-browser") as console:
        yield console


def sqlite_copy(folder: Path, template: Path) -> str:
    """A copy of the migrated template database in ``folder``, as a URL."""
    path = folder / "dancu.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def browser_settings(folder: Path, database_url: str, **extra: Any) -> Settings:
    """A browser test's gateway: the console's settings, with checkpoint key and files of its own in ``folder``."""
    audit = {
        "subject_keys": SUBJECT_KEYS,
        "checkpoint_key_file": str(folder / "checkpoint.pem"),
        "checkpoint_dir": str(folder / "checkpoints"),
    }
    return console_settings(database_url, audit=audit, **extra)


@contextmanager
def served(settings: Settings, name: str) -> Iterator[Console]:
    """The gateway of ``settings`` under uvicorn in a thread, for the ``with`` block."""
    with serve_in_thread(create_app(settings), name) as url:
        yield Console(url, settings.database_url, settings)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="vi-VN", viewport={"width": 1200, "height": 800})
    context.set_default_timeout(BROWSER_WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    if os.environ.get("DANCU_TEST_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, console: Console, username: str, password: str) -> None:
    page.goto(console.url + "/console/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def first_login(page: Any, console: Console, roles: str, prefix: str = "cb") -> str:
    """A new operator signed in, its first password change done; its username."""
    username, password = console.operator(roles, prefix)
    log_in(page, console, username, password)
    page.wait_for_url(re.compile(r"/console/password$"))
    page.get_by_test_id("password-current").fill(password)
    page.get_by_test_id("password-new").fill(NEW_PASSWORD)
    page.get_by_test_id("password-confirm").fill(NEW_PASSWORD)
    page.get_by_test_id("password-submit").click()
    page.wait_for_url(re.compile(r"/console/$"))
    return username


def test_login_without_a_code_first_password_change_and_dashboard(page: Any, console: Console) -> None:
    username, password = console.operator("admin,approver", "quantri")
    page.goto(console.url + "/console/")
    page.wait_for_url(re.compile(r"/console/login$"))
    assert page.get_by_test_id("login-submit").is_visible()
    shot(page, "01-login")
    log_in(page, console, username, password)
    page.wait_for_url(re.compile(r"/console/password$"))
    assert page.get_by_test_id("nav-dashboard").count() == 0  # only the password page is open
    shot(page, "02-first-password-change")
    page.get_by_test_id("password-current").fill(password)
    page.get_by_test_id("password-new").fill(NEW_PASSWORD)
    page.get_by_test_id("password-confirm").fill(NEW_PASSWORD)
    page.get_by_test_id("password-submit").click()
    page.wait_for_url(re.compile(r"/console/$"))
    for testid in ("nav-dashboard", "nav-clients", "nav-approvals", "nav-account", "nav-logout"):
        assert page.get_by_test_id(testid).is_visible(), testid
    for testid in ("nav-audit", "nav-statistics"):
        assert page.get_by_test_id(testid).count() == 0, testid
    assert page.get_by_test_id("dash-today").is_visible()
    shot(page, "03-dashboard")
    page.get_by_test_id("nav-account").click()
    page.wait_for_url(re.compile(r"/console/account$"))
    assert username in page.get_by_test_id("account-username").inner_text()
    shot(page, "04-account")
    page.get_by_test_id("lang-switch").click()
    page.wait_for_url(re.compile(r"/console/account$"))
    assert "My account" in page.content()
    shot(page, "05-account-english")


def test_wrong_password_lockout_and_its_end(page: Any, console: Console) -> None:
    username = first_login(page, console, "analyst")
    page.get_by_test_id("nav-logout").click()
    page.wait_for_url(re.compile(r"/console/login$"))
    for _ in range(5):
        log_in(page, console, username, "not the password!")
        expect(page.get_by_test_id("login-error")).to_be_visible()
    shot(page, "06-login-error")
    log_in(page, console, username, NEW_PASSWORD)  # right password, locked account
    expect(page.get_by_test_id("login-error")).to_be_visible()
    console.execute(
        update(Operator)
        .where(Operator.username == username)
        .values(locked_until=utcnow() - timedelta(seconds=1))
    )
    log_in(page, console, username, NEW_PASSWORD)
    page.wait_for_url(re.compile(r"/console/$"))


def test_enrolment_then_login_with_a_code(page: Any, console: Console) -> None:
    username = first_login(page, console, "auditor")
    page.get_by_test_id("nav-account").click()
    page.get_by_test_id("account-enrol").click()
    page.wait_for_url(re.compile(r"/console/enrol$"))
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    assert page.locator(".qr svg").count() == 1
    shot(page, "07-authenticator-enrolment")
    page.get_by_test_id("totp-code").fill(credentials.code_at(secret, credentials.current_step() - 1))
    page.get_by_test_id("totp-submit").click()
    page.wait_for_url(re.compile(r"/console/$"))
    page.get_by_test_id("nav-logout").click()
    log_in(page, console, username, NEW_PASSWORD)
    page.wait_for_url(re.compile(r"/console/login/code$"))
    shot(page, "08-login-code")
    page.get_by_test_id("login-totp").fill(credentials.code_at(secret, credentials.current_step()))
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r"/console/$"))
    assert page.get_by_test_id("nav-audit").is_visible()


def test_session_expiry_and_logout(page: Any, console: Console) -> None:
    first_login(page, console, "analyst")
    console.execute(update(OperatorSession).values(last_seen_at=utcnow() - timedelta(minutes=16)))
    page.goto(console.url + "/console/account")
    page.wait_for_url(re.compile(r"/console/login$"))
    first_login(page, console, "analyst")
    page.get_by_test_id("nav-logout").click()
    page.wait_for_url(re.compile(r"/console/login$"))
    page.goto(console.url + "/console/")
    page.wait_for_url(re.compile(r"/console/login$"))


def test_a_page_the_roles_do_not_allow_is_403_without_a_link(page: Any, console: Console) -> None:
    first_login(page, console, "auditor,analyst", "kiemtoan")
    assert page.get_by_test_id("nav-clients").count() == 0
    assert page.get_by_test_id("nav-approvals").count() == 0
    answer = page.goto(console.url + "/console/clients")
    assert answer.status == 403
    assert page.get_by_test_id("forbidden").is_visible()
    shot(page, "09-forbidden")


def test_csrf_refusal_changes_nothing(page: Any, console: Console) -> None:
    first_login(page, console, "analyst")
    page.locator("nav input[name=csrf_token]").evaluate("input => { input.value = 'forged' }")
    with page.expect_response(re.compile(r"/console/logout$")) as answered:
        page.get_by_test_id("nav-logout").click()
    assert answered.value.status == 403
    page.goto(console.url + "/console/account")
    assert page.get_by_test_id("account-username").is_visible()  # still signed in


def test_a_disabled_operator_s_session_ends(page: Any, console: Console) -> None:
    username = first_login(page, console, "analyst")
    console.execute(update(Operator).where(Operator.username == username).values(status="disabled"))
    deadline = time.monotonic() + POLL_FOR
    while True:
        page.goto(console.url + "/console/")
        if page.url.endswith("/console/login") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert page.url.endswith("/console/login")


def test_self_approval_refused_and_another_approver_s_approval_applies(
    page: Any, browser: Any, console: Console
) -> None:
    client_id = console.client()
    first_login(page, console, "admin,approver", "quantri")
    page.get_by_test_id("nav-clients").click()
    page.wait_for_url(re.compile(r"/console/clients$"))
    shot(page, "10-clients")
    page.locator(f'a[href="/console/clients/{client_id}/grant"]').click()
    page.get_by_test_id("grant-rate").fill("600")
    shot(page, "11-grant")
    # By keyboard: after a full-page screenshot of a long page, Chromium's mouse may miss the button.
    page.get_by_test_id("grant-submit").press("Enter")
    page.get_by_test_id("grant-pending").wait_for()
    assert console.rate_limit(client_id) == 60
    page.get_by_test_id("nav-approvals").click()
    row = page.get_by_test_id("approval-row").filter(has_text=client_id)
    expect(row).to_have_count(1)
    shot(page, "12-approvals")
    row.get_by_test_id("approval-approve").click()
    expect(page.get_by_test_id("approval-error")).to_be_visible()
    assert "self_approval" in page.get_by_test_id("approval-error").inner_text()
    shot(page, "13-self-approval-refused")
    assert console.rate_limit(client_id) == 60

    other = browser.new_context(locale="vi-VN", viewport={"width": 1200, "height": 800})
    other.set_default_timeout(BROWSER_WAIT_MS)
    try:
        second = other.new_page()
        first_login(second, console, "approver", "duyet")
        second.get_by_test_id("nav-approvals").click()
        row = second.get_by_test_id("approval-row").filter(has_text=client_id)
        row.get_by_test_id("approval-reason").fill("Theo công văn số 12/CV-UBND")
        row.get_by_test_id("approval-approve").click()
        second.wait_for_url(re.compile(r"/console/approvals\?done=approved$"))
        assert second.get_by_test_id("approval-row").filter(has_text=client_id).count() == 0
    finally:
        other.close()
    assert console.rate_limit(client_id) == 600
