"""A booking with an access code or a waiting-list offer, as one MongoDB transaction (the
same steps as sql/claims.py: the offer or the code's use, a limited buyer's count, the tier's
seats with the blocked ones the claim kept taken first, the booking, its change)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument

from core.storage import changelog, claiming, key_claims, refusals
from core.storage.errors import ClaimRefused, DuplicateKey, StorageBusy
from core.storage.mongo.base import Doc, MongoBase, Session, fields_of, record, tier_id
from core.storage.mongo.changes import record_changes
from core.storage.mongo.reserve import (
    booking_by_key,
    count_buyer_within_limits,
    count_buyers,
    new_booking_doc,
)
from core.storage.records import Booking, Reservation, Tier
from core.storage.requests import ReserveRequest


@dataclass(frozen=True, slots=True)
class Claimed:
    """A booking with an access code or a waiting-list offer: the use or the offer, then the
    seats and the booking, in one transaction (in the event's lane); never batched."""

    base: MongoBase

    async def reserve(self, request: ReserveRequest) -> Reservation:
        base = self.base
        try:
            async with base.lanes.of(request.event_id):
                doc = await base.tx(lambda s: reserve_claimed(base, s, request))
        except DuplicateKey as dup:
            if dup.field not in ("idempotency_key", key_claims.FIELD):
                raise
            existing = await booking_by_key(base, request.owner_id, request.storage_key)
            if existing is None:
                await key_claims.refuse_other_kind(
                    base.key_kind, request.owner_id, request.idempotency_key, key_claims.BOOKING
                )
                raise StorageBusy("try again") from None
            return Reservation(existing, replayed=request.idempotency_key is not None)
        return Reservation(record(Booking, doc))


async def reserve_claimed(base: MongoBase, s: Session, request: ReserveRequest) -> Doc:
    take, discount, code_id = 0, 0, None
    if request.waitlist_entry_id is not None:
        take += await _take_offer(base, s, request)
    if request.access_code is not None:
        code = await _use_code(base, s, request)
        take += 1 if code["holding"] else 0
        discount, code_id = code["discount_percent"], code["_id"]
    if request.limited:
        await count_buyer_within_limits(base, s, request)
    unlocked = code_id is not None or request.waitlist_entry_id is not None
    match: Doc = {
        "_id": tier_id(request.event_id, request.tier),
        "on_sale": True,
        "$expr": {
            "$lte": [
                {"$add": ["$active", {"$ifNull": ["$blocked", 0]}, request.quantity - take]},
                "$capacity",
            ]
        },
    }
    if not unlocked:
        match["hidden"] = {"$ne": True}
    tier = await base.tiers.find_one_and_update(
        match,
        {"$inc": {"active": request.quantity, "blocked": -take, "version": 1}},
        session=s,
        return_document=ReturnDocument.AFTER,
    )
    if tier is None:
        current = await base.tiers.find_one(
            {"_id": tier_id(request.event_id, request.tier)}, session=s
        )
        raise refusals.refusal(record(Tier, current) if current else None, unlocked=unlocked)
    if not request.limited:
        await count_buyers(base, s, request.event_id, [request])
    doc = new_booking_doc(request, claiming.discounted(tier["price_cents"], discount))
    await base.bookings.insert_one(doc, session=s)
    await base.claim_keys(s, key_claims.of_bookings([(request, doc["_id"])]))
    if code_id is not None:
        await base.code_uses.insert_one({"_id": doc["_id"], "code_id": code_id}, session=s)
    if request.waitlist_entry_id is not None:
        await base.waitlist.update_one(
            {"_id": request.waitlist_entry_id}, {"$set": {"booking_id": doc["_id"]}}, session=s
        )
    change = changelog.booking_change(
        "created", fields_of(doc), request.actor, request.now, request.change_id
    )
    await record_changes(base, s, [change])
    return doc


async def _take_offer(base: MongoBase, s: Session, request: ReserveRequest) -> int:
    mine: Doc = {
        "_id": request.waitlist_entry_id,
        "owner_id": request.owner_id,
        "event_id": request.event_id,
        "tier": request.tier,
    }
    d = await base.waitlist.find_one_and_update(
        mine
        | {
            "status": "offered",
            "offer_expires_at": {"$gt": request.now},
            "quantity": request.quantity,
        },
        {
            "$set": {"status": "booked", "live_key": None, "updated_at": request.now},
            "$inc": {"version": 1},
        },
        session=s,
    )
    if d is not None:
        return int(d["quantity"])
    found = await base.waitlist.find_one(mine, session=s)
    raise claiming.offer_refusal(fields_of(found) if found else None, request)


async def _use_code(base: MongoBase, s: Session, request: ReserveRequest) -> Any:
    now = request.now
    named: Doc = {"event_id": request.event_id, "code": request.access_code}
    d = await base.codes.find_one_and_update(
        named
        | {
            "enabled": True,
            "$expr": {"$lt": ["$uses", "$max_uses"]},
            "$and": [
                {"$or": [{"valid_from": None}, {"valid_from": {"$lte": now}}]},
                {"$or": [{"valid_until": None}, {"valid_until": {"$gt": now}}]},
            ],
        },
        {"$inc": {"uses": 1}, "$set": {"updated_at": now}},
        session=s,
        return_document=ReturnDocument.AFTER,
    )
    if d is None:
        found = await base.codes.find_one(named, session=s)
        raise claiming.code_refusal(fields_of(found) if found else None, now)
    if request.tier not in d["tiers"]:
        raise ClaimRefused("code_other_tier")
    return d
