"""The atomic reserve on SQL, one class per variant (the table in core/storage/reserving.py):
one booking alone (`Alone` around `OneStatement` or `InTransaction`), or a batch of one tier's
bookings (`BatchStatement`, `BatchInTransaction`).

Seats are guarded by a conditional UPDATE of the tier row (`on_sale AND active + q <=
capacity`) in the statement or transaction that inserts the booking. On PostgreSQL, when no
per-buyer limit applies, the guard, the buyer's count and the insert are one statement (a
data-modifying CTE) in autocommit mode, so the hot row's lock is held only inside the
database, never across an event-loop turn; a batch is the same statement over many rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, key_claims, refusals, reserving, retries, sale_rows
from core.storage.errors import DuplicateKey, StorageUnavailable
from core.storage.records import Booking, Reservation, Tier, from_fields, new_id, new_ticket_number
from core.storage.requests import BuyerSeats, ReserveRequest
from core.storage.sql import schema as t
from core.storage.sql.base import (
    SQLBase,
    claim_keys,
    connection_lost,
    duplicate_key,
    first,
    transient,
)
from core.storage.sql.changes import record
from core.storage.sql.statements import (
    BATCH_COLUMNS,
    PG_RESERVE,
    PG_RESERVE_BATCH,
    RESERVE_SEATS,
    TAKE_SEATS,
)


class _NoSeats(Exception):
    """Raised inside a reserve transaction to roll it back when the seats are not there."""


def reserve_params(request: ReserveRequest) -> dict[str, Any]:
    """The booking's values, the seats it holds pending, its change record's own, and the
    caller's key to claim (None: no Idempotency-Key was sent, nothing to claim)."""
    return sale_rows.booking_values(request) | {
        "claim_key": request.idempotency_key,
        "pending": request.pending_quantity,
        "change_id": request.change_id,
        "actor_kind": request.actor.kind,
        "actor_id": request.actor.id,
    }


class Write(Protocol):
    async def write(self, request: ReserveRequest) -> Any:
        """The new booking's row, or None when the seats were not there."""


@dataclasses.dataclass(frozen=True, slots=True)
class Alone:
    """One booking through one write variant (`OneStatement` or `InTransaction`): a lost
    connection retried, a taken key resolved (the owner's key: the booking it made; a
    colliding ticket number: a fresh one), a refusal read afresh from the tier."""

    db: SQLBase
    write: Write

    async def reserve(self, request: ReserveRequest) -> Reservation:
        for attempt in range(2):
            try:
                row = await self._written(request)
            except DuplicateKey as dup:
                if dup.field in ("idempotency_key", key_claims.FIELD):
                    return await self._replay(request)
                if dup.field != "ticket_number" or attempt:
                    raise
                # 50 random bits collided: the same booking with a fresh number and id.
                request = dataclasses.replace(
                    request, booking_id=new_id(), ticket_number=new_ticket_number()
                )
                continue
            if row is None:
                raise refusals.refusal(await tier_of(self.db, request.event_id, request.tier))
            return Reservation(from_fields(Booking, row))
        raise AssertionError("unreachable")

    async def _written(self, request: ReserveRequest) -> Any:
        """The booking's row, or None when the seats were not there. A lost connection is
        retried: the owner's unique key (`storage_key`) makes a repeat harmless."""
        for attempt in range(retries.MAX_ATTEMPTS):
            try:
                return await self.write.write(request)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
            await retries.pause(attempt)
        raise StorageUnavailable("the database connection keeps failing")

    async def _replay(self, request: ReserveRequest) -> Reservation:
        """The booking the owner's key already made; a key of our own (no Idempotency-Key
        was sent) is this request's earlier attempt, so it counts as made, not replayed."""
        existing = await booking_by_key(self.db, request.owner_id, request.storage_key)
        if existing is None:
            await key_claims.refuse_other_kind(
                self.db.key_kind, request.owner_id, request.idempotency_key, key_claims.BOOKING
            )
            # the other writer of that key rolled back: try once more
            return await self.reserve(request)
        return Reservation(existing, replayed=request.idempotency_key is not None)


