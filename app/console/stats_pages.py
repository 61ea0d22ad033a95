"""The analyst's statistics page (docs/contract.md, section 15; docs/console.md, Statistics): the query of
``POST /v1/statistics/population`` as a form, its answer as a table and charts, and as CSV.

Every query goes through the API's own pieces: the body is a ``PopulationRequest`` (the API's schema), and
``StatsService.population`` checks it, publishes the counts under the cell-key method (suppression and noise)
and writes the one audit event ``stats.population``, here with actor ``op:<username>``, no client, and the
purpose the operator chose. The purpose is checked as the API checks a client's: it must be given (400
``purpose_required``) and registered (403 ``purpose_not_allowed``), and such a refusal is audited through
``StatsService.refuse`` as the API audits it. An operator holds no grant: the provinces an analyst may count
are ``DANCU_CONSOLE__ANALYST_PROVINCES`` (``*``: every province), and another is 403
``province_not_allowed`` from the service itself. Operators are not rate limited (as at the command line).

The form is POSTed with the session's CSRF token (a statistics query is an audited read); the CSV download
posts the shown query again from hidden fields, so the file holds exactly the table's numbers (the same
residents always give the same published counts). No query carries a personal ID.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, get_args

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import ValidationError
from starlette.datastructures import FormData

import vnid
from app.audit.writer import AdminLog
from app.auth.dependencies import ACCESS, KEYS
from app.auth.service import AuthService
from app.backends.base import STATS_VALUES
from app.console import stats_charts
from app.console.router import _ENV, Console, require_operator
from app.errors import GatewayError, ValidationFailed
from app.problems import field_errors
from app.stats.dependencies import STATS
from app.stats.schemas import MAX_DIMENSIONS, Dimension, PopulationRequest
from app.stats.service import StatsCaller
from vnid.ethnicities import ETHNIC_GROUPS

router = APIRouter(prefix="/console", include_in_schema=False)

AnalystPage = Annotated[Console, Depends(require_operator("analyst"))]

DIMENSIONS: Final = get_args(Dimension)
"""The dimensions the API groups by, in its order."""
CODED: Final = ("ward", "ethnicity")
"""Dimensions whose values are ``{code, name}``."""
TRANSLATED: Final = ("sex", "residence_status", "marital_status")
"""Dimensions whose values the page writes in words (``stats.value.*``)."""
PRESETS: Final = {"pyramid": ["age_band", "sex"], "wards": ["ward"]}
DEFAULT_GROUP_BY: Final = ("age_band", "sex")
FIELDS: Final = (
    "province",
    "purpose",
    "group_by",
    "wards",
    "sex",
    "age_min",
    "age_max",
    "ethnicity",
    "residence_status",
    "as_of",
)
"""The form's controls; an error is shown next to the one its ``loc`` names (else above the form)."""
MAX_VALUES: Final = 300
"""The most values one multiple control may send (the API allows 200 wards; more is its 422)."""

ETHNIC_NAMES: Final = ETHNIC_GROUPS
"""The GSO list the API accepts (``vnid.ethnicities``): names for the filter's list."""


