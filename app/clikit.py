"""What every `dancu` command shares: one line on stderr and exit 2 when the gateway refuses, and running a
command's coroutine with the gateway's refusals, key problems and database failures turned into that line.

`app.cli` and the context CLIs (`app.forms.cli`) both use it; it sits below them so neither imports the other's
helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from app.auth.errors import KeyConfigurationError
from app.errors import GatewayError, ValidationFailed

EXIT_USAGE = 2

Result = TypeVar("Result")


def refuse(message: str) -> NoReturn:
    typer.echo(f"dancu: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def one_line(error: GatewayError) -> str:
    if isinstance(error, ValidationFailed) and error.errors:
        where = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['message']}"
            for item in error.errors
        )
        return f"{error.title_en.lower()}: {where}"
    return error.detail


def run_refusing(work: Coroutine[Any, Any, Result]) -> Result:
    """Run ``work`` to its end; a refusal, a key problem or a database failure becomes one line and exit 2."""
    try:
        return asyncio.run(work)
    except GatewayError as err:
        refuse(one_line(err))
    except KeyConfigurationError as err:
        refuse(str(err))
    except (SQLAlchemyError, OSError) as err:  # driver messages may carry passwords: the type only
        refuse(
            f"the database refused the change ({type(err).__name__}); is it migrated (`dancu db upgrade`)?"
        )
