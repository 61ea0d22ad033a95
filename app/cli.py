"""The ``dancu`` command. Operators script it, so its names are part of the contract (docs/contract.md,
Command line).

Commands are thin: they call the same code the REST API and the tests use.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from app.admin.service import AdminService
from app.audit.checkpoints import Checkpoint, Checkpointer, load_checkpoint_key
from app.audit.errors import CheckpointFileError, CheckpointKeyError
from app.audit.integrity import verify_database
from app.audit.writer import AdminLog
from app.auth.keys import KeyStore, load_encryption_key
from app.auth.schemas import (
    MAX_SECRET_GRACE_SECONDS,
    ClientCreate,
    ClientOut,
    ClientSecretOut,
    GrantIn,
    GrantOut,
    PurposeIn,
)
from app.auth.service import CLI_ACTOR, AuthService, CreatedClient, parse
from app.clikit import refuse as _refuse
from app.clikit import run_refusing
from app.config import ProductionSettingsError, get_settings
from app.db import create_engine, create_sessionmaker
from app.forms.cli import forms_cli
from app.logs import LOG_LEVELS, log_config
from app.operators.service import OperatorService
from app.stats.cli import stats_cli

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
"""Found next to the package, not in the working directory: `dancu db upgrade` works from anywhere."""

cli = typer.Typer(name="dancu", help="The dancu gateway.", no_args_is_help=True, add_completion=False)
db_cli = typer.Typer(help="The gateway's own database.", no_args_is_help=True)
openapi_cli = typer.Typer(help="The published HTTP contract.", no_args_is_help=True)
clients_cli = typer.Typer(help="Clients and their grants.", no_args_is_help=True)
purposes_cli = typer.Typer(help="Purposes of use.", no_args_is_help=True)
keys_cli = typer.Typer(help="Token and attestation signing keys.", no_args_is_help=True)
grants_cli = typer.Typer(help="What each client may do.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(openapi_cli, name="openapi")
cli.add_typer(clients_cli, name="clients")
cli.add_typer(purposes_cli, name="purposes")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(grants_cli, name="grants")
cli.add_typer(forms_cli, name="forms")
cli.add_typer(stats_cli, name="stats")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; more than 1 needs Redis.")] = 1,
    log_level: Annotated[str, typer.Option(help="critical, error, warning, info or debug.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="One JSON line per request (route template, no path).")
    ] = False,
) -> None:
    """Serve the gateway with uvicorn; logs are JSON lines on stderr."""
    if log_level not in LOG_LEVELS:
        _refuse(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
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
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        server_header=False,
        # httptools, plus the header and body-stall timeouts and h2c offers ignored (docs/deploy.md).
        http="app.server:GatewayHttpProtocol",
        log_config=log_config(log_level, access_log=access_log),
        access_log=False,  # uvicorn's line has the raw path and query string; `dancu.access` replaces it
    )


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
    with_mock: Annotated[bool, typer.Option(help="Also run `mock-csdlqg openapi export` beside it.")] = True,
) -> None:
    """Write the gateway's OpenAPI document, and the mock's (openapi/csdlqg.json) beside it."""
    # Imported here: app.main builds its module-level app, which applies the prod checks the other
    # commands must not depend on.
    from app.main import create_app

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(openapi_json(create_app()), encoding="utf-8")
    typer.echo(f"wrote {out}")
    if with_mock:
        # The mock's own command, as a process: the gateway never imports mock_csdlqg (import-linter).
        mock = Path(sys.executable).with_name("mock-csdlqg")
        command = [str(mock)] if mock.exists() else ["mock-csdlqg"]
        subprocess.run(  # noqa: S603 - our own console script, arguments from this command's options
            [*command, "openapi", "export", "--out", str(out.with_name("csdlqg.json"))], check=True
        )


# --- administration: thin calls into app.auth.service, one transaction per command, actor `cli` -------------

Result = TypeVar("Result")


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
                result = await work(
                    AuthService(session, keys.secrets, AdminLog(session, actor=CLI_ACTOR)), keys
                )
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return run_refusing(run())


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
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of a readable table.")
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
    require_end_user: Annotated[
        bool, typer.Option("--require-end-user", help="Every call must name its end user (X-End-User).")
    ] = False,
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
        "require_end_user": require_end_user or None,
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


def _set_status(client_id: str, status: str, as_json: bool = False) -> None:
    client = _administer(lambda service, _keys: service.set_status(client_id, status))
    if as_json:
        typer.echo(json.dumps(client.model_dump(mode="json"), ensure_ascii=False))
        return
    typer.echo(f"{client_id} is {status}")


@clients_cli.command("suspend")
def clients_suspend(
    client_id: Annotated[str, typer.Argument(help="The client to suspend.")], as_json: JsonOutput = False
) -> None:
    """Suspend a client: its tokens stop working at once and it gets no new ones."""
    _set_status(client_id, "suspended", as_json)


@clients_cli.command("reinstate")
def clients_reinstate(
    client_id: Annotated[str, typer.Argument(help="The client to reinstate.")], as_json: JsonOutput = False
) -> None:
    """Reinstate a suspended client."""
    _set_status(client_id, "active", as_json)


@purposes_cli.command("add")
def purposes_add(
    code: Annotated[str, typer.Option(help="The purpose code, e.g. a procedure code.")],
    title: Annotated[str, typer.Option(help="Vietnamese title.")],
    legal_basis: Annotated[str, typer.Option(help="The legal document and article.")],
    as_json: JsonOutput = False,
) -> None:
    """Register a purpose of use."""
    data = {"code": code, "title": title, "legal_basis": legal_basis}
    purpose = _administer(lambda service, _keys: service.add_purpose(parse(PurposeIn, data)))
    if as_json:
        typer.echo(json.dumps(purpose.model_dump(mode="json"), ensure_ascii=False))
        return
    typer.echo(f"registered purpose {purpose.code}")


@purposes_cli.command("retire")
def purposes_retire(
    code: Annotated[str, typer.Argument(help="The purpose code.")],
    as_json: JsonOutput = False,
) -> None:
    """Retire a purpose: no longer grantable nor usable in calls (refused while a grant names it)."""
    purpose = _administer(lambda service, _keys: service.retire_purpose(code))
    if as_json:
        typer.echo(json.dumps(purpose.model_dump(mode="json"), ensure_ascii=False))
        return
    typer.echo(f"retired purpose {purpose.code}")


@keys_cli.command("rotate")
def keys_rotate(as_json: JsonOutput = False) -> None:
    """Make a new token and attestation signing key; the old ones stay published in the JWKS."""
    key = _administer(lambda service, keys: _as_admin(service, keys).rotate_signing_key())
    if as_json:
        typer.echo(json.dumps(key.model_dump(mode="json")))
        return
    typer.echo(f"new signing key {key.kid}; earlier keys stay published")


# --- reading and the rest of the admin API's changes: the same AdminService, actor `cli`, no approval step ----


def _as_admin(service: AuthService, keys: KeyStore) -> AdminService:
    return AdminService(service.session, keys, actor=CLI_ACTOR)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _echo_fields(values: Mapping[str, Any]) -> None:
    width = max(len(name) for name in values)
    for name, value in values.items():
        typer.echo(f"{name.ljust(width)}  {_cell(value)}")


@clients_cli.command("list")
def clients_list(as_json: JsonOutput = False) -> None:
    """List every client (id, status, name)."""

    async def work(service: AuthService, keys: KeyStore) -> list[ClientOut]:
        admin, items, cursor = _as_admin(service, keys), [], None
        while True:
            page = await admin.list_clients(cursor=cursor, limit=1000)
            items += page.items
            if (cursor := page.next_cursor) is None:
                return items

    clients = _administer(work)
    if as_json:
        _echo_json({"items": [c.model_dump(mode="json") for c in clients]})
        return
    _echo_table(
        ("client_id", "status", "name", "created_at"),
        [(c.client_id, c.status, c.name, c.created_at) for c in clients],
    )


@clients_cli.command("show")
def clients_show(
    client_id: Annotated[str, typer.Argument(help="The client to show.")], as_json: JsonOutput = False
) -> None:
    """Show a client and its grant (never its secret)."""

    async def work(service: AuthService, _keys: KeyStore) -> tuple[ClientOut, GrantOut]:
        return await service.get_client(client_id), await service.get_grant(client_id)

    client, grant = _administer(work)
    if as_json:
        _echo_json({**client.model_dump(mode="json"), "grant": grant.model_dump(mode="json")})
        return
    shown = client.model_dump(exclude={"jwks"})
    shown["jwks"] = [key.get("kid") for key in (client.jwks or {}).get("keys", [])] or None
    _echo_fields(shown)
    typer.echo("grant:")
    _echo_fields({"  " + name: value for name, value in grant.model_dump(exclude={"client_id"}).items()})


@clients_cli.command("rotate-secret")
def clients_rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The client whose secret to replace.")],
    grace_seconds: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_SECRET_GRACE_SECONDS,
            help="Keep the old secret working this many seconds (at most 86400) while the portal is redeployed.",
        ),
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Give a client a new secret, printed once; the old one stops working at once, or after --grace-seconds."""

    async def work(service: AuthService, _keys: KeyStore) -> ClientSecretOut:
        # The CLI's changes apply at once (no approval step): straight to the auth service.
        return await service.rotate_secret(client_id, grace_seconds)

    rotated = _administer(work)
    if as_json:
        _echo_json(rotated.model_dump(mode="json", exclude_none=True))
        return
    typer.echo(f"client_id: {rotated.client_id}")
    typer.echo(f"client_secret: {rotated.client_secret}")
    if rotated.previous_secret_until is not None:
        until = rotated.previous_secret_until.isoformat().replace("+00:00", "Z")
        typer.echo(f"The secret is shown this once; the old one keeps working until {until}.", err=True)
    else:
        typer.echo("The secret is shown this once; the old one no longer works.", err=True)


