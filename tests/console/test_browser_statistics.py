"""The analyst's journey in a real browser (docs/contract.md, section 15; docs/console.md, Statistics): an
analyst asks for the age pyramid of province 52, and the numbers the chart shows (its labels and each bar's
``data-count``) and the table are the statistics API's for the same query, asked by a ``stats.read`` client
over HTTP; then the bar chart by ward, an error shown next to its control, the CSV download, and the page at
1366x768 and on a phone.

The browser, the gateway and the helpers are those of ``test_browser.py`` (imported, so the fixtures are this
module's too: one Chromium for this module). ``DANCU_TEST_SCREENSHOTS=1`` writes docs/console/5x-*.png.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.schemas import GrantIn, PurposeIn
from tests.console.test_browser import (  # noqa: F401 - fixtures used by name
    Console,
    browser,
    browser_settings,
    first_login,
    page,
    served,
    shot,
    sqlite_copy,
)
from tests.harness import seeded_mock

PURPOSE = "TK-DS.000001"
PURPOSE_TITLE = "Thống kê dân số phục vụ quy hoạch"
PROVINCE = "52"
API = "/v1/statistics/population"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, console_template: Path) -> Iterator[Console]:
    """The gateway of ``test_browser.py``'s fixture on a mock register of 20,000 generated residents (as `make run` seeds it)."""
    folder = tmp_path_factory.mktemp("console-stats-browser")
    settings = browser_settings(
        folder,
        sqlite_copy(folder, console_template),
        MOCK_CSDLQG_DATABASE_URL=seeded_mock(tmp_path_factory, "console-stats-browser-mock", 20000),
    )
    with served(settings, "console-stats-browser") as console:
        yield console


def stats_client(console: Console) -> tuple[str, str]:
    """A planning office's client: ``stats.read`` for province 52 with the statistical purpose."""

    return console.portal(
        "Sở Kế hoạch và Đầu tư tỉnh Gia Lai",
        GrantIn(scopes=["stats.read"], provinces=[PROVINCE], purposes=[PURPOSE], rate_limit_per_minute=60),
        PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Thống kê 2015, Điều 4"),
    )


