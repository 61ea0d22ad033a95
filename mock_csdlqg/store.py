"""The mock's storage: its own tables in SQLite (default) or PostgreSQL, built when seeding.

The data set is regenerated, never migrated, so the mock owns its schema here rather than in the
gateway's Alembic migrations. Records are stored as the wire JSON the service sends, so a lookup is one
indexed read and no re-serialisation. SQLite goes through stdlib ``sqlite3`` called inline (a primary-key
read costs ~7 µs; a thread hop through aiosqlite costs ~60 µs on this machine) and PostgreSQL through
raw ``asyncpg`` (bulk load with COPY); the ORM buys nothing for three fixed queries.

Tables (the same on both): ``csdlqg_cong_dan`` (one row per resident: ``stt`` insertion number,
``so_dinh_danh`` unique, ``ma_ho`` indexed, ``ma_tinh`` = 2025 province of residence, ``ban_ghi`` = JSON),
``csdlqg_ho_gia_dinh`` (household JSON by ``ma_ho``) and ``csdlqg_thong_tin`` (how the data was seeded).
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import unquote

import asyncpg

RESIDENTS = "csdlqg_cong_dan"
HOUSEHOLDS = "csdlqg_ho_gia_dinh"
INFO = "csdlqg_thong_tin"
STATS = "csdlqg_thong_ke"

INDEXES = (
    f"CREATE UNIQUE INDEX ux_{RESIDENTS}_so_dinh_danh ON {RESIDENTS} (so_dinh_danh)",
    f"CREATE INDEX ix_{RESIDENTS}_ma_ho ON {RESIDENTS} (ma_ho) WHERE ma_ho IS NOT NULL",
    f"CREATE INDEX ix_{RESIDENTS}_ma_tinh_stt ON {RESIDENTS} (ma_tinh, stt)",
)

ResidentRow = tuple[str, str | None, str, bytes]
HouseholdRow = tuple[str, bytes]
StatsTableRow = tuple[str, str, bytes]
"""(2025 province, column name, packed column): see mock_csdlqg.statistics."""


class StoreError(RuntimeError):
    """The mock database cannot be used (missing, not seeded, or unreachable)."""


class StoreMissing(StoreError):
    """The mock database has not been seeded yet."""


def parse_url(url: str) -> tuple[str, str]:
    """Split a database URL into ``("sqlite", path)`` or ``("postgresql", asyncpg DSN)``; drivers may be named."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative/path and sqlite:////absolute/path
        rest = unquote(url.split("://", 1)[1].split("?", 1)[0])
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise StoreError("the mock needs a file database (sqlite:///path)")
        return "sqlite", path
    if base in ("postgresql", "postgres"):
        return "postgresql", "postgresql://" + url.split("://", 1)[1]
    raise StoreError("unsupported database URL scheme (use sqlite:/// or postgresql://)")


class ResidentStore(Protocol):
    """Read access to a seeded mock database."""

    async def get(self, personal_id: str) -> bytes | None: ...
    async def get_many(self, personal_ids: Sequence[str]) -> dict[str, bytes]: ...
    async def household(self, household_id: str) -> bytes | None: ...
    async def sample(self, n: int, province: str | None, rng: random.Random) -> list[str]: ...
    async def count(self) -> int: ...
    async def info(self) -> dict[str, str]: ...
    async def stats_columns(self, province: str) -> dict[str, bytes]:
        """The province's statistics columns (empty when no resident lives there)."""
        ...

    async def close(self) -> None: ...


async def open_store(url: str) -> ResidentStore:
    """Open a seeded mock database read-only; raises StoreMissing when it has not been seeded."""
    kind, target = parse_url(url)
    if kind == "sqlite":
        return SqliteStore.open(target)
    return await PostgresStore.open(target)


