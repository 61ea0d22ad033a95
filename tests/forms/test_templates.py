"""Form templates (docs/contract.md, 18. Forms: prefill and confirmation): the admin API, the validation of a
template's sources and formats, retiring, the default CT01 and the `dancu forms` commands."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.forms.defaults import CT01, CT01_PURPOSE
from app.forms.sources import date_dmy, write
from tests.forms.conftest import admin_of, bearer, install_defaults
from tests.harness import PURPOSE, Gateway

FORMS = "/v1/admin/forms"


def template(code: str = "TEST01", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "title": "Tờ khai thử nghiệm",
        "purpose": PURPOSE,
        "legal_basis": "Thông tư thử nghiệm",
        "fields": [
            {"name": "ho_ten", "label": "Họ, chữ đệm và tên", "source": "full_name", "format": "upper"},
            {"name": "ngay_sinh", "label": "Ngày sinh", "source": "date_of_birth", "format": "date_dmy"},
            {"name": "thuong_tru", "label": "Nơi thường trú", "source": "permanent_address.text"},
            {"name": "dan_toc", "label": "Dân tộc", "source": "ethnicity.name"},
            {"name": "ghi_chu", "label": "Ghi chú", "source": None},
        ],
    }
    body.update(changes)
    return body


def codes(response: Any) -> list[tuple[list[str | int], str]]:
    return [(e["loc"], e["code"]) for e in response.json()["errors"]]


async def _admin_gateway(gw: Gateway) -> dict[str, Any]:
    await gw.register(scopes=("citizen.read",))  # registers PURPOSE
    return bearer(await admin_of(gw))


async def test_define_read_replace_and_retire_a_form(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    headers = await _admin_gateway(gw)

    created = await gw.http.post(FORMS, json=template(), headers=headers)
    again = await gw.http.post(FORMS, json=template(), headers=headers)
    read = await gw.http.get(f"{FORMS}/TEST01", headers=headers)

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{FORMS}/TEST01"
    assert read.json() == created.json()
    assert read.json()["status"] == "active"
    assert read.json()["fields"][4] == {"name": "ghi_chu", "label": "Ghi chú", "source": None, "format": None}
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"

    replaced = await gw.http.put(
        f"{FORMS}/TEST01", json={**template(), "code": None, "title": "Tờ khai mới"}, headers=headers
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["title"] == "Tờ khai mới"

    retired = await gw.http.delete(f"{FORMS}/TEST01", headers=headers)
    listed = await gw.http.get(FORMS, headers=headers)
    assert retired.status_code == 204
    assert [(f["code"], f["status"]) for f in listed.json()["items"]] == [("TEST01", "retired")]

    back = await gw.http.put(f"{FORMS}/TEST01", json=template(), headers=headers)
    assert back.json()["status"] == "active"

    async with gw.state.sessionmaker() as session:
        from sqlalchemy import select

        from app.audit.models import AuditEventRow

        actions = list(
            (
                await session.scalars(
                    select(AuditEventRow.action)
                    .where(AuditEventRow.action.startswith("admin.form."))
                    .order_by(AuditEventRow.seq)
                )
            ).all()
        )
    assert actions == [
        "admin.form.create",
        "admin.form.replace",
        "admin.form.retire",
        "admin.form.replace",
    ]


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ({"name": "x", "label": "X", "source": "favourite_colour"}, (["body", "fields", 0, "source"], "unknown_source")),
        ({"name": "x", "label": "X", "source": "permanent_address.street"}, (["body", "fields", 0, "source"], "unknown_source")),
        ({"name": "x", "label": "X", "source": "full_name.text"}, (["body", "fields", 0, "source"], "unknown_source")),
        ({"name": "x", "label": "X", "source": "full_name", "format": "lower"}, (["body", "fields", 0, "format"], "unknown_format")),
        ({"name": "x", "label": "X", "source": "full_name", "format": "gender_vi"}, (["body", "fields", 0, "format"], "format_not_applicable")),
        ({"name": "x", "label": "X", "source": "gender", "format": "date_dmy"}, (["body", "fields", 0, "format"], "format_not_applicable")),
        ({"name": "x", "label": "X", "source": None, "format": "upper"}, (["body", "fields", 0, "format"], "format_not_applicable")),
    ],
)  # fmt: skip
async def test_a_source_naming_no_field_or_an_unknown_format_is_422(
    sqlite_gateway: Gateway, field: dict[str, Any], error: tuple[list[str | int], str]
) -> None:
    headers = await _admin_gateway(sqlite_gateway)

    response = await sqlite_gateway.http.post(FORMS, json=template(fields=[field]), headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert codes(response) == [error]


async def test_other_invalid_templates_are_422(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    headers = await _admin_gateway(gw)
    same_name = [
        {"name": "x", "label": "X", "source": "full_name"},
        {"name": "x", "label": "Y", "source": "gender"},
    ]

    unknown_purpose = await gw.http.post(FORMS, json=template(purpose="NOT-REGISTERED"), headers=headers)
    duplicate = await gw.http.post(FORMS, json=template(fields=same_name), headers=headers)
    no_fields = await gw.http.post(FORMS, json=template(fields=[]), headers=headers)
    extra = await gw.http.post(FORMS, json={**template(), "owner": "x"}, headers=headers)
    bad_code = await gw.http.post(FORMS, json=template(code="CT 01"), headers=headers)
    mismatch = await gw.http.post(FORMS, json=template(), headers=headers)
    moved = await gw.http.put(f"{FORMS}/TEST01", json=template(code="OTHER"), headers=headers)

    assert codes(unknown_purpose) == [(["body", "purpose"], "unknown_purpose")]
    assert codes(duplicate) == [(["body", "fields", 1, "name"], "duplicate_name")]
    assert {r.status_code for r in (no_fields, extra, bad_code)} == {422}
    assert mismatch.status_code == 201
    assert codes(moved) == [(["body", "code"], "code_mismatch")]


async def test_an_unknown_form_is_404_form_not_found(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    headers = await _admin_gateway(gw)

    answers = [
        await gw.http.get(f"{FORMS}/NOPE", headers=headers),
        await gw.http.put(f"{FORMS}/NOPE", json=template(code="NOPE"), headers=headers),
        await gw.http.delete(f"{FORMS}/NOPE", headers=headers),
    ]

    assert [(r.status_code, r.json()["code"]) for r in answers] == [(404, "form_not_found")] * 3


async def test_templates_need_the_admin_scope(sqlite_gateway: Gateway) -> None:
    reader = await sqlite_gateway.register(scopes=("citizen.read",))

    response = await sqlite_gateway.http.get(FORMS, headers=bearer(reader))

    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_install_defaults_installs_ct01_as_printed_and_is_idempotent(sqlite_gateway: Gateway) -> None:
    gw = sqlite_gateway
    headers = bearer(await admin_of(gw))

    first = await install_defaults(gw)
    second = await install_defaults(gw)
    ct01 = (await gw.http.get(f"{FORMS}/CT01", headers=headers)).json()

    assert first == [("CT01", "created")]
    assert second == [("CT01", "unchanged")]
    assert ct01["title"] == "Tờ khai thay đổi thông tin cư trú"
    assert "Thông tư 66/2023/TT-BCA" in ct01["legal_basis"]
    assert ct01["purpose"] == CT01_PURPOSE
    # Items 1-11 of the printed form, after "Kính gửi", in order.
    assert [f["label"].split(".")[0] for f in ct01["fields"][1:]] == [str(n) for n in range(1, 12)]
    assert [f["source"] for f in ct01["fields"]] == [f.get("source") for f in CT01["fields"]]

    changed = {**CT01, "code": None, "title": "Sửa đổi"}
    await gw.http.put(f"{FORMS}/CT01", json=changed, headers=headers)
    assert await install_defaults(gw) == [("CT01", "replaced")]


def test_formats_write_partial_dates_capitals_and_vietnamese_words() -> None:
    assert [date_dmy(d) for d in ("1968-04-15", "1945-05", "1938")] == ["15/04/1968", "05/1945", "1938"]
    assert write("Đặng Đình Đức", "upper") == "ĐẶNG ĐÌNH ĐỨC"
    assert write("Rơ Châm H'Linh", "upper") == "RƠ CHÂM H'LINH"
    assert [write(g, "gender_vi") for g in ("male", "female")] == ["Nam", "Nữ"]
    assert write("head", "relation_vi") == "Chủ hộ"
    assert write(None, "upper") is None


def test_dancu_forms_commands(migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "dancu.db"
    shutil.copyfile(migrated_sqlite, path)
    monkeypatch.setenv("DANCU_DATABASE_URL", f"sqlite:///{path}")
    runner = CliRunner()

    installed = runner.invoke(cli, ["forms", "install-defaults", "--json"])
    shown = runner.invoke(cli, ["forms", "show", "CT01", "--json"])
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(template(purpose=CT01_PURPOSE, fields=[{"name": "x", "label": "X", "source": "nope"}]))
    )
    refused = runner.invoke(cli, ["forms", "define", "--file", str(bad)])
    good = tmp_path / "good.json"
    good.write_text(json.dumps(template(purpose=CT01_PURPOSE)), encoding="utf-8")
    defined = runner.invoke(cli, ["forms", "define", "--file", str(good)])
    retired = runner.invoke(cli, ["forms", "retire", "TEST01"])
    listed = runner.invoke(cli, ["forms", "list", "--json"])
    unknown = runner.invoke(cli, ["forms", "show", "NOPE"])

    assert installed.exit_code == 0, installed.output
    assert json.loads(installed.stdout) == {"items": [{"code": "CT01", "result": "created"}]}
    assert json.loads(shown.stdout)["fields"][1]["source"] == "full_name"
    assert refused.exit_code == 2
    assert "fields.0.source" in refused.output
    assert defined.exit_code == 0, defined.output
    assert retired.exit_code == 0
    assert [(f["code"], f["status"]) for f in json.loads(listed.stdout)["items"]] == [
        ("CT01", "active"),
        ("TEST01", "retired"),
    ]
    assert unknown.exit_code == 2
    with sqlite3.connect(path) as connection:
        actors = {a for (a,) in connection.execute("SELECT DISTINCT actor FROM audit_events")}
    assert actors == {"cli"}