# --- the form -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Query:
    """What the form holds: the values to show again in the controls, and the API body made of them."""

    province: str = ""
    purpose: str = ""
    group_by: list[str] = field(default_factory=lambda: list(DEFAULT_GROUP_BY))
    wards: list[str] = field(default_factory=list)
    sex: str = ""
    age_min: str = ""
    age_max: str = ""
    ethnicity: list[str] = field(default_factory=list)
    residence_status: list[str] = field(default_factory=list)
    as_of: str = ""

    @classmethod
    def of(cls, form: FormData) -> Query:
        def one(name: str) -> str:
            value = form.get(name)
            return value.strip()[:64] if isinstance(value, str) else ""

        def many(name: str) -> list[str]:
            values = [v.strip()[:64] for v in form.getlist(name)[:MAX_VALUES] if isinstance(v, str)]
            return [v for v in values if v]

        preset = PRESETS.get(one("preset"))
        return cls(
            province=one("province"),
            purpose=one("purpose"),
            group_by=list(preset) if preset else many("group_by"),
            wards=many("wards"),
            sex=one("sex"),
            age_min=one("age_min"),
            age_max=one("age_max"),
            ethnicity=many("ethnicity"),
            residence_status=many("residence_status"),
            as_of=one("as_of"),
        )

    def body(self) -> dict[str, Any]:
        """The API body: empty controls left out, numbers as numbers when they are (else as typed, for the
        schema to refuse in its own words)."""
        filters: dict[str, Any] = {}
        if self.sex:
            filters["sex"] = self.sex
        for name in ("age_min", "age_max"):
            text = getattr(self, name)
            if text:
                filters[name] = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else text
        if self.ethnicity:
            filters["ethnicity"] = self.ethnicity
        if self.residence_status:
            filters["residence_status"] = self.residence_status
        body: dict[str, Any] = {"group_by": self.group_by, "filters": filters}
        if self.province:
            body["province"] = self.province
        if self.wards:
            body["wards"] = self.wards
        if self.as_of:
            body["as_of"] = self.as_of
        return body

    def hidden(self) -> list[tuple[str, str]]:
        """The query as hidden form members (the CSV download asks it again)."""
        pairs: list[tuple[str, str]] = []
        for name in FIELDS:
            value = getattr(self, name)
            pairs += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
        return [(name, value) for name, value in pairs if value]


def _control(loc: list[Any]) -> str:
    """The form control an error's ``loc`` names (``body`` and list indexes dropped); "" for the form."""
    parts = [str(p) for p in loc if p != "body" and not isinstance(p, int)]
    if parts[:1] == ["filters"]:
        parts = parts[1:]
    return parts[0] if parts and parts[0] in FIELDS else ""


