"""Population statistics: check the query, ask the register for raw aggregates, publish them under the
cell-key method (``app.stats.perturbation``), audit the query. A raw count never leaves this module.

Every query that gets here leaves exactly one audit event ``stats.population`` (no subject; the query's
province, dimensions, wards, filters and date in ``detail``), committed before the answer, whether it is
allowed, refused or fails upstream; if it cannot be written the caller gets 503 ``audit_unavailable``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

import vnid
from app.audit.writer import AuditContext, AuditWriter
from app.backends.base import STATS_VALUES, Backend, PopulationQuery, RawAggregate, RawCell
from app.citizens.errors import PurposeNotAllowed, PurposeRequired
from app.citizens.limits import Limiter
from app.errors import FieldError, GatewayError, ValidationFailed
from app.stats.errors import ProvinceNotAllowed
from app.stats.perturbation import PerturbationTable
from app.stats.schemas import PopulationRequest

ACTION = "stats.population"
ETHNIC_CODES = frozenset(f"{code:02d}" for code in range(1, 55))
"""The GSO 1979 list: 01 Kinh … 54 Rơ-măm."""


@dataclass(frozen=True, slots=True)
class StatsCaller:
    """Who asks: a client through the API, an operator at the command line (``actor`` ``cli``) or on the
    console's statistics page (``op:<username>``, no client)."""

    actor: str
    client_id: str | None
    purpose: str | None
    request_id: str | None
    provinces: frozenset[str] | None
    """The provinces the caller may count; None: every province."""
    rate_limit_per_minute: int | None = None
    """Counted against the client's request rate; None: not limited (the command line)."""
    end_user: str | None = None
    """The caller's ``X-End-User`` (None at the command line)."""
    client_ip: str | None = None
    """The caller's address (None at the command line; the operator's on the console)."""


def _problem(loc: list[str | int], code: str, message: str) -> FieldError:
    return {"loc": loc, "code": code, "message": message}


def query_problems(body: PopulationRequest, province: str) -> list[FieldError]:
    """What the schema cannot see: repeated dimensions, wards of another province, unknown ethnic codes,
    an age range upside down. Messages name the rule, never a value."""
    problems: list[FieldError] = []
    for index, dimension in enumerate(body.group_by):
        if dimension in body.group_by[:index]:
            problems.append(
                _problem(
                    ["body", "group_by", index], "repeated_dimension", "A dimension may appear only once."
                )
            )
    if body.wards is not None:
        known = {ward.code for ward in vnid.wards_of(province)}
        for index, ward in enumerate(body.wards):
            if ward not in known:
                problems.append(
                    _problem(
                        ["body", "wards", index],
                        "ward_not_in_province",
                        "Not a ward of the requested province.",
                    )
                )
        if len(set(body.wards)) != len(body.wards):
            problems.append(_problem(["body", "wards"], "repeated_ward", "A ward may appear only once."))
    filters = body.filters
    for index, code in enumerate(filters.ethnicity or ()):
        if code not in ETHNIC_CODES:
            problems.append(
                _problem(
                    ["body", "filters", "ethnicity", index], "unknown_ethnicity", "Not a GSO ethnic code."
                )
            )
    if filters.age_min is not None and filters.age_max is not None and filters.age_min > filters.age_max:
        problems.append(
            _problem(["body", "filters", "age_min"], "age_range", "`age_min` must not be above `age_max`.")
        )
    return problems


def _query_detail(body: PopulationRequest, province: str | None) -> dict[str, Any]:
    """What the audit event records of a query: everything it asked, nothing it got."""
    return {
        "province": province,
        "group_by": list(body.group_by),
        "wards": body.wards,
        "filters": body.filters.model_dump(exclude_none=True),
        "as_of": body.as_of.isoformat() if body.as_of else None,
    }


def _order(dim: str, cells: Sequence[RawCell], index: int) -> dict[str, Any]:
    """A dimension's value -> its rank: codes (wards, ethnic groups) as themselves, vocabularies in their order."""
    if dim in STATS_VALUES:
        return {value: rank for rank, value in enumerate(STATS_VALUES[dim])}
    return {cell.values[index]: cell.values[index] for cell in cells}


