"""Giving seats back and deriving counters, inside a caller's transaction (SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, releases
from core.storage.records import SYSTEM_ACTOR, Actor
from core.storage.sql import schema as t
from core.storage.sql import waitlist
from core.storage.sql.base import SQLBase, first, hold_expired, holds_seats
from core.storage.sql.changes import record


async def give_back(
    conn: AsyncConnection, released: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Return released bookings' seats to their tiers and their buyers' counts (each mapping
    has id, event_id, tier, owner_id, quantity and the status the booking had), their codes'
    uses to the codes (a reserving code holds its seat again), and offer what is free to the
    tiers' waiting lists."""
    release = releases.release_of(released)
    rehold = await waitlist.return_code_uses(conn, [r["id"] for r in released])
    tr, u = t.tiers, t.user_event_counts
    for event_id, code, seats in release.tiers:  # a fixed order: no deadlocks between releases
        tier = await first(
            conn,
            update(tr)
            .where(tr.c.event_id == event_id, tr.c.code == code)
            .values(
                active=tr.c.active - seats,
                blocked=tr.c.blocked + rehold.get((event_id, code), 0),
                version=tr.c.version + 1,
            )
            .returning(*waitlist.TIER_STATE),
        )
        if tier is not None:
            await waitlist.offer_freed(conn, event_id, code, tier._mapping, now)
    for event_id, owner_id, seats, pending in release.buyers:
        await conn.execute(
            update(u)
            .where(u.c.event_id == event_id, u.c.owner_id == owner_id)
            .values(active=u.c.active - seats, pending=u.c.pending - pending)
        )


def expired_holds(
    now: datetime, event_id: str | None, tier: str | None
) -> list[ColumnElement[bool]]:
    """Holds past their expiry, of one event (and tier) or of all."""
    b = t.bookings
    cond = [hold_expired(b, now)]
    if event_id is not None:
        cond.append(b.c.event_id == event_id)
    if tier is not None:
        cond.append(b.c.tier == tier)
    return cond


async def release_expired_alone(
    base: SQLBase, now: datetime, event_id: str | None = None, tier: str | None = None
) -> int:
    """`release_expired` in a transaction of its own, which is skipped when a read outside
    any transaction finds no expired hold: most sweeps and refusals find none, and the
    transaction would take SQLite's one write lock (or, on PostgreSQL, a connection and a
    round trip more) only to find nothing."""
    found = select(t.bookings.c.id).where(*expired_holds(now, event_id, tier)).limit(1)
    if await base.first(found) is None:
        return 0
    return await base.tx(lambda c: release_expired(c, now, event_id, tier))


async def release_expired(
    conn: AsyncConnection, now: datetime, event_id: str | None = None, tier: str | None = None
) -> int:
    """Mark holds past their expiry `expired` and give their seats back; how many."""
    b = t.bookings
    stmt = (
        update(b)
        .where(*expired_holds(now, event_id, tier))
        .values(status="expired", version=b.c.version + 1, updated_at=now)
        .returning(*b.c)
    )
    expired = [r._mapping for r in await conn.execute(stmt)]
    await give_back(conn, [{**r, "status": "pending"} for r in expired], now)
    await record(conn, [changelog.booking_change("expired", r, SYSTEM_ACTOR, now) for r in expired])
    orders = sorted({r["order_id"] for r in expired if r["order_id"]})
    await end_orders(conn, orders, "expired", SYSTEM_ACTOR, now)
    return len(expired)


async def close_tiers(conn: AsyncConnection, event_id: str) -> None:
    """Take the event's tiers off sale. This locks the rows every booking statement guards,
    so once it returns no booking of the event can be added until the transaction ends."""
    tr = t.tiers
    await conn.execute(
        update(tr).where(tr.c.event_id == event_id).values(on_sale=False, version=tr.c.version + 1)
    )


async def derive_counters(conn: AsyncConnection, event_id: str) -> None:
    """Set the event's tier and buyer counters to what its bookings hold (with its tiers
    closed, nothing can change that meanwhile)."""
    b, tr, u = t.bookings, t.tiers, t.user_event_counts
    of_event = and_(b.c.event_id == event_id, holds_seats())
    seats = func.coalesce(func.sum(b.c.quantity), 0)
    pending = func.coalesce(func.sum(b.c.quantity).filter(b.c.status == "pending"), 0)
    await conn.execute(
        update(tr)
        .where(tr.c.event_id == event_id)
        .values(active=select(seats).where(of_event, b.c.tier == tr.c.code).scalar_subquery())
    )
    mine = and_(of_event, b.c.owner_id == u.c.owner_id)
    await conn.execute(
        update(u)
        .where(u.c.event_id == event_id)
        .values(
            active=select(seats).where(mine).scalar_subquery(),
            pending=select(pending).where(mine).scalar_subquery(),
        )
    )


async def end_orders(
    conn: AsyncConnection, order_ids: Sequence[str], status: str, actor: Actor, now: datetime
) -> None:
    """Orders whose bookings just ended (expired, or cancelled with their event) end too."""
    if not order_ids:
        return
    o = t.orders
    ended = await conn.execute(
        update(o)
        .where(o.c.id.in_(list(order_ids)), o.c.status.in_(("pending", "confirmed")))
        .values(status=status, version=o.c.version + 1, updated_at=now)
        .returning(*o.c)
    )
    await record(conn, [changelog.order_change(status, r._mapping, actor, now) for r in ended])
