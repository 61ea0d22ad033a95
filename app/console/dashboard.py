"""The dashboard's figures: accesses today and over 30 days (by Vietnam date), the denial rate, the busiest
clients, the chain's state and its latest checkpoint, pending approvals (docs/contract.md, section 15).

Accesses are the events of citizen-data actions (``citizen.verify``, ``citizen.read``, ``household.read``),
allowed or not. Open alerts belong to issue 19 and are shown as a marked placeholder.

Accesses are counted once, incrementally, into ``console_access_days`` (``app.console.models``): each
dashboard adds the events appended since the last one (a range of ``seq``), so a view reads the events of the
last few moments, however long the log (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import CursorResult, String, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.admin.models import AdminChange
from app.audit.chain import blocked_at, read_head
from app.audit.integrity_runs import RunView, latest_run
from app.audit.models import AuditCheckpointRow, AuditEventRow
from app.auth.models import Client
from app.console.models import DAY_COUNTED, NO_CLIENT, WATERMARK_DAY, AccessDay

VIETNAM: Final = ZoneInfo("Asia/Ho_Chi_Minh")
ACCESS_ACTIONS: Final = ("citizen.verify", "citizen.read", "household.read")
DAYS: Final = 30
BUSIEST: Final = 5
_WATERMARK: Final = (
    AccessDay.day == WATERMARK_DAY,
    AccessDay.client_id == DAY_COUNTED,
    AccessDay.outcome == DAY_COUNTED,
)


class vn_date(FunctionElement[str]):  # named like the SQL it stands for
    """``YYYY-MM-DD`` of a timestamp in Vietnam time (UTC+7, no daylight saving), as text."""

    type = String()
    inherit_cache = True


@compiles(vn_date, "sqlite")
def _vn_date_sqlite(element: vn_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '+7 hours')"


@compiles(vn_date, "postgresql")
def _vn_date_postgresql(element: vn_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('Asia/Ho_Chi_Minh', {compiler.process(element.clauses, **kw)}), 'YYYY-MM-DD')"


@dataclass(slots=True)
class Dashboard:
    today: int = 0
    total_30: int = 0
    denied_30: int = 0
    days: list[tuple[str, int, int]] = field(default_factory=list)
    """(date, allowed and errors, denied) for each of the last 30 Vietnam days, oldest first."""
    busiest: list[tuple[str, int]] = field(default_factory=list)
    head_seq: int = 0
    blocked_at: int | None = None
    checkpoint_seq: int | None = None
    checkpoint_at: datetime | None = None
    last_check: RunView | None = None
    """The last full check of the chain (the integrity page's last result)."""
    pending: int | None = None

    @property
    def denial_rate(self) -> str:
        if not self.total_30:
            return "–"
        return f"{100 * self.denied_30 / self.total_30:.1f} %"

    @property
    def checkpoint_age(self) -> str:
        if self.checkpoint_at is None:
            return "–"
        minutes = int((datetime.now(UTC) - self.checkpoint_at).total_seconds() // 60)
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"

    @property
    def chart(self) -> Markup:
        """The 30 days as an SVG bar chart (attributes only: no inline style, no script)."""
        width, height, gap = 20, 100, 4
        top = max((a + d for _, a, d in self.days), default=0) or 1
        parts = [
            f'<svg class="chart" data-testid="dash-chart" viewBox="0 0 {len(self.days) * (width + gap)} '
            f'{height + 14}" role="img" aria-label="30 days">'
        ]
        for i, (day, allowed, denied) in enumerate(self.days):
            x = i * (width + gap)
            h_all = round(height * (allowed + denied) / top)
            h_den = round(height * denied / top)
            parts.append(
                f'<rect x="{x}" y="{height - h_all}" width="{width}" height="{h_all - h_den}">'
                f"<title>{escape(day)}: {allowed + denied}</title></rect>"
            )
            if h_den:
                parts.append(
                    f'<rect class="denied" x="{x}" y="{height - h_den}" width="{width}" height="{h_den}">'
                    f"<title>{escape(day)}: {denied}</title></rect>"
                )
            if i % 5 == 4 or i == len(self.days) - 1:
                parts.append(f'<text x="{x}" y="{height + 12}">{escape(day[5:])}</text>')
        parts.append("</svg>")
        return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped dates only


def _vn_day(at: datetime) -> date:
    return at.astimezone(VIETNAM).date()


def _start_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), VIETNAM).astimezone(UTC)