@clients_cli.command("set-jwks")
def clients_set_jwks(
    client_id: Annotated[str, typer.Argument(help="The client whose public keys to replace.")],
    jwks: Annotated[Path, typer.Option(help="A JWK Set file of public keys for private_key_jwt.")],
    as_json: JsonOption = False,
) -> None:
    """Replace a client's registered public keys (`{"keys": []}` removes them); private keys are refused."""
    try:
        jwk_set = json.loads(jwks.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        _refuse(f"cannot read --jwks {jwks}: {type(err).__name__}")
    client = _administer(lambda service, _keys: service.set_jwks(client_id, jwk_set))
    if as_json:
        _echo_json(client.model_dump(mode="json"))
        return
    kids = [key.get("kid") or "(no kid)" for key in (client.jwks or {}).get("keys", [])]
    typer.echo(f"client_id: {client.client_id}")
    typer.echo(f"keys: {', '.join(kids) if kids else 'none'}")


@clients_cli.command("disable-secret")
def clients_disable_secret(
    client_id: Annotated[str, typer.Argument(help="A client that authenticates with private_key_jwt.")],
    as_json: JsonOption = False,
) -> None:
    """Turn secret authentication off: only private_key_jwt works for the client from now on (it needs
    registered keys). `dancu clients rotate-secret` turns it on again with a new secret."""
    client = _administer(lambda service, _keys: service.disable_secret(client_id))
    if as_json:
        _echo_json(client.model_dump(mode="json"))
        return
    typer.echo(f"client_id: {client.client_id}")
    typer.echo("secret authentication: off (private_key_jwt only)")


def _echo_grant(grant: GrantOut, as_json: bool) -> None:
    if as_json:
        _echo_json(grant.model_dump(mode="json"))
        return
    _echo_fields(grant.model_dump())


@grants_cli.command("show")
def grants_show(
    client_id: Annotated[str, typer.Argument(help="The client whose grant to show.")],
    as_json: JsonOutput = False,
) -> None:
    """Show a client's grant."""
    _echo_grant(_administer(lambda service, _keys: service.get_grant(client_id)), as_json)


@grants_cli.command("set")
def grants_set(
    client_id: Annotated[str, typer.Argument(help="The client whose grant to change.")],
    scopes: Annotated[str | None, typer.Option(help="Comma-separated scopes; '' for none.")] = None,
    fields: Annotated[
        str | None, typer.Option(help="Comma-separated fields; `*` = every non-sensitive one; '' for none.")
    ] = None,
    provinces: Annotated[
        str | None, typer.Option(help="Comma-separated 2025 province codes, or `*`; '' for none.")
    ] = None,
    purposes: Annotated[
        str | None, typer.Option(help="Comma-separated registered purpose codes; '' for none.")
    ] = None,
    verify_details: Annotated[
        bool | None, typer.Option("--verify-details/--no-verify-details", help="May see per-field results.")
    ] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    distinct_per_day: Annotated[int | None, typer.Option(help="Distinct residents a day.")] = None,
    require_end_user: Annotated[
        bool | None,
        typer.Option(
            "--require-end-user/--no-require-end-user", help="Every call must name its end user (X-End-User)."
        ),
    ] = None,
    valid_from: Annotated[str | None, typer.Option(help="RFC 3339 start of validity; '' for none.")] = None,
    valid_until: Annotated[str | None, typer.Option(help="RFC 3339 end of validity; '' for none.")] = None,
    as_json: JsonOutput = False,
) -> None:
    """Change the options given and keep the rest of the grant; applies at once (no approval step)."""
    changes: dict[str, Any] = {
        "scopes": _names(scopes),
        "fields": _names(fields),
        "provinces": _names(provinces),
        "purposes": _names(purposes),
        "verify_details": verify_details,
        "rate_limit_per_minute": rate_limit,
        "distinct_subjects_per_day": distinct_per_day,
        "require_end_user": require_end_user,
        "valid_from": valid_from,
        "valid_until": valid_until,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    for key in ("valid_from", "valid_until"):
        if changes.get(key) == "":
            changes[key] = None

    async def work(service: AuthService, _keys: KeyStore) -> GrantOut:
        current = (await service.get_grant(client_id)).model_dump(mode="json")
        spec = {key: value for key, value in current.items() if key in GrantIn.model_fields}
        return await service.replace_grant(client_id, parse(GrantIn, {**spec, **changes}))

    _echo_grant(_administer(work), as_json)


@purposes_cli.command("list")
def purposes_list(as_json: JsonOutput = False) -> None:
    """List the registered purposes of use."""
    purposes = _administer(lambda service, _keys: service.list_purposes())
    if as_json:
        _echo_json({"items": [p.model_dump(mode="json") for p in purposes]})
        return
    _echo_table(
        ("code", "title", "legal_basis", "retired_at"),
        [(p.code, p.title, p.legal_basis, p.retired_at) for p in purposes],
    )


@keys_cli.command("list")
def keys_list(as_json: JsonOutput = False) -> None:
    """List the signing keys: the active one signs, every one stays published in the JWKS."""
    keys = _administer(
        lambda service, store: _as_admin(service, store).list_signing_keys(cursor=None, limit=1000)
    ).items
    if as_json:
        _echo_json({"items": [k.model_dump(mode="json") for k in keys]})
        return
    _echo_table(
        ("kid", "alg", "active", "created_at", "retired_at"),
        [(k.kid, k.alg, k.active, k.created_at, k.retired_at) for k in keys],
    )


# --- operators: the officers who use the console (docs/contract.md, section 15) -------------------------------

operators_cli = typer.Typer(help="Operators: the officers who sign in to the console.", no_args_is_help=True)
cli.add_typer(operators_cli, name="operators")


def _operators(work: Callable[[OperatorService], Awaitable[Result]]) -> Result:
    """Run ``work`` on an OperatorService (actor ``cli``) in one transaction and commit it; refusals as in
    ``_administer``. Nothing here prints a password but the one a command exists to show."""
    settings = get_settings()

    async def run() -> Result:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                service = OperatorService(session, Fernet(load_encryption_key(settings)), actor=CLI_ACTOR)
                result = await work(service)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return run_refusing(run())


UsernameArg = Annotated[str, typer.Argument(help="The operator's username.")]
RolesOption = Annotated[str, typer.Option(help="Comma-separated roles: admin, approver, auditor, analyst.")]
PasswordJson = Annotated[
    bool, typer.Option("--json", help='Print only {"username", "initial_password"} as JSON.')
]


@operators_cli.command("create")
def operators_create(
    username: Annotated[str, typer.Option(help="Login name: lower-case letters, digits, . _ -")],
    display_name: Annotated[str, typer.Option(help='Full name, e.g. "Nguyễn Thị Lan".')],
    roles: RolesOption,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    as_json: PasswordJson = False,
) -> None:
    """Create an operator; prints its initial password once (changed at the first login)."""
    created, password = _operators(
        lambda service: service.create(username, display_name, _names(roles) or [], email)
    )
    if as_json:
        _echo_json({"username": created.username, "initial_password": password})
        return
    typer.echo(f"username: {created.username}")
    typer.echo(f"initial_password: {password}")
    typer.echo("The password is shown this once; it must be changed at the first login.", err=True)


operators_cli.command("add", help="The same as `create`.")(operators_create)


@operators_cli.command("list")
def operators_list(as_json: JsonOutput = False) -> None:
    """List every operator (username, roles, status, authenticator)."""
    operators = _operators(lambda service: service.list())
    if as_json:
        _echo_json({"items": [o.as_json() for o in operators]})
        return
    _echo_table(
        ("username", "display_name", "roles", "status", "totp", "last_login_at"),
        [
            (o.username, o.display_name, o.roles, o.status, o.totp_enrolled, o.last_login_at)
            for o in operators
        ],
    )


def _operator_status(username: str, status: Literal["active", "disabled"], as_json: bool) -> None:
    operator = _operators(lambda service: service.set_status(username, status))
    if as_json:
        _echo_json(operator.as_json())
        return
    typer.echo(f"{operator.username} is {operator.status}")


@operators_cli.command("disable")
def operators_disable(username: UsernameArg, as_json: JsonOutput = False) -> None:
    """Disable an operator: its console sessions end at once, on every replica."""
    _operator_status(username, "disabled", as_json)


@operators_cli.command("enable")
def operators_enable(username: UsernameArg, as_json: JsonOutput = False) -> None:
    """Enable a disabled operator again (and lift a lockout)."""
    _operator_status(username, "active", as_json)


@operators_cli.command("reset-password")
def operators_reset_password(username: UsernameArg, as_json: PasswordJson = False) -> None:
    """A new initial password, shown once; the operator's sessions end and it changes it at the next login."""
    password = _operators(lambda service: service.reset_password(username))
    if as_json:
        _echo_json({"username": username, "initial_password": password})
        return
    typer.echo(f"initial_password: {password}")


@operators_cli.command("reset-totp")
def operators_reset_totp(username: UsernameArg) -> None:
    """Forget the operator's authenticator: it enrols a new one at its next login."""
    _operators(lambda service: service.reset_totp(username))
    typer.echo(f"{username}: authenticator removed")


@operators_cli.command("roles")
def operators_roles(username: UsernameArg, roles: RolesOption, as_json: JsonOutput = False) -> None:
    """Replace an operator's roles (its sessions end; `admin` and `auditor` never together)."""
    operator = _operators(lambda service: service.set_roles(username, _names(roles) or []))
    if as_json:
        _echo_json(operator.as_json())
        return
    typer.echo(f"{operator.username}: {','.join(operator.roles)}")


# --- the audit log's integrity -------------------------------------------------------------------------------

audit_cli = typer.Typer(help="The audit log's chain and checkpoints.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")

EXIT_DAMAGED = 1


@audit_cli.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="A checkpoint file to verify against (default: the latest in the database and "
            "in DANCU_AUDIT__CHECKPOINT_DIR)."
        ),
    ] = None,
) -> None:
    """Verify the audit chain: exit 0 when intact, 1 when damaged (says where and how), 2 on errors."""
    try:
        report = asyncio.run(verify_database(get_settings(), checkpoint))
    except (CheckpointFileError, CheckpointKeyError) as err:
        _refuse(str(err))
    except (SQLAlchemyError, OSError) as err:  # driver messages may carry passwords: the type only
        _refuse(f"cannot read the audit log ({type(err).__name__}); is the database migrated?")
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Make a signed checkpoint of the log now: stored, and written to DANCU_AUDIT__CHECKPOINT_DIR."""
    settings = get_settings()

    async def run() -> Checkpoint:
        engine = create_engine(settings)
        try:
            key = load_checkpoint_key(settings)
            return await Checkpointer(create_sessionmaker(engine), key, settings.audit).make()
        finally:
            await engine.dispose()

    try:
        made = asyncio.run(run())
    except CheckpointKeyError as err:
        _refuse(str(err))
    except (SQLAlchemyError, OSError) as err:
        _refuse(f"the checkpoint could not be made ({type(err).__name__}); is the database migrated?")
    typer.echo(f"checkpoint at seq {made.seq}: {settings.audit.checkpoint_dir / made.file_name()}")


def main() -> None:
    cli()
