"""Answers of the health routes: ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.problems import Problem

CheckResult = Literal["ok", "failed"]


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, CheckResult]


class NotReadyProblem(Problem):
    checks: dict[str, CheckResult]