def _upsert(session: AsyncSession) -> Any:
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _count_new(session: AsyncSession, since: datetime, head_seq: int) -> None:
    """Add the access events after the last counted ``seq`` up to ``head_seq`` to ``console_access_days``.

    Every event up to the head's ``seq`` is committed (the head moves in the events' transaction), and no
    event is ever added below it, so each event is counted exactly once. Two replicas counting at once: the
    compare-and-set on the counted ``seq`` lets one of them add its counts; the other waits for it (PostgreSQL's
    row lock) and adds nothing."""
    counted_seq = await session.scalar(select(AccessDay.count).where(*_WATERMARK))
    if counted_seq is None:  # the first dashboard: count from the window's first event
        first = await session.scalar(select(func.min(AuditEventRow.seq)).where(AuditEventRow.at >= since))
        start = head_seq if first is None else int(first) - 1
        mark = {"day": WATERMARK_DAY, "client_id": DAY_COUNTED, "outcome": DAY_COUNTED}
        await session.execute(
            _upsert(session)(AccessDay)
            .values(**mark, count=start, counted_at=datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        counted_seq = await session.scalar(select(AccessDay.count).where(*_WATERMARK))
    counted_seq = int(counted_seq or 0)
    if head_seq <= counted_seq:
        return
    row = AuditEventRow
    day = vn_date(row.at).label("day")
    found = (
        await session.execute(
            select(day, row.client_id, row.outcome, func.count())
            .where(row.seq > counted_seq, row.seq <= head_seq, row.action.in_(ACCESS_ACTIONS))
            .group_by(day, row.client_id, row.outcome)
        )
    ).all()
    now = datetime.now(UTC)
    moved = await session.execute(
        update(AccessDay)
        .where(*_WATERMARK, AccessDay.count == counted_seq)
        .values(count=head_seq, counted_at=now)
    )
    if cast(CursorResult[Any], moved).rowcount != 1:  # another dashboard counted them
        return
    values = [
        {
            "day": str(d),
            "client_id": client or NO_CLIENT,
            "outcome": str(o),
            "count": int(n),
            "counted_at": now,
        }
        for d, client, o, n in found
    ]
    for chunk in range(0, len(values), 1000):
        insert = _upsert(session)(AccessDay).values(values[chunk : chunk + 1000])
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["day", "client_id", "outcome"],
                set_={
                    "count": AccessDay.count + insert.excluded.count,
                    "counted_at": insert.excluded.counted_at,
                },
            )
        )


async def dashboard(session: AsyncSession, *, with_pending: bool) -> Dashboard:
    now = datetime.now(UTC)
    today = _vn_day(now)
    first_day = today - timedelta(days=DAYS - 1)
    head = await read_head(session)
    await _count_new(session, _start_of(first_day), head.seq if head else 0)
    counts = (
        await session.execute(
            select(AccessDay.day, AccessDay.client_id, AccessDay.outcome, AccessDay.count).where(
                AccessDay.day >= first_day.isoformat(),
                AccessDay.day <= today.isoformat(),
                AccessDay.client_id != DAY_COUNTED,
            )
        )
    ).all()
    per_day: dict[str, list[int]] = {}
    per_client: dict[str, int] = {}
    for key, client, outcome, count in counts:
        count = int(count)
        day_counts = per_day.setdefault(key, [0, 0])
        day_counts[1 if outcome == "denied" else 0] += count
        if client != NO_CLIENT:
            per_client[client] = per_client.get(client, 0) + count
    board = Dashboard()
    for offset in range(DAYS):
        name = (first_day + timedelta(days=offset)).isoformat()
        allowed, denied = per_day.get(name, [0, 0])
        board.days.append((name, allowed, denied))
        board.total_30 += allowed + denied
        board.denied_30 += denied
    board.today = sum(board.days[-1][1:])
    top = sorted(per_client.items(), key=lambda item: (-item[1], item[0]))[:BUSIEST]
    found_names = await session.execute(
        select(Client.client_id, Client.name).where(Client.client_id.in_([c for c, _ in top]))
    )
    names = {str(client): str(name) for client, name in found_names}
    board.busiest = [(names.get(client, client), n) for client, n in top]
    board.head_seq = head.seq if head else 0
    board.blocked_at = await blocked_at(session)
    board.last_check = await latest_run(session)
    checkpoint = (
        await session.execute(
            select(AuditCheckpointRow.seq, AuditCheckpointRow.at)
            .order_by(AuditCheckpointRow.seq.desc())
            .limit(1)
        )
    ).one_or_none()
    if checkpoint is not None:
        board.checkpoint_seq, board.checkpoint_at = int(checkpoint.seq), checkpoint.at
    if with_pending:
        board.pending = int(
            await session.scalar(select(func.count()).where(AdminChange.status == "pending")) or 0
        )
    return board
