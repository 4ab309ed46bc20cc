"""The atomic reserve on MongoDB, one class per variant (the table in
core/storage/reserving.py): one booking alone (`InTransaction`), or a batch of one tier's
bookings (`BatchInTransaction`).

Seats are guarded as on SQL: a conditional `$inc` on the tier document (`on_sale` and
`active + q <= capacity`) in the transaction that inserts the booking and counts the buyer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from core.metrics import CONFLICTS_RETRIED
from core.storage import changelog, key_claims, refusals, reserving, retries, sale_rows
from core.storage.errors import DuplicateKey, SoldOut, StorageBusy
from core.storage.mongo.base import Doc, MongoBase, Session, buyer_id, fields_of, record, tier_id
from core.storage.mongo.changes import record_changes
from core.storage.records import Booking, Change, Reservation, Tier, new_id, new_ticket_number
from core.storage.requests import BuyerSeats, ReserveRequest


class _NoSeats(Exception):
    """Raised inside a reserve transaction to abort it when the seats are not there."""


@dataclass(frozen=True, slots=True)
class InTransaction:
    """One booking in one transaction (at most one per event at a time in this process: the
    `lanes`), the buyer's guarded count first when a limit applies; a write conflict or a
    stale refusal retried, a taken key resolved to the booking it made."""

    base: MongoBase

    async def reserve(self, request: ReserveRequest) -> Reservation:
        base = self.base
        for attempt in range(retries.MAX_ATTEMPTS):
            try:
                async with base.lanes.of(request.event_id):
                    doc = await base.tx(lambda s: self._in_transaction(s, request))
                return Reservation(record(Booking, doc))
            except _NoSeats:
                refusal = refusals.refusal(await tier_of(base, request))
                if not isinstance(refusal, SoldOut) or refusal.available < request.quantity:
                    raise refusal from None
                # The transaction read a snapshot older than seats given back since: the
                # update lost a race, not the sale.
            except DuplicateKey as dup:
                if dup.field in ("idempotency_key", key_claims.FIELD):
                    existing = await booking_by_key(base, request.owner_id, request.storage_key)
                    if existing is not None:
                        # A key of our own (none was sent) is this request's earlier attempt.
                        return Reservation(existing, replayed=request.idempotency_key is not None)
                    await key_claims.refuse_other_kind(
                        base.key_kind, request.owner_id, request.idempotency_key, key_claims.BOOKING
                    )
                # The other writer of that key aborted (or ids collided): try again.
            CONFLICTS_RETRIED.labels("mongodb").inc()
            await retries.pause(attempt)
        raise StorageBusy("too much contention; try again")

    async def _in_transaction(self, s: Session, request: ReserveRequest) -> Doc:
        base = self.base
        if request.limited:
            await count_buyer_within_limits(base, s, request)
        tier = await take_seats(base, s, request.event_id, request.tier, request.quantity)
        if tier is None:
            raise _NoSeats()  # aborts: the buyer's count taken above is undone
        if not request.limited:
            await count_buyers(base, s, request.event_id, [request])
        doc = new_booking_doc(request, tier["price_cents"])
        await base.bookings.insert_one(doc, session=s)
        await base.claim_keys(s, key_claims.of_bookings([(request, doc["_id"])]))
        await record_changes(base, s, [_created(request, doc)])
        return doc


@dataclass(frozen=True, slots=True)
class BatchInTransaction:
    """A batch of one tier's bookings in one transaction (at most one per event at a time in
    this process: one conflict instead of one per booking)."""

    base: MongoBase

    async def reserve_batch(
        self, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Reservation] | None:
        """None when it does not fit or a key is taken, so that each request runs alone."""
        try:
            async with self.base.lanes.of(key[0]):
                docs = await self.base.tx(lambda s: self._in_transaction(s, key, requests))
        except (_NoSeats, DuplicateKey):
            return None
        return [Reservation(record(Booking, doc)) for doc in docs]

    async def _in_transaction(
        self, s: Session, key: tuple[str, str], requests: Sequence[ReserveRequest]
    ) -> list[Doc]:
        base = self.base
        event_id, code = key
        total = sum(r.quantity for r in requests)
        tier = await take_seats(base, s, event_id, code, total)
        if tier is None:
            raise _NoSeats()
        await count_buyers(base, s, event_id, requests)
        docs = [new_booking_doc(r, tier["price_cents"]) for r in requests]
        await base.bookings.insert_many(docs, session=s)
        await base.claim_keys(
            s, key_claims.of_bookings((r, d["_id"]) for r, d in zip(requests, docs, strict=True))
        )
        await record_changes(base, s, [_created(r, d) for r, d in zip(requests, docs, strict=True)])
        return docs


async def booking_by_key(base: MongoBase, owner_id: str, idempotency_key: str) -> Booking | None:
    d = await base.bookings.find_one({"owner_id": owner_id, "idempotency_key": idempotency_key})
    return record(Booking, d) if d else None


async def tier_of(base: MongoBase, request: ReserveRequest) -> Tier | None:
    d = await base.tiers.find_one({"_id": tier_id(request.event_id, request.tier)})
    return record(Tier, d) if d else None


def _created(request: ReserveRequest, doc: Doc) -> Change:
    return changelog.booking_change(
        "created", fields_of(doc), request.actor, request.now, request.change_id
    )


async def take_seats(
    base: MongoBase, s: Session, event_id: str, code: str, seats: int
) -> Doc | None:
    """The guard of the invariant: `seats` more of the tier, if it is on sale and they fit."""
    return await base.tiers.find_one_and_update(
        {
            "_id": tier_id(event_id, code),
            "on_sale": True,
            "hidden": {"$ne": True},
            "$expr": {
                "$lte": [{"$add": ["$active", {"$ifNull": ["$blocked", 0]}, seats]}, "$capacity"]
            },
        },
        {"$inc": {"active": seats, "version": 1}},
        session=s,
        return_document=ReturnDocument.AFTER,
    )


async def count_buyers(
    base: MongoBase, s: Session, event_id: str, requests: Sequence[BuyerSeats]
) -> None:
    """Add the requests' seats to their buyers' counts (no limit applies to them)."""
    for owner_id, (active, pending) in reserving.seats_by_buyer(requests):
        await base.buyers.update_one(
            {"_id": buyer_id(event_id, owner_id)},
            {
                "$inc": {"active": active, "pending": pending},
                "$setOnInsert": {"event_id": event_id, "owner_id": owner_id},
            },
            upsert=True,
            session=s,
        )


async def count_buyer_within_limits(base: MongoBase, s: Session, request: BuyerSeats) -> None:
    """Add the seats to the buyer's count only if they stay within the buyer's limits;
    BuyerLimit (and the transaction aborts) otherwise."""
    key = buyer_id(request.event_id, request.owner_id)
    who = {"event_id": request.event_id, "owner_id": request.owner_id}
    await base.buyers.update_one(
        {"_id": key}, {"$setOnInsert": {**who, "active": 0, "pending": 0}}, upsert=True, session=s
    )
    guards: list[Doc] = []
    if request.max_per_user is not None:
        guards.append({"$lte": [{"$add": ["$active", request.quantity]}, request.max_per_user]})
    if request.max_pending is not None and request.pending_quantity:
        guards.append(
            {"$lte": [{"$add": ["$pending", request.pending_quantity]}, request.max_pending]}
        )
    seats = {"active": request.quantity, "pending": request.pending_quantity}
    counted = await base.buyers.find_one_and_update(
        {"_id": key, "$expr": {"$and": guards}}, {"$inc": seats}, session=s
    )
    if counted is None:
        current = await base.buyers.find_one({"_id": key}, session=s)
        assert current is not None  # upserted above
        raise refusals.buyer_limit(request, current["active"], current["pending"])


def new_booking_doc(request: ReserveRequest, price_cents: int) -> Doc:
    """The document of a new booking: fresh `_id` and ticket number on every attempt (an
    aborted attempt's ids are never reused); the key stays the request's own."""
    values: dict[str, Any] = sale_rows.booking_values(request) | {"unit_price_cents": price_cents}
    values.pop("id")
    return {**values, "_id": new_id(), "ticket_number": new_ticket_number()}
