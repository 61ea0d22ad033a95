"""The export formats of the audit log: NDJSON and CSV, encoded batch by batch as the export streams.

NDJSON is one event per line, exactly as search shows it (UTF-8, no escaping of Vietnamese). CSV is RFC 4180
(comma, double quotes doubled, CRLF) with a header row and a UTF-8 byte order mark, so that Excel opens
Vietnamese text intact; list and object members are JSON text in their cell. Because auditors open it in a
spreadsheet, a text cell that begins like a formula (``= + - @``, tab, CR) is prefixed with ``'`` (OWASP
"CSV injection"): ``dossier_id`` and ``purpose`` of a refused request are whatever the caller sent. NDJSON is
the exact, machine-readable form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

import orjson

from app.audit.schemas import EVENT_COLUMNS, ExportFormat

UTF8_BOM: Final = "\ufeff"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class ExportEncoder(Protocol):
    """Turns batches of event views into the bytes of one export format."""

    media_type: str
    extension: str

    def start(self) -> bytes:
        """What comes before the first event (BOM and header, or nothing)."""
        ...

    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes: ...


class NdjsonEncoder:
    media_type = "application/x-ndjson"
    extension = "ndjson"

    def start(self) -> bytes:
        return b""

    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        return b"".join(orjson.dumps(event) + b"\n" for event in events)


def _cell(value: Any) -> str | int:
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode("utf-8")
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class CsvEncoder:
    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    @staticmethod
    def _lines(rows: Sequence[Sequence[str | int]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, dialect="excel", lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")

    def start(self) -> bytes:
        return UTF8_BOM.encode("utf-8") + self._lines([EVENT_COLUMNS])

    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        return self._lines([[_cell(event[column]) for column in EVENT_COLUMNS] for event in events])


ENCODERS: Final[Mapping[ExportFormat, ExportEncoder]] = {"ndjson": NdjsonEncoder(), "csv": CsvEncoder()}


def attachment(encoder: ExportEncoder, at: datetime) -> str:
    """The ``Content-Disposition`` of an export made at ``at`` (UTC)."""
    return f'attachment; filename="dancu-audit-{at:%Y%m%dT%H%M%SZ}.{encoder.extension}"'


async def export_stream(
    batches: AsyncIterator[Sequence[Mapping[str, Any]]], encoder: ExportEncoder
) -> AsyncIterator[bytes]:
    """The export's bytes: the format's start, then one chunk per batch of events."""
    yield encoder.start()
    async for events in batches:
        yield encoder.encode(events)
