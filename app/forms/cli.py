"""``dancu forms``: form templates from the command line (docs/contract.md, 18. Forms: prefill and confirmation).

The same ``FormAdmin`` the admin REST API uses, one transaction per command, actor ``cli`` (no approval step).
A refusal is one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.writer import AdminLog
from app.auth.keys import KeyStore
from app.auth.repository import PurposeRepository
from app.auth.schemas import PurposeIn
from app.auth.service import CLI_ACTOR, AuthService, parse
from app.clikit import refuse as _refuse
from app.clikit import run_refusing
from app.config import get_settings
from app.db import create_engine, create_sessionmaker
from app.forms.defaults import DEFAULTS, PURPOSES
from app.forms.errors import FormNotFound
from app.forms.schemas import FormIn, FormOut, FormReplace
from app.forms.service import FormAdmin

forms_cli = typer.Typer(help="Form templates: prefill and confirmation.", no_args_is_help=True)

Result = TypeVar("Result")
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of a readable table.")
]


def _run(work: Callable[[AsyncSession, KeyStore, AdminLog], Awaitable[Result]]) -> Result:
    settings = get_settings()

    async def run() -> Result:
        engine = create_engine(settings)
        try:
            sessionmaker = create_sessionmaker(engine)
            keys = KeyStore.from_settings(settings, sessionmaker)
            async with sessionmaker() as session:
                result = await work(session, keys, AdminLog(session, actor=CLI_ACTOR))
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return run_refusing(run())


def _echo_form(form: FormOut, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(form.model_dump(mode="json"), ensure_ascii=False))
        return
    typer.echo(f"{form.code}  {form.status}  {form.title}  (purpose {form.purpose})")
    if form.legal_basis:
        typer.echo(f"  {form.legal_basis}")
    for field in form.fields:
        written = f" [{field.format}]" if field.format else ""
        typer.echo(f"  {field.name}: {field.label} <- {field.source or '(by hand)'}{written}")


async def install(session: AsyncSession, keys: KeyStore, log: AdminLog) -> list[tuple[str, str]]:
    """Register each default form's purpose when missing, then define the form, or put the default
    back when it was changed or retired; answers ``(code, "created" | "replaced" | "unchanged")`` per form."""
    registered = await PurposeRepository(session).registered(PURPOSES)
    auth = AuthService(session, keys.secrets, log)
    for code, (title, legal_basis) in PURPOSES.items():
        if code not in registered:
            await auth.add_purpose(PurposeIn(code=code, title=title, legal_basis=legal_basis))
    forms = FormAdmin(session, log)
    done: list[tuple[str, str]] = []
    for template in DEFAULTS:
        spec = parse(FormIn, template)
        try:
            current = await forms.get(spec.code)
        except FormNotFound:
            await forms.create(spec)
            done.append((spec.code, "created"))
            continue
        wanted = FormAdmin.definition(spec)
        if current.status == "active" and FormAdmin.definition(current) == wanted:
            done.append((spec.code, "unchanged"))
            continue
        await forms.replace(spec.code, parse(FormReplace, template))
        done.append((spec.code, "replaced"))
    return done


@forms_cli.command("install-defaults")
def install_defaults(as_json: JsonOutput = False) -> None:
    """Install the templates of real forms (CT01, Thông tư 66/2023/TT-BCA) and register their purposes."""
    done = _run(install)
    if as_json:
        typer.echo(json.dumps({"items": [{"code": c, "result": r} for c, r in done]}))
        return
    for code, result in done:
        typer.echo(f"{result} form {code}")


@forms_cli.command("define")
def define(
    file: Annotated[
        Path, typer.Option("--file", help="A JSON template {code, title, purpose, fields, ...}.")
    ],
    as_json: JsonOutput = False,
) -> None:
    """Define a form from a JSON file, or replace the form of that code."""
    try:
        data: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        _refuse(f"cannot read {file}: {type(err).__name__}")
    if not isinstance(data, dict):
        _refuse("the file must hold one JSON object")

    async def work(session: AsyncSession, _keys: KeyStore, log: AdminLog) -> FormOut:
        forms = FormAdmin(session, log)
        spec = parse(FormIn, data)
        try:
            await forms.get(spec.code)
        except FormNotFound:
            return await forms.create(spec)
        return await forms.replace(spec.code, parse(FormReplace, data))

    _echo_form(_run(work), as_json)


@forms_cli.command("list")
def list_forms(as_json: JsonOutput = False) -> None:
    """List the form templates, retired ones included."""
    page = _run(lambda session, _keys, log: FormAdmin(session, log).list())
    if as_json:
        typer.echo(json.dumps(page.model_dump(mode="json"), ensure_ascii=False))
        return
    for form in page.items:
        typer.echo(f"{form.code}  {form.status}  {form.title}")


@forms_cli.command("show")
def show(code: Annotated[str, typer.Argument(help="The form's code.")], as_json: JsonOutput = False) -> None:
    """Show a template: each field, its source and format."""
    _echo_form(_run(lambda session, _keys, log: FormAdmin(session, log).get(code)), as_json)


@forms_cli.command("retire")
def retire(code: Annotated[str, typer.Argument(help="The form's code.")]) -> None:
    """Retire a form: prefills and confirmations of it answer 404 from now on."""
    _run(lambda session, _keys, log: FormAdmin(session, log).retire(code))
    typer.echo(f"retired form {code}")
