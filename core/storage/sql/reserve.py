"""The atomic reserve on SQL: one booking alone, or a batch of one tier's bookings.

Seats are guarded by a conditional UPDATE of the tier row (`on_sale AND active + q <=
capacity`) in the statement or transaction that inserts the booking. On PostgreSQL, when no
per-buyer limit applies, the guard, the buyer's count and the insert are one statement (a
data-modifying CTE) in autocommit mode, so the hot row's lock is held only inside the
database, never across an event-loop turn; a batch is the same statement over many rows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from asyncpg.exceptions import InterfaceError as AsyncpgInterfaceError
from asyncpg.exceptions import PostgresConnectionError
from sqlalchemy import and_, bindparam, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import rules
from core.storage.port import DuplicateKey, StorageBusy
from core.storage.records import (
    Booking,
    BuyerSeats,
    Reservation,
    ReserveRequest,
    Tier,
    from_fields,
    new_id,
    new_ticket_number,
)
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, duplicate_key, first, transient
from core.storage.sql.changes import record

CONNECTION_LOST = (PostgresConnectionError, AsyncpgInterfaceError, ConnectionError)
COLUMNS = [c.name for c in t.bookings.c]
_PRIVATE_REMOVED = "to_jsonb(ins)" + "".join(f" - '{name}'" for name in rules.PRIVATE_FIELDS)


class _NoSeats(Exception):
    """Raised inside a reserve transaction to roll it back when the seats are not there."""


def _statements() -> tuple[Any, Any, Any]:
    """Built once, so SQLAlchemy compiles them once: the booking path only binds values.

    TAKE_SEATS is the guard of the invariant. RESERVE_SEATS feeds it into the booking INSERT
    (a data-modifying CTE); RESERVE_COUNTED also adds the seats to the buyer's count. Each
    later part reads the guard's RETURNING row, so nothing is written unless the seats were
    taken. Parameters are the booking's column names plus `pending` (the seats held pending).
    """
    b = t.bookings
    columns = [name for name in COLUMNS if name != "unit_price_cents"]
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
        f"RETURNING {', '.join(COLUMNS)}"
    )
    binds = [bindparam(name, type_=b.c[name].type) for name in columns]
    seats_binds = [bp for bp in binds if bp.key in ("quantity", "event_id", "tier")]
    extra = [
        bindparam("pending", type_=b.c.quantity.type),
        bindparam("change_id", type_=t.changes.c.id.type),
        bindparam("actor_kind", type_=t.changes.c.actor_kind.type),
        bindparam("actor_id", type_=t.changes.c.actor_id.type),
    ]
    # PostgreSQL's one statement also records the booking's change, from the inserted row.
    record_change = (
        "INSERT INTO changes (id, type, occurred_at, actor_kind, actor_id, subject, "  # noqa: S608
        "subject_id, seq, event_id, booking_id, owner_id, partner_id, data) "
        "SELECT :change_id, 'booking.created', ins.created_at, :actor_kind, :actor_id, "
        "'booking', ins.id, ins.version, ins.event_id, ins.id, ins.owner_id, ins.partner_id, "
        f"{_PRIVATE_REMOVED} FROM ins"
    )
    counted = (
        f"WITH seats AS ({take_seats}), buyer AS ({count_buyer}), ins AS ({insert}), "  # noqa: S608
        f"change AS ({record_change}) SELECT * FROM ins"
    )
    return (
        text(take_seats).bindparams(*seats_binds).columns(t.tiers.c.price_cents),
        text(f"WITH seats AS ({take_seats}) {insert}").bindparams(*binds).columns(*b.c),
        text(counted).bindparams(*binds, *extra).columns(*b.c),
    )


TAKE_SEATS, RESERVE_SEATS, RESERVE_COUNTED = _statements()

BATCH_COLUMNS = (
    ("id", "text"),
    ("ticket_number", "text"),
    ("quantity", "int"),
    ("status", "text"),
    ("expires_at", "timestamptz"),
    ("owner_id", "text"),
    ("partner_id", "text"),
    ("external_ref", "text"),
    ("idempotency_key", "text"),
    ("request_hash", "text"),
    ("created_at", "timestamptz"),
    ("change_id", "text"),
    ("actor_kind", "text"),
    ("actor_id", "text"),
)


def _batch_statement() -> str:
    """One tier's bookings in one statement: `$1` event, `$2` tier, then one array per
    column in BATCH_COLUMNS. The guard takes Σq at once; every row keeps its own id, ticket
    number, owner, key and hash; buyers' counts are grouped (and locked in a fixed order)."""
    names = [name for name, _ in BATCH_COLUMNS]
    arrays = ", ".join(f"${i + 3}::{kind}[]" for i, (_, kind) in enumerate(BATCH_COLUMNS))
    pending = "CASE WHEN r.status = 'pending' THEN r.quantity ELSE 0 END"
    return (
        f"WITH req AS (SELECT * FROM unnest({arrays}) AS r({', '.join(names)})), "  # noqa: S608
        "total AS (SELECT sum(quantity) AS seats FROM req), "
        "seats AS (UPDATE tiers SET active = active + total.seats, version = version + 1 "
        "FROM total WHERE event_id = $1 AND code = $2 AND on_sale "
        "AND active + total.seats <= capacity RETURNING price_cents), "
        "buyer AS (INSERT INTO user_event_counts (event_id, owner_id, active, pending) "
        f"SELECT $1, r.owner_id, sum(r.quantity), sum({pending}) FROM req r, seats "
        "GROUP BY r.owner_id ORDER BY r.owner_id "
        "ON CONFLICT (event_id, owner_id) DO UPDATE SET "
        "active = user_event_counts.active + EXCLUDED.active, "
        "pending = user_event_counts.pending + EXCLUDED.pending), "
        f"ins AS (INSERT INTO bookings ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(_batch_value(name) for name in COLUMNS)} FROM req r, seats "
        f"RETURNING {', '.join(COLUMNS)}), "
        "change AS (INSERT INTO changes (id, type, occurred_at, actor_kind, actor_id, subject, "
        "subject_id, seq, event_id, booking_id, owner_id, partner_id, data) "
        "SELECT r.change_id, 'booking.created', ins.created_at, r.actor_kind, r.actor_id, "
        "'booking', ins.id, ins.version, ins.event_id, ins.id, ins.owner_id, ins.partner_id, "
        f"{_PRIVATE_REMOVED} FROM ins JOIN req r ON r.id = ins.id) "
        "SELECT * FROM ins"
    )