def api_answer(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    client_id, secret = stats_client(console)
    with httpx.Client(base_url=console.url, timeout=60) as http:
        token = http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).json()["access_token"]
        answer = http.post(API, json=body, headers={"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def number(text: str) -> int:
    """A count as the Vietnamese page writes it (14.879)."""
    return int(text.replace(".", ""))


def no_sideways_scroll(page: Any) -> None:  # noqa: F811 - the fixture's name
    width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_an_analyst_sees_the_apis_numbers_in_the_age_pyramid(console: Console, page: Any) -> None:  # noqa: F811 - the fixture's name
    expected = api_answer(console, {"province": PROVINCE, "group_by": ["age_band", "sex"]})
    first_login(page, console, "analyst", "phantich")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.get_by_test_id("nav-statistics").click()
    page.wait_for_url(re.compile(r"/console/statistics$"))
    assert page.get_by_test_id("stats-wards").locator("option").count() == 0
    page.get_by_test_id("stats-province").select_option(PROVINCE)  # htmx fetches the province's wards
    page.get_by_test_id("stats-wards").locator("option[value='21583']").wait_for(state="attached")
    page.get_by_test_id("stats-group-by").select_option(["age_band", "sex"])
    page.get_by_test_id("stats-submit").click()
    pyramid = page.get_by_test_id("stats-pyramid")
    pyramid.wait_for()
    shot(page, "50-statistics-pyramid")
    no_sideways_scroll(page)

    # The chart: one bar per non-empty cell, its data-count and its written label the API's count.
    bars = pyramid.locator("rect[data-sex]")
    drawn = {
        (bar.get_attribute("data-age"), bar.get_attribute("data-sex")): bar.get_attribute("data-count")
        for bar in bars.all()
    }
    labels = {
        (label.get_attribute("data-age"), label.get_attribute("data-sex")): label.text_content()
        for label in pyramid.locator("text[data-sex]").all()
    }
    cells = {(item["age_band"], item["sex"]): item for item in expected["items"]}
    assert set(drawn) == set(cells)
    for key, item in cells.items():
        if item["suppressed"]:
            assert drawn[key] == ""
            assert labels[key] == "ẩn"
        else:
            assert drawn[key] == str(item["count"])
            assert number(labels[key] or "") == item["count"]
    assert pyramid.locator("title").first.text_content() == "Tháp dân số theo giới tính"
    assert "Tổng" in (pyramid.locator("desc").text_content() or "")

    # The table: the same numbers, the same order; the total as the API publishes it.
    rows = page.get_by_test_id("stats-row")
    assert rows.count() == len(expected["items"])
    for index, item in enumerate(expected["items"]):
        shown = rows.nth(index).locator("td.num").get_attribute("data-count")
        assert shown == ("" if item["suppressed"] else str(item["count"]))
    total = page.get_by_test_id("stats-total").locator("td.num").get_attribute("data-count")
    assert total == str(expected["total"]["count"])

    # The same query as a CSV file: a BOM, Vietnamese headers, the table's numbers.
    with page.expect_download() as info:
        page.get_by_test_id("stats-csv").click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    header, *body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header == ["Nhóm 5 tuổi", "Giới tính", "Số người", "Bị ẩn"]
    assert [row[2] for row in body[:-1]] == [
        "" if item["suppressed"] else str(item["count"]) for item in expected["items"]
    ]

    # A bar chart by ward, through the quick view, with the filters kept.
    page.get_by_test_id("stats-age-min").fill("18")
    chosen = (
        page.get_by_test_id("stats-wards")
        .locator("option")
        .evaluate_all("options => options.slice(0, 12).map(o => o.value)")
    )
    page.get_by_test_id("stats-wards").select_option(chosen)
    page.get_by_test_id("stats-preset-wards").click()
    wards = page.get_by_test_id("stats-bars")
    wards.wait_for()
    by_ward = api_answer(
        console, {"province": PROVINCE, "group_by": ["ward"], "wards": chosen, "filters": {"age_min": 18}}
    )
    assert len(by_ward["items"]) == len(chosen)
    drawn_wards = {
        bar.get_attribute("data-key"): bar.get_attribute("data-count")
        for bar in wards.locator("rect[data-key]").all()
    }
    assert drawn_wards == {
        item["ward"]["code"]: "" if item["suppressed"] else str(item["count"]) for item in by_ward["items"]
    }
    shot(page, "51-statistics-wards")

    # A mistake is named next to its control, in Vietnamese, and nothing is counted.
    page.get_by_test_id("stats-age-min").fill("mười tám")
    page.get_by_test_id("stats-submit").click()
    error = page.get_by_test_id("stats-error-age-min")
    error.wait_for()
    assert error.text_content() == "Cần một số nguyên."
    assert page.get_by_test_id("stats-age-min").get_attribute("aria-invalid") == "true"
    assert page.get_by_test_id("stats-row").count() == 0
    shot(page, "52-statistics-error")


def test_the_statistics_page_on_a_phone(console: Console, page: Any) -> None:  # noqa: F811 - the fixture's name
    stats_client(console)  # registers the purpose
    first_login(page, console, "analyst", "phantich")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(console.url + "/console/statistics")
    page.get_by_test_id("stats-province").select_option(PROVINCE)
    page.get_by_test_id("stats-purpose").select_option(PURPOSE)
    page.get_by_test_id("stats-preset-pyramid").click()
    page.get_by_test_id("stats-pyramid").wait_for()
    no_sideways_scroll(page)  # the chart scrolls in its own box
    assert page.get_by_test_id("stats-pyramid").is_visible()
    shot(page, "53-statistics-narrow")


def test_the_pyramid_by_keyboard_alone(console: Console, page: Any) -> None:  # noqa: F811 - the fixture's name
    """Type to choose the province, Tab to the submit button, Enter: the default grouping draws the pyramid."""
    stats_client(console)  # registers the purpose (the only one: chosen already)
    first_login(page, console, "analyst", "phantich")
    page.goto(console.url + "/console/statistics")
    page.get_by_test_id("stats-province").focus()
    page.keyboard.type("Gia Lai")
    assert page.get_by_test_id("stats-province").input_value() == PROVINCE
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "stats-submit":
            break
    else:
        pytest.fail("the submit button is not reached with Tab")
    page.keyboard.press("Enter")
    page.get_by_test_id("stats-pyramid").wait_for()
    assert page.get_by_test_id("stats-row").count() > 0
    page.get_by_test_id("stats-csv").focus()  # the download is a button too
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert Path(info.value.path()).read_bytes().startswith(b"\xef\xbb\xbf")
