"""Events and their tiers on SQL: the catalogue, the status machine, availability."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, lifecycle, search
from core.storage.errors import (
    CapacityBelowActive,
    InvalidTransition,
    Missing,
    VersionMismatch,
)
from core.storage.records import (
    SYSTEM_ACTOR,
    Actor,
    Event,
    EventStatus,
    Tier,
    TierCount,
    as_fields,
    from_fields,
)
from core.storage.requests import EventQuery, TierPatch
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, active_at, first, hold_expired, holds_seats
from core.storage.sql.changes import record
from core.storage.sql.seats import close_tiers, derive_counters, end_orders, release_expired
from core.storage.sql.waitlist import TIER_STATE, end_code_uses, offer_freed


class SQLEvents(SQLBase):
    async def create(self, event: Event, actor: Actor) -> Event:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(insert(t.events).values(**as_fields(event, exclude=("tiers",))))
            on_sale = event.status == "published"
            rows = [
                _tier_values(event.id, tier, pos, on_sale) for pos, tier in enumerate(event.tiers)
            ]
            await conn.execute(insert(t.tiers), rows)
            await record(conn, [changelog.event_change("created", event, actor, event.created_at)])

        await self.tx(work)
        return event

    async def get(self, event_id: str, *, include_deleted: bool = False) -> Event | None:
        return await self.read(lambda conn: _get(conn, event_id, include_deleted))

    async def find(self, query: EventQuery) -> list[Event]:
        e = t.events
        stmt = select(e).where(e.c.deleted_at.is_(None), e.c.status.in_(query.statuses))
        if query.owner_id:
            stmt = stmt.where(e.c.owner_id == query.owner_id)
        if query.starts_from:
            stmt = stmt.where(e.c.starts_at >= query.starts_from)
        if query.starts_to:
            stmt = stmt.where(e.c.starts_at <= query.starts_to)
        if query.text:
            stmt = self._search(stmt, query.text).offset(query.offset)
        else:
            if query.after_id:
                stmt = stmt.where(e.c.id > query.after_id)
            stmt = stmt.order_by(e.c.id)

        async def fetch(conn: AsyncConnection) -> list[Event]:
            rows = (await conn.execute(stmt.limit(query.limit))).all()
            tiers = await _tiers(conn, [r.id for r in rows])
            return [_event(r, tiers[r.id]) for r in rows]

        return await self.read(fetch)

    def _search(self, stmt: Any, query: str) -> Any:
        """Full-text search, best match first: PostgreSQL's tsvector (GIN index), SQLite's FTS5
        (kept in step by triggers); a match in the name outranks one in the venue."""
        e = t.events
        words = search.search_words(query)
        if not words:
            return stmt.where(literal(False))
        if self.dialect == "postgresql":
            document = func.to_tsvector("english", e.c.name + " " + e.c.venue)
            tsquery = func.plainto_tsquery("english", " ".join(words))
            return stmt.where(document.op("@@")(tsquery)).order_by(
                func.ts_rank(document, tsquery).desc(), e.c.id
            )
        fts = (
            text(
                "SELECT event_id, bm25(events_fts, 0.0, 2.0, 1.0) AS rank FROM events_fts "
                "WHERE events_fts MATCH :match"
            )
            .bindparams(match=" ".join(f'"{w}"' for w in words))
            .columns(event_id=e.c.id.type, rank=t.tiers.c.capacity.type)
            .subquery()
        )
        return stmt.join(fts, fts.c.event_id == e.c.id).order_by(fts.c.rank, e.c.id)

    async def update(
        self,
        event_id: str,
        *,
        expected_version: int | None,
        fields: dict[str, Any],
        tiers: Sequence[TierPatch],
        now: datetime,
        actor: Actor,
    ) -> Event:
        async def work(conn: AsyncConnection) -> Event:
            e = t.events
            cond = [e.c.id == event_id, e.c.deleted_at.is_(None)]
            if expected_version is not None:
                cond.append(e.c.version == expected_version)
            stmt = (
                update(e)
                .where(*cond)
                .values(**fields, version=e.c.version + 1, updated_at=now)
                .returning(e.c.status)
            )
            row = await first(conn, stmt)
            if row is None:
                current = await _get(conn, event_id)
                if current is None:
                    raise Missing()
                raise VersionMismatch(current.version)
            for patch in tiers:
                await _patch_tier(conn, event_id, patch, row.status == "published", now)
            return await _changed(conn, event_id, "updated", actor, now)

        return await self.tx(work)

    async def transition(
        self,
        event_id: str,
        allowed_from: Sequence[EventStatus],
        to: EventStatus,
        now: datetime,
        actor: Actor,
    ) -> Event:
        async def work(conn: AsyncConnection) -> Event:
            e = t.events
            changed = await conn.execute(
                update(e)
                .where(e.c.id == event_id, e.c.deleted_at.is_(None), e.c.status.in_(allowed_from))
                .values(status=to, version=e.c.version + 1, updated_at=now)
            )
            if changed.rowcount == 0:
                current = await _get(conn, event_id)
                if current is None:
                    raise Missing()
                raise InvalidTransition(current.status)
            await lifecycle.transitioned(self, conn, event_id, to, now, actor)
            return await _changed(conn, event_id, to, actor, now)

        return await self.tx(work)

    # The steps of core/storage/lifecycle.py.

    async def open_sales(self, tx: AsyncConnection, event_id: str) -> None:
        tr = t.tiers
        await tx.execute(update(tr).where(tr.c.event_id == event_id).values(on_sale=True))

    async def close_sales(self, tx: AsyncConnection, event_id: str) -> None:
        await close_tiers(tx, event_id)

    async def recount_tiers(self, tx: AsyncConnection, event_id: str) -> None:
        await derive_counters(tx, event_id)

    async def release_lapsed(self, tx: AsyncConnection, event_id: str, now: datetime) -> None:
        await release_expired(tx, now, event_id)

    async def has_holdings(self, tx: AsyncConnection, event_id: str) -> bool:
        b = t.bookings
        query = select(b.c.id).where(b.c.event_id == event_id, holds_seats()).limit(1)
        return await first(tx, query) is not None

    async def end_holdings(
        self, tx: AsyncConnection, event_id: str, now: datetime, actor: Actor
    ) -> None:
        await _end_holdings(tx, event_id, now, actor)

    async def soft_delete(self, event_id: str, now: datetime, actor: Actor) -> None:
        async def work(conn: AsyncConnection) -> None:
            e = t.events
            deleted = await conn.execute(
                update(e)
                .where(e.c.id == event_id, e.c.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now, version=e.c.version + 1)
            )
            if deleted.rowcount == 0:
                raise Missing()
            await lifecycle.deleting(self, conn, event_id, now)
            deleted_event = await _get(conn, event_id, include_deleted=True)
            assert deleted_event is not None
            await record(conn, [changelog.event_change("deleted", deleted_event, actor, now)])

        await self.tx(work)

    async def availability(self, event_id: str, now: datetime) -> list[TierCount]:
        b, tr = t.bookings, t.tiers
        counted = (
            select(
                b.c.tier,
                func.sum(case((b.c.status == "pending", b.c.quantity), else_=0)).label("pending"),
                func.sum(case((b.c.status == "confirmed", b.c.quantity), else_=0)).label(
                    "confirmed"
                ),
            )
            .where(b.c.event_id == event_id, active_at(now))
            .group_by(b.c.tier)
            .subquery()
        )
        stmt = (
            select(
                tr.c.code,
                tr.c.capacity,
                tr.c.blocked,
                tr.c.hidden,
                counted.c.pending,
                counted.c.confirmed,
            )
            .select_from(tr.outerjoin(counted, counted.c.tier == tr.c.code))
            .where(tr.c.event_id == event_id)
            .order_by(tr.c.position)
        )
        return [
            TierCount(
                r.code,
                r.capacity,
                int(r.pending or 0),
                int(r.confirmed or 0),
                blocked=r.blocked,
                hidden=r.hidden,
            )
            for r in await self.rows(stmt)
        ]


async def _get(conn: AsyncConnection, event_id: str, include_deleted: bool = False) -> Event | None:
    stmt = select(t.events).where(t.events.c.id == event_id)
    if not include_deleted:
        stmt = stmt.where(t.events.c.deleted_at.is_(None))
    row = await first(conn, stmt)
    if row is None:
        return None
    return _event(row, (await _tiers(conn, [event_id]))[event_id])


async def _changed(
    conn: AsyncConnection, event_id: str, what: str, actor: Actor, now: datetime
) -> Event:
    """The event after a change in this transaction, its change recorded."""
    event = await _get(conn, event_id)
    assert event is not None  # changed in this transaction
    await record(conn, [changelog.event_change(what, event, actor, now)])
    return event


async def _tiers(conn: AsyncConnection, event_ids: list[str]) -> dict[str, list[Tier]]:
    tr = t.tiers
    rows = await conn.execute(
        select(tr).where(tr.c.event_id.in_(event_ids)).order_by(tr.c.position)
    )
    found: dict[str, list[Tier]] = defaultdict(list)
    for r in rows:
        found[r.event_id].append(from_fields(Tier, r._mapping))
    return found


async def _patch_tier(
    conn: AsyncConnection, event_id: str, patch: TierPatch, on_sale: bool, now: datetime
) -> None:
    tr = t.tiers
    this = and_(tr.c.event_id == event_id, tr.c.code == patch.code)
    if await first(conn, select(tr.c.code).where(this)) is None:
        position = (
            await conn.execute(select(func.count()).where(tr.c.event_id == event_id))
        ).scalar_one()
        tier = Tier(
            patch.code,
            patch.name or patch.code,
            patch.price_cents or 0,
            patch.capacity or 0,
            hidden=bool(patch.hidden),
            waitlist_open=patch.waitlist_open is not False,
        )
        await conn.execute(insert(tr).values(**_tier_values(event_id, tier, position, on_sale)))
        return
    named = (
        ("name", patch.name),
        ("price_cents", patch.price_cents),
        ("hidden", patch.hidden),
        ("waitlist_open", patch.waitlist_open),
    )
    values: dict[str, Any] = {k: v for k, v in named if v is not None}
    guard = this
    if patch.capacity is not None:
        await release_expired(conn, now, event_id, patch.code)
        values |= {"capacity": patch.capacity, "version": tr.c.version + 1}
        # one statement: check and write (seats blocked for offers and codes count too)
        guard = and_(this, tr.c.active + tr.c.blocked <= patch.capacity)
    if not values:
        return
    row = await first(conn, update(tr).where(guard).values(**values).returning(*TIER_STATE))
    if row is None:
        active = (await conn.execute(select(tr.c.active + tr.c.blocked).where(this))).scalar_one()
        raise CapacityBelowActive(patch.code, active)
    if patch.capacity is not None or patch.waitlist_open:
        await offer_freed(conn, event_id, patch.code, row._mapping, now)


async def _end_holdings(conn: AsyncConnection, event_id: str, now: datetime, actor: Actor) -> None:
    """Every booking of the event that holds seats ends: expired holds as `expired`, the
    rest as `cancelled` (the caller derives the counters afterwards)."""
    b = t.bookings
    expired = hold_expired(b, now)
    ended = await conn.execute(
        update(b)
        .where(b.c.event_id == event_id, holds_seats())
        .values(
            status=case((expired, "expired"), else_="cancelled"),
            version=b.c.version + 1,
            updated_at=now,
        )
        .returning(*b.c)
    )
    rows = ended.all()
    await end_code_uses(conn, [r.id for r in rows])
    await record(
        conn,
        [
            changelog.booking_change(
                r.status, r._mapping, SYSTEM_ACTOR if r.status == "expired" else actor, now
            )
            for r in rows
        ],
    )
    for status, who in (("expired", SYSTEM_ACTOR), ("cancelled", actor)):
        orders = sorted({r.order_id for r in rows if r.order_id and r.status == status})
        await end_orders(conn, orders, status, who, now)


def _tier_values(event_id: str, tier: Tier, position: int, on_sale: bool) -> dict[str, Any]:
    new = {"active": 0, "version": 0, "on_sale": on_sale, "position": position}
    return {"event_id": event_id, **as_fields(tier), **new}


def _event(row: Row[Any], tiers: list[Tier]) -> Event:
    return from_fields(Event, row._mapping, tiers=tuple(tiers))
