"""``AuditContext``: the one place an ``AuditEvent`` is built from the call it records."""

from __future__ import annotations

from app.audit.errors import AuditUnavailable
from app.audit.writer import AuditContext
from app.citizens.errors import PurposeNotAllowed


def test_a_clients_call_names_the_client_as_actor_on_every_event() -> None:
    call = AuditContext.of_client("c-1", "req-1", purpose="P-1", dossier_id="HS-1")
    event = call.event("citizen.read", "allowed", 200, subject="052068000108", fields=["full_name"])
    assert (event.actor, event.client_id, event.request_id) == ("c-1", "c-1", "req-1")
    assert (event.purpose, event.dossier_id, event.subject) == ("P-1", "HS-1", "052068000108")


def test_personal_id_is_never_a_released_field_and_sensitive_fields_are_listed_apart() -> None:
    event = AuditContext("op:lan").event(
        "citizen.read", "allowed", 200, fields=["personal_id", "full_name", "ethnicity", "religion"]
    )
    assert event.fields == ("full_name", "ethnicity", "religion")
    assert event.sensitive_fields == ("ethnicity", "religion")
    assert event.client_id is None


def test_a_refusal_is_denied_and_a_failure_is_an_error_with_the_code_as_reason() -> None:
    call = AuditContext.of_client("c-1", None)
    denied = call.refusal("citizen.verify", PurposeNotAllowed(), subject="052068000108", fields=["gender"])
    assert (denied.outcome, denied.status_code, denied.reason, denied.fields) == (
        "denied",
        403,
        "purpose_not_allowed",
        ("gender",),
    )
    failed = call.refusal("audit.search", AuditUnavailable())
    assert (failed.outcome, failed.status_code, failed.reason) == ("error", 503, "audit_unavailable")
