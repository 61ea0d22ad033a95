"""Rules every request body shares (docs/contract.md, "Text input"): no control characters in any text member,
timestamps within the years 1900-9999, text headers read as UTF-8.

``RequestModel`` is the base of every request body: unknown members refused (no mass assignment), the input
never echoed in an error, and every string inside it (nested lists and objects included) free of control
characters, judged as sent (before a member strips surrounding whitespace, which would drop a trailing
carriage return or NEL unseen). A NUL byte in a client's name ends up in the audit log, in CSV exports and in terminals; a
carriage return or escape sequence in a purpose title, in an officer's screen. None of these members has a use
for one, so each is refused with 422 ``control_character`` rather than cleaned.

``EndUserHeader`` is ``X-End-User`` as every route that takes it reads it (docs/contract.md, 5. Purpose of use, "End
user"): the officer or account at the calling system, 1-128 characters of ``[A-Za-z0-9._@:-]``, else 422.

``in_range_utc`` bounds timestamps: Python's ``datetime`` reaches year 1 and 9999, PostgreSQL and the UTC
conversion do not (``0001-01-01T00:00:00+14:00`` has no UTC form), and no date the gateway stores or searches
for lies outside 1900-9999.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import Header
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Unicode category Cc: C0 (NUL, tab, line feed, escape, ...), DEL and C1."""
FIRST_YEAR: Final = 1900
LAST_YEAR: Final = 9999


def _has_control(value: Any) -> bool:
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, list | tuple):
        return any(_has_control(item) for item in value)
    if isinstance(value, dict):
        return any(_has_control(key) or _has_control(item) for key, item in value.items())
    return False


def no_control_characters(value: Any) -> Any:
    """``value`` unchanged; 422 ``control_character`` when a string in it holds one."""
    if _has_control(value):
        raise PydanticCustomError("control_character", "Control characters are not allowed.")
    return value


class RequestModel(BaseModel):
    """The base of request bodies: strict about members, silent about values, no control characters."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return no_control_characters(value)


def in_range_utc(value: datetime) -> datetime:
    """An aware timestamp as UTC; 422 ``datetime_out_of_range`` outside the years 1900-9999 (in UTC)."""
    try:
        converted = value.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+14:00, 9999-12-31T23:59:59-14:00
        converted = None
    if converted is None or not FIRST_YEAR <= converted.year <= LAST_YEAR:
        raise PydanticCustomError("datetime_out_of_range", "Must lie between the years 1900 and 9999.")
    return converted


def header_text(value: str) -> str | None:
    """A header value as the client sent it, in UTF-8: ASGI servers hand header bytes over as they came and
    Starlette reads them as Latin-1, which turned ``HS-Đ-2025`` into ``HS-Ä\x90-2025``. None when the bytes are
    not UTF-8 or the text holds a control character."""
    try:
        text = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    return None if CONTROL_CHARACTERS.search(text) else text


def utf8_header(value: Any) -> Any:
    """A ``BeforeValidator`` for a text header (``X-Dossier-Id``): its UTF-8 text, else 422 ``header_not_utf8``
    (or ``control_character``); the header's ``max_length`` then counts characters, not bytes."""
    if not isinstance(value, str):
        return value
    text = header_text(value)
    if text is None:
        try:
            decoded = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise PydanticCustomError("header_not_utf8", "Must be UTF-8 text.") from None
        no_control_characters(decoded)
    return text


END_USER_PATTERN: Final = r"^[A-Za-z0-9._@:-]{1,128}$"
"""``X-End-User``: an account name, e-mail or ``domain:user`` form; nothing a log or CSV cell could misread."""
END_USER_CHARACTERS: Final = re.compile(END_USER_PATTERN)
EndUserHeader = Annotated[
    str | None,
    Header(
        alias="X-End-User",
        pattern=END_USER_PATTERN,
        description=(
            "the officer or account at the calling system on whose behalf it calls: 1-128 characters of "
            "`[A-Za-z0-9._@:-]` (else 422); required by a grant with `require_end_user`; recorded in the "
            "audit event"
        ),
    ),
]
"""``X-End-User`` on citizen, statistics and confirmation routes (422 ``validation_failed`` when malformed)."""


def end_user_valid(value: str) -> bool:
    """Whether ``value`` is an ``X-End-User`` the declared routes accept (the citizen fast path checks it)."""
    return END_USER_CHARACTERS.match(value) is not None
