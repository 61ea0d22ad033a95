"""The statistics context's dependencies: where the app keeps the statistics service."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from app.state import AppStateDep, StateKey
from app.stats.service import StatsService

STATS: Final = StateKey[StatsService]("stats")


async def get_stats_service(state: AppStateDep) -> StatsService:
    return state[STATS]


StatsServiceDep = Annotated[StatsService, Depends(get_stats_service)]
