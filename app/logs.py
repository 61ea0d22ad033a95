"""Structured logs: one JSON object a line, tagged with the request id and the verified client, and no
personal data.

``dancu serve`` hands ``log_config(...)`` to uvicorn, which applies it (``logging.config.dictConfig``) in
every worker. Each line is ``{"time", "level", "logger", "message", "request_id", "client_id", ...}`` plus
whatever ``extra=`` the call gave; ``request_id`` and ``client_id`` come from the context variables that the
request-id middleware and the auth dependency set (``app.middleware``), null outside a request.

The code never logs a personal ID, a name or a field value (a test runs every citizen flow at DEBUG and scans
the records). As defence in depth, ``RedactPersonalNumbers`` replaces every number of exactly 12 or 9
digits (the personal ID and the old CMND number) in messages, arguments and extras before a line is written, and
an exception is logged as its type and frames only: its message may carry a value. Libraries that print SQL
parameters, URLs or bodies at INFO or DEBUG (SQLAlchemy, aiosqlite, httpx, ...) stay at WARNING whatever the
level asked for. uvicorn's own access log is off (it prints the raw path and query string); the gateway's
``dancu.access`` line (``--access-log``) carries the route template instead.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

from app.middleware import client_id_var, request_id_var

LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")

REDACTED: Final = "[redacted]"
# Exactly 12 or 9 digits standing as a number of their own: not inside a longer number, nor glued to a letter
# (hex identifiers such as client ids hold digit runs). `[^\W_]` is a letter or a digit, Unicode included.
_PERSONAL_NUMBER = re.compile(r"(?<![^\W_])(?:[0-9]{12}|[0-9]{9})(?![^\W_])")

QUIET_LOGGERS: Final = (
    "sqlalchemy",  # statements with their parameters, and result rows at DEBUG
    "aiosqlite",  # every call with its SQL and parameters at DEBUG
    "asyncpg",
    "httpx",  # request URLs at INFO
    "httpcore",
    "hpack",
    "multipart",
    "asyncio",
)
"""Held at WARNING whatever the level: what they print below it can carry personal data or secrets."""

_MAX_FRAMES = 30
_RECORD_ATTRIBUTES: Final = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName"}
)
_DROPPED_EXTRAS: Final = frozenset({"color_message"})  # uvicorn's coloured copy of the message


def redact(text: str) -> str:
    """``text`` with every number of exactly 12 or 9 digits replaced by ``[redacted]``."""
    return _PERSONAL_NUMBER.sub(REDACTED, text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if _PERSONAL_NUMBER.fullmatch(str(abs(value))) is None else REDACTED
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _redacted(item) for key, item in value.items()}
    return redact(str(value))


class RedactPersonalNumbers(logging.Filter):
    """Formats the message once and redacts it, its arguments and its extras, in the record itself, so
    every handler after this filter sees the redacted record only."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the template, drop the arguments
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES:
                record.__dict__[key] = _redacted(value)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _frames(tb: TracebackType | None) -> list[str]:
    return [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(tb)[-_MAX_FRAMES:]
    ]


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring for its members."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            # A line written outside the request's context (the access line) names them as extras.
            "request_id": _redacted(request_id_var.get() or record.__dict__.get("request_id")),
            "client_id": _redacted(client_id_var.get() or record.__dict__.get("client_id")),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _DROPPED_EXTRAS and key not in entry:
                entry[key] = _redacted(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            # The type and where it was raised; never the message, which may carry a value.
            entry["exception"] = {"type": exc_type.__qualname__, "frames": _frames(tb)}
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str = "info", *, access_log: bool = False) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` dictionary for ``dancu serve`` (uvicorn's ``log_config``)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    threshold = level.upper()
    quiet = "WARNING" if logging.getLevelName(threshold) < logging.WARNING else threshold
    return {
        "version": 1,
        "disable_existing_loggers": False,  # the app's module loggers exist before uvicorn configures
        "filters": {"redact": {"()": RedactPersonalNumbers}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["redact"],
            }
        },
        "root": {"level": threshold, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"level": threshold, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": threshold, "handlers": [], "propagate": True},
            # The raw path and query string: off for good; `dancu.access` replaces it.
            "uvicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            "dancu.access": {"level": "INFO" if access_log else "WARNING", "propagate": True},
            **{name: {"level": quiet, "propagate": True} for name in QUIET_LOGGERS},
        },
    }
