"""Bookings on MongoDB once they exist: confirm, cancel and reads (reserve: reserve.py; the
sweep: seats.py; the recount: recount.py; assembled in mongo/__init__.py)."""

from __future__ import annotations

from datetime import datetime

from pymongo import DESCENDING, ReturnDocument

from core.storage import changelog, refusals
from core.storage.errors import NotOnSale
from core.storage.mongo.base import (
    Doc,
    MongoBase,
    Session,
    active_at,
    buyer_id,
    fields_of,
    hold_active,
    record,
)
from core.storage.mongo.changes import record_changes
from core.storage.mongo.reserve import booking_by_key
from core.storage.mongo.seats import give_back
from core.storage.records import Actor, Booking
from core.storage.requests import BookingQuery


class MongoBookings(MongoBase):
    async def confirm(self, booking_id: str, owner_id: str, now: datetime, actor: Actor) -> Booking:
        async def work(s: Session) -> Doc | None:
            d = await self.bookings.find_one_and_update(
                {
                    "_id": booking_id,
                    "owner_id": owner_id,
                    **hold_active(now),
                    "order_id": None,
                },
                {
                    "$set": {"status": "confirmed", "expires_at": None, "updated_at": now},
                    "$inc": {"version": 1},
                },
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is not None:
                if await self.started(d["event_id"], now, s):
                    raise NotOnSale()  # aborts the transaction: the confirmation never happened
                await self.buyers.update_one(
                    {"_id": buyer_id(d["event_id"], d["owner_id"])},
                    {"$inc": {"pending": -d["quantity"]}},
                    session=s,
                )
                change = changelog.booking_change("confirmed", fields_of(d), actor, now)
                await record_changes(self, s, [change])
            return d

        d = await self.tx(work)
        if d is not None:
            return record(Booking, d)
        raise await refusals.confirmation_refused(self.get, self.started, booking_id, owner_id, now)

    async def cancel(
        self, booking_id: str, owner_id: str | None, now: datetime, actor: Actor
    ) -> Booking:
        mine: Doc = {"_id": booking_id, "order_id": None}
        if owner_id is not None:
            mine["owner_id"] = owner_id
        # Two guarded updates rather than a read and a write: each says what the booking was.
        was: dict[str, Doc] = {
            "pending": hold_active(now),
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
                    await give_back(self, s, [d | {"status": status}], now)
                    change = changelog.booking_change("cancelled", fields_of(d), actor, now)
                    await record_changes(self, s, [change])
                    return d
            return None

        d = await self.tx(work)
        if d is not None:
            return record(Booking, d)
        raise refusals.not_cancelled(await self.get(booking_id), owner_id)

    async def get(self, booking_id: str) -> Booking | None:
        d = await self.bookings.find_one({"_id": booking_id})
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

    async def get_by_key(self, owner_id: str, idempotency_key: str) -> Booking | None:
        return await booking_by_key(self, owner_id, idempotency_key)
