"""Giving seats back and deriving counters, inside a caller's transaction (MongoDB)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from core.storage import changelog, drift, releases
from core.storage.mongo import waitlist
from core.storage.mongo.base import (
    HOLDS_SEATS,
    Doc,
    MongoBase,
    Session,
    buyer_id,
    fields_of,
    hold_expired,
    tier_id,
)
from core.storage.mongo.changes import record_changes
from core.storage.records import SYSTEM_ACTOR, Actor


async def give_back(
    base: MongoBase, s: Session, released: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Return released bookings' seats to their tiers and their buyers' counts (each mapping
    has _id, event_id, tier, owner_id, quantity and the status the booking had), their codes'
    uses to the codes (a reserving code holds its seat again), and offer what is free to the
    tiers' waiting lists."""
    release = releases.release_of(released)
    rehold = await waitlist.return_code_uses(base, s, [r["_id"] for r in released])
    for event_id, code, seats in release.tiers:
        tier = await base.tiers.find_one_and_update(
            {"_id": tier_id(event_id, code)},
            {"$inc": {"active": -seats, "blocked": rehold.get((event_id, code), 0), "version": 1}},
            session=s,
            return_document=ReturnDocument.AFTER,
        )
        if tier is not None:
            await waitlist.offer_freed(base, s, tier, now)
    for event_id, owner_id, seats, pending in release.buyers:
        await base.buyers.update_one(
            {"_id": buyer_id(event_id, owner_id)},
            {"$inc": {"active": -seats, "pending": -pending}},
            session=s,
        )


def expired_holds(now: datetime, event_id: str | None, tier: str | None) -> Doc:
    """Holds past their expiry, of one event (and tier) or of all."""
    query = hold_expired(now)
    if event_id is not None:
        query["event_id"] = event_id
    if tier is not None:
        query["tier"] = tier
    return query


async def release_expired(
    base: MongoBase, s: Session, now: datetime, event_id: str | None = None, tier: str | None = None
) -> int:
    """Mark holds past their expiry `expired` and give their seats back; how many."""
    released = await base.bookings.find(expired_holds(now, event_id, tier), session=s).to_list()
    if not released:
        return 0
    await base.bookings.update_many(
        {"_id": {"$in": [b["_id"] for b in released]}, "status": "pending"},
        {"$set": {"status": "expired", "updated_at": now}, "$inc": {"version": 1}},
        session=s,
    )
    await give_back(base, s, released, now)
    changes = [
        changelog.booking_change("expired", ended(d, "expired", now), SYSTEM_ACTOR, now)
        for d in released
    ]
    await record_changes(base, s, changes)
    orders = sorted({d["order_id"] for d in released if d.get("order_id")})
    await end_orders(base, s, orders, "expired", SYSTEM_ACTOR, now)
    return len(released)


async def release_expired_alone(
    base: MongoBase, now: datetime, event_id: str | None = None, tier: str | None = None
) -> int:
    """`release_expired` in a transaction of its own, which is skipped when a read outside
    any transaction finds no expired hold: most sweeps and refusals find none, and a
    transaction reading the bookings that a hot sale is writing would conflict with it."""
    if await base.bookings.find_one(expired_holds(now, event_id, tier), {"_id": 1}) is None:
        return 0
    return await base.tx(lambda s: release_expired(base, s, now, event_id, tier))


async def end_orders(
    base: MongoBase, s: Session, order_ids: Sequence[str], status: str, actor: Actor, now: datetime
) -> None:
    """Orders whose bookings just ended (expired, or cancelled with their event) end too."""
    if not order_ids:
        return
    match: Doc = {"_id": {"$in": list(order_ids)}, "status": {"$in": ["pending", "confirmed"]}}
    docs = await base.orders.find(match, session=s).to_list()
    if not docs:
        return
    await base.orders.update_many(
        {"_id": {"$in": [d["_id"] for d in docs]}},
        {"$set": {"status": status, "updated_at": now}, "$inc": {"version": 1}},
        session=s,
    )
    changes = [changelog.order_change(status, ended(d, status, now), actor, now) for d in docs]
    await record_changes(base, s, changes)


def ended(doc: Doc, status: str, now: datetime) -> Doc:
    """A booking document's fields after it changed to `status` at `now`."""
    return fields_of(doc, status=status, version=doc["version"] + 1, updated_at=now)


async def close_tiers(base: MongoBase, s: Session, event_id: str) -> None:
    """Take the event's tiers off sale: a booking transaction that overlaps this one writes
    the same tier documents, so one of the two aborts (and a retried booking sees the tiers
    closed)."""
    await base.tiers.update_many(
        {"event_id": event_id}, {"$set": {"on_sale": False}, "$inc": {"version": 1}}, session=s
    )


async def tallies(
    base: MongoBase, s: Session | None, match: Doc
) -> tuple[drift.Tally, drift.Tally]:
    """Seats held by the matching bookings that hold seats, per (event, tier), per (event, owner)."""
    pending = {"$sum": {"$cond": [{"$eq": ["$status", "pending"]}, "$quantity", 0]}}
    found = []
    for key in ("tier", "owner_id"):
        pipeline: list[Doc] = [
            {"$match": {**match, **HOLDS_SEATS}},
            {
                "$group": {
                    "_id": {"event_id": "$event_id", "key": f"${key}"},
                    "active": {"$sum": "$quantity"},
                    "pending": pending,
                }
            },
        ]
        found.append(
            {
                (d["_id"]["event_id"], d["_id"]["key"]): drift.Seats(
                    int(d["active"]), int(d["pending"])
                )
                async for d in await base.bookings.aggregate(pipeline, session=s)
            }
        )
    return found[0], found[1]


async def derive_counters(base: MongoBase, s: Session, event_id: str) -> None:
    """Set the event's tier and buyer counters to what its bookings hold."""
    by_tier, counted = await tallies(base, s, {"event_id": event_id})
    by_buyer = dict(counted)
    async for tier in base.tiers.find({"event_id": event_id}, session=s):
        seats = by_tier.get((event_id, tier["code"]), drift.Seats())
        await base.tiers.update_one(
            {"_id": tier["_id"]}, {"$set": {"active": seats.active}}, session=s
        )
    async for buyer in base.buyers.find({"event_id": event_id}, session=s):
        seats = by_buyer.pop((event_id, buyer["owner_id"]), drift.Seats())
        await base.buyers.update_one(
            {"_id": buyer["_id"]},
            {"$set": {"active": seats.active, "pending": seats.pending}},
            session=s,
        )
    for (_, owner_id), seats in by_buyer.items():
        await base.buyers.insert_one(
            {
                "_id": buyer_id(event_id, owner_id),
                "event_id": event_id,
                "owner_id": owner_id,
                "active": seats.active,
                "pending": seats.pending,
            },
            session=s,
        )