def _errors(console: Console, problems: list[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Field errors by control, in the console's language: the statistics rules by their code, the schema's
    through the API's own translations (``field_errors``)."""
    shown: dict[str, list[str]] = {}
    for problem in problems:
        code = str(problem.get("code", ""))
        control = _control(list(problem.get("loc", [])))
        message = str(problem.get("message", ""))
        for key in (f"stats.error.{control}.{code}", f"stats.error.{code}"):
            if (text := console.t(key)) != key:
                message = text
                break
        bucket = shown.setdefault(control, [])
        if message not in bucket:
            bucket.append(message)
    return shown


# --- who may count what ---------------------------------------------------------------------------------------


def _allowed(console: Console) -> frozenset[str] | None:
    return console.state.settings.console.analyst_province_set()


def _provinces(console: Console) -> list[tuple[str, str]]:
    allowed = _allowed(console)
    return [
        (code, province.name)
        for code, province in sorted(vnid.PROVINCES_2025.items())
        if allowed is None or code in allowed
    ]


def _wards(province: str) -> list[tuple[str, str]]:
    if province not in vnid.PROVINCES_2025:
        return []
    return sorted(((w.code, w.name) for w in vnid.wards_of(province)), key=lambda w: w[1])


async def _purposes(console: Console) -> list[tuple[str, str]]:
    service = AuthService(console.db, console.state[KEYS].secrets, AdminLog(console.db, actor="op:?"))
    return [(p.code, p.title) for p in await service.list_purposes()]


def _caller(console: Console, purpose: str) -> StatsCaller:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return StatsCaller(
        actor=console.me.actor,
        client_id=None,
        purpose=purpose or None,
        request_id=console.service.request_id,
        provinces=_allowed(console),
        client_ip=console.service.client_ip,  # the operator's address, as on its other events
    )


class Refused(Exception):
    """The query was refused: the status to answer with and the messages by control."""

    def __init__(self, status: int, errors: dict[str, list[str]]) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors


async def _ask(console: Console, query: Query) -> dict[str, Any]:
    """The published answer to ``query`` through the statistics service; Refused with the messages."""
    service = console.state[STATS]
    raw = query.body()
    try:
        body = PopulationRequest.model_validate(raw)
    except ValidationError as err:  # as the API's 422 before its route runs: not a query yet, not audited
        problems = field_errors(err.errors(include_url=False, include_input=False), language=console.lang)
        raise Refused(422, _errors(console, list(problems))) from None
    caller = _caller(console, query.purpose)
    try:  # an operator holds no grant: any registered purpose, checked and audited as for a client
        await service.check_purpose(caller, None, await console.state[ACCESS].purposes(), raw)
    except GatewayError as err:
        raise Refused(err.status, {"purpose": [console.t(f"stats.error.{err.code}")]}) from None
    try:
        return await service.population(caller, body)
    except ValidationFailed as err:
        raise Refused(422, _errors(console, list(err.errors))) from None
    except GatewayError as err:
        where = "province" if err.code == "province_not_allowed" else ""
        key = f"stats.error.{err.code}"
        text = console.t(key)
        if text == key:
            text = err.detail if console.lang == "en" else err.detail_vi
        raise Refused(err.status, {where: [text]}) from None


# --- the answer as the page shows it ---------------------------------------------------------------------------


def _value(console: Console, dim: str, value: Any) -> str:
    if dim in CODED:
        return f"{value['code']} {value['name'] or ''}".strip()
    if dim in TRANSLATED:
        return console.t(f"stats.value.{value}")
    return str(value)


def _table(console: Console, answer: dict[str, Any]) -> dict[str, Any]:
    k = answer["method"]["threshold"]
    hidden = console.t("stats.suppressed").format(k=k)
    dims = answer["group_by"]
    rows = [
        {
            "cells": [_value(console, d, item[d]) for d in dims],
            "count": item["count"],
            "shown": hidden if item["suppressed"] else stats_charts.number(item["count"], console.lang),
        }
        for item in answer["items"]
    ]
    total = answer["total"]
    return {
        "headers": [console.t(f"stats.dim.{d}") for d in dims],
        "rows": rows,
        "total": total["count"],
        "total_shown": hidden if total["suppressed"] else stats_charts.number(total["count"], console.lang),
    }


def _chart(console: Console, answer: dict[str, Any]) -> tuple[str, Markup] | None:
    """The pyramid for an age dimension by sex, a bar chart for one dimension, else none; with its title."""
    dims = answer["group_by"]
    lang = console.lang
    total = answer["total"]
    where = {
        "province": _province_name(answer["province"]),
        "as_of": answer["as_of"],
        "total": console.t("stats.hidden")
        if total["suppressed"]
        else stats_charts.number(total["count"], lang),
    }
    ages = [d for d in dims if d in ("age_band", "age_group")]
    if len(dims) == 2 and "sex" in dims and len(ages) == 1:
        age = ages[0]
        sides: dict[str, dict[str, int | None]] = {"male": {}, "female": {}}
        for item in answer["items"]:
            sides[item["sex"]][item[age]] = item["count"]
        labels = stats_charts.PyramidLabels(
            title=console.t("stats.pyramid.title"),
            desc=console.t("stats.pyramid.desc").format(**where),
            male=console.t("stats.value.male"),
            female=console.t("stats.value.female"),
            age=console.t(f"stats.dim.{age}"),
            axis=console.t("stats.axis.count"),
            hidden=console.t("stats.hidden"),
        )
        return labels.title, stats_charts.pyramid(
            STATS_VALUES[age], sides["male"], sides["female"], labels, lang
        )
    if len(dims) == 1:
        dim = dims[0]
        name = console.t(f"stats.dim.{dim}")
        values = [
            (
                item[dim]["code"] if dim in CODED else str(item[dim]),
                _value(console, dim, item[dim]),
                item["count"],
            )
            for item in answer["items"]
        ]
        bar_labels = stats_charts.BarLabels(
            title=console.t("stats.bars.title").format(dimension=name.lower()),
            desc=console.t("stats.bars.desc").format(**where),
            dimension=name,
            axis=console.t("stats.axis.count"),
            hidden=console.t("stats.hidden"),
        )
        return bar_labels.title, stats_charts.bars(values, bar_labels, lang)
    return None


def _province_name(code: str) -> str:
    province = vnid.PROVINCES_2025.get(code)
    return f"{code} {province.name}" if province else code


def _csv(console: Console, answer: dict[str, Any]) -> bytes:
    """The table as CSV for a spreadsheet: UTF-8 with a BOM (Excel then reads Vietnamese), headers in the
    console's language, wards and ethnic groups as two columns (code, name), hidden counts empty, the total
    last."""
    dims = answer["group_by"]
    header: list[str] = []
    for dim in dims:
        if dim in CODED:
            header += [console.t(f"stats.dim.{dim}_code"), console.t(f"stats.dim.{dim}")]
        else:
            header.append(console.t(f"stats.dim.{dim}"))
    header += [console.t("stats.count"), console.t("stats.suppressed.csv")]
    yes, no = console.t("stats.yes"), console.t("stats.no")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for item in answer["items"]:
        row: list[Any] = []
        for dim in dims:
            value = item[dim]
            row += [value["code"], value["name"] or ""] if dim in CODED else [_value(console, dim, value)]
        row += ["" if item["count"] is None else item["count"], yes if item["suppressed"] else no]
        writer.writerow(row)
    total = answer["total"]
    if dims:  # without a dimension the one item is the total
        blanks = [""] * (len(header) - 3)
        count = "" if total["count"] is None else total["count"]
        writer.writerow([console.t("stats.total"), *blanks, count, yes if total["suppressed"] else no])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- the routes -----------------------------------------------------------------------------------------------


async def _page(
    console: Console,
    query: Query,
    *,
    answer: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    provinces = _provinces(console)
    if not query.province and len(provinces) == 1:
        query.province = provinces[0][0]
    purposes = await _purposes(console)
    if not query.purpose and len(purposes) == 1:
        query.purpose = purposes[0][0]
    settings = console.state.settings.stats
    return console.page(
        "statistics.html",
        "stats.title",
        status=status,
        q=query,
        provinces=provinces,
        purposes=purposes,
        wards=_wards(query.province),
        dimensions=DIMENSIONS,
        max_dimensions=MAX_DIMENSIONS,
        sexes=STATS_VALUES["sex"],
        residence_statuses=STATS_VALUES["residence_status"],
        ethnic_names=ETHNIC_NAMES,
        intro=console.t("stats.intro").format(small=settings.threshold - 1, noise=settings.max_noise),
        errors=errors or {},
        answer=answer,
        table=_table(console, answer) if answer is not None else None,
        chart=_chart(console, answer) if answer is not None else None,
        result_of=console.t("stats.result.of").format(
            province=_province_name(answer["province"]), as_of=answer["as_of"]
        )
        if answer is not None
        else "",
        hidden=query.hidden() if answer is not None else [],
    )


@router.get("/statistics")
async def statistics_page(console: AnalystPage) -> Response:
    return await _page(console, Query())


@router.post("/statistics")
async def statistics(console: AnalystPage) -> Response:
    query = Query.of(await console.request.form())
    try:
        answer = await _ask(console, query)
    except Refused as refused:
        return await _page(console, query, errors=refused.errors, status=refused.status)
    return await _page(console, query, answer=answer)


@router.post("/statistics/csv")
async def statistics_csv(console: AnalystPage) -> Response:
    query = Query.of(await console.request.form())
    try:
        answer = await _ask(console, query)
    except Refused as refused:
        return await _page(console, query, errors=refused.errors, status=refused.status)
    name = f"thong-ke-dan-so-{answer['province']}-{answer['as_of']}.csv"
    return Response(
        _csv(console, answer),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/statistics/wards")
async def ward_options(console: AnalystPage, province: str = "") -> Response:
    """The ward list of a province, as the form's options (htmx swaps them in when the province changes)."""
    allowed = _allowed(console)
    province = province[:2]
    wards = _wards(province) if allowed is None or province in allowed else []
    html = _ENV.get_template("statistics_wards.html").render(wards=wards, chosen=[])
    return Response(html, media_type="text/html; charset=utf-8")
