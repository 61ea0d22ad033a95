"""All of the auth context's SQL: clients and their grants, purposes, signing keys. Flushes, never commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Client, ClientGrant, Purpose, SigningKey


class ClientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, client_id: str) -> Client | None:
        return await self.session.get(Client, client_id)

    async def get_grant(self, client_id: str) -> ClientGrant | None:
        return await self.session.get(ClientGrant, client_id)

    async def get_with_grant(self, client_id: str) -> tuple[Client, ClientGrant] | None:
        """The client and its grant in one query (every request and every token request runs it)."""
        row = (
            await self.session.execute(
                select(Client, ClientGrant)
                .join(ClientGrant, ClientGrant.client_id == Client.client_id)
                .where(Client.client_id == client_id)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def page(self, *, after: str | None = None, limit: int = 50) -> Sequence[Client]:
        query = select(Client).order_by(Client.client_id).limit(limit)
        if after is not None:
            query = query.where(Client.client_id > after)
        return (await self.session.scalars(query)).all()

    async def all_grant_scopes(self) -> Sequence[list[str]]:
        return (await self.session.scalars(select(ClientGrant.scopes))).all()

    async def active_grants(self) -> Sequence[Row[str, list[str], datetime | None, datetime | None]]:
        """``(client_id, scopes, valid_from, valid_until)`` of every active client, read afresh (plain rows,
        not ORM objects the session may already hold in an older state)."""
        query = (
            select(ClientGrant.client_id, ClientGrant.scopes, ClientGrant.valid_from, ClientGrant.valid_until)
            .join(Client, Client.client_id == ClientGrant.client_id)
            .where(Client.status == "active")
        )
        return (await self.session.execute(query)).all()

    async def add(self, client: Client, grant: ClientGrant) -> None:
        self.session.add(client)
        await self.session.flush()
        self.session.add(grant)
        await self.session.flush()


class PurposeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, code: str) -> Purpose | None:
        return await self.session.get(Purpose, code)

    async def get_folded(self, code: str) -> Purpose | None:
        """The purpose whose code equals ``code`` without regard to case."""
        folded = code.lower()
        query = select(Purpose).where((Purpose.code_folded == folded) | (func.lower(Purpose.code) == folded))
        return (await self.session.scalars(query.limit(1))).first()

    async def all(self) -> Sequence[Purpose]:
        return (await self.session.scalars(select(Purpose).order_by(Purpose.code))).all()

    async def registered(self, codes: Collection[str]) -> set[str]:
        """Which of ``codes`` are registered and not retired."""
        if not codes:
            return set()
        found = await self.session.scalars(
            select(Purpose.code).where(Purpose.code.in_(list(codes)), Purpose.retired_at.is_(None))
        )
        return set(found)

    async def granted_to(self, code: str) -> list[str]:
        """The clients whose grant names ``code``."""
        rows = await self.session.execute(select(ClientGrant.client_id, ClientGrant.purposes))
        return [client_id for client_id, purposes in rows if code in (purposes or [])]

    async def add(self, purpose: Purpose) -> None:
        self.session.add(purpose)
        await self.session.flush()


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> Sequence[SigningKey]:
        return (await self.session.scalars(select(SigningKey))).all()

    async def retire_active(self, at: datetime) -> None:
        await self.session.execute(
            update(SigningKey).where(SigningKey.active.is_(True)).values(active=False, retired_at=at)
        )

    async def add(self, key: SigningKey) -> None:
        self.session.add(key)
        await self.session.flush()
