"""Bookings on SQL: confirm, cancel, expiry, reads and recount (reserve: reserve.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, drift, refusals
from core.storage.errors import DuplicateKey
from core.storage.records import Actor, Booking, Drift, Reservation, from_fields
from core.storage.requests import BookingQuery, ReserveRequest
from core.storage.sql import claims, waitlist
from core.storage.sql import schema as t
from core.storage.sql.base import active_at, before_start, first, hold_active, holds_seats
from core.storage.sql.changes import record
from core.storage.sql.reserve import SQLReserving
from core.storage.sql.seats import derive_counters, give_back, release_expired_alone


class SQLBookings(SQLReserving):
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

    async def _reserve_claimed(self, request: ReserveRequest) -> Reservation:
        try:
            row = await self.tx(lambda conn: claims.reserve_claimed(conn, self.upsert, request))
        except DuplicateKey as dup:
            if dup.field != "idempotency_key":
                raise
            return await self._replay(request)
        return Reservation(from_fields(Booking, row))

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

    async def _release_expired(self, now: datetime, event_id: str | None, tier: str | None) -> int:
        return await release_expired_alone(self, now, event_id, tier)

    async def _read_drifts(self) -> list[Drift]:
        return await self.read(_drifts, snapshot=True)

    async def _repair_drifts(self) -> list[Drift]:
        async def repair(conn: AsyncConnection) -> list[Drift]:
            tr, u = t.tiers, t.user_event_counts
            # Lock every counter first: each booking change also changes its counters, so
            # the tallies read next cannot move until this transaction ends.
            await conn.execute(
                select(tr.c.event_id).order_by(tr.c.event_id, tr.c.code).with_for_update()
            )
            await conn.execute(
                select(u.c.event_id).order_by(u.c.event_id, u.c.owner_id).with_for_update()
            )
            found = await _drifts(conn)
            for event_id in sorted({d.event_id for d in found}):
                await _rebuild_counters(conn, event_id)
            if any(" blocked" in d.counter_of or d.counter_of.startswith("code ") for d in found):
                await waitlist.repair_claims(conn)
            return found

        return await self.tx(repair)


async def _drifts(conn: AsyncConnection) -> list[Drift]:
    b, tr, u = t.bookings, t.tiers, t.user_event_counts
    pending = func.coalesce(func.sum(b.c.quantity).filter(b.c.status == "pending"), 0)
    tier_tally = await conn.execute(
        select(b.c.event_id, b.c.tier, func.sum(b.c.quantity), pending)
        .where(holds_seats())
        .group_by(b.c.event_id, b.c.tier)
    )
    buyer_tally = await conn.execute(
        select(b.c.event_id, b.c.owner_id, func.sum(b.c.quantity), pending)
        .where(holds_seats())
        .group_by(b.c.event_id, b.c.owner_id)
    )
    tiers = await conn.execute(select(tr.c.event_id, tr.c.code, tr.c.active))
    buyers = await conn.execute(select(u.c.event_id, u.c.owner_id, u.c.active, u.c.pending))
    return drift.drifts(
        tier_counters=[tuple(r) for r in tiers],
        buyer_counters=[tuple(r) for r in buyers],
        tier_tally={(r[0], r[1]): drift.Seats(int(r[2]), int(r[3])) for r in tier_tally},
        buyer_tally={(r[0], r[1]): drift.Seats(int(r[2]), int(r[3])) for r in buyer_tally},
    ) + await waitlist.claim_drifts(conn)


async def _rebuild_counters(conn: AsyncConnection, event_id: str) -> None:
    """Set an event's tier counters and rebuild its buyers' counts from its bookings."""
    b, u = t.bookings, t.user_event_counts
    await derive_counters(conn, event_id)
    pending = func.coalesce(func.sum(b.c.quantity).filter(b.c.status == "pending"), 0)
    missing = (
        select(b.c.event_id, b.c.owner_id, func.sum(b.c.quantity), pending)
        .where(b.c.event_id == event_id, holds_seats())
        .where(
            ~select(u.c.owner_id)
            .where(u.c.event_id == event_id, u.c.owner_id == b.c.owner_id)
            .exists()
        )
        .group_by(b.c.event_id, b.c.owner_id)
    )
    await conn.execute(
        u.insert().from_select(["event_id", "owner_id", "active", "pending"], missing)
    )
