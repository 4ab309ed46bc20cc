"""Orders on SQL: several tiers of one event booked together, all or nothing.

One short transaction takes every tier's seats with the same guarded UPDATE a single booking
uses, tiers in a fixed order (by code: two orders never wait on each other in a cycle), then
writes the order, its bookings and their change records. Any refusal rolls all of it back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.storage import changelog, key_claims, ordering, sale_rows
from core.storage.records import Actor, Booking, Order, Ordered, Tier, from_fields
from core.storage.requests import OrderQuery, OrderRequest
from core.storage.sql import schema as t
from core.storage.sql.base import SQLBase, before_start, claim_keys, first, hold_active
from core.storage.sql.changes import record
from core.storage.sql.reserve import count_buyer_within_limits, count_buyers
from core.storage.sql.seats import give_back, release_expired_alone
from core.storage.sql.statements import TAKE_SEATS


class SQLOrders(SQLBase):
    async def reserve(self, request: OrderRequest) -> Ordered:
        return await ordering.placing_order(self, request)

    async def order_once(self, request: OrderRequest) -> None:
        await self.tx(lambda conn: self._in_transaction(conn, request))

    async def release_expired_of(self, now: datetime, event_id: str) -> int:
        return await release_expired_alone(self, now, event_id)

    async def get(self, order_id: str) -> Order | None:
        found = await self._with_bookings(select(t.orders).where(t.orders.c.id == order_id))
        return found[0] if found else None

    async def _in_transaction(self, conn: AsyncConnection, request: OrderRequest) -> None:
        if request.limited:
            await count_buyer_within_limits(conn, self.upsert, request)
        prices: dict[str, int] = {}
        for item in sorted(request.items, key=lambda i: i.tier):
            params = {"event_id": request.event_id, "tier": item.tier, "quantity": item.quantity}
            taken = await first(conn, TAKE_SEATS, params)
            if taken is None:
                raise ordering.SeatsShort()
            prices[item.tier] = taken.price_cents
        if not request.limited:
            await count_buyers(conn, self.upsert, request.event_id, [request])
        order = await first(
            conn, t.orders.insert().returning(*t.orders.c), ordering.order_values(request)
        )
        assert order is not None
        await claim_keys(conn, key_claims.of_order(request))
        values = [
            sale_rows.booking_values(request.booking(item))
            | {"unit_price_cents": prices[item.tier], "order_id": request.order_id}
            for item in request.items
        ]
        rows = (await conn.execute(t.bookings.insert().returning(*t.bookings.c), values)).all()
        await record(
            conn,
            changelog.order_changes(
                "created", order._mapping, [r._mapping for r in rows], request.actor, request.now
            ),
        )

    async def confirm(self, order_id: str, owner_id: str, now: datetime, actor: Actor) -> Order:
        o, b, u = t.orders, t.bookings, t.user_event_counts

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            order = await first(
                conn,
                update(o)
                .where(
                    o.c.id == order_id,
                    o.c.owner_id == owner_id,
                    hold_active(o, now),
                    before_start(o.c.event_id, now),
                )
                .values(
                    status="confirmed", expires_at=None, version=o.c.version + 1, updated_at=now
                )
                .returning(*o.c),
            )
            if order is None:
                return None
            bookings = (
                await conn.execute(
                    update(b)
                    .where(b.c.order_id == order_id, b.c.status == "pending")
                    .values(
                        status="confirmed", expires_at=None, version=b.c.version + 1, updated_at=now
                    )
                    .returning(*b.c)
                )
            ).all()
            seats = sum(r.quantity for r in bookings)
            await conn.execute(
                update(u)
                .where(u.c.event_id == order.event_id, u.c.owner_id == order.owner_id)
                .values(pending=u.c.pending - seats)
            )
            await record(
                conn,
                changelog.order_changes(
                    "confirmed", order._mapping, [r._mapping for r in bookings], actor, now
                ),
            )
            return order

        return await ordering.confirmed(self, await self.tx(work), order_id, owner_id, now)

    async def cancel(
        self, order_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Order:
        o, b = t.orders, t.bookings
        mine = [o.c.id == order_id] + ([o.c.owner_id == owner_id] if owner_id is not None else [])
        was = {
            "pending": hold_active(o, now),
            "confirmed": o.c.status == "confirmed",
        }

        async def work(conn: AsyncConnection) -> Row[Any] | None:
            for status, condition in was.items():
                order = await first(
                    conn,
                    update(o)
                    .where(*mine, condition)
                    .values(status="cancelled", version=o.c.version + 1, updated_at=now)
                    .returning(*o.c),
                )
                if order is None:
                    continue
                bookings = (
                    await conn.execute(
                        update(b)
                        .where(b.c.order_id == order_id, b.c.status == status)
                        .values(status="cancelled", version=b.c.version + 1, updated_at=now)
                        .returning(*b.c)
                    )
                ).all()
                await give_back(conn, [{**r._mapping, "status": status} for r in bookings], now)
                await record(
                    conn,
                    changelog.order_changes(
                        "cancelled", order._mapping, [r._mapping for r in bookings], actor, now
                    ),
                )
                return order
            return None

        return await ordering.cancelled(self, await self.tx(work), order_id, owner_id)

    async def find(self, query: OrderQuery) -> list[Order]:
        o = t.orders
        stmt = select(o)
        for column, value in (
            (o.c.owner_id, query.owner_id),
            (o.c.event_id, query.event_id),
            (o.c.status, query.status),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if query.before_id is not None:
            stmt = stmt.where(o.c.id < query.before_id)
        return await self._with_bookings(stmt.order_by(o.c.id.desc()).limit(query.limit))

    async def order_by_key(self, owner_id: str, key: str) -> Order | None:
        o = t.orders
        found = await self._with_bookings(
            select(o).where(o.c.owner_id == owner_id, o.c.idempotency_key == key)
        )
        return found[0] if found else None

    async def _with_bookings(self, stmt: Any) -> list[Order]:
        b = t.bookings

        async def fetch(conn: AsyncConnection) -> tuple[Sequence[Row[Any]], Sequence[Row[Any]]]:
            orders = (await conn.execute(stmt)).all()
            ids = [r.id for r in orders]
            if not ids:
                return orders, []
            query = select(b).where(b.c.order_id.in_(ids)).order_by(b.c.id)
            return orders, (await conn.execute(query)).all()

        orders, rows = await self.read(fetch)
        bookings: dict[str, list[Booking]] = defaultdict(list)
        for r in rows:
            bookings[r.order_id].append(from_fields(Booking, r._mapping))
        return [from_fields(Order, r._mapping, bookings=tuple(bookings[r.id])) for r in orders]

    async def tiers_of(self, event_id: str) -> dict[str, Tier | None]:
        tr = t.tiers
        rows = await self.rows(select(tr).where(tr.c.event_id == event_id))
        return {r.code: from_fields(Tier, r._mapping) for r in rows}
