"""The change log on SQL: appending inside the changing transaction, reading, dispatching."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage.records import Actor, Change, from_fields
from core.storage.requests import ChangeQuery
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first


def change_row(change: Change) -> dict[str, Any]:
    return {
        "id": change.id,
        "type": change.type,
        "occurred_at": change.occurred_at,
        "actor_kind": change.actor.kind,
        "actor_id": change.actor.id,
        "subject": change.subject,
        "subject_id": change.subject_id,
        "seq": change.seq,
        "event_id": change.event_id,
        "booking_id": change.booking_id,
        "order_id": change.order_id,
        "owner_id": change.owner_id,
        "partner_id": change.partner_id,
        "data": change.data,
    }


def change_of(row: Row[Any]) -> Change:
    m = row._mapping
    return from_fields(Change, m, actor=Actor(m["actor_kind"], m["actor_id"]))


async def record(conn: AsyncConnection, changes: Sequence[Change]) -> None:
    """Append changes inside the caller's transaction: they commit with the change or not at all."""
    if changes:
        await conn.execute(insert(t.changes), [change_row(c) for c in changes])


class SQLChanges(SQLBase):
    async def find(self, query: ChangeQuery) -> list[Change]:
        c = t.changes
        stmt = select(c)
        for column, value in (
            (c.c.event_id, query.event_id),
            (c.c.subject_id, query.subject_id),
            (c.c.type, query.type),
            (c.c.actor_id, query.actor_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if query.occurred_from is not None:
            stmt = stmt.where(c.c.occurred_at >= query.occurred_from)
        if query.occurred_to is not None:
            stmt = stmt.where(c.c.occurred_at <= query.occurred_to)
        if query.before_id is not None:
            stmt = stmt.where(c.c.id < query.before_id)
        rows = await self.rows(stmt.order_by(c.c.id.desc()).limit(query.limit))
        return [change_of(r) for r in rows]

    async def undispatched(self, limit: int) -> list[Change]:
        c = t.changes
        stmt = select(c).where(c.c.dispatched_at.is_(None)).order_by(c.c.id).limit(limit)
        return [change_of(r) for r in await self.rows(stmt)]

    async def note(self, change: Change) -> None:
        row = change_row(change) | {"dispatched_at": change.occurred_at}
        await self.tx(lambda conn: conn.execute(insert(t.changes).values(row)))

    async def mark_dispatched(self, change_ids: Sequence[str], now: datetime) -> None:
        c = t.changes
        stmt = update(c).where(c.c.id.in_(list(change_ids))).values(dispatched_at=now)
        await self.tx(lambda conn: conn.execute(stmt))

    async def prune(self, before: datetime) -> int:
        c = t.changes
        stmt = delete(c).where(c.c.occurred_at < before)
        return int((await self.tx(lambda conn: conn.execute(stmt))).rowcount)

    async def hold_lease(self, name: str, holder: str, until: datetime, now: datetime) -> bool:
        lease = t.leases
        take = (
            self.upsert(lease)
            .values(name=name, holder=holder, until=until)
            .on_conflict_do_update(
                index_elements=[lease.c.name],
                set_={"holder": holder, "until": until},
                where=or_(lease.c.holder == holder, lease.c.until < now),
            )
            .returning(lease.c.holder)
        )
        return await self.tx(lambda conn: first(conn, take)) is not None
