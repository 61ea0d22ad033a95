"""The interactive documentation works on a machine without internet (docs/contract.md, Health and metrics).

A real `dancu serve` and headless Chromium (Debian's, through Playwright): `/docs` renders the operations, and no request of the page leaves 127.0.0.1. Skipped when Chromium or Playwright is missing,
unless DANCU_TEST_REQUIRE_SERVICES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.docs import ASSETS_DIR
from tests.harness import gateway_environment, served

CHROMIUM = os.environ.get("DANCU_TEST_CHROMIUM", "/usr/bin/chromium")


def _require(what: str) -> None:
    if os.environ.get("DANCU_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required (DANCU_TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cwd = tmp_path_factory.mktemp("docs")
    environment = gateway_environment(f"sqlite:///{cwd / 'dancu.db'}", f"sqlite:///{cwd / 'mock.db'}")
    with served(environment, cwd) as url:
        yield url


def test_the_assets_ship_with_the_package() -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert (ASSETS_DIR / name).stat().st_size > 0


def test_the_pages_name_only_local_assets(gateway_url: str) -> None:
    html = httpx.get(gateway_url + "/docs").text
    assert "cdn.jsdelivr.net" not in html
    assert "/docs/static/swagger-ui-bundle.js" in html
    asset = httpx.get(gateway_url + "/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert "javascript" in asset.headers["content-type"]


def test_the_page_renders_the_operations_offline(gateway_url: str, tmp_path: Path) -> None:
    page, operation = "/docs", ".opblock"
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        _require("Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("Playwright")
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context()
            context.set_default_timeout(120_000)  # Playwright's 30 s is short on a loaded CI machine
            page_ = context.new_page()
            page_.on("request", lambda request: requested.append(request.url))
            page_.goto(gateway_url + page)
            page_.wait_for_selector(operation)
            count = page_.locator(operation).count()
            text = page_.content()
            page_.screenshot(path=str(tmp_path / f"{page.strip('/')}.png"), full_page=False)
        finally:
            browser.close()

    assert count >= 10  # the citizen, admin, audit, auth and health operations are listed
    assert "/v1/citizens/verify" in text
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, sorted(url for url in requested if "127.0.0.1" not in url)


async def test_every_problem_code_is_documented_on_the_error_page() -> None:
    # docs/contract.md, Conventions: a problem's `type` urn:dancu:problem:<code> is explained at /errors#<code>.
    from app.config import Settings
    from app.main import create_app
    from app.openapi import error_classes

    app = create_app(Settings(_env_file=None, database_url="sqlite:///:memory:"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        page = await client.get("/errors")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for code in error_classes():
        assert f'id="{code}"' in page.text
    assert "Không tìm thấy" in page.text  # Vietnamese beside English
