"""Waiting lists and access codes on SQL, and the offer step every release of seats ends with.

Seats an offer or a reserving code holds back are the tier's `blocked` counter, changed in
the same transaction as the entry or code that blocks them; every statement that frees seats
(a cancel, an expiry, capacity raised, an offer ended, a code's hold released) runs
`offer_freed` before its transaction commits, so freed seats reach the waiting list before
anyone else can take them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, drift
from core.storage.claiming import OFFER_SCAN, live_key, patched
from core.storage.errors import (
    CapacityBelowActive,
    Missing,
    NoSuchTier,
    NotOnSale,
    SeatsAvailable,
    WaitlistClosed,
)
from core.storage.records import AccessCode, Drift, WaitlistEntry, as_fields, from_fields
from core.storage.requests import CodePatch
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, first, holds_seats
from core.storage.sql.changes import record

TierKey = tuple[str, str]

TIER_STATE = (
    t.tiers.c.capacity,
    t.tiers.c.active,
    t.tiers.c.blocked,
    t.tiers.c.waitlist_open,
    t.tiers.c.on_sale,
)
"""What `offer_freed` needs of the tier row a release just updated (its RETURNING)."""


def _tier(event_id: str, code: str) -> ColumnElement[bool]:
    tr = t.tiers
    return and_(tr.c.event_id == event_id, tr.c.code == code)


async def change_blocked(
    conn: AsyncConnection, event_id: str, code: str, delta: int, now: datetime
) -> None:
    """Add `delta` to the tier's blocked seats (negative: they are free again, and offered)."""
    tr = t.tiers
    row = await first(
        conn,
        update(tr)
        .where(_tier(event_id, code))
        .values(blocked=tr.c.blocked + delta, version=tr.c.version + 1)
        .returning(*TIER_STATE),
    )
    if row is not None and delta < 0:
        await offer_freed(conn, event_id, code, row._mapping, now)


async def offer_freed(
    conn: AsyncConnection, event_id: str, code: str, tier: Mapping[Any, Any], now: datetime
) -> None:
    """Offer the tier's free seats to its earliest waiting entries that fit, in order, and
    block them. `tier` is the tier row as this transaction just updated it (so it is locked:
    joins and other offers of the tier wait for this transaction)."""
    free = tier["capacity"] - tier["active"] - tier["blocked"]
    if free <= 0 or not tier["waitlist_open"] or not tier["on_sale"]:
        return
    w = t.waitlist_entries
    waiting = await conn.execute(
        select(w.c.id, w.c.quantity, w.c.offer_seconds)
        .where(w.c.event_id == event_id, w.c.tier == code, w.c.status == "waiting")
        .order_by(w.c.seq)
        .limit(OFFER_SCAN)
    )
    offered: list[Mapping[Any, Any]] = []
    for entry in waiting.all():
        if entry.quantity > free:
            continue
        row = await first(
            conn,
            update(w)
            .where(w.c.id == entry.id, w.c.status == "waiting")
            .values(
                status="offered",
                offer_expires_at=now + timedelta(seconds=entry.offer_seconds),
                version=w.c.version + 1,
                updated_at=now,
            )
            .returning(*w.c),
        )
        if row is None:
            continue  # left meanwhile
        offered.append(row._mapping)
        free -= entry.quantity
        if free == 0:
            break
    if not offered:
        return
    tr = t.tiers
    await conn.execute(
        update(tr)
        .where(_tier(event_id, code))
        .values(blocked=tr.c.blocked + sum(e["quantity"] for e in offered))
    )
    await record(conn, [changelog.waitlist_change("offered", _public(e), now) for e in offered])


