"""The ``mock-csdlqg`` command: seed the synthetic population, serve it, export its contract."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from mock_csdlqg.config import get_settings
from mock_csdlqg.generator.ids import GenerationError
from mock_csdlqg.generator.pipeline import (
    DEFAULT_AS_OF,
    DEFAULT_COUNT,
    DEFAULT_PROVINCES,
    DEFAULT_SEED,
    seed_database,
)
from mock_csdlqg.store import StoreError

# Locals are never shown in tracebacks: they can hold resident data.
cli = typer.Typer(
    help="The stand-in national population database (CSDLQG về dân cư).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
openapi_cli = typer.Typer(help="The mock's published contract.", no_args_is_help=True)
cli.add_typer(openapi_cli, name="openapi")

DEFAULT_OPENAPI = Path("openapi/csdlqg.json")


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter("expected YYYY-MM-DD") from err


@cli.command()
def seed(
    count: Annotated[
        int, typer.Option(min=0, help="generated residents (the personas come on top)")
    ] = DEFAULT_COUNT,
    seed: Annotated[int, typer.Option(help="the same seed gives the same population")] = DEFAULT_SEED,
    provinces: Annotated[
        str, typer.Option(help="2025 province codes where 80% of residents live, comma-separated")
    ] = ",".join(DEFAULT_PROVINCES),
    as_of: Annotated[str, typer.Option("--as-of", help="the date the population is described at")] = (
        DEFAULT_AS_OF.isoformat()
    ),
    database_url: Annotated[
        str | None, typer.Option(help="default: MOCK_CSDLQG_DATABASE_URL or sqlite:///./var/mock_csdlqg.db")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="generator processes (default: CPU count)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Replace the mock database's content with a freshly generated population."""
    url = database_url or get_settings().database_url
    codes = tuple(code.strip() for code in provinces.split(","))

    def progress(done: int) -> None:
        if not quiet and done % 100_000 < 2000:
            typer.echo(f"  {done:,} residents", err=True)

    try:
        report = asyncio.run(
            seed_database(
                url,
                count=count,
                seed=seed,
                provinces=codes,
                as_of=_parse_date(as_of),
                workers=workers,
                progress=progress,
            )
        )
    except (GenerationError, StoreError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    if not quiet:
        typer.echo(
            f"seeded {report.residents:,} residents + {report.personas} personas "
            f"in {report.households:,} households in {report.seconds:.1f} s"
        )


@cli.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8100,
    faults: Annotated[bool, typer.Option("--faults", help="enable fault injection")] = False,
    test_outbox: Annotated[
        bool, typer.Option("--test-outbox", help="serve GET /_mock/outbox (the SMS sent; tests only)")
    ] = False,
    database_url: Annotated[str | None, typer.Option()] = None,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Serve the seeded population over HTTP (API key in X-Api-Key)."""
    import uvicorn

    from mock_csdlqg.app import create_app
    from mock_csdlqg.config import MockSettings

    settings = get_settings()
    overrides: dict[str, object] = {
        "faults": faults or settings.faults,
        "test_outbox": test_outbox or settings.test_outbox,
    }
    if database_url:
        overrides["database_url"] = database_url
    if settings.api_key is None:
        key = secrets.token_urlsafe(24)
        overrides["api_key"] = key
        typer.echo(f"MOCK_CSDLQG_API_KEY is not set; this run's key: {key}", err=True)
    effective = MockSettings(**{**settings.model_dump(), **overrides})
    uvicorn.run(
        create_app(effective),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
    )


@cli.command("personas")
def personas_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="the table published in docs/personas.md")
    ] = False,
) -> None:
    """List the scenario personas (fixed residents present after every seed)."""
    from mock_csdlqg.personas import personas, personas_markdown

    if markdown:
        typer.echo(personas_markdown(), nl=False)
        return
    for p in personas():
        typer.echo(f"{p.personal_id}  {p.scenario:28}  {p.description}")


@openapi_cli.command("export")
def openapi_export(
    out: Annotated[Path, typer.Option(help="where to write the document")] = DEFAULT_OPENAPI,
) -> None:
    """Write the mock's OpenAPI document (the published upstream contract)."""
    from mock_csdlqg.app import openapi_document

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {out}")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        cli()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
