"""The sandbox's rehearsed upstream faults (``DANCU_SANDBOX``, docs/contract.md section 17).

With the sandbox on, a portal may send ``X-Sandbox-Fault`` in the mock national database's fault vocabulary
(``latency=<ms>;status=<400-599>;malformed;wrong_id;trickle``, any subset, each once; empty or ``none`` for
no fault). The gateway's middleware reads it into ``fault_var`` for the request; the http backend sends it on
as the mock's ``X-Mock-Fault``, the embedded backend simulates it. Without the sandbox the header is ignored:
nothing reads it and nothing sends it anywhere.

This module is pure (no import of the gateway's other layers): the middleware below the backends sets the
variable and the backends above read it. The vocabulary is the mock's (``mock_csdlqg.faults``); the gateway
cannot import the mock outside its embedded backend, so it is parsed here again and
tests/backends/test_sandbox.py holds the two parsers to the same answers.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from app.errors import ValidationFailed

SANDBOX_FAULT_HEADER = "X-Sandbox-Fault"
UPSTREAM_FAULT_HEADER = "X-Mock-Fault"
"""What the http backend sends the upstream: the mock national database's own fault header."""
MAX_LATENCY_MS = 60_000
ATTEMPT_TIMEOUT_SECONDS = 3.0
"""How long one upstream attempt may wait for an answer (the http backend's read timeout, ``app.backends.http``):
a ``latency`` of this or more makes every attempt time out, and the call answers 504 at its deadline."""

_FLAGS = ("malformed", "wrong_id", "trickle")
_NUMBERS = ("latency", "status")


@dataclass(frozen=True, slots=True)
class Fault:
    """One request's rehearsed upstream fault (at least one member set)."""

    latency_ms: int = 0
    status: int | None = None
    malformed: bool = False
    wrong_id: bool = False
    trickle: bool = False

    def header(self) -> str:
        """The fault in the vocabulary's canonical form: what the http backend sends upstream (never the
        caller's own text)."""
        items = [f"latency={self.latency_ms}"] if self.latency_ms else []
        if self.status is not None:
            items.append(f"status={self.status}")
        items.extend(flag for flag in _FLAGS if getattr(self, flag))
        return ";".join(items)


class InvalidSandboxFault(ValidationFailed):
    """An ``X-Sandbox-Fault`` outside the vocabulary (sandbox only): 422 ``validation_failed``."""

    MESSAGE = (
        "X-Sandbox-Fault takes ';'-separated items, each at most once, from: latency=<ms, 0-60000>, "
        "status=<400-599>, malformed, wrong_id, trickle (or none)."
    )

    def __init__(self) -> None:
        super().__init__(
            [
                {
                    "loc": ["header", SANDBOX_FAULT_HEADER],
                    "code": "invalid_sandbox_fault",
                    "message": self.MESSAGE,
                }
            ]
        )


def parse_fault(value: str) -> Fault | None:
    """``value`` as a Fault; None for no fault (empty or ``none``); InvalidSandboxFault otherwise."""
    fields: dict[str, int | bool] = {}
    seen: set[str] = set()
    for item in value.split(";"):
        name, sep, arg = (part.strip() for part in item.partition("="))
        if not sep and name in ("", "none"):
            continue
        if name in seen:
            raise InvalidSandboxFault
        seen.add(name)
        if name in _FLAGS and not sep:
            fields[name] = True
        elif name in _NUMBERS and arg.isascii() and arg.isdigit() and len(arg) <= 6:
            number = int(arg)
            if name == "latency":
                if number > MAX_LATENCY_MS:
                    raise InvalidSandboxFault
                fields["latency_ms"] = number
            else:
                if not 400 <= number <= 599:
                    raise InvalidSandboxFault
                fields["status"] = number
        else:
            raise InvalidSandboxFault
    fault = Fault(**fields)  # type: ignore[arg-type]  # the names and types are checked above
    return None if fault == Fault() else fault


fault_var: ContextVar[Fault | None] = ContextVar("sandbox_fault", default=None)
"""The current request's rehearsed fault; set only by a gateway run with ``DANCU_SANDBOX=true``."""


def current_fault() -> Fault | None:
    return fault_var.get()
