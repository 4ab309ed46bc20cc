"""Orders on MongoDB: several tiers of one event booked together, all or nothing, in one
transaction (the tier documents' guarded `$inc`s, then the order, its bookings and their
change records)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from pymongo import DESCENDING, ReturnDocument

from core.storage import changelog, key_claims, ordering
from core.storage.errors import NotOnSale
from core.storage.mongo.base import (
    Doc,
    MongoBase,
    Session,
    buyer_id,
    fields_of,
    hold_active,
    record,
)
from core.storage.mongo.changes import record_changes
from core.storage.mongo.reserve import (
    count_buyer_within_limits,
    count_buyers,
    new_booking_doc,
    take_seats,
)
from core.storage.mongo.seats import ended, give_back, release_expired_alone
from core.storage.records import Actor, Booking, Order, Ordered, Tier
from core.storage.requests import OrderQuery, OrderRequest


class MongoOrders(MongoBase):
    async def reserve(self, request: OrderRequest) -> Ordered:
        return await ordering.placing_order(self, request)

    async def order_once(self, request: OrderRequest) -> None:
        async with self.lanes.of(request.event_id):
            await self.tx(lambda s: self._order_in_transaction(s, request))

    async def release_expired_of(self, now: datetime, event_id: str) -> int:
        return await release_expired_alone(self, now, event_id)

    async def get(self, order_id: str) -> Order | None:
        found = await self._with_bookings([await self.orders.find_one({"_id": order_id})])
        return found[0] if found else None

    async def _order_in_transaction(self, s: Session, request: OrderRequest) -> None:
        if request.limited:
            await count_buyer_within_limits(self, s, request)
        prices: dict[str, int] = {}
        for item in sorted(request.items, key=lambda i: i.tier):
            tier = await take_seats(self, s, request.event_id, item.tier, item.quantity)
            if tier is None:
                raise ordering.SeatsShort()
            prices[item.tier] = tier["price_cents"]
        if not request.limited:
            await count_buyers(self, s, request.event_id, [request])
        values = ordering.order_values(request)
        order = {"_id": values.pop("id"), **values}
        await self.orders.insert_one(order, session=s)
        await self.claim_keys(s, key_claims.of_order(request))
        bookings = [
            new_booking_doc(request.booking(item), prices[item.tier])
            | {"order_id": request.order_id}
            for item in request.items
        ]
        await self.bookings.insert_many(bookings, session=s)
        await record_changes(
            self,
            s,
            changelog.order_changes(
                "created", fields_of(order), map(fields_of, bookings), request.actor, request.now
            ),
        )

    async def confirm(self, order_id: str, owner_id: str, now: datetime, actor: Actor) -> Order:
        async def work(s: Session) -> Doc | None:
            order = await self.orders.find_one_and_update(
                {
                    "_id": order_id,
                    "owner_id": owner_id,
                    **hold_active(now),
                },
                {
                    "$set": {"status": "confirmed", "expires_at": None, "updated_at": now},
                    "$inc": {"version": 1},
                },
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if order is None:
                return None
            if await self.started(order["event_id"], now, s):
                raise NotOnSale()  # aborts the transaction: the confirmation never happened
            docs = await self.bookings.find(
                {"order_id": order_id, "status": "pending"}, session=s
            ).to_list()
            await self.bookings.update_many(
                {"_id": {"$in": [d["_id"] for d in docs]}},
                {
                    "$set": {"status": "confirmed", "expires_at": None, "updated_at": now},
                    "$inc": {"version": 1},
                },
                session=s,
            )
            await self.buyers.update_one(
                {"_id": buyer_id(order["event_id"], order["owner_id"])},
                {"$inc": {"pending": -sum(d["quantity"] for d in docs)}},
                session=s,
            )
            confirmed = [ended(d, "confirmed", now) | {"expires_at": None} for d in docs]
            await record_changes(
                self,
                s,
                changelog.order_changes("confirmed", fields_of(order), confirmed, actor, now),
            )
            return order

        return await ordering.confirmed(self, await self.tx(work), order_id, owner_id, now)

    async def cancel(
        self, order_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Order:
        mine: Doc = {"_id": order_id} | ({"owner_id": owner_id} if owner_id is not None else {})
        was: dict[str, Doc] = {
            "pending": hold_active(now),
            "confirmed": {"status": "confirmed"},
        }

        async def work(s: Session) -> Doc | None:
            for status, condition in was.items():
                order = await self.orders.find_one_and_update(
                    mine | condition,
                    {"$set": {"status": "cancelled", "updated_at": now}, "$inc": {"version": 1}},
                    session=s,
                    return_document=ReturnDocument.AFTER,
                )
                if order is None:
                    continue
                docs = await self.bookings.find(
                    {"order_id": order_id, "status": status}, session=s
                ).to_list()
                await self.bookings.update_many(
                    {"_id": {"$in": [d["_id"] for d in docs]}},
                    {"$set": {"status": "cancelled", "updated_at": now}, "$inc": {"version": 1}},
                    session=s,
                )
                await give_back(self, s, docs, now)
                await record_changes(
                    self,
                    s,
                    changelog.order_changes(
                        "cancelled",
                        fields_of(order),
                        [ended(d, "cancelled", now) for d in docs],
                        actor,
                        now,
                    ),
                )
                return order
            return None

        return await ordering.cancelled(self, await self.tx(work), order_id, owner_id)

    async def find(self, query: OrderQuery) -> list[Order]:
        match: Doc = {
            name: value
            for name, value in (
                ("owner_id", query.owner_id),
                ("event_id", query.event_id),
                ("status", query.status),
            )
            if value is not None
        }
        if query.before_id is not None:
            match["_id"] = {"$lt": query.before_id}
        docs = await self.orders.find(match).sort("_id", DESCENDING).limit(query.limit).to_list()
        return await self._with_bookings(docs)

    async def order_by_key(self, owner_id: str, key: str) -> Order | None:
        found = await self._with_bookings(
            [await self.orders.find_one({"owner_id": owner_id, "idempotency_key": key})]
        )
        return found[0] if found else None

    async def _with_bookings(self, docs: Sequence[Doc | None]) -> list[Order]:
        orders = [d for d in docs if d is not None]
        ids = [d["_id"] for d in orders]
        bookings: dict[str, list[Booking]] = defaultdict(list)
        if ids:
            async for b in self.bookings.find({"order_id": {"$in": ids}}).sort("_id", 1):
                bookings[b["order_id"]].append(record(Booking, b))
        return [record(Order, d, bookings=tuple(bookings[d["_id"]])) for d in orders]

    async def tiers_of(self, event_id: str) -> dict[str, Tier | None]:
        return {d["code"]: record(Tier, d) async for d in self.tiers.find({"event_id": event_id})}
