"""Every citizen flow, its errors included, at DEBUG: no log record carries a personal ID or a name.

The logging is the one ``dancu serve --log-level debug --access-log`` installs (``app.logs.log_config``).
Records are snapshotted raw, before the redaction filter runs, so the test holds the code itself to the rule
(the filter is defence in depth, tested on its own in ``test_logs``); the JSON lines written are scanned too.
"""

from __future__ import annotations

import io
import logging
import logging.config
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from app.citizens.dependencies import BACKEND
from app.logs import log_config
from mock_csdlqg.personas import personas
from mock_csdlqg.store import RESIDENTS, parse_url
from tests.harness import (
    DECEASED,
    HCM,
    HEAD,
    JRAI,
    MOCK_KEY,
    NAME_D,
    REISSUED_OLD,
    UNKNOWN,
    YEAR_ONLY,
    Client,
    Gateway,
)

_PLAIN = logging.Formatter()
_STANDARD = frozenset({*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "taskName"})


@dataclass
class Captured:
    """What the records said, taken as each was emitted (before any filter could change it)."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    """(logger name, everything the record carries as text)"""
    records: list[logging.LogRecord] = field(default_factory=list)
    output: io.StringIO = field(default_factory=io.StringIO)
    """The JSON lines the configured handler wrote."""


class _Snapshot(logging.Handler):
    def __init__(self, captured: Captured) -> None:
        super().__init__(logging.DEBUG)
        self.captured = captured

    def emit(self, record: logging.LogRecord) -> None:
        parts = [str(record.msg), record.getMessage(), repr(record.args)]
        parts += [f"{key}={value!r}" for key, value in record.__dict__.items() if key not in _STANDARD]
        if record.exc_info:
            parts.append(_PLAIN.formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        self.captured.texts.append((record.name, "\n".join(parts)))
        self.captured.records.append(record)


@pytest.fixture
def captured() -> Iterator[Captured]:
    """The serve logging at DEBUG with the access log on, plus a raw snapshot of every record."""
    config = log_config("debug", access_log=True)
    names = ["", *config["loggers"]]
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name in names
        for logger in [logging.getLogger(name or None)]
    }
    logging.config.dictConfig(config)
    root = logging.getLogger()
    configured = list(root.handlers)
    for handler in configured:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(captured_output := io.StringIO())
    result = Captured(output=captured_output)
    snapshot = _Snapshot(result)
    root.handlers.insert(0, snapshot)
    try:
        yield result
    finally:
        for handler in [snapshot, *configured]:
            root.removeHandler(handler)
        for name, (level, handlers, propagate, disabled) in saved.items():
            logger = logging.getLogger(name or None)
            logger.setLevel(level)
            if name:
                logger.handlers[:] = handlers
                logger.propagate = propagate
                logger.disabled = disabled


def seeded_names(mock_db: str, ids: list[str]) -> dict[str, str]:
    """personal ID -> full name, read from the seeded mock database itself."""
    _, path = parse_url(mock_db)
    marks = ",".join("?" * len(ids))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            f"SELECT so_dinh_danh, ban_ghi FROM {RESIDENTS} WHERE so_dinh_danh IN ({marks})",  # noqa: S608
            ids,
        ).fetchall()
    return {pid: orjson.loads(blob)["hoVaTen"] for pid, blob in rows}


class Flow:
    """Calls made during the flow, remembering every personal ID sent and every ID and name received."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.ids: set[str] = set()
        self.names: set[str] = set()

    def _collect(self, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("personal_id", "old_id_number") and isinstance(item, str):
                    self.ids.add(item)
                elif key == "full_name" and isinstance(item, str):
                    self.names.add(item)
                else:
                    self._collect(item)
        elif isinstance(value, list):
            for item in value:
                self._collect(item)

    async def call(
        self, client: Client, path: str, body: Any, status: int | tuple[int, ...], **options: Any
    ) -> Any:
        self._collect(body)
        response = await self.gw.call(client, path, body, **options)
        assert response.status_code in ((status,) if isinstance(status, int) else status), response.text
        answer = response.json()
        self._collect(answer)
        return answer


async def run_flow(gw: Gateway, flow: Flow, monkeypatch: pytest.MonkeyPatch) -> Client:
    portal = await gw.register(fields=("*", "ethnicity", "religion", "blood_type"))
    narrow = await gw.register(fields=("full_name",))

    # Tokens: a good one (register), a bad secret, a garbage bearer token.
    bad = await gw.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(portal.client_id, "wrong")
    )
    assert bad.status_code == 401
    forged = Client(portal.client_id, "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIwNTIwNjgwMDAxMDgifQ.")
    await flow.call(forged, "/v1/citizens/lookup", {"personal_id": HEAD}, 401)

    # Verify: match, mismatch, pre-check mismatch, unknown, deceased, cancelled, fuzzy.
    verify = "/v1/citizens/verify"
    await flow.call(portal, verify, {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"}, 200)
    await flow.call(portal, verify, {"personal_id": HEAD, "full_name": "Trần Thị Bé", "gender": "male"}, 200)
    await flow.call(portal, verify, {"personal_id": HEAD, "gender": "female"}, 200)
    await flow.call(portal, verify, {"personal_id": UNKNOWN, "date_of_birth": "1999"}, 200)
    await flow.call(portal, verify, {"personal_id": DECEASED, "gender": "male"}, 200)
    await flow.call(portal, verify, {"personal_id": REISSUED_OLD, "gender": "male"}, 200)
    await flow.call(
        portal,
        verify,
        {"personal_id": NAME_D, "full_name": "Dang Dinh Duc", "name_match": "fuzzy", "threshold": 50},
        200,
    )
    await flow.call(portal, verify, {"personal_id": "999068000108", "gender": "male"}, 422)
    await flow.call(portal, verify, {"personal_id": "05206800010", "gender": "male"}, 422)

    # Batch: good, invalid, unknown member, unknown ID, mismatch.
    items: list[Any] = [
        {"personal_id": HEAD, "full_name": "Nguyễn Văn Thành"},
        {"personal_id": "123456789012", "gender": "male"},
        {"personal_id": JRAI, "unknown": "052068000108"},
        {"personal_id": UNKNOWN, "gender": "male"},
        {"personal_id": YEAR_ONLY, "full_name": "Nguyễn Thị Lựu", "date_of_birth": "1938"},
    ]
    await flow.call(portal, "/v1/citizens/verify/batch", {"items": items}, 200)

    # Lookup: found, sensitive fields, out of province, unknown, cancelled, invalid, field not allowed.
    lookup = "/v1/citizens/lookup"
    await flow.call(portal, lookup, {"personal_id": HEAD}, 200)
    await flow.call(portal, lookup, {"personal_id": JRAI, "fields": ["ethnicity", "religion"]}, 200)
    await flow.call(portal, lookup, {"personal_id": HCM}, 404)
    await flow.call(portal, lookup, {"personal_id": UNKNOWN}, 404)
    await flow.call(portal, lookup, {"personal_id": REISSUED_OLD}, 404)
    await flow.call(portal, lookup, {"personal_id": "000000000000"}, 422)
    await flow.call(narrow, lookup, {"personal_id": HEAD, "fields": ["phone"]}, 403)
    await flow.call(portal, lookup, {"personal_id": HEAD, "fields": ["no_such_field"]}, 422)
    await flow.call(portal, lookup, {"personal_id": HEAD, "extra": NAME_D}, 422)

    # Household: in province, out of province, unknown.
    await flow.call(portal, "/v1/citizens/household", {"personal_id": HEAD}, 200)
    await flow.call(portal, "/v1/citizens/household", {"personal_id": HCM}, 404)
    await flow.call(portal, "/v1/citizens/household", {"personal_id": UNKNOWN}, 404)

    # Request-level errors: no purpose, an unregistered one, malformed JSON, an over-long dossier.
    await flow.call(portal, lookup, {"personal_id": HEAD}, 400, purpose=None)
    await flow.call(portal, lookup, {"personal_id": HEAD}, 403, purpose="NOT-REGISTERED")
    await flow.call(portal, lookup, {"personal_id": HEAD}, 422, dossier="D" * 65)
    broken = await gw.http.post(
        lookup,
        content=f'{{"personal_id": "{HEAD}", "full_name": "Nguyễn Văn Thành"'.encode(),
        headers={"Authorization": f"Bearer {portal.token}", "X-Purpose": "1.001234.000.00.00.H12"},
    )
    assert broken.status_code == 422

    # A fault deep inside, whose message names the resident: the log line names only the type.
    async def explode(personal_id: str, fields: Any = None) -> None:
        raise RuntimeError(f"lookup of {personal_id} (Nguyễn Văn Thành) went wrong")

    with monkeypatch.context() as patch:
        patch.setattr(gw.state[BACKEND], "get", explode)
        failed = await gw.call(portal, lookup, {"personal_id": HEAD}, headers={"X-Request-Id": "boom-1"})
    assert failed.status_code == 500
    assert failed.json()["code"] == "internal_error"
    return portal


async def upstream_faults(gw: Gateway, flow: Flow, portal: Client) -> None:
    """The upstream failing in each way it can (http backend only): warnings, never an ID."""
    async with httpx.AsyncClient(
        base_url=gw.state.settings.backend_url, headers={"X-Api-Key": MOCK_KEY}
    ) as mock:
        try:
            # Once the breaker opens, the later modes are answered 503 without a call: either is fine here.
            for mode, status in (
                ({"status": 503}, (503,)),
                ({"malformed": True}, (502, 503)),
                ({"wrong_id": True}, (502, 503)),
            ):
                assert (await mock.put("/_mock/faults", json=mode)).status_code == 200
                await flow.call(portal, "/v1/citizens/lookup", {"personal_id": HEAD}, status)
                await flow.call(portal, "/v1/citizens/household", {"personal_id": HEAD}, status)
                items = [{"personal_id": HEAD, "gender": "male"}, {"personal_id": NAME_D, "gender": "male"}]
                await flow.call(portal, "/v1/citizens/verify/batch", {"items": items}, 200)
        finally:
            await mock.delete("/_mock/faults")


async def test_no_log_record_carries_a_personal_id_or_a_name(
    gateway: Gateway, captured: Captured, mock_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = Flow(gateway)
    portal = await run_flow(gateway, flow, monkeypatch)
    if gateway.backend == "http":
        await upstream_faults(gateway, flow, portal)

    persona_ids = [p.personal_id for p in personas()]
    names = set(seeded_names(mock_db, persona_ids).values()) | flow.names
    ids = (set(persona_ids) | flow.ids) - {""}
    ids |= {pid.lstrip("0") for pid in ids if len(pid.lstrip("0")) >= 9}  # the ID as a number
    assert HEAD in ids
    assert "Nguyễn Văn Thành" in names
    assert len(names) > 10
    # The flow did log: the access lines, the token endpoint, the 500 and (over http) the upstream's faults.
    gateway_records = [(name, text) for name, text in captured.texts if not name.startswith("mock_csdlqg")]
    assert any(name == "dancu.access" for name, _ in gateway_records)
    assert any("unhandled RuntimeError" in text for _, text in gateway_records)
    if gateway.backend == "http":
        assert any(name == "app.backends.http" for name, _ in gateway_records)

    leaks = [
        (name, secret)
        for name, text in gateway_records
        for secret in [*ids, *names]
        if secret in text or secret.casefold() in text.casefold()
    ]
    assert leaks == []
    written = captured.output.getvalue()
    assert written
    assert [secret for secret in [*ids, *names] if secret in written] == []


async def test_log_lines_carry_the_request_id_and_the_verified_client(
    gateway: Gateway, captured: Captured
) -> None:
    portal = await gateway.register()

    response = await gateway.call(
        portal, "/v1/citizens/lookup", {"personal_id": HEAD}, headers={"X-Request-Id": "trace-42"}
    )
    assert response.status_code == 200, response.text
    lines = [orjson.loads(line) for line in captured.output.getvalue().splitlines()]

    access = [line for line in lines if line["logger"] == "dancu.access" and line["request_id"] == "trace-42"]
    assert len(access) == 1, lines
    assert access[0]["client_id"] == portal.client_id
    assert access[0]["route"] == "/v1/citizens/lookup"
    assert access[0]["status"] == 200
    assert access[0]["message"].startswith("POST /v1/citizens/lookup 200 ")
    assert {"time", "level", "logger", "message", "request_id", "client_id"} <= access[0].keys()
    assert access[0]["time"].endswith("Z")


async def test_a_log_line_written_inside_a_request_names_its_client(
    gateway: Gateway, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    portal = await gateway.register()
    backend = gateway.state[BACKEND]
    original = backend.get

    async def get_and_log(personal_id: str, fields: Any = None) -> Any:
        logging.getLogger("app.test").warning("looking a resident up")
        return await original(personal_id, fields)

    monkeypatch.setattr(backend, "get", get_and_log)
    response = await gateway.call(
        portal, "/v1/citizens/lookup", {"personal_id": HEAD}, headers={"X-Request-Id": "inside-1"}
    )
    assert response.status_code == 200

    lines = [orjson.loads(line) for line in captured.output.getvalue().splitlines()]
    inside = [line for line in lines if line["logger"] == "app.test"]
    assert [(line["request_id"], line["client_id"]) for line in inside] == [("inside-1", portal.client_id)]
    # Outside a request the context is empty again.
    logging.getLogger("app.test").warning("after")
    after = orjson.loads(captured.output.getvalue().splitlines()[-1])
    assert (after["request_id"], after["client_id"]) == (None, None)
