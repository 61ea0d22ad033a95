"""The ``dancu`` command. Operators script it, so its names are part of the contract (API.md).

Commands are thin: they call the same code the REST API and the tests use.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from app.auth.keys import KeyConfigurationError, KeyStore
from app.auth.schemas import ClientCreate, GrantIn, PurposeIn
from app.auth.service import CLI_ACTOR, AuthService, CreatedClient, parse
from app.config import ProductionSettingsError, get_settings
from app.db import create_engine, create_sessionmaker
from app.errors import GatewayError, ValidationFailed

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
"""Found next to the package, not in the working directory: `dancu db upgrade` works from anywhere."""

cli = typer.Typer(name="dancu", help="The dancu gateway.", no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="The gateway's own database.", no_args_is_help=True)
openapi_cli = typer.Typer(help="The published HTTP contract.", no_args_is_help=True)
clients_cli = typer.Typer(help="Clients and their grants.", no_args_is_help=True)
purposes_cli = typer.Typer(help="Purposes of use.", no_args_is_help=True)
keys_cli = typer.Typer(help="Token and attestation signing keys.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(openapi_cli, name="openapi")
cli.add_typer(clients_cli, name="clients")
cli.add_typer(purposes_cli, name="purposes")
cli.add_typer(keys_cli, name="keys")

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


# --- administration: thin calls into app.auth.service, one transaction per command, actor `cli` -------------

Result = TypeVar("Result")


def _one_line(error: GatewayError) -> str:
    if isinstance(error, ValidationFailed) and error.errors:
        where = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['message']}"
            for item in error.errors
        )
        return f"{error.title_en.lower()}: {where}"
    return error.detail


def _administer(work: Callable[[AuthService, KeyStore], Awaitable[Result]]) -> Result:
    """Run ``work`` in one transaction on DANCU_DATABASE_URL and commit it; one line on stderr and exit 2
    when it is refused. Nothing here prints a secret."""
    settings = get_settings()

    async def run() -> Result:
        engine = create_engine(settings)
        try:
            sessionmaker = create_sessionmaker(engine)
            keys = KeyStore.from_settings(settings, sessionmaker)
            async with sessionmaker() as session:
                result = await work(AuthService(session, keys.secrets, actor=CLI_ACTOR), keys)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except GatewayError as err:
        _refuse(_one_line(err))
    except KeyConfigurationError as err:
        _refuse(str(err))
    except (SQLAlchemyError, OSError) as err:  # driver messages may carry passwords: the type only
        _refuse(
            f"the database refused the change ({type(err).__name__}); is it migrated (`dancu db upgrade`)?"
        )


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _print_created(created: CreatedClient, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps({"client_id": created.client.client_id, "client_secret": created.client_secret})
        )
        return
    typer.echo(f"client_id: {created.client.client_id}")
    typer.echo(f"client_secret: {created.client_secret}")
    typer.echo("The secret is shown this once; the gateway keeps only a keyed hash of it.", err=True)


JsonOption = Annotated[
    bool, typer.Option("--json", help='Print only {"client_id", "client_secret"} as JSON.')
]


@cli.command("bootstrap-admin")
def bootstrap_admin(
    name: Annotated[str, typer.Option(help="The admin client's name.")],
    as_json: JsonOption = False,
) -> None:
    """Create the first admin client (scope `admin`); prints its client_id and secret once."""
    _print_created(_administer(lambda service, _keys: service.bootstrap_admin(name)), as_json)


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="The client's name.")],
    scopes: Annotated[str | None, typer.Option(help="Comma-separated scopes.")] = None,
    fields: Annotated[
        str | None, typer.Option(help="Comma-separated fields; `*` = every non-sensitive one.")
    ] = None,
    provinces: Annotated[
        str | None, typer.Option(help="Comma-separated 2025 province codes, or `*`.")
    ] = None,
    purposes: Annotated[str | None, typer.Option(help="Comma-separated registered purpose codes.")] = None,
    verify_details: Annotated[
        bool, typer.Option("--verify-details", help="May see per-field results.")
    ] = False,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (default 600).")] = None,
    distinct_per_day: Annotated[
        int | None, typer.Option(help="Distinct residents a day (default 5000).")
    ] = None,
    jwks: Annotated[
        Path | None, typer.Option(help="A JWK Set file of public keys for private_key_jwt.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a client and its grant; prints its client_id and secret once."""
    grant: dict[str, Any] = {
        "scopes": _names(scopes),
        "fields": _names(fields),
        "provinces": _names(provinces),
        "purposes": _names(purposes),
        "verify_details": verify_details or None,
        "rate_limit_per_minute": rate_limit,
        "distinct_subjects_per_day": distinct_per_day,
    }
    grant = {key: value for key, value in grant.items() if value is not None}
    jwk_set: Any = None
    if jwks is not None:
        try:
            jwk_set = json.loads(jwks.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            _refuse(f"cannot read --jwks {jwks}: {type(err).__name__}")

    async def work(service: AuthService, _keys: KeyStore) -> CreatedClient:
        created = await service.create_client(parse(ClientCreate, {"name": name}))
        if grant:
            await service.replace_grant(created.client.client_id, parse(GrantIn, grant))
        if jwk_set is not None:
            await service.set_jwks(created.client.client_id, jwk_set)
        return created

    _print_created(_administer(work), as_json)


def _set_status(client_id: str, status: str) -> None:
    _administer(lambda service, _keys: service.set_status(client_id, status))
    typer.echo(f"{client_id} is {status}")


@clients_cli.command("suspend")
def clients_suspend(client_id: Annotated[str, typer.Argument(help="The client to suspend.")]) -> None:
    """Suspend a client: its tokens stop working at once and it gets no new ones."""
    _set_status(client_id, "suspended")


@clients_cli.command("reinstate")
def clients_reinstate(client_id: Annotated[str, typer.Argument(help="The client to reinstate.")]) -> None:
    """Reinstate a suspended client."""
    _set_status(client_id, "active")


@purposes_cli.command("add")
def purposes_add(
    code: Annotated[str, typer.Option(help="The purpose code, e.g. a procedure code.")],
    title: Annotated[str, typer.Option(help="Vietnamese title.")],
    legal_basis: Annotated[str, typer.Option(help="The legal document and article.")],
) -> None:
    """Register a purpose of use."""
    data = {"code": code, "title": title, "legal_basis": legal_basis}
    purpose = _administer(lambda service, _keys: service.add_purpose(parse(PurposeIn, data)))
    typer.echo(f"registered purpose {purpose.code}")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Make a new token and attestation signing key; the old ones stay published in the JWKS."""
    kid = _administer(lambda service, keys: service.rotate_signing_key(keys))
    typer.echo(f"new signing key {kid}; earlier keys stay published")


def main() -> None:
    cli()
