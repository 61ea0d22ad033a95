"""The citizen context's dependencies: where the app keeps the citizen service and what it is built on."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from app.backends.base import Backend
from app.citizens.limits import Limiter
from app.citizens.service import CitizenService
from app.state import AppStateDep, StateKey

CITIZENS: Final = StateKey[CitizenService]("citizens")
BACKEND: Final = StateKey[Backend]("backend")
"""The population register: the embedded mock (default) or the national database over HTTP."""
LIMITER: Final = StateKey[Limiter]("limiter")
"""Request rate and distinct-resident quotas: Redis when configured, else this process's memory."""


async def get_citizen_service(state: AppStateDep) -> CitizenService:
    return state[CITIZENS]


CitizenServiceDep = Annotated[CitizenService, Depends(get_citizen_service)]
