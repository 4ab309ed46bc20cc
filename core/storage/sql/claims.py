"""A booking with an access code or a waiting-list offer, as one SQL transaction.

The offer (entry `offered` → `booked`) or the code's use (`uses + 1 ≤ maxUses`, enabled, in
its window, for this tier) is taken by a guarded update first; then a limited buyer's count
(first, as on the plain path); then the tier's seats, the blocked ones the offer or the
code's hold kept for this buyer first (`blocked − take`, `active + q`, guarded by
`active + blocked − take + q ≤ capacity`); then the booking and its change. Any refusal
raises, which rolls every part back. Locks: entry or code, buyer, tier (as releases take
code, then tier: no deadlock between them).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, claiming, key_claims, refusals, sale_rows
from core.storage.errors import ClaimRefused
from core.storage.records import Tier, from_fields
from core.storage.requests import ReserveRequest
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, claim_keys, first
from core.storage.sql.changes import record
from core.storage.sql.reserve import count_buyer_within_limits, count_buyers


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A booking with an access code or a waiting-list offer (a `reserve.Write`, run by
    `reserve.Alone`): the use or the offer, then the seats and the booking, in one
    transaction; never batched."""

    db: SQLBase

    async def write(self, request: ReserveRequest) -> Any:
        return await self.db.tx(lambda conn: reserve_claimed(conn, self.db.upsert, request))


async def reserve_claimed(conn: AsyncConnection, upsert: Any, request: ReserveRequest) -> Any:
    """The booking's row; ClaimRefused or the tier's refusal otherwise (rolled back)."""
    take, discount, code_id = 0, 0, None
    if request.waitlist_entry_id is not None:
        take += await _take_offer(conn, request)
    if request.access_code is not None:
        code = await _use_code(conn, request)
        take += 1 if code.holding else 0
        discount, code_id = code.discount_percent, code.id
    if request.limited:
        await count_buyer_within_limits(conn, upsert, request)
    tr = t.tiers
    unlocked = code_id is not None or request.waitlist_entry_id is not None
    guard = [
        tr.c.event_id == request.event_id,
        tr.c.code == request.tier,
        tr.c.on_sale,
        tr.c.active + tr.c.blocked - take + request.quantity <= tr.c.capacity,
    ]
    if not unlocked:
        guard.append(~tr.c.hidden)
    price = await first(
        conn,
        update(tr)
        .where(*guard)
        .values(
            active=tr.c.active + request.quantity,
            blocked=tr.c.blocked - take,
            version=tr.c.version + 1,
        )
        .returning(tr.c.price_cents),
    )
    if price is None:
        row = await first(
            conn, select(tr).where(tr.c.event_id == request.event_id, tr.c.code == request.tier)
        )
        raise refusals.refusal(from_fields(Tier, row._mapping) if row else None, unlocked=unlocked)
    if not request.limited:
        await count_buyers(conn, upsert, request.event_id, [request])
    b = t.bookings
    values = sale_rows.booking_values(request) | {
        "unit_price_cents": claiming.discounted(price.price_cents, discount)
    }
    row = await first(conn, insert(b).values(**values).returning(*b.c))
    assert row is not None
    await claim_keys(conn, key_claims.of_bookings([(request, request.booking_id)]))
    if code_id is not None:
        await conn.execute(
            insert(t.code_uses).values(booking_id=request.booking_id, code_id=code_id)
        )
    if request.waitlist_entry_id is not None:
        w = t.waitlist_entries
        await conn.execute(
            update(w).where(w.c.id == request.waitlist_entry_id).values(booking_id=row.id)
        )
    created = row._mapping
    await record(
        conn,
        [
            changelog.booking_change(
                "created", created, request.actor, request.now, request.change_id
            )
        ],
    )
    return created


async def _take_offer(conn: AsyncConnection, request: ReserveRequest) -> int:
    """Mark the buyer's offer booked; the seats it blocked."""
    w = t.waitlist_entries
    mine = and_(
        w.c.id == request.waitlist_entry_id,
        w.c.owner_id == request.owner_id,
        w.c.event_id == request.event_id,
        w.c.tier == request.tier,
    )
    row = await first(
        conn,
        update(w)
        .where(
            mine,
            w.c.status == "offered",
            w.c.offer_expires_at > request.now,
            w.c.quantity == request.quantity,
        )
        .values(status="booked", live_key=None, version=w.c.version + 1, updated_at=request.now)
        .returning(w.c.quantity),
    )
    if row is not None:
        return int(row.quantity)
    found = await first(conn, select(w).where(mine))
    raise claiming.offer_refusal(found._mapping if found else None, request)


async def _use_code(conn: AsyncConnection, request: ReserveRequest) -> Any:
    """Count one use of the code; the code's row."""
    c = t.access_codes
    named = and_(c.c.event_id == request.event_id, c.c.code == request.access_code)
    now: datetime = request.now
    row = await first(
        conn,
        update(c)
        .where(
            named,
            c.c.enabled,
            c.c.uses < c.c.max_uses,
            or_(c.c.valid_from.is_(None), c.c.valid_from <= now),
            or_(c.c.valid_until.is_(None), c.c.valid_until > now),
        )
        .values(uses=c.c.uses + 1, updated_at=now)
        .returning(*c.c),
    )
    if row is None:
        found = await first(conn, select(c).where(named))
        raise claiming.code_refusal(found._mapping if found else None, now)
    if request.tier not in row.tiers:
        raise ClaimRefused("code_other_tier")
    return row
