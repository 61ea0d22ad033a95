"""The auditor's integrity page and resident access report (docs/contract.md, section 15; docs/console.md).

Both go through the audit context's own services, as ``GET /v1/audit/integrity`` and ``POST
/v1/audit/subject-report`` do, with the operator as the reader: the same checks, the same answers, the same
audit events (``audit.integrity``, ``audit.subject_report``), with ``actor`` ``op:<username>`` and no client.

- Integrity: the page shows the last full check (``app.audit.integrity_runs``: one index lookup, however
  long the log) and the latest signed checkpoint; the run button starts a new check in the background and
  the page follows its progress (htmx polls the result box; without JavaScript, a link reloads it).
- Resident report: the personal ID is POSTed; the page it redirects to is named by an opaque token
  (``app.console.stash``), so the ID never reaches a URL, a title, the history or a log. Each view of the
  page, and each PDF, is a read of the log, audited like the API's.

The request's own transaction is committed before a service writes an audit event: on SQLite the writer's
connection would otherwise wait for the lock this request holds (the session's ``last_seen_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.audit.chain import read_head
from app.audit.dependencies import INTEGRITY_RUNS, get_audit_service
from app.audit.errors import AuditUnavailable
from app.audit.integrity_runs import latest_run
from app.audit.models import AuditCheckpointRow
from app.audit.schemas import SubjectReportRequest
from app.audit.service import Reader
from app.console import stash
from app.console.dashboard import VIETNAM
from app.console.router import Console, _fernet, _form, require_operator
from app.errors import InvalidPersonalId
from vnid import InvalidPersonalId as BadPersonalId
from vnid import parse_personal_id

router = APIRouter(prefix="/console", include_in_schema=False)

AuditorPage = Annotated[Console, Depends(require_operator("auditor"))]

REPORT_KIND: Final = "report"
REPORT_LIMIT: Final = 1000
"""Accesses in one report (the API's largest page); the page says so when there are more."""
RUN_WAIT: Final = 2.0
"""Seconds the run button waits for a check to end before showing its progress instead."""


def _reader(console: Console) -> Reader:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return Reader.operator(console.me.actor, console.service.request_id, console.service.client_ip)


def age(at: datetime | None, lang: str, now: datetime | None = None) -> str:
    """How long ago ``at`` was, in words: ``3 phút``, ``2 giờ 05 phút``, ``4 ngày`` (English: min, h, days)."""
    if at is None:
        return "–"
    minutes = max(0, int(((now or datetime.now(UTC)) - at).total_seconds() // 60))
    vi = lang == "vi"
    if minutes >= 2 * 24 * 60:
        return f"{minutes // (24 * 60)} {'ngày' if vi else 'days'}"
    if minutes >= 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} giờ {rest:02d} phút" if vi else f"{hours} h {rest:02d} min"
    return f"{minutes} phút" if vi else f"{minutes} min"


# --- integrity -------------------------------------------------------------------------------------------


async def _integrity_context(console: Console) -> dict[str, Any]:
    run = await latest_run(console.db)
    checkpoint = (
        await console.db.execute(
            select(AuditCheckpointRow.seq, AuditCheckpointRow.at)
            .order_by(AuditCheckpointRow.seq.desc(), AuditCheckpointRow.id.desc())
            .limit(1)
        )
    ).one_or_none()
    head = await read_head(console.db)
    return {
        "run": run,
        "checkpoint": checkpoint,
        "checkpoint_age": age(checkpoint.at if checkpoint else None, console.lang),
        "head_seq": head.seq if head is not None else 0,
    }


@router.get("/integrity")
async def integrity_page(console: AuditorPage) -> Response:
    return console.page("integrity.html", "integrity.title", **await _integrity_context(console))


@router.get("/integrity/result")
async def integrity_result(console: AuditorPage) -> Response:
    """The result box alone (polled by htmx while a check runs)."""
    return console.page("integrity_result.html", "integrity.title", **await _integrity_context(console))


@router.post("/integrity/run")
async def integrity_run(console: AuditorPage) -> Response:
    await console.db.commit()  # the session's lock released before the check records its run and event
    reader = _reader(console)
    await console.state[INTEGRITY_RUNS].start(reader.context(), wait=RUN_WAIT)
    return RedirectResponse("/console/integrity", status_code=303)


# --- resident access report -----------------------------------------------------------------------------


def _report_form(console: Console, *, error: str | None = None, status: int = 200) -> Response:
    return console.page("report_form.html", "report.title", status=status, error=error)


@router.get("/report")
async def report_form(console: AuditorPage) -> Response:
    return _report_form(console)


@router.post("/report")
async def report_submit(console: AuditorPage) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    form = await _form(console.request)
    typed = "".join(form.get("personal_id", "").split())[:64]
    try:
        personal_id = parse_personal_id(typed).number
    except BadPersonalId:
        # Refused by the service, so that the refusal is audited as the API's is (invalid_personal_id).
        await console.db.commit()
        with contextlib.suppress(InvalidPersonalId, AuditUnavailable):
            await (await get_audit_service(console.state)).subject_report(
                _reader(console), SubjectReportRequest(personal_id=typed or "-", limit=1)
            )
        return _report_form(console, error=console.t("report.invalid"), status=422)
    token = await stash.keep(
        console.db,
        _fernet(console.state),
        console.me.session.token_hash,
        REPORT_KIND,
        {"personal_id": personal_id},
    )
    return RedirectResponse(f"/console/report/{token}", status_code=303)


async def _report(console: Console, token: str) -> dict[str, Any] | Response:
    """The report behind ``token`` (read now, audited), or the page that says why there is none."""
    assert console.me is not None  # noqa: S101 - require_operator set it
    kept = await stash.read(
        console.db, _fernet(console.state), console.me.session.token_hash, REPORT_KIND, token[:64]
    )
    if kept is None or not isinstance(kept.get("personal_id"), str):
        return _report_form(console, error=console.t("report.gone"), status=404)
    personal_id: str = kept["personal_id"]
    await console.db.commit()
    try:
        answer = await (await get_audit_service(console.state)).subject_report(
            _reader(console), SubjectReportRequest(personal_id=personal_id, limit=REPORT_LIMIT)
        )
    except AuditUnavailable:
        return _report_form(console, error=console.t("report.unavailable"), status=503)
    rows = [
        {
            **item,
            "at": datetime.fromisoformat(item["at"]),
            "who": item["client_name"] or item["client_id"] or "–",
            "purpose_text": item["purpose_title"] or item["purpose"] or "–",
        }
        for item in answer["items"]
    ]
    return {
        "token": token,
        "personal_id": personal_id,
        "rows": rows,
        "more": answer["next_cursor"] is not None,
        "limit": REPORT_LIMIT,
        "made_at": datetime.now(UTC),
        "made_by": f"{console.me.operator.display_name} ({console.me.username})",
    }


@router.get("/report/{token}")
async def report_page(token: str, console: AuditorPage) -> Response:
    report = await _report(console, token)
    if isinstance(report, Response):
        return report
    return console.page("report.html", "report.title", **report)


@router.get("/report/{token}/pdf")
async def report_pdf_file(token: str, console: AuditorPage) -> Response:
    report = await _report(console, token)
    if isinstance(report, Response):
        return report
    # In a worker thread: laying out the table costs about 10 ms a row (seconds for the largest report), and
    # the event loop keeps serving other requests meanwhile.
    # fpdf2 (and fontTools under it) is imported at the first PDF: ~240 ms and tens of MiB a worker
    # would otherwise carry from start-up to serve the citizen API, which never makes one.
    from app.console.pdf import report_pdf

    body = await asyncio.to_thread(report_pdf, console.t, console.lang, **report)
    stamp = report["made_at"].astimezone(VIETNAM).strftime("%Y%m%d-%H%M%S")  # the time on the report
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="bao-cao-truy-cap-{stamp}.pdf"'},
    )
