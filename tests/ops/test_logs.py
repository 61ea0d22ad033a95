"""The JSON log lines of ``dancu serve``, the redaction filter, and the serve options that choose them."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.logs import QUIET_LOGGERS, REDACTED, JsonFormatter, RedactPersonalNumbers, log_config, redact
from app.middleware import client_id_var, request_id_var

runner = CliRunner()


def record(msg: str, *args: Any, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("resident 052068000108 Nguyễn Văn Thành")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("app.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    made.__dict__.update(extra)
    return made


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id 052068000108 here", f"id {REDACTED} here"),
        ("cmnd 123456789.", f"cmnd {REDACTED}."),
        ("052068000108,123456789", f"{REDACTED},{REDACTED}"),
        ("0520680001080", "0520680001080"),  # 13 digits: not an ID
        ("subject=052068000108;", f"subject={REDACTED};"),
        ('{"personal_id": "052068000108"}', f'{{"personal_id": "{REDACTED}"}}'),
        ("c_360929691876c50fa1767c5d", "c_360929691876c50fa1767c5d"),  # a client id's hex digits
        ("k1:9f360929691876", "k1:9f360929691876"),
        ("số052068000108", "số052068000108"),  # glued to a word: not a number of its own
        ("req_052068000108", f"req_{REDACTED}"),
        ("1234567890 12345678", "1234567890 12345678"),  # 10 and 8 digits
        ("took 12.5ms, status 503", "took 12.5ms, status 503"),
    ],
)
def test_redact_replaces_numbers_of_exactly_12_or_9_digits(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_filter_redacts_message_arguments_and_extras() -> None:
    made = record(
        "lookup %s by %d for %s",
        "052068000108",
        52068000108,
        "client-1",
        subject="052068000108",
        count=123456789,
        ids=["052068000108", 7],
    )

    assert RedactPersonalNumbers().filter(made) is True

    assert made.getMessage() == f"lookup {REDACTED} by 52068000108 for client-1"
    assert made.args is None
    assert made.__dict__["subject"] == REDACTED
    assert made.__dict__["count"] == REDACTED
    assert made.__dict__["ids"] == [REDACTED, 7]


def test_the_filter_survives_a_broken_format_string() -> None:
    made = record("bad %d format 052068000108", "not a number")

    assert RedactPersonalNumbers().filter(made) is True
    assert made.getMessage() == f"bad %d format {REDACTED}"


@pytest.fixture
def context() -> Iterator[None]:
    tokens = (request_id_var.set("req-1"), client_id_var.set("client-1"))
    yield
    request_id_var.reset(tokens[0])
    client_id_var.reset(tokens[1])


def test_a_line_is_one_json_object_with_the_request_context(context: None) -> None:
    line = JsonFormatter().format(record("issued %s", "token", route="/v1/x/{y}"))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "app.test"
    assert entry["message"] == "issued token"
    assert (entry["request_id"], entry["client_id"]) == ("req-1", "client-1")
    assert entry["route"] == "/v1/x/{y}"
    assert entry["time"].endswith("Z")
    assert "T" in entry["time"]


def test_outside_a_request_the_context_is_null_unless_given_as_extras() -> None:
    assert json.loads(JsonFormatter().format(record("x")))["request_id"] is None
    entry = json.loads(JsonFormatter().format(record("x", request_id="r-9", client_id="c-9")))
    assert (entry["request_id"], entry["client_id"]) == ("r-9", "c-9")


def test_an_exception_is_logged_as_its_type_and_frames_never_its_message() -> None:
    entry = json.loads(JsonFormatter().format(record("failed", exc=True)))

    assert entry["exception"]["type"] == "ValueError"
    assert entry["exception"]["frames"][-1].startswith("test_logs.py:")
    text = json.dumps(entry, ensure_ascii=False)
    assert "052068000108" not in text
    assert "Nguyễn" not in text


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """``log_config("debug")`` applied, its handler writing to a buffer; logging restored afterwards."""
    config = log_config("debug")
    names = ["", *config["loggers"]]
    saved = {
        name: (logging.getLogger(name or None).level, logging.getLogger(name or None).propagate)
        for name in names
    }
    logging.config.dictConfig(config)
    root = logging.getLogger()
    ours = list(root.handlers)
    buffer = io.StringIO()
    for handler in ours:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for handler in ours:
            root.removeHandler(handler)
        for name, (level, propagate) in saved.items():
            logging.getLogger(name or None).setLevel(level)
            logging.getLogger(name or None).propagate = propagate


def test_the_serve_config_writes_redacted_json_lines(configured: io.StringIO) -> None:
    logging.getLogger("app.anything").debug("resident %s", "052068000108")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)

    lines = [json.loads(line) for line in configured.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [f"resident {REDACTED}", "Started server process [4242]"]
    assert "color_message" not in lines[1]


def test_libraries_that_print_parameters_stay_at_warning_even_at_debug(configured: io.StringIO) -> None:
    for name in QUIET_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
    # uvicorn's access line has the raw path and query string: it never writes.
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.ERROR)
    assert not logging.getLogger("dancu.access").isEnabledFor(logging.INFO)


def test_the_access_line_is_off_unless_asked_for() -> None:
    assert log_config("info")["loggers"]["dancu.access"]["level"] == "WARNING"
    assert log_config("info", access_log=True)["loggers"]["dancu.access"]["level"] == "INFO"
    assert log_config("error")["loggers"]["sqlalchemy"]["level"] == "ERROR"
    with pytest.raises(ValueError, match="log level"):
        log_config("verbose")


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: calls.append(options))
    monkeypatch.setenv("DANCU_ISSUER", "")  # recorded as absent, so the issuer serve derives is removed after
    monkeypatch.delenv("DANCU_ISSUER")
    return calls


def test_serve_hands_uvicorn_the_json_config_and_keeps_its_access_log_off(
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    result = runner.invoke(cli, ["serve", "--log-level", "debug", "--access-log"])

    assert result.exit_code == 0, result.output
    (options,) = uvicorn_calls
    assert options["access_log"] is False
    assert options["log_config"] == log_config("debug", access_log=True)


def test_serve_refuses_an_unknown_log_level(uvicorn_calls: list[dict[str, Any]]) -> None:
    result = runner.invoke(cli, ["serve", "--log-level", "chatty"])

    assert result.exit_code == 2
    assert "--log-level" in result.output
    assert uvicorn_calls == []