@dataclasses.dataclass(frozen=True, slots=True)
class OneStatement:
    """PostgreSQL, no per-buyer limit: the guard, the buyer's count, the insert and the
    change record as one autocommit statement (PG_RESERVE)."""

    db: SQLBase

    async def write(self, request: ReserveRequest) -> Any:
        return await pg_fetch(self.db, PG_RESERVE.sql, PG_RESERVE.args(reserve_params(request)))


@dataclasses.dataclass(frozen=True, slots=True)
class InTransaction:
    """A short transaction: the buyer's guarded count first when a limit applies, then the
    seats and the insert (one statement on PostgreSQL, three on SQLite), the change record."""

    db: SQLBase

    async def write(self, request: ReserveRequest) -> Any:
        try:
            return await self.db.tx(lambda conn: self._in_transaction(conn, request))
        except _NoSeats:
            return None

    async def _in_transaction(self, conn: AsyncConnection, request: ReserveRequest) -> Any:
        params = reserve_params(request)
        upsert = self.db.upsert
        if request.limited:
            await count_buyer_within_limits(conn, upsert, request)
        if self.db.dialect == "postgresql":
            row = await first(conn, RESERVE_SEATS, params)
            if row is not None and not request.limited:
                await count_buyers(conn, upsert, request.event_id, [request])
        else:
            price = await first(conn, TAKE_SEATS, params)
            if price is None:
                raise _NoSeats()
            if not request.limited:
                await count_buyers(conn, upsert, request.event_id, [request])
            insert = t.bookings.insert().returning(*t.bookings.c)
            values = sale_rows.booking_values(request) | {"unit_price_cents": price.price_cents}
            row = await first(conn, insert, values)
        if row is None:
            raise _NoSeats()  # rolls back the buyer's count taken above
        created = row._mapping
        await claim_keys(conn, key_claims.of_bookings([(request, request.booking_id)]))
        await record(
            conn,
            [
                changelog.booking_change(
                    "created", created, request.actor, request.now, request.change_id
                )
            ],
        )
        return created


@dataclasses.dataclass(frozen=True, slots=True)
class BatchStatement:
    """PostgreSQL: a batch of one tier's bookings as one statement (PG_RESERVE_BATCH)."""

    db: SQLBase

    async def reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        event_id, tier = key
        values = [reserve_params(r) for r in requests]
        arrays = [[v[name] for v in values] for name, _ in BATCH_COLUMNS]
        rows = await pg_fetch(self.db, PG_RESERVE_BATCH, [event_id, tier, *arrays], many=True)
        return reservations(rows, requests)


@dataclasses.dataclass(frozen=True, slots=True)
class BatchInTransaction:
    """SQLite: a batch of one tier's bookings in one transaction (Σq taken at once)."""

    db: SQLBase

    async def reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        try:
            rows = await self.db.tx(lambda conn: self._in_transaction(conn, key, requests))
        except _NoSeats:
            return None
        return reservations(rows, requests)

    async def _in_transaction(
        self, conn: AsyncConnection, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Any]:
        event_id, tier = key
        total = sum(r.quantity for r in requests)
        price = await first(
            conn, TAKE_SEATS, {"event_id": event_id, "tier": tier, "quantity": total}
        )
        if price is None:
            raise _NoSeats()
        await count_buyers(conn, self.db.upsert, event_id, requests)
        values = [
            sale_rows.booking_values(r) | {"unit_price_cents": price.price_cents} for r in requests
        ]
        result = await conn.execute(t.bookings.insert().returning(*t.bookings.c), values)
        rows = {row.id: row._mapping for row in result}
        made = [rows[r.booking_id] for r in requests]
        await claim_keys(conn, key_claims.of_bookings((r, r.booking_id) for r in requests))
        await record(
            conn,
            [
                changelog.booking_change("created", row, r.actor, r.now, r.change_id)
                for r, row in zip(requests, made, strict=True)
            ],
        )
        return made


