"""Bookings on SQL once they exist: confirm, cancel and reads (reserve: reserve.py; the
sweep: seats.py; the recount: recount.py; assembled in sql/__init__.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, refusals
from core.storage.records import Actor, Booking, from_fields
from core.storage.requests import BookingQuery
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, active_at, before_start, first, hold_active
from core.storage.sql.changes import record
from core.storage.sql.reserve import booking_by_key
from core.storage.sql.seats import give_back


class SQLBookings(SQLBase):
    async def confirm(self, booking_id: str, owner_id: str, now: datetime, actor: Actor) -> Booking:
        b, u = t.bookings, t.user_event_counts

        async def work(conn: AsyncConnection) -> Any:
            row = await first(
                conn,
                update(b)
                .where(
                    b.c.id == booking_id,
                    b.c.owner_id == owner_id,
                    hold_active(b, now),
                    b.c.order_id.is_(None),
                    before_start(b.c.event_id, now),
                )
                .values(
                    status="confirmed", expires_at=None, version=b.c.version + 1, updated_at=now
                )
                .returning(*b.c),
            )
            if row is not None:
                await conn.execute(
                    update(u)
                    .where(u.c.event_id == row.event_id, u.c.owner_id == row.owner_id)
                    .values(pending=u.c.pending - row.quantity)
                )
                await record(
                    conn, [changelog.booking_change("confirmed", row._mapping, actor, now)]
                )
            return row

        row = await self.tx(work)
        if row is not None:
            return from_fields(Booking, row._mapping)
        raise await refusals.confirmation_refused(self.get, self.started, booking_id, owner_id, now)

    async def cancel(
        self, booking_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Booking:
        b = t.bookings
        mine = [b.c.id == booking_id, b.c.order_id.is_(None)]
        if owner_id is not None:
            mine.append(b.c.owner_id == owner_id)
        # Two guarded updates rather than a read and a write: each says what the booking was.
        was = {
            "pending": hold_active(b, now),
            "confirmed": b.c.status == "confirmed",
        }

        async def work(conn: AsyncConnection) -> Any:
            for status, condition in was.items():
                stmt = (
                    update(b)
                    .where(*mine, condition)
                    .values(status="cancelled", version=b.c.version + 1, updated_at=now)
                    .returning(*b.c)
                )
                row = await first(conn, stmt)
                if row is not None:
                    await give_back(conn, [{**row._mapping, "status": status}], now)
                    await record(
                        conn, [changelog.booking_change("cancelled", row._mapping, actor, now)]
                    )
                    return row
            return None

        row = await self.tx(work)
        if row is not None:
            return from_fields(Booking, row._mapping)
        raise refusals.not_cancelled(await self.get(booking_id), owner_id)

    async def get(self, booking_id: str) -> Booking | None:
        row = await self.first(select(t.bookings).where(t.bookings.c.id == booking_id))
        return from_fields(Booking, row._mapping) if row else None

    async def find(self, query: BookingQuery) -> list[Booking]:
        b = t.bookings
        stmt = select(b)
        if query.owner_id:
            stmt = stmt.where(b.c.owner_id == query.owner_id)
        if query.event_id:
            stmt = stmt.where(b.c.event_id == query.event_id)
        if query.status:
            stmt = stmt.where(b.c.status == query.status)
        if query.before_id:
            stmt = stmt.where(b.c.id < query.before_id)
        rows = await self.rows(stmt.order_by(b.c.id.desc()).limit(query.limit))
        return [from_fields(Booking, r._mapping) for r in rows]

    async def count_active(self, event_id: str, now: datetime) -> int:
        b = t.bookings
        row = await self.first(select(func.count()).where(b.c.event_id == event_id, active_at(now)))
        return int(row[0]) if row else 0

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        return await booking_by_key(self, owner_id, idempotency_key)
