"""The published OpenAPI document says what the gateway really does, beyond what FastAPI derives.

``problem_openapi`` (``app.problems``) already files every error under ``application/problem+json``; this
module adds the rest, applied once when the document is first built (``app.main``):

* **Alternative scopes.** A scope alias accepts any one of its scopes (``require_scope("metrics.read",
  "admin", "audit.read")``), but FastAPI writes them as one requirement, which OpenAPI reads as "all of them".
  Each becomes its own requirement object, so the list reads "any one of".
"""

from __future__ import annotations

from typing import Any

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path_item in document.get("paths", {}).values()
        for method, operation in path_item.items()
        if method in _METHODS and isinstance(operation, dict)
    ]


def alternative_scopes(document: dict[str, Any]) -> dict[str, Any]:
    """Split every multi-scope security requirement into one requirement per scope (any one suffices)."""
    for operation in _operations(document):
        security = operation.get("security")
        if not security:
            continue
        split: list[dict[str, list[str]]] = []
        for requirement in security:
            if len(requirement) == 1:
                ((scheme, scopes),) = requirement.items()
                if len(scopes) > 1:
                    split.extend({scheme: [scope]} for scope in scopes if {scheme: [scope]} not in split)
                    continue
            if requirement not in split:
                split.append(requirement)
        operation["security"] = split
    return document


def gateway_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Every refinement of this module, in order."""
    return alternative_scopes(document)
