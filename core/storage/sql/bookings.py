"""Bookings on SQL: the atomic reserve, confirm, cancel, expiry and recount.

Seats are guarded by a conditional UPDATE of the tier row (`on_sale AND active + q <=
capacity`) in the statement or transaction that inserts the booking. On PostgreSQL, when no
per-buyer limit applies, the guard, the buyer's count and the insert are one statement (a
data-modifying CTE) in autocommit mode, so the hot row's lock is held only inside the
database, never across an event-loop turn.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from asyncpg.exceptions import InterfaceError as AsyncpgInterfaceError
from asyncpg.exceptions import PostgresConnectionError
from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.metrics import HOLDS_EXPIRED
from core.storage import rules
from core.storage.port import (
    BookingExpired,
    DuplicateKey,
    Missing,
    NotPending,
    StorageBusy,
)
from core.storage.records import (
    Booking,
    BookingQuery,
    Drift,
    Reservation,
    ReserveRequest,
    Tier,
    from_fields,
    new_id,
    new_ticket_number,
)
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, active_at, duplicate_key, first, holds_seats, transient
from core.storage.sql.seats import derive_counters, give_back, release_expired

CONNECTION_LOST = (PostgresConnectionError, AsyncpgInterfaceError, ConnectionError)


class _NoSeats(Exception):
    """Raised inside a reserve transaction to roll it back when the seats are not there."""


def _reserve_statements() -> tuple[Any, Any, Any]:
    """Built once, so SQLAlchemy compiles them once: the booking path only binds values.

    TAKE_SEATS is the guard of the invariant. RESERVE_SEATS feeds it into the booking INSERT
    (a data-modifying CTE); RESERVE_COUNTED also adds the seats to the buyer's count. Each
    later part reads the guard's RETURNING row, so nothing is written unless the seats were
    taken. Parameters are the booking's column names plus `pending` (the seats held pending).
    """
    b = t.bookings
    columns = [c.name for c in b.c if c.name != "unit_price_cents"]
    take_seats = (
        "UPDATE tiers SET active = active + :quantity, version = version + 1 "
        "WHERE event_id = :event_id AND code = :tier AND on_sale "
        "AND active + :quantity <= capacity RETURNING price_cents"
    )
    count_buyer = (
        "INSERT INTO user_event_counts (event_id, owner_id, active, pending) "
        "SELECT :event_id, :owner_id, :quantity, :pending FROM seats "
        "ON CONFLICT (event_id, owner_id) DO UPDATE SET "
        "active = user_event_counts.active + EXCLUDED.active, "
        "pending = user_event_counts.pending + EXCLUDED.pending"
    )
    # Identifiers come from the schema; every value is a bound parameter.
    insert = (
        f"INSERT INTO bookings ({', '.join(columns)}, unit_price_cents) "  # noqa: S608
        f"SELECT {', '.join(f':{name}' for name in columns)}, seats.price_cents FROM seats "
        f"RETURNING {', '.join(c.name for c in b.c)}"
    )
    binds = [bindparam(name, type_=b.c[name].type) for name in columns]
    seats_binds = [bp for bp in binds if bp.key in ("quantity", "event_id", "tier")]
    pending = bindparam("pending", type_=b.c.quantity.type)
    return (
        text(take_seats).bindparams(*seats_binds).columns(t.tiers.c.price_cents),
        text(f"WITH seats AS ({take_seats}) {insert}").bindparams(*binds).columns(*b.c),
        text(f"WITH seats AS ({take_seats}), buyer AS ({count_buyer}) {insert}")
        .bindparams(*binds, pending)
        .columns(*b.c),
    )


TAKE_SEATS, RESERVE_SEATS, RESERVE_COUNTED = _reserve_statements()


@dataclasses.dataclass(frozen=True, slots=True)
class AsyncpgStatement:
    """A statement compiled once to asyncpg's positional SQL, with its parameter order."""

    sql: str
    names: list[str]

    @classmethod
    def of(cls, statement: Any) -> AsyncpgStatement:
        compiled = statement.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
        return cls(str(compiled), list(compiled.positiontup or []))

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


