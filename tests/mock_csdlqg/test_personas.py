"""Scenario personas: present with the same records after every seed, each really showing its scenario."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from mock_csdlqg.generator.pipeline import seed_database
from mock_csdlqg.personas import personas, personas_markdown
from vnid import exact_key, normalized_key, parse_personal_id

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "deceased",
    "year_only_birth",
    "name_with_d",
    "tone_old_style",
    "tone_new_style",
    "jrai_name",
    "child_under_14",
    "large_household_head",
    "born_binh_dinh_lives_hcm",
    "born_after_2000",
    "old_cmnd_holder",
    "same_name_same_dob_1",
    "same_name_same_dob_2",
    "no_permanent_residence",
    "temporary_absence",
    "married_couple",
    "reissued_id",
}


def _seed(path: Path, count: int, seed: int) -> tuple[dict[str, bytes], dict[str, bytes]]:
    asyncio.run(seed_database(f"sqlite:///{path}", count=count, seed=seed, as_of=date(2026, 1, 1)))
    with sqlite3.connect(path) as conn:
        residents = dict(conn.execute("SELECT so_dinh_danh, ban_ghi FROM csdlqg_cong_dan"))
        households = dict(conn.execute("SELECT ma_ho, ban_ghi FROM csdlqg_ho_gia_dinh"))
    return residents, households


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, bytes], dict[str, bytes]]]:
    base = tmp_path_factory.mktemp("personas")
    return [_seed(base / "a.db", 0, 1), _seed(base / "b.db", 4000, 99), _seed(base / "c.db", 2500, 7)]


def _by_scenario() -> dict[str, str]:
    return {p.scenario: p.personal_id for p in personas()}


def _record(seeded: Any, scenario: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(seeded[0][0][_by_scenario()[scenario]])
    return record


def test_at_least_twenty_documented_personas_cover_the_scenarios() -> None:
    listed = personas()
    assert len(listed) >= 20
    assert len({p.personal_id for p in listed}) == len(listed)
    assert {p.scenario for p in listed} >= REQUIRED
    assert all(p.description for p in listed)


def test_docs_list_exactly_the_personas() -> None:
    assert (ROOT / "docs" / "personas.md").read_text(encoding="utf-8") == personas_markdown()


def test_personas_are_identical_after_seeds_of_any_size(seeded: Any) -> None:
    first_residents, first_households = seeded[0]
    for residents, households in seeded[1:]:
        for p in personas():
            assert residents[p.personal_id] == first_residents[p.personal_id]
        for ho, blob in first_households.items():
            assert households[ho] == blob


def test_each_persona_shows_its_scenario(seeded: Any) -> None:
    residents = seeded[0][0]

    def rec(scenario: str) -> dict[str, Any]:
        return _record(seeded, scenario)

    assert rec("deceased")["ngayMat"]
    assert rec("deceased")["noiOHienTai"] is None
    assert len(rec("year_only_birth")["ngaySinh"]) == 4
    assert "Đ" in rec("name_with_d")["hoVaTen"]
    old, new = rec("tone_old_style")["hoVaTen"], rec("tone_new_style")["hoVaTen"]
    assert exact_key(old) != exact_key(new)
    assert normalized_key(old) == normalized_key(new)
    assert rec("jrai_name")["danToc"]["ma"] == "10"
    child = rec("child_under_14")
    assert date(2026, 1, 1).year - int(child["ngaySinh"][:4]) < 14
    assert not child["theCanCuoc"]
    head = rec("large_household_head")
    household = orjson.loads(seeded[0][1][head["maHo"]])
    assert len(household["thanhVien"]) >= 8
    assert household["chuHo"]["soDinhDanh"] == head["soDinhDanh"]
    moved = rec("born_binh_dinh_lives_hcm")
    assert moved["soDinhDanh"].startswith("052")
    assert moved["noiOHienTai"]["maTinh"] == "79"
    assert parse_personal_id(rec("born_after_2000")["soDinhDanh"]).birth_year >= 2000
    assert rec("born_after_2000")["soDinhDanh"][3] in "23"
    assert rec("old_cmnd_holder")["soCmnd"]
    twin_a, twin_b = rec("same_name_same_dob_1"), rec("same_name_same_dob_2")
    assert (twin_a["hoVaTen"], twin_a["ngaySinh"]) == (twin_b["hoVaTen"], twin_b["ngaySinh"])
    assert twin_a["soDinhDanh"] != twin_b["soDinhDanh"]
    homeless = rec("no_permanent_residence")
    assert homeless["noiThuongTru"] is None
    assert homeless["noiOHienTai"] is not None
    assert rec("temporary_absence")["tamVang"] is not None
    wife = rec("married_couple")
    husband_id = next(r["soDinhDanh"] for r in wife["thanNhan"] if r["quanHe"] == "vo_chong")
    husband = orjson.loads(residents[husband_id])
    assert any(r.get("soDinhDanh") == wife["soDinhDanh"] for r in husband["thanNhan"])
    reissued = rec("reissued_id")
    assert reissued["soDinhDanhCu"]
    assert all(old_id not in residents for old_id in reissued["soDinhDanhCu"])