async def return_code_uses(conn: AsyncConnection, booking_ids: Sequence[str]) -> dict[TierKey, int]:
    """Give the uses of these (released) bookings back to their codes; the seats that go back
    into a reserving code's hold, per tier."""
    if not booking_ids:
        return {}
    cu, c = t.code_uses, t.access_codes
    used = await conn.execute(
        delete(cu).where(cu.c.booking_id.in_(list(booking_ids))).returning(cu.c.code_id)
    )
    held: dict[TierKey, int] = defaultdict(int)
    for code_id, n in sorted(Counter(r.code_id for r in used).items()):
        row = await first(
            conn,
            update(c)
            .where(c.c.id == code_id)
            .values(uses=c.c.uses - n)
            .returning(c.c.event_id, c.c.tiers, c.c.holding),
        )
        if row is not None and row.holding:
            held[(row.event_id, row.tiers[0])] += n
    return held


async def end_code_uses(conn: AsyncConnection, booking_ids: Sequence[str]) -> None:
    """Give ended bookings' uses back to their codes, a reserving code's seats held again
    (the event's cancellation: nothing is offered, its tiers are closed)."""
    tr = t.tiers
    for (event_id, code), seats in sorted((await return_code_uses(conn, booking_ids)).items()):
        await conn.execute(
            update(tr).where(_tier(event_id, code)).values(blocked=tr.c.blocked + seats)
        )


def _public(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "live_key"}


def entry_of(row: Any) -> WaitlistEntry:
    return from_fields(WaitlistEntry, row._mapping)


def code_of(row: Any) -> AccessCode:
    return from_fields(AccessCode, row._mapping, tiers=tuple(row.tiers))


def live(w: Any) -> ColumnElement[bool]:
    status: ColumnElement[bool] = w.c.status.in_(("waiting", "offered"))
    return status


class SQLWaitlist(SQLBase):
    async def join(self, entry: WaitlistEntry) -> WaitlistEntry:
        tr, w = t.tiers, t.waitlist_entries

        async def work(conn: AsyncConnection) -> Any:
            # The tier row's update is the join's lock: offers and releases of the tier queue
            # behind it, so none can miss this entry, and it cannot miss their seats.
            seq = await first(
                conn,
                update(tr)
                .where(
                    _tier(entry.event_id, entry.tier),
                    tr.c.on_sale,
                    ~tr.c.hidden,
                    tr.c.waitlist_open,
                    tr.c.capacity - tr.c.active - tr.c.blocked < entry.quantity,
                )
                .values(waitlist_seq=tr.c.waitlist_seq + 1)
                .returning(tr.c.waitlist_seq),
            )
            if seq is None:
                row = await first(conn, select(tr).where(_tier(entry.event_id, entry.tier)))
                raise _join_refusal(row)
            values = as_fields(entry) | {
                "seq": seq.waitlist_seq,
                "live_key": live_key(entry.event_id, entry.tier, entry.owner_id),
            }
            return await first(conn, insert(w).values(**values).returning(*w.c))

        return entry_of(await self.tx(work))

    async def get(self, entry_id: str) -> WaitlistEntry | None:
        w = t.waitlist_entries
        row = await self.first(select(w).where(w.c.id == entry_id))
        return entry_of(row) if row else None

    async def find(
        self,
        *,
        owner_id: str | None = None,
        event_id: str | None = None,
        tier: str | None = None,
        live_only: bool = False,
        limit: int = 100,
    ) -> list[WaitlistEntry]:
        w = t.waitlist_entries
        stmt = select(w)
        for column, value in ((w.c.owner_id, owner_id), (w.c.event_id, event_id), (w.c.tier, tier)):
            if value is not None:
                stmt = stmt.where(column == value)
        if live_only:
            stmt = stmt.where(live(w))
        return [entry_of(r) for r in await self.rows(stmt.order_by(w.c.seq, w.c.id).limit(limit))]

    async def position(self, entry: WaitlistEntry) -> int:
        w = t.waitlist_entries
        ahead = select(func.count()).where(
            w.c.event_id == entry.event_id,
            w.c.tier == entry.tier,
            w.c.status == "waiting",
            w.c.seq < entry.seq,
        )
        row = await self.first(ahead)
        return (int(row[0]) if row else 0) + 1

    async def leave(self, entry_id: str, owner_id: str, now: datetime) -> WaitlistEntry:
        w = t.waitlist_entries

        async def work(conn: AsyncConnection) -> Any:
            for was in ("offered", "waiting"):
                row = await first(
                    conn,
                    update(w)
                    .where(w.c.id == entry_id, w.c.owner_id == owner_id, w.c.status == was)
                    .values(status="left", live_key=None, version=w.c.version + 1, updated_at=now)
                    .returning(*w.c),
                )
                if row is not None:
                    if was == "offered":
                        await change_blocked(conn, row.event_id, row.tier, -row.quantity, now)
                    return row
            raise Missing()

        return entry_of(await self.tx(work))

    async def expire(self, now: datetime) -> int:
        """End offers past their expiry and release the holds of codes past their validity;
        the seats go to the next entries. How many offers and codes ended."""
        w, c = t.waitlist_entries, t.access_codes
        lapsed_offer = and_(w.c.status == "offered", w.c.offer_expires_at <= now)
        lapsed_code = and_(c.c.holding, c.c.valid_until.is_not(None), c.c.valid_until <= now)
        if (
            await self.first(select(w.c.id).where(lapsed_offer).limit(1)) is None
            and await self.first(select(c.c.id).where(lapsed_code).limit(1)) is None
        ):
            return 0

        async def work(conn: AsyncConnection) -> int:
            ended = await conn.execute(
                update(w)
                .where(lapsed_offer)
                .values(status="expired", live_key=None, version=w.c.version + 1, updated_at=now)
                .returning(*w.c)
            )
            freed: dict[TierKey, int] = defaultdict(int)
            rows = ended.all()
            for r in rows:
                freed[(r.event_id, r.tier)] += r.quantity
            await record(
                conn, [changelog.waitlist_change("expired", _public(r._mapping), now) for r in rows]
            )
            codes = await conn.execute(
                update(c)
                .where(lapsed_code)
                .values(holding=False, updated_at=now)
                .returning(c.c.event_id, c.c.tiers, c.c.max_uses, c.c.uses)
            )
            n = len(rows)
            for code in codes.all():
                freed[(code.event_id, code.tiers[0])] += code.max_uses - code.uses
                n += 1
            for (event_id, code_), seats in sorted(freed.items()):
                await change_blocked(conn, event_id, code_, -seats, now)
            return n

        return await self.tx(work)


