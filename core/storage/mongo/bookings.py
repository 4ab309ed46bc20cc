"""Bookings on MongoDB: the atomic reserve, confirm, cancel, expiry and recount.

Seats are guarded as on SQL: a conditional `$inc` on the tier document (`on_sale` and
`active + q <= capacity`) in the transaction that inserts the booking and counts the buyer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING, ReturnDocument

from core.metrics import CONFLICTS_RETRIED, HOLDS_EXPIRED
from core.storage import rules
from core.storage.mongo.base import Doc, MongoBase, Session, active_at, buyer_id, record, tier_id
from core.storage.mongo.seats import derive_counters, give_back, release_expired, tallies
from core.storage.port import (
    BookingExpired,
    DuplicateKey,
    Missing,
    NotPending,
    SoldOut,
    StorageBusy,
)
from core.storage.records import (
    Booking,
    BookingQuery,
    Drift,
    Reservation,
    ReserveRequest,
    Tier,
    new_id,
    new_ticket_number,
)


class _NoSeats(Exception):
    """Raised inside a reserve transaction to abort it when the seats are not there."""


class MongoBookings(MongoBase, rules.Reserving):
    async def _reserve_once(self, request: ReserveRequest) -> Reservation:
        for attempt in range(rules.MAX_ATTEMPTS):
            try:
                doc = await self.tx(lambda s: self._in_transaction(s, request))
                return Reservation(record(Booking, doc))
            except _NoSeats:
                refusal = rules.refusal(await self._tier(request))
                if not isinstance(refusal, SoldOut) or refusal.available < request.quantity:
                    raise refusal from None
                # The transaction read a snapshot older than seats given back since: the
                # update lost a race, not the sale.
            except DuplicateKey as dup:
                if dup.field == "idempotency_key" and request.idempotency_key:
                    existing = await self.get_by_key(request.owner_id, request.idempotency_key)
                    if existing is not None:
                        return Reservation(existing, replayed=True)
                # The other writer of that key aborted (or ids collided): try again.
            CONFLICTS_RETRIED.labels("mongodb").inc()
            await rules.pause(attempt)
        raise StorageBusy("too much contention; try again")

    async def _in_transaction(self, s: Session, request: ReserveRequest) -> Doc:
        key = buyer_id(request.event_id, request.owner_id)
        seats = {"active": request.quantity, "pending": request.pending_quantity}
        who = {"event_id": request.event_id, "owner_id": request.owner_id}
        if request.limited:
            await self._count_buyer_within_limits(s, request, key, who, seats)
        tier = await self.tiers.find_one_and_update(
            {
                "_id": tier_id(request.event_id, request.tier),
                "on_sale": True,
                "$expr": {"$lte": [{"$add": ["$active", request.quantity]}, "$capacity"]},
            },
            {"$inc": {"active": request.quantity, "version": 1}},
            session=s,
            return_document=ReturnDocument.AFTER,
        )
        if tier is None:
            raise _NoSeats()  # aborts: the buyer's count taken above is undone
        if not request.limited:
            await self.buyers.update_one(
                {"_id": key}, {"$inc": seats, "$setOnInsert": who}, upsert=True, session=s
            )
        # Fresh ids on every attempt: an aborted attempt's ids are never reused.
        doc = _booking_doc(request, tier["price_cents"]) | {
            "_id": new_id(),
            "ticket_number": new_ticket_number(),
        }
        await self.bookings.insert_one(doc, session=s)
        return doc

    async def _count_buyer_within_limits(
        self, s: Session, request: ReserveRequest, key: str, who: Doc, seats: Doc
    ) -> None:
        await self.buyers.update_one(
            {"_id": key},
            {"$setOnInsert": {**who, "active": 0, "pending": 0}},
            upsert=True,
            session=s,
        )
        guards: list[Doc] = []
        if request.max_per_user is not None:
            guards.append({"$lte": [{"$add": ["$active", request.quantity]}, request.max_per_user]})
        if request.max_pending is not None and request.pending_quantity:
            guards.append(
                {"$lte": [{"$add": ["$pending", request.pending_quantity]}, request.max_pending]}
            )
        counted = await self.buyers.find_one_and_update(
            {"_id": key, "$expr": {"$and": guards}}, {"$inc": seats}, session=s
        )
        if counted is None:
            current = await self.buyers.find_one({"_id": key}, session=s)
            assert current is not None  # upserted above
            raise rules.buyer_limit(request, current["active"], current["pending"])

    async def _tier(self, request: ReserveRequest) -> Tier | None:
        d = await self.tiers.find_one({"_id": tier_id(request.event_id, request.tier)})
        return record(Tier, d) if d else None

    async def confirm(self, booking_id: str, owner_id: str, now: datetime) -> Booking:
        async def work(s: Session) -> Doc | None:
            d = await self.bookings.find_one_and_update(
                {
                    "_id": booking_id,
                    "owner_id": owner_id,
                    "status": "pending",
                    "expires_at": {"$gt": now},
                },
                {
                    "$set": {"status": "confirmed", "expires_at": None, "updated_at": now},
                    "$inc": {"version": 1},
                },
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is not None:
                await self.buyers.update_one(
                    {"_id": buyer_id(d["event_id"], d["owner_id"])},
                    {"$inc": {"pending": -d["quantity"]}},
                    session=s,
                )
            return d

        d = await self.tx(work)
        if d is not None:
            return record(Booking, d)
        current = await self.get(booking_id)
        if current is None or current.owner_id != owner_id:
            raise Missing()
        if current.status in ("pending", "expired"):
            raise BookingExpired()
        raise NotPending(current.status)

    async def cancel(self, booking_id: str, owner_id: str | None, now: datetime) -> Booking:
        mine: Doc = {"_id": booking_id} | ({"owner_id": owner_id} if owner_id is not None else {})
        # Two guarded updates rather than a read and a write: each says what the booking was.
        was: dict[str, Doc] = {
            "pending": {"status": "pending", "expires_at": {"$gt": now}},
            "confirmed": {"status": "confirmed"},
        }

        async def work(s: Session) -> Doc | None:
            for status, condition in was.items():
                d = await self.bookings.find_one_and_update(
                    mine | condition,
                    {"$set": {"status": "cancelled", "updated_at": now}, "$inc": {"version": 1}},
                    session=s,
                    return_document=ReturnDocument.AFTER,
                )
                if d is not None:
                    await give_back(self, s, [d | {"status": status}])
                    return d
            return None

        d = await self.tx(work)
        if d is not None:
            return record(Booking, d)
        current = await self.get(booking_id)
        if current is None or (owner_id is not None and current.owner_id != owner_id):
            raise Missing()
        raise NotPending("expired" if current.status == "pending" else current.status)

    async def get(self, booking_id: str) -> Booking | None:
        d = await self.bookings.find_one({"_id": booking_id})
        return record(Booking, d) if d else None

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        d = await self.bookings.find_one({"owner_id": owner_id, "idempotency_key": idempotency_key})
        return record(Booking, d) if d else None

    async def find(self, query: BookingQuery) -> list[Booking]:
        match: Doc = {}
        if query.owner_id:
            match["owner_id"] = query.owner_id
        if query.event_id:
            match["event_id"] = query.event_id
        if query.status:
            match["status"] = query.status
        if query.before_id:
            match["_id"] = {"$lt": query.before_id}
        docs = await self.bookings.find(match).sort("_id", DESCENDING).limit(query.limit).to_list()
        return [record(Booking, d) for d in docs]

    async def count_active(self, event_id: str, now: datetime) -> int:
        return await self.bookings.count_documents({"event_id": event_id, **active_at(now)})

    async def release_expired(
        self, now: datetime, event_id: str | None = None, tier: str | None = None
    ) -> int:
        released = await self.tx(lambda s: release_expired(self, s, now, event_id, tier))
        HOLDS_EXPIRED.inc(released)
        return released

    async def recount(self, now: datetime, *, fix: bool) -> list[Drift]:
        if not fix:
            return await self.tx(self._drifts, read_only=True)
        await self.release_expired(now)

        async def repair(s: Session) -> list[Drift]:
            found = await self._drifts(s)
            for event_id in sorted({d.event_id for d in found}):
                await derive_counters(self, s, event_id)
            return found

        return await self.tx(repair)

    async def rebuild_buyer_counts(self) -> None:
        """Every buyer's counts from the bookings (a one-off data migration)."""

        async def work(s: Session) -> None:
            _, by_buyer = await tallies(self, s, {})
            await self.buyers.delete_many({}, session=s)
            if by_buyer:
                await self.buyers.insert_many(
                    [
                        {
                            "_id": buyer_id(event_id, owner_id),
                            "event_id": event_id,
                            "owner_id": owner_id,
                            "active": seats.active,
                            "pending": seats.pending,
                        }
                        for (event_id, owner_id), seats in by_buyer.items()
                    ],
                    session=s,
                )

        await self.tx(work)

    async def _drifts(self, s: Session) -> list[Drift]:
        by_tier, by_buyer = await tallies(self, s, {})
        tiers = [
            (d["event_id"], d["code"], d["active"]) async for d in self.tiers.find({}, session=s)
        ]
        buyers = [
            (d["event_id"], d["owner_id"], d["active"], d.get("pending", 0))
            async for d in self.buyers.find({}, session=s)
        ]
        return rules.drifts(tiers, buyers, by_tier, by_buyer)


def _booking_doc(request: ReserveRequest, price_cents: int) -> Doc:
    values: dict[str, Any] = rules.booking_values(request) | {"unit_price_cents": price_cents}
    doc = {"_id": values.pop("id"), **values}
    if request.idempotency_key is None:  # the unique index is partial on string keys
        doc.pop("idempotency_key")
    return doc