def reservations(
    rows: Sequence[Any], requests: Sequence[ReserveRequest]
) -> list[Reservation] | None:
    """The batch's bookings in request order; None when it did not fit (each runs alone)."""
    if not rows:
        return None
    by_id = {row["id"]: from_fields(Booking, row) for row in rows}
    return [Reservation(by_id[r.booking_id]) for r in requests]


async def pg_fetch(db: SQLBase, sql: str, args: Sequence[Any], *, many: bool = False) -> Any:
    """One autocommit statement sent straight through the pooled asyncpg connection
    (compiled once; SQLAlchemy's per-call execution machinery would cost more than the
    statement), conflicts retried, a unique violation as the port's DuplicateKey."""

    async def once() -> Any:
        async with db.engines.reader.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                if many:
                    return await driver.fetch(sql, *args)
                return await driver.fetchrow(sql, *args)
            except Exception as exc:
                if connection_lost(exc):
                    # SQLAlchemy did not see the driver fail: keep the connection out of
                    # the pool, or the next checkout gets a broken one.
                    await conn.invalidate()
                    raise
                raise duplicate_key(exc) or exc from None

    return await retries.retrying(once, transient, db.dialect)


async def tier_of(db: SQLBase, event_id: str, code: str) -> Tier | None:
    tr = t.tiers
    row = await db.first(select(tr).where(tr.c.event_id == event_id, tr.c.code == code))
    return from_fields(Tier, row._mapping) if row else None


async def booking_by_key(db: SQLBase, owner_id: str, idempotency_key: str) -> Booking | None:
    b = t.bookings
    row = await db.first(
        select(b).where(b.c.owner_id == owner_id, b.c.idempotency_key == idempotency_key)
    )
    return from_fields(Booking, row._mapping) if row else None


async def count_buyers(
    conn: AsyncConnection, upsert: Any, event_id: str, requests: Sequence[BuyerSeats]
) -> None:
    """Add the requests' seats to their buyers' counts (no limit applies to them)."""
    u = t.user_event_counts
    for owner_id, (active, pending) in reserving.seats_by_buyer(requests):
        stmt = upsert(u).values(
            event_id=event_id, owner_id=owner_id, active=active, pending=pending
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[u.c.event_id, u.c.owner_id],
                set_={"active": u.c.active + active, "pending": u.c.pending + pending},
            )
        )


async def count_buyer_within_limits(
    conn: AsyncConnection, upsert: Any, request: BuyerSeats
) -> None:
    """Add the seats to the buyer's count only if they stay within the buyer's limits (one
    guarded upsert: it locks the count, so a buyer's concurrent requests queue); BuyerLimit."""
    u = t.user_event_counts
    guards = []
    if request.max_per_user is not None:
        guards.append(u.c.active + request.quantity <= request.max_per_user)
    if request.max_pending is not None and request.pending_quantity:
        guards.append(u.c.pending + request.pending_quantity <= request.max_pending)
    new = {"active": request.quantity, "pending": request.pending_quantity}
    stmt = (
        upsert(u)
        .values(event_id=request.event_id, owner_id=request.owner_id, **new)
        .on_conflict_do_update(
            index_elements=[u.c.event_id, u.c.owner_id],
            set_={
                "active": u.c.active + request.quantity,
                "pending": u.c.pending + request.pending_quantity,
            },
            where=and_(*guards),
        )
        .returning(u.c.active)
    )
    if await first(conn, stmt) is None:
        mine = and_(u.c.event_id == request.event_id, u.c.owner_id == request.owner_id)
        row = await first(conn, select(u.c.active, u.c.pending).where(mine))
        assert row is not None  # the upsert found it, or it would have inserted
        raise refusals.buyer_limit(request, row.active, row.pending)