def _batch_value(column: str) -> str:
    if column in dict(BATCH_COLUMNS):
        return f"r.{column}"
    return {
        "event_id": "$1",
        "tier": "$2",
        "unit_price_cents": "seats.price_cents",
        "currency": "'USD'",
        "version": "1",
        "updated_at": "r.created_at",
        "order_id": "NULL",
    }[column]


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
PG_RESERVE_BATCH = _batch_statement()


def reserve_params(request: ReserveRequest) -> dict[str, Any]:
    """The booking's values, the seats it holds pending, and its change record's own."""
    return rules.booking_values(request) | {
        "pending": request.pending_quantity,
        "change_id": request.change_id,
        "actor_kind": request.actor.kind,
        "actor_id": request.actor.id,
    }


class SQLReserving(SQLBase, rules.Reserving):
    async def _reserve_alone(self, request: ReserveRequest) -> Reservation:
        for attempt in range(2):
            try:
                row = await self._write(request)
            except DuplicateKey as dup:
                if dup.field == "idempotency_key":
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
        """The booking's row, or None when the seats were not there. A lost connection is
        retried: the owner's unique key (`storage_key`) makes a repeat harmless."""
        for attempt in range(rules.MAX_ATTEMPTS):
            try:
                if self.dialect == "postgresql" and not request.limited:
                    return await self._pg(PG_RESERVE.sql, PG_RESERVE.args(reserve_params(request)))
                try:
                    return await self.tx(lambda conn: self._in_transaction(conn, request))
                except _NoSeats:
                    return None
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            except CONNECTION_LOST:
                pass
            await rules.pause(attempt)
        raise StorageBusy("the database connection keeps failing; try again")

    async def _pg(self, sql: str, args: Sequence[Any], *, many: bool = False) -> Any:
        """One autocommit statement sent straight through the pooled asyncpg connection
        (compiled once; SQLAlchemy's per-call execution machinery would cost more than the
        statement), conflicts retried, a unique violation as the port's DuplicateKey."""

        async def once() -> Any:
            async with self.engines.reader.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                try:
                    if many:
                        return await driver.fetch(sql, *args)
                    return await driver.fetchrow(sql, *args)
                except Exception as exc:
                    raise duplicate_key(exc) or exc from None

        return await rules.retrying(once, transient, self.dialect)

    async def _in_transaction(self, conn: AsyncConnection, request: ReserveRequest) -> Any:
        params = reserve_params(request)
        if request.limited:
            await count_buyer_within_limits(conn, self.upsert, request)
        if self.dialect == "postgresql":
            row = await first(conn, RESERVE_SEATS, params)
        else:
            price = await first(conn, TAKE_SEATS, params)
            if price is None:
                raise _NoSeats()
            if not request.limited:
                await count_buyers(conn, self.upsert, request.event_id, [request])
            insert = t.bookings.insert().returning(*t.bookings.c)
            values = rules.booking_values(request) | {"unit_price_cents": price.price_cents}
            row = await first(conn, insert, values)
        if row is None:
            raise _NoSeats()  # rolls back the buyer's count taken above
        created = row._mapping
        await record(
            conn,
            [
                rules.booking_change(
                    "created", created, request.actor, request.now, request.change_id
                )
            ],
        )
        return created

    async def _reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        event_id, tier = key
        if self.dialect == "postgresql":
            values = [reserve_params(r) for r in requests]
            arrays = [[v[name] for v in values] for name, _ in BATCH_COLUMNS]
            rows = await self._pg(PG_RESERVE_BATCH, [event_id, tier, *arrays], many=True)
        else:
            try:
                rows = await self.tx(lambda conn: self._batch_in_transaction(conn, key, requests))
            except _NoSeats:
                return None
        if not rows:
            return None  # the batch does not fit: each request runs alone
        by_id = {row["id"]: from_fields(Booking, row) for row in rows}
        return [Reservation(by_id[r.booking_id]) for r in requests]

    async def _batch_in_transaction(
        self, conn: AsyncConnection, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Any]:
        event_id, tier = key
        total = sum(r.quantity for r in requests)
        price = await first(
            conn, TAKE_SEATS, {"event_id": event_id, "tier": tier, "quantity": total}
        )
        if price is None:
            raise _NoSeats()
        await count_buyers(conn, self.upsert, event_id, requests)
        values = [
            rules.booking_values(r) | {"unit_price_cents": price.price_cents} for r in requests
        ]
        result = await conn.execute(t.bookings.insert().returning(*t.bookings.c), values)
        rows = {row.id: row._mapping for row in result}
        made = [rows[r.booking_id] for r in requests]
        await record(
            conn,
            [
                rules.booking_change("created", row, r.actor, r.now, r.change_id)
                for r, row in zip(requests, made, strict=True)
            ],
        )
        return made

    async def _tier(self, event_id: str, code: str) -> Tier | None:
        tr = t.tiers
        row = await self.first(select(tr).where(tr.c.event_id == event_id, tr.c.code == code))
        return from_fields(Tier, row._mapping) if row else None

    async def _replay(self, request: ReserveRequest) -> Reservation:
        """The booking the owner's key already made; a key of our own (no Idempotency-Key
        was sent) is this request's earlier attempt, so it counts as made, not replayed."""
        existing = await self.get_by_key(request.owner_id, request.storage_key)
        if existing is None:  # the other writer of that key rolled back: try once more
            return await self._reserve_alone(request)
        return Reservation(existing, replayed=request.idempotency_key is not None)

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        b = t.bookings
        row = await self.first(
            select(b).where(b.c.owner_id == owner_id, b.c.idempotency_key == idempotency_key)
        )
        return from_fields(Booking, row._mapping) if row else None


async def count_buyers(
    conn: AsyncConnection, upsert: Any, event_id: str, requests: Sequence[BuyerSeats]
) -> None:
    """Add the requests' seats to their buyers' counts (no limit applies to them)."""
    seats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in requests:
        seats[r.owner_id][0] += r.quantity
        seats[r.owner_id][1] += r.pending_quantity
    u = t.user_event_counts
    for owner_id, (active, pending) in sorted(seats.items()):
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
        raise rules.buyer_limit(request, row.active, row.pending)
