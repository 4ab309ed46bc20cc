"""Waiting lists and access codes on MongoDB, and the offer step every release of seats ends
with (the same rules as sql/waitlist.py, inside the caller's transaction: the tier document
it writes makes any overlapping transaction on the tier abort and retry)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from core.storage import changelog, drift
from core.storage.claiming import OFFER_SCAN, live_key, patched
from core.storage.errors import (
    CapacityBelowActive,
    Missing,
    NoSuchTier,
    NotOnSale,
    SeatsAvailable,
    WaitlistClosed,
)
from core.storage.mongo.base import HOLDS_SEATS, Doc, MongoBase, Session, fields_of, tier_id
from core.storage.mongo.changes import record_changes
from core.storage.records import AccessCode, Drift, WaitlistEntry, as_fields, from_fields
from core.storage.requests import CodePatch

TierKey = tuple[str, str]


def _free(tier: Mapping[str, Any]) -> int:
    return int(tier["capacity"] - tier["active"] - tier.get("blocked", 0))


async def change_blocked(
    base: MongoBase, s: Session, event_id: str, code: str, delta: int, now: datetime
) -> None:
    """Add `delta` to the tier's blocked seats (negative: they are free again, and offered)."""
    tier = await base.tiers.find_one_and_update(
        {"_id": tier_id(event_id, code)},
        {"$inc": {"blocked": delta, "version": 1}},
        session=s,
        return_document=ReturnDocument.AFTER,
    )
    if tier is not None and delta < 0:
        await offer_freed(base, s, tier, now)


