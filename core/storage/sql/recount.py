"""The recount on SQL: every counter compared with the bookings it counts, and rebuilt."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import drift
from core.storage.records import Drift
from core.storage.sql import schema as t
from core.storage.sql import waitlist
from core.storage.sql.base import SQLBase, holds_seats
from core.storage.sql.seats import derive_counters


@dataclass(frozen=True, slots=True)
class Counters:
    """drift.Counters on SQL."""

    db: SQLBase

    async def read(self) -> list[Drift]:
        return await self.db.read(_drifts, snapshot=True)

    async def repair(self) -> list[Drift]:
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
            if drift.of_claims(found):
                await waitlist.repair_claims(conn)
            return found

        return await self.db.tx(repair)


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