def _join_refusal(tier: Any) -> Exception:
    if tier is None or tier.hidden:
        return NoSuchTier()
    if not tier.on_sale:
        return NotOnSale()
    if not tier.waitlist_open:
        return WaitlistClosed()
    return SeatsAvailable(max(0, tier.capacity - tier.active - tier.blocked))


class SQLCodes(SQLBase):
    async def create(self, code: AccessCode, now: datetime) -> AccessCode:
        c = t.access_codes

        async def work(conn: AsyncConnection) -> Any:
            if code.holding:
                await hold_seats(conn, code.event_id, code.tiers[0], code.max_uses)
            values = as_fields(code) | {"tiers": list(code.tiers)}
            return await first(conn, insert(c).values(**values).returning(*c.c))

        return code_of(await self.tx(work))

    async def get(self, event_id: str, code_id: str) -> AccessCode | None:
        c = t.access_codes
        row = await self.first(select(c).where(c.c.event_id == event_id, c.c.id == code_id))
        return code_of(row) if row else None

    async def find(self, event_id: str) -> list[AccessCode]:
        c = t.access_codes
        rows = await self.rows(select(c).where(c.c.event_id == event_id).order_by(c.c.id))
        return [code_of(r) for r in rows]

    async def update(
        self, event_id: str, code_id: str, patch: CodePatch, now: datetime
    ) -> AccessCode:
        c = t.access_codes

        async def work(conn: AsyncConnection) -> Any:
            # Lock the code first (a write), then adjust its hold with what it is now.
            row = await first(
                conn,
                update(c)
                .where(c.c.event_id == event_id, c.c.id == code_id)
                .values(updated_at=now)
                .returning(*c.c),
            )
            if row is None:
                raise Missing()
            current = code_of(row)
            changed = patched(current, patch, now)
            if changed.max_uses < current.uses:
                raise CapacityBelowActive("maxUses", current.uses)
            delta = changed.held - current.held
            if delta > 0:
                await hold_seats(conn, event_id, current.tiers[0], delta)
            elif delta < 0:
                await change_blocked(conn, event_id, current.tiers[0], delta, now)
            values = as_fields(changed, exclude=("id", "event_id", "code", "tiers", "uses"))
            return await first(
                conn, update(c).where(c.c.id == code_id).values(**values).returning(*c.c)
            )

        return code_of(await self.tx(work))