# --------------------------------------------------------------------------------------------- SQLite
class SqliteStore:
    """Read-only SQLite access on the event loop thread (reads are microseconds; no thread hop)."""

    reads_inline: ClassVar[bool] = True
    """Each call completes without yielding to the loop: a caller's timeout could never fire."""

    def __init__(self, conn: sqlite3.Connection, size: int) -> None:
        self._conn = conn
        self._size = size

    @classmethod
    def open(cls, path: str) -> SqliteStore:
        if not Path(path).is_file():
            raise StoreMissing("the mock database file does not exist: run `mock-csdlqg seed`")
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False)
        try:
            row = conn.execute(f"SELECT max(stt) FROM {RESIDENTS}").fetchone()  # noqa: S608 - constant name
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreMissing("the mock database has no residents table: run `mock-csdlqg seed`") from err
        return cls(conn, int(row[0] or 0))

    async def get(self, personal_id: str) -> bytes | None:
        row = self._conn.execute(
            f"SELECT ban_ghi FROM {RESIDENTS} WHERE so_dinh_danh = ?",  # noqa: S608
            (personal_id,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    async def get_many(self, personal_ids: Sequence[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(personal_ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(
            f"SELECT so_dinh_danh, ban_ghi FROM {RESIDENTS} WHERE so_dinh_danh IN ({marks})",  # noqa: S608
            wanted,
        ).fetchall()
        return {pid: bytes(blob) for pid, blob in rows}

    async def household(self, household_id: str) -> bytes | None:
        row = self._conn.execute(
            f"SELECT ban_ghi FROM {HOUSEHOLDS} WHERE ma_ho = ?",  # noqa: S608
            (household_id,),
        ).fetchone()
        return None if row is None else bytes(row[0])

    async def sample(self, n: int, province: str | None, rng: random.Random) -> list[str]:
        out: list[str] = []
        if self._size == 0:
            return out
        for _ in range(n):
            start = rng.randint(1, self._size)
            if province is None:
                sql = f"SELECT so_dinh_danh FROM {RESIDENTS} WHERE stt >= ? ORDER BY stt LIMIT 1"  # noqa: S608
                row = self._conn.execute(sql, (start,)).fetchone()
            else:
                sql = (
                    f"SELECT so_dinh_danh FROM {RESIDENTS} WHERE ma_tinh = ? AND stt >= ? "  # noqa: S608
                    "ORDER BY stt LIMIT 1"
                )
                row = self._conn.execute(sql, (province, start)).fetchone()
                if row is None:  # wrap around to the first matching row
                    row = self._conn.execute(sql, (province, 0)).fetchone()
            if row is None:
                break
            out.append(row[0])
        return out

    async def count(self) -> int:
        row = self._conn.execute(f"SELECT count(*) FROM {RESIDENTS}").fetchone()  # noqa: S608
        return int(row[0])

    async def info(self) -> dict[str, str]:
        return dict(self._conn.execute(f"SELECT key, value FROM {INFO}").fetchall())  # noqa: S608

    async def stats_columns(self, province: str) -> dict[str, bytes]:
        rows = self._conn.execute(
            f"SELECT cot, du_lieu FROM {STATS} WHERE ma_tinh = ?",  # noqa: S608
            (province,),
        ).fetchall()
        return {name: bytes(blob) for name, blob in rows}

    async def close(self) -> None:
        self._conn.close()


class SqliteWriter:
    """Builds a new SQLite file beside the target and swaps it in atomically when done.

    Readers that still have the old file open keep reading it; nothing ever sees half a data set.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.building")
        self.tmp.unlink(missing_ok=True)
        self.conn = sqlite3.connect(self.tmp, isolation_level=None)  # transactions are explicit
        self.conn.executescript(
            f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA page_size = 8192;
            PRAGMA cache_size = -131072;
            CREATE TABLE {RESIDENTS} (
                stt INTEGER PRIMARY KEY,
                so_dinh_danh TEXT NOT NULL,
                ma_ho TEXT,
                ma_tinh TEXT NOT NULL,
                ban_ghi BLOB NOT NULL
            );
            CREATE TABLE {HOUSEHOLDS} (ma_ho TEXT PRIMARY KEY, ban_ghi BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE {INFO} (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE {STATS} (
                ma_tinh TEXT NOT NULL,
                cot TEXT NOT NULL,
                du_lieu BLOB NOT NULL,
                PRIMARY KEY (ma_tinh, cot)
            ) WITHOUT ROWID;
            """
        )
        self.stt = 0
        self.conn.execute("BEGIN")

    async def write(self, residents: Iterable[ResidentRow], households: Iterable[HouseholdRow]) -> None:
        start = self.stt
        rows = [(start + i + 1, *row) for i, row in enumerate(residents)]
        self.stt += len(rows)
        self.conn.executemany(f"INSERT INTO {RESIDENTS} VALUES (?, ?, ?, ?, ?)", rows)  # noqa: S608
        self.conn.executemany(f"INSERT INTO {HOUSEHOLDS} VALUES (?, ?)", households)  # noqa: S608

    async def finish(self, stats: Iterable[StatsTableRow], info: dict[str, str]) -> None:
        self.conn.executemany(f"INSERT INTO {STATS} VALUES (?, ?, ?)", stats)  # noqa: S608
        self.conn.executemany(f"INSERT INTO {INFO} VALUES (?, ?)", sorted(info.items()))  # noqa: S608
        for statement in INDEXES:
            self.conn.execute(statement)
        self.conn.execute("COMMIT")
        self.conn.close()
        os.replace(self.tmp, self.path)

    async def abort(self) -> None:
        self.conn.close()
        self.tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- PostgreSQL
class PostgresStore:
    """Read access through an asyncpg pool."""

    reads_inline: ClassVar[bool] = False

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self._pool = pool
        self._size = size

    @classmethod
    async def open(cls, dsn: str) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10, timeout=10)
        except (OSError, asyncpg.PostgresError) as err:
            raise StoreError("cannot connect to the mock's PostgreSQL database") from err
        try:
            size = await pool.fetchval(f"SELECT coalesce(max(stt), 0) FROM {RESIDENTS}")  # noqa: S608
        except asyncpg.UndefinedTableError as err:
            await pool.close()
            raise StoreMissing("the mock database has no residents table: run `mock-csdlqg seed`") from err
        return cls(pool, int(size))

    async def get(self, personal_id: str) -> bytes | None:
        blob = await self._pool.fetchval(
            f"SELECT ban_ghi FROM {RESIDENTS} WHERE so_dinh_danh = $1",  # noqa: S608
            personal_id,
        )
        return None if blob is None else bytes(blob)

    async def get_many(self, personal_ids: Sequence[str]) -> dict[str, bytes]:
        rows = await self._pool.fetch(
            f"SELECT so_dinh_danh, ban_ghi FROM {RESIDENTS} WHERE so_dinh_danh = ANY($1::text[])",  # noqa: S608
            list(dict.fromkeys(personal_ids)),
        )
        return {row[0]: bytes(row[1]) for row in rows}

    async def household(self, household_id: str) -> bytes | None:
        blob = await self._pool.fetchval(
            f"SELECT ban_ghi FROM {HOUSEHOLDS} WHERE ma_ho = $1",  # noqa: S608
            household_id,
        )
        return None if blob is None else bytes(blob)

    async def sample(self, n: int, province: str | None, rng: random.Random) -> list[str]:
        out: list[str] = []
        if self._size == 0:
            return out
        async with self._pool.acquire() as conn:
            for _ in range(n):
                start = rng.randint(1, self._size)
                if province is None:
                    sql = f"SELECT so_dinh_danh FROM {RESIDENTS} WHERE stt >= $1 ORDER BY stt LIMIT 1"  # noqa: S608
                    pid = await conn.fetchval(sql, start)
                else:
                    sql = (
                        f"SELECT so_dinh_danh FROM {RESIDENTS} WHERE ma_tinh = $1 AND stt >= $2 "  # noqa: S608
                        "ORDER BY stt LIMIT 1"
                    )
                    pid = await conn.fetchval(sql, province, start)
                    if pid is None:
                        pid = await conn.fetchval(sql, province, 0)
                if pid is None:
                    break
                out.append(pid)
        return out

    async def count(self) -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM {RESIDENTS}"))  # noqa: S608

    async def info(self) -> dict[str, str]:
        rows = await self._pool.fetch(f"SELECT key, value FROM {INFO}")  # noqa: S608
        return {row[0]: row[1] for row in rows}

    async def stats_columns(self, province: str) -> dict[str, bytes]:
        rows = await self._pool.fetch(
            f"SELECT cot, du_lieu FROM {STATS} WHERE ma_tinh = $1",  # noqa: S608
            province,
        )
        return {row[0]: bytes(row[1]) for row in rows}

    async def close(self) -> None:
        await self._pool.close()


class PostgresWriter:
    """Loads a new data set with COPY inside one transaction: readers see the old set until it commits."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.stt = 0
        self.tx = conn.transaction()

    @classmethod
    async def open(cls, dsn: str) -> PostgresWriter:
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as err:
            raise StoreError("cannot connect to the mock's PostgreSQL database") from err
        writer = cls(conn)
        await writer.tx.start()
        await conn.execute(
            f"""
            DROP TABLE IF EXISTS {RESIDENTS}, {HOUSEHOLDS}, {INFO}, {STATS};
            CREATE TABLE {RESIDENTS} (
                stt integer PRIMARY KEY,
                so_dinh_danh text NOT NULL,
                ma_ho text,
                ma_tinh text NOT NULL,
                ban_ghi bytea NOT NULL
            );
            CREATE TABLE {HOUSEHOLDS} (ma_ho text PRIMARY KEY, ban_ghi bytea NOT NULL);
            CREATE TABLE {INFO} (key text PRIMARY KEY, value text NOT NULL);
            CREATE TABLE {STATS} (
                ma_tinh text NOT NULL,
                cot text NOT NULL,
                du_lieu bytea NOT NULL,
                PRIMARY KEY (ma_tinh, cot)
            );
            """
        )
        return writer

    async def write(self, residents: Iterable[ResidentRow], households: Iterable[HouseholdRow]) -> None:
        start = self.stt
        rows = [(start + i + 1, *row) for i, row in enumerate(residents)]
        self.stt += len(rows)
        await self.conn.copy_records_to_table(RESIDENTS, records=rows)
        await self.conn.copy_records_to_table(HOUSEHOLDS, records=list(households))

    async def finish(self, stats: Iterable[StatsTableRow], info: dict[str, str]) -> None:
        await self.conn.copy_records_to_table(STATS, records=list(stats))
        await self.conn.copy_records_to_table(INFO, records=sorted(info.items()))
        for statement in INDEXES:
            await self.conn.execute(statement)
        await self.tx.commit()
        await self.conn.execute(f"ANALYZE {RESIDENTS}")
        await self.conn.close()

    async def abort(self) -> None:
        await self.tx.rollback()
        await self.conn.close()


SeedWriter = SqliteWriter | PostgresWriter


async def open_writer(url: str) -> SeedWriter:
    kind, target = parse_url(url)
    if kind == "sqlite":
        return SqliteWriter(target)
    return await PostgresWriter.open(target)
