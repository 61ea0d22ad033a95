"""``dancu stats population``: the statistics endpoint for an analyst at a shell (docs/contract.md, section 14;
docs/statistics.md).

The same ``StatsService`` as ``POST /v1/statistics/population``, on the backend the settings name, with the
same disclosure control; the query is an audit event ``stats.population`` with actor ``cli`` (an operator with
shell access is trusted with every province, as for the other commands). A refusal is one line on stderr and
exit status 2; a failure of the register or the audit log, exit status 1.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.audit.writer import AuditWriter, load_subject_hasher
from app.backends.registry import open_backend
from app.config import get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import GatewayError, ValidationFailed
from app.problems import field_errors
from app.stats.perturbation import PerturbationTable
from app.stats.schemas import PopulationRequest
from app.stats.service import StatsCaller, StatsService

CLI_ACTOR = "cli"
EXIT_USAGE = 2
EXIT_FAILED = 1

stats_cli = typer.Typer(
    help="Population statistics (perturbed counts, never a resident).", no_args_is_help=True
)


def _refuse(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"dancu: {message}", err=True)
    raise typer.Exit(code)


def _where(errors: list[Any]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'input'}: {e['message']}" for e in errors)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _label(value: Any) -> str:
    return f"{value['code']} {value['name']}" if isinstance(value, dict) else str(value)


def render_table(answer: dict[str, Any]) -> str:
    """A readable table: one line per item, then the total and the method."""
    header = [*answer["group_by"], "count"]
    rows = [
        [
            *(_label(item[d]) for d in answer["group_by"]),
            "suppressed" if item["suppressed"] else str(item["count"]),
        ]
        for item in answer["items"]
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    total = answer["total"]
    method = answer["method"]
    lines.append(
        f"total {'suppressed' if total['suppressed'] else total['count']}  "
        f"(province {answer['province']}, as of {answer['as_of']}; cell-key method: cells of 1 to "
        f"{method['threshold'] - 1} residents suppressed, noise within ±{method['max_noise']})"
    )
    return "\n".join(lines)


def render_csv(answer: dict[str, Any]) -> str:
    """CSV with a header row; wards and ethnic groups as two columns (code, name); suppressed counts empty."""
    header: list[str] = []
    for dim in answer["group_by"]:
        header += [f"{dim}_code", f"{dim}_name"] if dim in ("ward", "ethnicity") else [dim]
    header += ["count", "suppressed"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for item in answer["items"]:
        row: list[Any] = []
        for dim in answer["group_by"]:
            value = item[dim]
            row += [value["code"], value["name"]] if isinstance(value, dict) else [value]
        row += ["" if item["count"] is None else item["count"], "true" if item["suppressed"] else "false"]
        writer.writerow(row)
    return out.getvalue()


@stats_cli.command("population")
def population(
    province: Annotated[str | None, typer.Option(help="2025 province code, e.g. 52.")] = None,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help="Up to three of ward, age_band, age_group, sex, ethnicity, residence_status, household_size, "
            "marital_status, comma-separated.",
        ),
    ] = "",
    wards: Annotated[str | None, typer.Option(help="Only these ward codes, comma-separated.")] = None,
    sex: Annotated[str | None, typer.Option(help="male or female.")] = None,
    age_min: Annotated[int | None, typer.Option("--age-min")] = None,
    age_max: Annotated[int | None, typer.Option("--age-max")] = None,
    ethnicity: Annotated[str | None, typer.Option(help="GSO ethnic codes, comma-separated.")] = None,
    residence_status: Annotated[
        str | None, typer.Option("--residence-status", help="permanent, temporary, other; comma-separated.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: the data's date).")
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="Recorded in the audit event.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The REST answer as JSON on stdout.")] = False,
) -> None:
    """Counts of a province's residents by up to three dimensions, perturbed and with small cells suppressed."""
    filters = {
        "sex": sex,
        "age_min": age_min,
        "age_max": age_max,
        "ethnicity": _names(ethnicity),
        "residence_status": _names(residence_status),
    }
    raw: dict[str, Any] = {
        "province": province,
        "group_by": _names(group_by) or [],
        "wards": _names(wards),
        "filters": {k: v for k, v in filters.items() if v is not None},
    }
    if as_of is not None:
        try:
            raw["as_of"] = date.fromisoformat(as_of)
        except ValueError:
            _refuse("--as-of: expected YYYY-MM-DD")
    try:
        body = PopulationRequest.model_validate(raw)
    except ValidationError as err:
        errors = field_errors(err.errors(include_url=False, include_input=False), language="en")
        _refuse(f"validation failed: {_where([{**e, 'loc': ['body', *e['loc']]} for e in errors])}")
    settings = get_settings()
    table = PerturbationTable(settings.stats.threshold, settings.stats.max_noise)

    async def run() -> dict[str, Any]:
        engine = create_engine(settings)
        audit = AuditWriter(create_sessionmaker(engine), load_subject_hasher(settings))
        backend = await open_backend(settings)
        try:
            caller = StatsCaller(
                actor=CLI_ACTOR, client_id=None, purpose=purpose, request_id=None, provinces=None
            )
            return await StatsService(backend, None, audit, table).population(caller, body)
        finally:
            await backend.close()
            await audit.close()
            await engine.dispose()

    try:
        answer = asyncio.run(run())
    except ValidationFailed as err:
        _refuse(f"validation failed: {_where(err.errors)}")
    except GatewayError as err:
        _refuse(f"{err.code}: {err.detail}", EXIT_FAILED if err.status >= 500 else EXIT_USAGE)
    except (SQLAlchemyError, OSError) as err:
        _refuse(f"the database could not be used ({type(err).__name__}); is it migrated?", EXIT_FAILED)
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False))
    elif as_csv:
        typer.echo(render_csv(answer), nl=False)
    else:
        typer.echo(render_table(answer))
