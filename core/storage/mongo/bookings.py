"""Bookings on MongoDB: confirm, cancel, expiry, reads and recount (reserve: reserve.py)."""

from __future__ import annotations

from datetime import datetime

from pymongo import DESCENDING, ReturnDocument

from core.storage import changelog, drift, refusals
from core.storage.errors import DuplicateKey, NotOnSale, StorageBusy
from core.storage.mongo import claims, waitlist
from core.storage.mongo.base import (
    Doc,
    Session,
    active_at,
    buyer_id,
    fields_of,
    hold_active,
    record,
)
from core.storage.mongo.changes import record_changes
from core.storage.mongo.reserve import MongoReserving
from core.storage.mongo.seats import (
    derive_counters,
    give_back,
    release_expired_alone,
    tallies,
)
from core.storage.records import Actor, Booking, Drift, Reservation
from core.storage.requests import BookingQuery, ReserveRequest


class MongoBookings(MongoReserving):
    async def _reserve_claimed(self, request: ReserveRequest) -> Reservation:
        try:
            async with self.lanes.of(request.event_id):
                doc = await self.tx(lambda s: claims.reserve_claimed(self, s, request))
        except DuplicateKey as dup:
            if dup.field != "idempotency_key":
                raise
            existing = await self.get_by_key(request.owner_id, request.storage_key)
            if existing is None:
                raise StorageBusy("try again") from None
            return Reservation(existing, replayed=request.idempotency_key is not None)
        return Reservation(record(Booking, doc))

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

    async def _release_expired(self, now: datetime, event_id: str | None, tier: str | None) -> int:
        return await release_expired_alone(self, now, event_id, tier)

    async def _read_drifts(self) -> list[Drift]:
        return await self.tx(self._drifts, read_only=True)

    async def _repair_drifts(self) -> list[Drift]:
        async def repair(s: Session) -> list[Drift]:
            found = await self._drifts(s)
            for event_id in sorted({d.event_id for d in found}):
                await derive_counters(self, s, event_id)
            if any(" blocked" in d.counter_of or d.counter_of.startswith("code ") for d in found):
                await waitlist.repair_claims(self, s)
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
        return drift.drifts(tiers, buyers, by_tier, by_buyer) + await waitlist.claim_drifts(self, s)
