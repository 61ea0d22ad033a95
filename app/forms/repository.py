"""All SQL of the forms context."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.forms.models import FormTemplate


class FormRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, code: str) -> FormTemplate | None:
        return await self.session.get(FormTemplate, code)

    async def all(self) -> list[FormTemplate]:
        return list((await self.session.scalars(select(FormTemplate).order_by(FormTemplate.code))).all())

    async def add(self, form: FormTemplate) -> None:
        self.session.add(form)
        await self.session.flush()