async def offer_freed(base: MongoBase, s: Session, tier: Doc, now: datetime) -> None:
    """Offer the tier's free seats to its earliest waiting entries that fit, in order, and
    block them (`tier`: the tier document as this transaction just wrote it)."""
    free = _free(tier)
    if free <= 0 or not tier.get("waitlist_open", True) or not tier.get("on_sale"):
        return
    event_id, code = tier["event_id"], tier["code"]
    cursor = (
        base.waitlist.find({"event_id": event_id, "tier": code, "status": "waiting"}, session=s)
        .sort("seq", 1)
        .limit(OFFER_SCAN)
    )
    offered: list[Doc] = []
    for entry in await cursor.to_list():
        if entry["quantity"] > free:
            continue
        doc = await base.waitlist.find_one_and_update(
            {"_id": entry["_id"], "status": "waiting"},
            {
                "$set": {
                    "status": "offered",
                    "offer_expires_at": now + timedelta(seconds=entry["offer_seconds"]),
                    "updated_at": now,
                },
                "$inc": {"version": 1},
            },
            session=s,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            continue
        offered.append(doc)
        free -= entry["quantity"]
        if free == 0:
            break
    if not offered:
        return
    await base.tiers.update_one(
        {"_id": tier["_id"]},
        {"$inc": {"blocked": sum(e["quantity"] for e in offered)}},
        session=s,
    )
    await record_changes(
        base, s, [changelog.waitlist_change("offered", _public(e), now) for e in offered]
    )


async def return_code_uses(
    base: MongoBase, s: Session, booking_ids: Sequence[str]
) -> dict[TierKey, int]:
    """Give the uses of these (released) bookings back to their codes; the seats that go back
    into a reserving code's hold, per tier."""
    if not booking_ids:
        return {}
    used = await base.code_uses.find({"_id": {"$in": list(booking_ids)}}, session=s).to_list()
    if not used:
        return {}
    await base.code_uses.delete_many({"_id": {"$in": [u["_id"] for u in used]}}, session=s)
    held: dict[TierKey, int] = defaultdict(int)
    for code_id, n in sorted(Counter(u["code_id"] for u in used).items()):
        code = await base.codes.find_one_and_update(
            {"_id": code_id}, {"$inc": {"uses": -n}}, session=s
        )
        if code is not None and code["holding"]:
            held[(code["event_id"], code["tiers"][0])] += n
    return held


async def end_code_uses(base: MongoBase, s: Session, booking_ids: Sequence[str]) -> None:
    """Give ended bookings' uses back to their codes, a reserving code's seats held again
    (the event's cancellation: nothing is offered, its tiers are closed)."""
    held = await return_code_uses(base, s, booking_ids)
    for (event_id, code), seats in sorted(held.items()):
        await base.tiers.update_one(
            {"_id": tier_id(event_id, code)}, {"$inc": {"blocked": seats}}, session=s
        )


def _public(doc: Doc) -> Doc:
    return {k: v for k, v in fields_of(doc).items() if k not in ("_id", "live_key")}


def entry_of(doc: Doc) -> WaitlistEntry:
    return from_fields(WaitlistEntry, fields_of(doc))


def code_of(doc: Doc) -> AccessCode:
    return from_fields(AccessCode, fields_of(doc), tiers=tuple(doc["tiers"]))


class MongoWaitlist(MongoBase):
    async def join(self, entry: WaitlistEntry) -> WaitlistEntry:
        async def work(s: Session) -> Doc:
            tier = await self.tiers.find_one_and_update(
                {
                    "_id": tier_id(entry.event_id, entry.tier),
                    "on_sale": True,
                    "hidden": {"$ne": True},
                    "waitlist_open": {"$ne": False},
                    "$expr": {
                        "$lt": [
                            {
                                "$subtract": [
                                    "$capacity",
                                    {"$add": ["$active", {"$ifNull": ["$blocked", 0]}]},
                                ]
                            },
                            entry.quantity,
                        ]
                    },
                },
                {"$inc": {"waitlist_seq": 1}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if tier is None:
                current = await self.tiers.find_one(
                    {"_id": tier_id(entry.event_id, entry.tier)}, session=s
                )
                raise _join_refusal(current)
            doc = {
                **as_fields(entry, exclude=("id",)),
                "_id": entry.id,
                "seq": tier["waitlist_seq"],
                "live_key": live_key(entry.event_id, entry.tier, entry.owner_id),
            }
            await self.waitlist.insert_one(doc, session=s)
            return doc

        return entry_of(await self.tx(work))

    async def get(self, entry_id: str) -> WaitlistEntry | None:
        d = await self.waitlist.find_one({"_id": entry_id})
        return entry_of(d) if d else None

    async def find(
        self,
        *,
        owner_id: str | None = None,
        event_id: str | None = None,
        tier: str | None = None,
        live_only: bool = False,
        limit: int = 100,
    ) -> list[WaitlistEntry]:
        query: Doc = {
            k: v
            for k, v in (("owner_id", owner_id), ("event_id", event_id), ("tier", tier))
            if v is not None
        }
        if live_only:
            query["status"] = {"$in": ["waiting", "offered"]}
        cursor = self.waitlist.find(query).sort([("seq", 1), ("_id", 1)]).limit(limit)
        return [entry_of(d) for d in await cursor.to_list()]

    async def position(self, entry: WaitlistEntry) -> int:
        ahead = await self.waitlist.count_documents(
            {
                "event_id": entry.event_id,
                "tier": entry.tier,
                "status": "waiting",
                "seq": {"$lt": entry.seq},
            }
        )
        return ahead + 1

    async def leave(self, entry_id: str, owner_id: str, now: datetime) -> WaitlistEntry:
        async def work(s: Session) -> Doc:
            for was in ("offered", "waiting"):
                d = await self.waitlist.find_one_and_update(
                    {"_id": entry_id, "owner_id": owner_id, "status": was},
                    {
                        "$set": {"status": "left", "live_key": None, "updated_at": now},
                        "$inc": {"version": 1},
                    },
                    session=s,
                    return_document=ReturnDocument.AFTER,
                )
                if d is not None:
                    if was == "offered":
                        await change_blocked(self, s, d["event_id"], d["tier"], -d["quantity"], now)
                    return d
            raise Missing()

        return entry_of(await self.tx(work))

    async def expire(self, now: datetime) -> int:
        lapsed_offer: Doc = {"status": "offered", "offer_expires_at": {"$lte": now}}
        lapsed_code: Doc = {"holding": True, "valid_until": {"$ne": None, "$lte": now}}
        if (
            await self.waitlist.find_one(lapsed_offer, {"_id": 1}) is None
            and await self.codes.find_one(lapsed_code, {"_id": 1}) is None
        ):
            return 0

        async def work(s: Session) -> int:
            ended = await self.waitlist.find(lapsed_offer, session=s).to_list()
            freed: dict[TierKey, int] = defaultdict(int)
            changes = []
            for d in ended:
                await self.waitlist.update_one(
                    {"_id": d["_id"]},
                    {
                        "$set": {"status": "expired", "live_key": None, "updated_at": now},
                        "$inc": {"version": 1},
                    },
                    session=s,
                )
                freed[(d["event_id"], d["tier"])] += d["quantity"]
                after = d | {"status": "expired", "updated_at": now, "version": d["version"] + 1}
                changes.append(changelog.waitlist_change("expired", _public(after), now))
            await record_changes(self, s, changes)
            codes = await self.codes.find(lapsed_code, session=s).to_list()
            for c in codes:
                await self.codes.update_one(
                    {"_id": c["_id"]}, {"$set": {"holding": False, "updated_at": now}}, session=s
                )
                freed[(c["event_id"], c["tiers"][0])] += c["max_uses"] - c["uses"]
            for (event_id, code), seats in sorted(freed.items()):
                await change_blocked(self, s, event_id, code, -seats, now)
            return len(ended) + len(codes)

        return await self.tx(work)


def _join_refusal(tier: Doc | None) -> Exception:
    if tier is None or tier.get("hidden"):
        return NoSuchTier()
    if not tier.get("on_sale"):
        return NotOnSale()
    if not tier.get("waitlist_open", True):
        return WaitlistClosed()
    return SeatsAvailable(max(0, _free(tier)))


async def hold_seats(base: MongoBase, s: Session, event_id: str, code: str, seats: int) -> None:
    """Block `seats` free seats of the tier for a code, or CapacityBelowActive."""
    free_enough = {
        "$gte": [
            {"$subtract": ["$capacity", {"$add": ["$active", {"$ifNull": ["$blocked", 0]}]}]},
            seats,
        ]
    }
    tid = tier_id(event_id, code)
    done = await base.tiers.find_one_and_update(
        {"_id": tid, "$expr": free_enough},
        {"$inc": {"blocked": seats, "version": 1}},
        session=s,
    )
    if done is None:
        found = await base.tiers.find_one({"_id": tid}, session=s)
        if found is None:
            raise NoSuchTier()
        raise CapacityBelowActive(code, _free(found))


class MongoCodes(MongoBase):
    async def create(self, code: AccessCode, now: datetime) -> AccessCode:
        async def work(s: Session) -> Doc:
            if code.holding:
                await hold_seats(self, s, code.event_id, code.tiers[0], code.max_uses)
            doc = {**as_fields(code, exclude=("id",)), "_id": code.id, "tiers": list(code.tiers)}
            await self.codes.insert_one(doc, session=s)
            return doc

        return code_of(await self.tx(work))

    async def get(self, event_id: str, code_id: str) -> AccessCode | None:
        d = await self.codes.find_one({"_id": code_id, "event_id": event_id})
        return code_of(d) if d else None

    async def find(self, event_id: str) -> list[AccessCode]:
        cursor = self.codes.find({"event_id": event_id}).sort("_id", 1)
        return [code_of(d) for d in await cursor.to_list()]

    async def update(
        self, event_id: str, code_id: str, patch: CodePatch, now: datetime
    ) -> AccessCode:
        async def work(s: Session) -> Doc:
            d = await self.codes.find_one_and_update(
                {"_id": code_id, "event_id": event_id},
                {"$set": {"updated_at": now}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is None:
                raise Missing()
            current = code_of(d)
            changed = patched(current, patch, now)
            if changed.max_uses < current.uses:
                raise CapacityBelowActive("maxUses", current.uses)
            delta = changed.held - current.held
            if delta > 0:
                await hold_seats(self, s, event_id, current.tiers[0], delta)
            elif delta < 0:
                await change_blocked(self, s, event_id, current.tiers[0], delta, now)
            values = as_fields(changed, exclude=("id", "event_id", "code", "tiers", "uses"))
            await self.codes.update_one({"_id": code_id}, {"$set": values}, session=s)
            return d | values

        return code_of(await self.tx(work))


async def claim_counts(
    base: MongoBase, s: Session | None
) -> tuple[list[tuple[str, str, int]], dict[TierKey, int], list[drift.CodeCount]]:
    """The tiers' blocked counters, the seats of live offers per tier, and every code's uses
    beside the bookings holding seats with it."""
    blocked = [
        (d["event_id"], d["code"], int(d.get("blocked", 0)))
        async for d in base.tiers.find({}, session=s)
    ]
    offered: dict[TierKey, int] = defaultdict(int)
    async for e in base.waitlist.find({"status": "offered"}, session=s):
        offered[(e["event_id"], e["tier"])] += e["quantity"]
    uses = await base.code_uses.find({}, session=s).to_list()
    holding = {
        d["_id"]
        async for d in base.bookings.find(
            {"_id": {"$in": [u["_id"] for u in uses]}, **HOLDS_SEATS}, {"_id": 1}, session=s
        )
    }
    used = Counter(u["code_id"] for u in uses if u["_id"] in holding)
    codes = [
        drift.CodeCount(
            c["event_id"],
            c["code"],
            c["tiers"][0],
            c["uses"],
            used.get(c["_id"], 0),
            c["max_uses"],
            c["holding"],
        )
        async for c in base.codes.find({}, session=s)
    ]
    return blocked, dict(offered), codes


async def claim_drifts(base: MongoBase, s: Session | None) -> list[Drift]:
    return drift.claim_drifts(*await claim_counts(base, s))


async def repair_claims(base: MongoBase, s: Session) -> None:
    """Codes' uses from their bookings holding seats (stale use documents removed), tiers'
    blocked seats from their live offers and codes' holds."""
    uses = await base.code_uses.find({}, session=s).to_list()
    holding = {
        d["_id"]
        async for d in base.bookings.find(
            {"_id": {"$in": [u["_id"] for u in uses]}, **HOLDS_SEATS}, {"_id": 1}, session=s
        )
    }
    stale = [u["_id"] for u in uses if u["_id"] not in holding]
    if stale:
        await base.code_uses.delete_many({"_id": {"$in": stale}}, session=s)
    blocked, offered, codes = await claim_counts(base, s)
    for c in codes:
        if c.uses != c.used:
            await base.codes.update_one(
                {"event_id": c.event_id, "code": c.code}, {"$set": {"uses": c.used}}, session=s
            )
    want = drift.expected_blocked(offered, codes)
    for event_id, code, seats in blocked:
        if seats != want.get((event_id, code), 0):
            await base.tiers.update_one(
                {"_id": tier_id(event_id, code)},
                {"$set": {"blocked": want.get((event_id, code), 0)}},
                session=s,
            )