async def hold_seats(conn: AsyncConnection, event_id: str, code: str, seats: int) -> None:
    """Block `seats` free seats of the tier for a code, or refuse (CapacityBelowActive: the
    tier has fewer free seats)."""
    tr = t.tiers
    row = await first(
        conn,
        update(tr)
        .where(_tier(event_id, code), tr.c.capacity - tr.c.active - tr.c.blocked >= seats)
        .values(blocked=tr.c.blocked + seats, version=tr.c.version + 1)
        .returning(tr.c.blocked),
    )
    if row is None:
        found = await first(conn, select(tr).where(_tier(event_id, code)))
        if found is None:
            raise NoSuchTier()
        raise CapacityBelowActive(code, found.capacity - found.active - found.blocked)


async def claim_counts(
    conn: AsyncConnection,
) -> tuple[list[tuple[str, str, int]], dict[TierKey, int], list[drift.CodeCount]]:
    """The tiers' blocked counters, the seats of live offers per tier, and every code's uses
    beside the bookings holding seats with it."""
    tr, w, c, cu, b = t.tiers, t.waitlist_entries, t.access_codes, t.code_uses, t.bookings
    blocked = [tuple(r) for r in await conn.execute(select(tr.c.event_id, tr.c.code, tr.c.blocked))]
    offers = await conn.execute(
        select(w.c.event_id, w.c.tier, func.sum(w.c.quantity))
        .where(w.c.status == "offered")
        .group_by(w.c.event_id, w.c.tier)
    )
    used = (
        select(cu.c.code_id, func.count().label("n"))
        .join(b, b.c.id == cu.c.booking_id)
        .where(holds_seats())
        .group_by(cu.c.code_id)
        .subquery()
    )
    codes = await conn.execute(
        select(c, func.coalesce(used.c.n, 0).label("used")).outerjoin(
            used, used.c.code_id == c.c.id
        )
    )
    return (
        blocked,
        {(r[0], r[1]): int(r[2]) for r in offers},
        [
            drift.CodeCount(
                r.event_id, r.code, r.tiers[0], r.uses, int(r.used), r.max_uses, r.holding
            )
            for r in codes
        ],
    )


async def claim_drifts(conn: AsyncConnection) -> list[Drift]:
    return drift.claim_drifts(*await claim_counts(conn))


async def repair_claims(conn: AsyncConnection) -> None:
    """Set every code's uses to its bookings holding seats (stale use rows removed) and every
    tier's blocked seats to its live offers and codes' holds (the caller locked the tiers)."""
    cu, c, b, tr = t.code_uses, t.access_codes, t.bookings, t.tiers
    await conn.execute(
        delete(cu).where(~select(b.c.id).where(b.c.id == cu.c.booking_id, holds_seats()).exists())
    )
    blocked_now, offered, codes = await claim_counts(conn)
    for code in codes:
        if code.uses != code.used:
            await conn.execute(
                update(c)
                .where(c.c.event_id == code.event_id, c.c.code == code.code)
                .values(uses=code.used)
            )
    want = drift.expected_blocked(offered, codes)
    for event_id, tier_code, blocked in blocked_now:
        if blocked != want.get((event_id, tier_code), 0):
            await conn.execute(
                update(tr)
                .where(_tier(event_id, tier_code))
                .values(blocked=want.get((event_id, tier_code), 0))
            )