class StatsService:
    def __init__(
        self, backend: Backend, limiter: Limiter | None, audit: AuditWriter, table: PerturbationTable
    ):
        self._backend = backend
        self._limiter = limiter
        self._audit = audit
        self.table = table

    def resolve_province(self, caller: StatsCaller, body: PopulationRequest) -> str:
        """The province asked for, or the grant's only one; ValidationFailed or ProvinceNotAllowed."""
        province = body.province
        if province is None:
            if caller.provinces is None or len(caller.provinces) != 1:
                raise ValidationFailed(
                    [_problem(["body", "province"], "missing", "Field required.")],
                    "Name the province: the grant covers more than one.",
                )
            (province,) = caller.provinces
        if province not in vnid.PROVINCES_2025:
            raise ValidationFailed(
                [_problem(["body", "province"], "unknown_province", "Not a 2025 province code.")]
            )
        if caller.provinces is not None and province not in caller.provinces:
            raise ProvinceNotAllowed()
        return province

    async def population(self, caller: StatsCaller, body: PopulationRequest) -> dict[str, Any]:
        """The published table for ``body``; exactly one audit event whatever happens."""
        province: str | None = None
        try:
            province = self.resolve_province(caller, body)
            problems = query_problems(body, province)
            if problems:
                raise ValidationFailed(problems)
            if self._limiter is not None and caller.client_id and caller.rate_limit_per_minute is not None:
                await self._limiter.hit_request(caller.client_id, caller.rate_limit_per_minute)
            raw = await self._backend.population_aggregate(self._query(body, province))
            answer = self._publish(raw)
        except GatewayError as error:
            await self._record(caller, error, _query_detail(body, province or body.province))
            raise
        await self._record(caller, None, {**_query_detail(body, province), "cells": len(answer["items"])})
        return answer

    async def check_purpose(
        self,
        caller: StatsCaller,
        granted: Collection[str] | None,
        registered: Collection[str],
        body: Mapping[str, Any] | None,
    ) -> None:
        """The purpose rule of every statistics query: ``caller.purpose`` given (else PurposeRequired),
        registered and, when ``granted`` is not None, in the grant (else PurposeNotAllowed); a refusal is
        audited with the query's detail, then raised."""
        error: GatewayError | None = None
        if not caller.purpose:
            error = PurposeRequired()
        elif caller.purpose not in registered or (granted is not None and caller.purpose not in granted):
            error = PurposeNotAllowed()
        if error is not None:
            await self.refuse(caller, error, body)
            raise error

    async def refuse(self, caller: StatsCaller, error: GatewayError, body: Mapping[str, Any] | None) -> None:
        """Audit a query refused before it was read (purpose): its detail when the body is a valid query."""
        try:
            query = PopulationRequest.model_validate(body) if body is not None else None
        except ValidationError:
            query = None
        await self._record(caller, error, None if query is None else _query_detail(query, query.province))

    async def _record(
        self, caller: StatsCaller, error: GatewayError | None, detail: dict[str, Any] | None
    ) -> None:
        call = AuditContext(
            caller.actor,
            caller.client_id,
            caller.request_id,
            caller.purpose,
            end_user=caller.end_user,
            client_ip=caller.client_ip,
        )
        if error is None:
            event = call.event(ACTION, "allowed", 200, detail=detail)
        else:
            event = call.refusal(ACTION, error, detail=detail)
        await self._audit.write([event])

    @staticmethod
    def _query(body: PopulationRequest, province: str) -> PopulationQuery:
        f = body.filters
        return PopulationQuery(
            province=province,
            as_of=body.as_of,
            group_by=tuple(body.group_by),
            wards=None if body.wards is None else tuple(body.wards),
            sex=f.sex,
            age_min=f.age_min,
            age_max=f.age_max,
            ethnicity=None if f.ethnicity is None else tuple(f.ethnicity),
            residence_status=None if f.residence_status is None else tuple(f.residence_status),
        )

    def _publish(self, raw: RawAggregate) -> dict[str, Any]:
        """The answer: perturbed counts, suppressed small cells, items in dimension order."""
        group_by = raw.group_by
        orders = [_order(dim, raw.cells, i) for i, dim in enumerate(group_by)]
        cells = sorted(raw.cells, key=lambda c: [order[v] for order, v in zip(orders, c.values, strict=True)])
        shown: list[dict[str, Any]] = []  # per dimension: value -> what the item shows (one object per code)
        for dim in group_by:
            if dim in ("ward", "ethnicity"):
                names = raw.labels.get(dim, {})
                shown.append({code: {"code": code, "name": names.get(code)} for code in names})
            else:
                shown.append({value: value for value in STATS_VALUES[dim]})
        publish = self.table.publish
        items = []
        for cell in cells:
            item: dict[str, Any] = {
                dim: view.get(value) or {"code": value, "name": None}
                if dim in ("ward", "ethnicity")
                else value
                for dim, view, value in zip(group_by, shown, cell.values, strict=True)
            }
            count = publish(cell.count, cell.key_sum)
            item["count"] = count
            item["suppressed"] = count is None
            items.append(item)
        total_count = sum(cell.count for cell in raw.cells)
        total_keys = sum(cell.key_sum for cell in raw.cells)
        total = publish(total_count, total_keys)
        return {
            "province": raw.province,
            "as_of": raw.as_of.isoformat(),
            "group_by": list(group_by),
            "items": items,
            "total": {"count": total, "suppressed": total is None},
            "method": {
                "name": "cell_key",
                "threshold": self.table.threshold,
                "max_noise": self.table.max_noise,
            },
        }
