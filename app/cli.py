"""The ``dancu`` command. Operators script it, so its names are part of the contract (API.md).

Commands are thin: they call the same code the REST API and the tests use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from app.config import ProductionSettingsError, get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
"""Found next to the package, not in the working directory: `dancu db upgrade` works from anywhere."""

cli = typer.Typer(name="dancu", help="The dancu gateway.", no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="The gateway's own database.", no_args_is_help=True)
openapi_cli = typer.Typer(help="The published HTTP contract.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(openapi_cli, name="openapi")

EXIT_USAGE = 2


def _refuse(message: str) -> NoReturn:
    typer.echo(f"dancu: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; more than 1 needs Redis.")] = 1,
) -> None:
    """Serve the gateway with uvicorn."""
    settings = get_settings()
    if workers > 1 and settings.redis_url is None:
        _refuse(
            f"--workers {workers} needs DANCU_REDIS_URL: without Redis every worker keeps its own rate "
            "limits, quotas and jti store, so each limit would be multiplied by the number of workers"
        )
    try:
        settings.check_production()
    except ProductionSettingsError as err:
        _refuse(str(err))
    if settings.issuer is None:
        # Workers build their own settings from the environment: hand them the derived issuer that way.
        os.environ["DANCU_ISSUER"] = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        get_settings.cache_clear()
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, server_header=False)


def migration_config(database_url: str | None = None) -> Config:
    """Alembic's configuration for the gateway's migrations; ``None`` means ``DANCU_DATABASE_URL``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # Not through set_main_option: its ConfigParser would read a `%` in a password as interpolation.
        config.attributes["database_url"] = database_url
    return config


def upgrade_database(database_url: str | None = None) -> None:
    """Run the gateway's migrations to head. Synchronous: it runs its own event loop."""
    command.upgrade(migration_config(database_url), "head")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply the gateway's Alembic migrations up to head (DANCU_DATABASE_URL)."""
    upgrade_database()


def openapi_json(app: FastAPI) -> str:
    """The app's OpenAPI document as stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@openapi_cli.command("export")
def openapi_export(
    out: Annotated[Path, typer.Option(help="Where to write the document.")] = Path("openapi/gateway.json"),
) -> None:
    """Write the gateway's OpenAPI document (the mock's is `mock-csdlqg openapi export`; make runs both)."""
    # Imported here: app.main builds its module-level app, which applies the prod checks the other
    # commands must not depend on.
    from app.main import create_app

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(openapi_json(create_app()), encoding="utf-8")
    typer.echo(f"wrote {out}")


def main() -> None:
    cli()