PG_RESERVE = AsyncpgStatement.of(RESERVE_COUNTED)


def reserve_params(request: ReserveRequest) -> dict[str, Any]:
    return rules.booking_values(request) | {"pending": request.pending_quantity}


class SQLBookings(SQLBase, rules.Reserving):
    async def _reserve_once(self, request: ReserveRequest) -> Reservation:
        for attempt in range(2):
            try:
                row = await self._write(request)
            except DuplicateKey as dup:
                if dup.field == "idempotency_key" and request.idempotency_key:
                    return await self._replay(request)
                if dup.field != "ticket_number" or attempt:
                    raise
                # 50 random bits collided: the same booking with a fresh number and id.
                request = dataclasses.replace(
                    request, booking_id=new_id(), ticket_number=new_ticket_number()
                )
                continue
            if row is None:
                raise rules.refusal(await self._tier(request.event_id, request.tier))
            return Reservation(from_fields(Booking, row))
        raise AssertionError("unreachable")

    async def _write(self, request: ReserveRequest) -> Any:
        """The booking's row, or None when the seats were not there; a lost connection is
        retried (the owner's unique idempotency key makes a repeat harmless)."""
        for attempt in range(rules.MAX_ATTEMPTS):
            try:
                if self.dialect == "postgresql" and not request.limited:
                    return await self._in_one_statement(request)
                try:
                    return await self.tx(lambda conn: self._in_transaction(conn, request))
                except _NoSeats:
                    return None
            except DBAPIError as exc:
                if not exc.connection_invalidated or not request.idempotency_key:
                    raise
            except CONNECTION_LOST:
                if not request.idempotency_key:
                    raise
            await rules.pause(attempt)
        raise StorageBusy("the database connection keeps failing; try again")

    async def _in_one_statement(self, request: ReserveRequest) -> Any:
        """The hot path on PostgreSQL: one autocommit statement, sent straight through the
        pooled asyncpg connection (SQLAlchemy compiled it once; its per-call execution
        machinery would cost more than the statement)."""
        args = PG_RESERVE.args(reserve_params(request))

        async def once() -> Any:
            async with self.engines.reader.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                try:
                    return await driver.fetchrow(PG_RESERVE.sql, *args)
                except Exception as exc:
                    raise duplicate_key(exc) or exc from None

        return await rules.retrying(once, transient, self.dialect)

    async def _in_transaction(self, conn: AsyncConnection, request: ReserveRequest) -> Any:
        params = reserve_params(request)
        if request.limited:
            await self._count_buyer_within_limits(conn, request)
        if self.dialect == "postgresql":
            row = await first(conn, RESERVE_SEATS, params)
        else:
            price = await first(conn, TAKE_SEATS, params)
            if price is None:
                raise _NoSeats()
            if not request.limited:
                await self._count_buyer(conn, request)
            insert = t.bookings.insert().returning(*t.bookings.c)
            row = await first(
                conn,
                insert,
                rules.booking_values(request) | {"unit_price_cents": price.price_cents},
            )
        if row is None:
            raise _NoSeats()  # rolls back the buyer's count taken above
        return row._mapping

    async def _count_buyer(self, conn: AsyncConnection, request: ReserveRequest) -> None:
        u = t.user_event_counts
        new = {"active": request.quantity, "pending": request.pending_quantity}
        stmt = self.upsert(u).values(event_id=request.event_id, owner_id=request.owner_id, **new)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[u.c.event_id, u.c.owner_id],
                set_={
                    "active": u.c.active + request.quantity,
                    "pending": u.c.pending + request.pending_quantity,
                },
            )
        )

    async def _count_buyer_within_limits(
        self, conn: AsyncConnection, request: ReserveRequest
    ) -> None:
        """Add the seats to the buyer's count only if they stay within the buyer's limits
        (one guarded upsert: it locks the count, so a buyer's concurrent requests queue)."""
        u = t.user_event_counts
        guards = []
        if request.max_per_user is not None:
            guards.append(u.c.active + request.quantity <= request.max_per_user)
        if request.max_pending is not None and request.pending_quantity:
            guards.append(u.c.pending + request.pending_quantity <= request.max_pending)
        new = {"active": request.quantity, "pending": request.pending_quantity}
        stmt = (
            self.upsert(u)
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
            row = await first(
                conn,
                select(u.c.active, u.c.pending).where(
                    u.c.event_id == request.event_id, u.c.owner_id == request.owner_id
                ),
            )
            assert row is not None  # the upsert found it, or it would have inserted
            raise rules.buyer_limit(request, row.active, row.pending)

    async def _tier(self, event_id: str, code: str) -> Tier | None:
        tr = t.tiers
        row = await self.first(select(tr).where(tr.c.event_id == event_id, tr.c.code == code))
        return from_fields(Tier, row._mapping) if row else None

    async def _replay(self, request: ReserveRequest) -> Reservation:
        assert request.idempotency_key is not None
        existing = await self.get_by_key(request.owner_id, request.idempotency_key)
        if existing is None:  # the other writer of that key rolled back: try once more
            return await self._reserve_once(request)
        return Reservation(existing, replayed=True)

    async def confirm(self, booking_id: str, owner_id: str, now: datetime) -> Booking:
        b, u = t.bookings, t.user_event_counts

        async def work(conn: AsyncConnection) -> Any:
            row = await first(
                conn,
                update(b)
                .where(
                    b.c.id == booking_id,
                    b.c.owner_id == owner_id,
                    b.c.status == "pending",
                    b.c.expires_at > now,
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
            return row

        row = await self.tx(work)
        if row is not None:
            return from_fields(Booking, row._mapping)
        current = await self.get(booking_id)
        if current is None or current.owner_id != owner_id:
            raise Missing()
        if current.status in ("pending", "expired"):
            raise BookingExpired()
        raise NotPending(current.status)

    async def cancel(self, booking_id: str, owner_id: str | None, now: datetime) -> Booking:
        b = t.bookings
        mine = [b.c.id == booking_id] + ([b.c.owner_id == owner_id] if owner_id is not None else [])
        # Two guarded updates rather than a read and a write: each says what the booking was.
        was = {
            "pending": and_(b.c.status == "pending", b.c.expires_at > now),
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
                    await give_back(conn, [{**row._mapping, "status": status}])
                    return row
            return None

        row = await self.tx(work)
        if row is not None:
            return from_fields(Booking, row._mapping)
        current = await self.get(booking_id)
        if current is None or (owner_id is not None and current.owner_id != owner_id):
            raise Missing()
        raise NotPending("expired" if current.status == "pending" else current.status)

    async def get(self, booking_id: str) -> Booking | None:
        row = await self.first(select(t.bookings).where(t.bookings.c.id == booking_id))
        return from_fields(Booking, row._mapping) if row else None

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        b = t.bookings
        row = await self.first(
            select(b).where(b.c.owner_id == owner_id, b.c.idempotency_key == idempotency_key)
        )
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

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self.tx(lambda c: release_expired(c, now, event_id, tier))
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        if not fix:
            async with self.snapshot() as conn:
                return await _drifts(conn)
        await self.release_expired(now)

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
    return rules.drifts(
        tier_counters=[tuple(r) for r in tiers],
        buyer_counters=[tuple(r) for r in buyers],
        tier_tally={(r[0], r[1]): rules.Seats(int(r[2]), int(r[3])) for r in tier_tally},
        buyer_tally={(r[0], r[1]): rules.Seats(int(r[2]), int(r[3])) for r in buyer_tally},
    )


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
