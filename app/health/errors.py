"""Errors of the health routes."""

from __future__ import annotations


class ProbeFailed(Exception):
    """A readiness check that failed for a reason the operator should read (in ``/readyz``'s ``detail`` and
    the log); the reason names no personal data."""

    def __init__(self, reason_en: str, reason_vi: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason_en)
        self.reason_en = reason_en
        self.reason_vi = reason_vi
        self.retry_after = retry_after
