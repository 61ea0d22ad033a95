"""The analyst's statistics page without a browser (docs/console.md, Statistics; docs/contract.md, section 15):
who may open it, CSRF, the same numbers as the REST API, refusals in Vietnamese next to their control, the
audit event with the operator as actor, and the CSV download parsed back to the table.

The gateway runs on the embedded mock seeded with the personas and 2,000 residents (seed 5, as of 2026-01-01).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from app.auth.schemas import PurposeIn
from app.main import create_app
from tests.console.conftest import Site, console_settings, csrf_of
from tests.harness import Client, Gateway, seeded_mock

PURPOSE = "TK-DS.000001"
PURPOSE_TITLE = "Thống kê dân số phục vụ quy hoạch"
PROVINCE = "52"
URL = "/console/statistics"
API = "/v1/statistics/population"
ROW = re.compile(r'<tr data-testid="stats-row">(.*?)</tr>', re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
COUNT = re.compile(r'<td class="num" data-count="(\d*)">')


@pytest.fixture(scope="session")
def stats_console_mock(tmp_path_factory: pytest.TempPathFactory) -> str:
    return seeded_mock(tmp_path_factory, "console-stats-mock", 2000)


async def _site(console_db: str, mock: str, **extra: Any) -> AsyncIterator[tuple[Site, Gateway]]:
    settings = console_settings(console_db, MOCK_CSDLQG_DATABASE_URL=mock, **extra)
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")
        )
        gateway = Gateway(
            app, http, grant={"scopes": ("stats.read",), "provinces": (PROVINCE,), "purposes": (PURPOSE,)}
        )
        async with gateway.state.sessionmaker() as session:
            await gateway.service(session).add_purpose(
                PurposeIn(code=PURPOSE, title=PURPOSE_TITLE, legal_basis="Luật Thống kê 2015, Điều 4")
            )
            await session.commit()
        yield Site(app, stack), gateway


@pytest.fixture
async def stats_site(console_db: str, stats_console_mock: str) -> AsyncIterator[tuple[Site, Gateway]]:
    async for pair in _site(console_db, stats_console_mock):
        yield pair


def _form(page: str, **values: Any) -> dict[str, Any]:
    return {"csrf_token": csrf_of(page), "province": PROVINCE, "purpose": PURPOSE, **values}


def _rows(html: str) -> list[tuple[list[str], str]]:
    """Each ``stats-row``: its dimension cells and its count (``data-count``, empty when hidden)."""
    rows = []
    for row in ROW.findall(html):
        cells = CELL.findall(row)
        found = COUNT.search(row)
        assert found
        rows.append((cells[:-1], found.group(1)))
    return rows


async def _api(gateway: Gateway, client: Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = await gateway.call(client, API, body, purpose=PURPOSE)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_only_analysts_open_the_page(stats_site: tuple[Site, Gateway]) -> None:
    site, _ = stats_site
    for username, roles in (("quantri", "admin,approver"), ("kiemtoan", "auditor")):
        client, _secret = await site.signed_in(username, roles)
        assert (await client.get(URL)).status_code == 403
        page = await client.get("/console/account")
        refused = await client.post(URL, data=_form(page.text, group_by="sex"))
        assert refused.status_code == 403
        assert (await client.post(URL + "/csv", data=_form(page.text))).status_code == 403
        assert 'data-testid="nav-statistics"' not in page.text
    assert await site.events("stats.") == []
    analyst, _secret = await site.signed_in("phantich", "analyst")
    page = await analyst.get(URL)
    assert page.status_code == 200
    for testid in ("stats-province", "stats-group-by", "stats-submit", "nav-statistics"):
        assert f'data-testid="{testid}"' in page.text
    assert await site.events("stats.") == []  # opening the form asks nothing


async def test_a_post_without_the_csrf_token_is_refused_and_asks_nothing(
    stats_site: tuple[Site, Gateway],
) -> None:
    site, _ = stats_site
    analyst, _secret = await site.signed_in("phantich", "analyst")
    page = await analyst.get(URL)
    for token in (None, "forged"):
        data = _form(page.text, group_by="sex")
        data.pop("csrf_token")
        if token:
            data["csrf_token"] = token
        for path in (URL, URL + "/csv"):
            answer = await analyst.post(path, data=data)
            assert answer.status_code == 403
            assert "CSRF" in answer.text
    assert await site.events("stats.") == []


async def test_the_table_shows_the_apis_numbers_and_the_query_is_audited_as_the_operator(
    stats_site: tuple[Site, Gateway],
) -> None:
    site, gateway = stats_site
    analyst, _secret = await site.signed_in("phantich", "analyst")
    page = await analyst.get(URL)
    answer = await analyst.post(URL, data=_form(page.text, group_by=["age_group", "sex"]))
    assert answer.status_code == 200, answer.text
    client = await gateway.register()
    expected = await _api(gateway, client, {"province": PROVINCE, "group_by": ["age_group", "sex"]})
    rows = _rows(answer.text)
    assert len(rows) == len(expected["items"]) > 0
    sexes = {"male": "Nam", "female": "Nữ"}
    for (cells, count), item in zip(rows, expected["items"], strict=True):
        assert cells == [item["age_group"], sexes[item["sex"]]]
        assert count == ("" if item["suppressed"] else str(item["count"]))
    total = re.search(r'data-testid="stats-total">.*?data-count="(\d*)"', answer.text, re.S)
    assert total
    assert total.group(1) == str(expected["total"]["count"])
    assert 'data-testid="stats-pyramid"' in answer.text  # an age dimension by sex draws the pyramid
    events = await site.events("stats.")
    console_event, api_event = events
    assert console_event.actor == "op:phantich"
    assert console_event.client_id is None
    assert console_event.purpose == PURPOSE
    assert console_event.outcome == "allowed"
    assert console_event.subject_ref is None
    assert console_event.client_ip == "127.0.0.1"  # the operator's address, as on its sign-in event
    assert console_event.detail is not None
    assert console_event.detail["group_by"] == ["age_group", "sex"]
    assert console_event.detail["province"] == PROVINCE
    assert api_event.actor == client.client_id
    assert console_event.detail == api_event.detail


async def test_bad_input_is_refused_in_vietnamese_next_to_its_control(
    stats_site: tuple[Site, Gateway],
) -> None:
    site, _ = stats_site
    analyst, _secret = await site.signed_in("phantich", "analyst")
    page = (await analyst.get(URL)).text
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"age_min": "mười"}, 422, "age-min", "Cần một số nguyên."),
        ({"age_min": "60", "age_max": "18"}, 422, "age-min", "“Từ tuổi” không được lớn hơn “Đến tuổi”."),
        ({"group_by": ["ward", "sex", "age_band", "ethnicity"]}, 422, "group-by", "Chọn tối đa 3 chiều."),
        ({"wards": ["00004"]}, 422, "wards", "Có xã/phường không thuộc tỉnh/thành phố đã chọn."),
        ({"purpose": ""}, 400, "purpose", "Hãy chọn mục đích sử dụng."),
        ({"purpose": "KHONG-CO.000001"}, 403, "purpose", "Mục đích này không còn được đăng ký."),
        ({"province": ""}, 422, "province", "Hãy chọn tỉnh/thành phố."),
        ({"as_of": "31/12/2025"}, 422, "as-of", "Cần một ngày dạng YYYY-MM-DD."),
    ]
    for values, status, control, message in cases:
        answer = await analyst.post(URL, data=_form(page, group_by="sex") | values)
        assert answer.status_code == status, (values, answer.text)
        found = re.search(rf'data-testid="stats-error-{control}" role="alert">([^<]*)<', answer.text)
        assert found, (values, control)
        assert message in found.group(1), (values, found.group(1))
        assert "Traceback" not in answer.text
        assert 'data-testid="stats-row"' not in answer.text
    events = await site.events("stats.")
    # The schema's refusals (not a query yet) are not audited, as in the API; the service's are, as denied
    # or failed with the operator as actor.
    assert [e.outcome for e in events] == ["denied"] * 5
    assert {e.actor for e in events} == {"op:phantich"}
    assert [e.reason for e in events] == [
        "validation_failed",  # the age range
        "validation_failed",  # a ward of another province
        "purpose_required",
        "purpose_not_allowed",
        "validation_failed",  # no province
    ]


async def test_the_csv_parses_back_to_the_table(stats_site: tuple[Site, Gateway]) -> None:
    site, _ = stats_site
    analyst, _secret = await site.signed_in("phantich", "analyst")
    page = (await analyst.get(URL)).text
    query = _form(page, group_by=["ward", "sex"], age_max="17")
    shown = await analyst.post(URL, data=query)
    assert shown.status_code == 200
    hidden = dict.fromkeys(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', shown.text))
    assert ("group_by", "ward") in hidden
    assert ("age_max", "17") in hidden
    download = await analyst.post(URL + "/csv", data=query)
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert download.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    header, *body = lines
    assert header == ["Mã xã/phường", "Xã/phường", "Giới tính", "Số người", "Bị ẩn"]
    *items, total = body
    table = _rows(shown.text)
    assert len(items) == len(table) > 0
    for (code, name, sex, count, hidden_flag), (cells, shown_count) in zip(items, table, strict=True):
        assert cells == [f"{code} {name}", sex]
        assert count == shown_count
        assert hidden_flag == ("có" if count == "" else "không")
    assert total[0] == "Tổng cộng"
    assert re.search(rf'data-testid="stats-total">.*?data-count="{total[3]}"', shown.text, re.S)
    events = await site.events("stats.")
    assert len(events) == 2  # the page and the download, each one audited query
    assert events[0].detail == events[1].detail


async def test_a_province_outside_the_setting_is_refused(console_db: str, stats_console_mock: str) -> None:
    async for site, _gateway in _site(console_db, stats_console_mock, console={"analyst_provinces": "01,79"}):
        analyst, _secret = await site.signed_in("phantich", "analyst")
        page = await analyst.get(URL)
        options = re.findall(r'<option value="(\d\d)"', page.text.split('data-testid="stats-purpose"')[0])
        assert options == ["01", "79"]
        answer = await analyst.post(URL, data=_form(page.text, group_by="sex"))
        assert answer.status_code == 403
        found = re.search(r'data-testid="stats-error-province" role="alert">([^<]*)<', answer.text)
        assert found
        assert found.group(1) == "Bạn không được xem thống kê của tỉnh/thành phố này."
        (event,) = await site.events("stats.")
        assert (event.outcome, event.reason, event.actor) == ("denied", "province_not_allowed", "op:phantich")
        wards = await analyst.get(URL + "/wards", params={"province": PROVINCE})
        assert wards.status_code == 200
        assert "<option" not in wards.text  # no ward list of a province one may not count
        own = await analyst.get(URL + "/wards", params={"province": "79"})
        assert own.text.count("<option") > 50


def test_the_setting_takes_province_codes_or_a_star() -> None:
    assert console_settings("sqlite://").console.analyst_province_set() is None
    narrowed = console_settings("sqlite://", console={"analyst_provinces": " 52, 01 "})
    assert narrowed.console.analyst_province_set() == frozenset({"52", "01"})
    for bad in ("", "5", "52;01", "99", "*,52"):
        with pytest.raises(ValueError, match="analyst_provinces"):
            console_settings("sqlite://", console={"analyst_provinces": bad})


async def test_wards_of_the_chosen_province_and_english(stats_site: tuple[Site, Gateway]) -> None:
    site, _ = stats_site
    analyst, _secret = await site.signed_in("phantich", "analyst")
    wards = await analyst.get(URL + "/wards", params={"province": PROVINCE})
    assert "Phường Quy Nhơn (21583)" in wards.text
    page = (await analyst.get(URL)).text
    analyst.cookies.set("dancu_lang", "en", path="/console")
    answer = await analyst.post(URL, data=_form(page, group_by="ward", age_min="abc"))
    assert answer.status_code == 422
    assert "Expected an integer." in answer.text
    english = await analyst.post(URL, data=_form(page, group_by="ward"))
    assert 'data-testid="stats-bars"' in english.text
    assert "Residents by ward" in english.text
