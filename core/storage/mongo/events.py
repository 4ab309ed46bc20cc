"""Events and their tiers on MongoDB: the catalogue, the status machine, availability."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from core.storage import changelog, errors, lifecycle, search
from core.storage.mongo.base import (
    HOLDS_SEATS,
    Doc,
    MongoBase,
    Session,
    active_at,
    fields_of,
    record,
    tier_id,
)
from core.storage.mongo.changes import record_changes
from core.storage.mongo.seats import (
    close_tiers,
    derive_counters,
    end_orders,
    ended,
    release_expired,
)
from core.storage.mongo.waitlist import end_code_uses, offer_freed
from core.storage.records import (
    SYSTEM_ACTOR,
    Actor,
    Event,
    EventStatus,
    Tier,
    TierCount,
    as_fields,
    hold_active,
)
from core.storage.requests import EventQuery, TierPatch


class MongoEvents(MongoBase):
    async def create(self, event: Event, actor: Actor) -> Event:
        async def work(s: Session) -> None:
            await self.events.insert_one(_event_doc(event), session=s)
            change = changelog.event_change("created", event, actor, event.created_at)
            await record_changes(self, s, [change])
            on_sale = event.status == "published"
            docs = [_tier_doc(event.id, tier, pos, on_sale) for pos, tier in enumerate(event.tiers)]
            await self.tiers.insert_many(docs, session=s)

        await self.tx(work)
        return event

    async def get(self, event_id: str, *, include_deleted: bool = False) -> Event | None:
        return await self._get(None, event_id, include_deleted)

    async def _get(
        self, s: Session | None, event_id: str, include_deleted: bool = False
    ) -> Event | None:
        query: Doc = {"_id": event_id}
        if not include_deleted:
            query["deleted_at"] = None
        d = await self.events.find_one(query, session=s)
        if d is None:
            return None
        return record(Event, d, tiers=tuple((await self._tiers(s, [event_id]))[event_id]))

    async def _changed(
        self, s: Session, event_id: str, what: str, actor: Actor, now: datetime
    ) -> Event:
        """The event after a change in this transaction, its change recorded."""
        event = await self._get(s, event_id, include_deleted=True)
        assert event is not None  # changed in this transaction
        await record_changes(self, s, [changelog.event_change(what, event, actor, now)])
        return event

    async def _tiers(self, s: Session | None, event_ids: list[str]) -> dict[str, list[Tier]]:
        found: dict[str, list[Tier]] = defaultdict(list)
        cursor = self.tiers.find({"event_id": {"$in": event_ids}}, session=s).sort(
            "position", ASCENDING
        )
        async for d in cursor:
            found[d["event_id"]].append(record(Tier, d))
        return found

    async def find(self, query: EventQuery) -> list[Event]:
        match: Doc = {"deleted_at": None, "status": {"$in": list(query.statuses)}}
        if query.owner_id:
            match["owner_id"] = query.owner_id
        starts: Doc = {}
        if query.starts_from:
            starts["$gte"] = query.starts_from
        if query.starts_to:
            starts["$lte"] = query.starts_to
        if starts:
            match["starts_at"] = starts
        if query.text:
            words = search.search_words(query.text)
            if not words:
                return []
            match["$text"] = {"$search": " ".join(f'"{w}"' for w in words)}
            order: Any = [("score", {"$meta": "textScore"}), ("_id", ASCENDING)]
            cursor = self.events.find(match).sort(order).skip(query.offset)
        else:
            if query.after_id:
                match["_id"] = {"$gt": query.after_id}
            cursor = self.events.find(match).sort("_id", ASCENDING)
        docs = await cursor.limit(query.limit).to_list()
        tiers = await self._tiers(None, [d["_id"] for d in docs])
        return [record(Event, d, tiers=tuple(tiers[d["_id"]])) for d in docs]

    async def update(
        self,
        event_id: str,
        *,
        expected_version: int | None,
        fields: dict[str, Any],
        tiers: Sequence[TierPatch],
        now: datetime,
        actor: Actor,
    ) -> Event:
        async def work(s: Session) -> Event:
            match: Doc = {"_id": event_id, "deleted_at": None}
            if expected_version is not None:
                match["version"] = expected_version
            d = await self.events.find_one_and_update(
                match,
                {"$set": {**fields, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
                return_document=ReturnDocument.AFTER,
            )
            if d is None:
                current = await self._get(s, event_id)
                if current is None:
                    raise errors.Missing()
                raise errors.VersionMismatch(current.version)
            for patch in tiers:
                await self._patch_tier(s, event_id, patch, d["status"] == "published", now)
            return await self._changed(s, event_id, "updated", actor, now)

        return await self.tx(work)

    async def _patch_tier(
        self, s: Session, event_id: str, patch: TierPatch, on_sale: bool, now: datetime
    ) -> None:
        tid = tier_id(event_id, patch.code)
        if await self.tiers.find_one({"_id": tid}, {"_id": 1}, session=s) is None:
            position = await self.tiers.count_documents({"event_id": event_id}, session=s)
            tier = Tier(
                patch.code,
                patch.name or patch.code,
                patch.price_cents or 0,
                patch.capacity or 0,
                hidden=bool(patch.hidden),
                waitlist_open=patch.waitlist_open is not False,
            )
            await self.tiers.insert_one(_tier_doc(event_id, tier, position, on_sale), session=s)
            return
        named = (
            ("name", patch.name),
            ("price_cents", patch.price_cents),
            ("hidden", patch.hidden),
            ("waitlist_open", patch.waitlist_open),
        )
        changes: Doc = {k: v for k, v in named if v is not None}
        match: Doc = {"_id": tid}
        inc: Doc = {}
        if patch.capacity is not None:
            await release_expired(self, s, now, event_id, patch.code)
            changes["capacity"] = patch.capacity
            # one update: check and write (seats blocked for offers and codes count too)
            match["$expr"] = {
                "$lte": [{"$add": ["$active", {"$ifNull": ["$blocked", 0]}]}, patch.capacity]
            }
            inc = {"$inc": {"version": 1}}
        if not changes:
            return
        tier_doc = await self.tiers.find_one_and_update(
            match, {"$set": changes, **inc}, session=s, return_document=ReturnDocument.AFTER
        )
        if tier_doc is None:
            current = await self.tiers.find_one({"_id": tid}, session=s)
            taken = current["active"] + current.get("blocked", 0) if current else 0
            raise errors.CapacityBelowActive(patch.code, taken)
        if patch.capacity is not None or patch.waitlist_open:
            await offer_freed(self, s, tier_doc, now)

    async def transition(
        self,
        event_id: str,
        allowed_from: Sequence[EventStatus],
        to: EventStatus,
        now: datetime,
        actor: Actor,
    ) -> Event:
        async def work(s: Session) -> Event:
            result = await self.events.update_one(
                {"_id": event_id, "deleted_at": None, "status": {"$in": list(allowed_from)}},
                {"$set": {"status": to, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
            )
            if result.matched_count == 0:
                current = await self._get(s, event_id)
                if current is None:
                    raise errors.Missing()
                raise errors.InvalidTransition(current.status)
            await lifecycle.transitioned(self, s, event_id, to, now, actor)
            return await self._changed(s, event_id, to, actor, now)

        return await self.tx(work)

    # The steps of core/storage/lifecycle.py.

    async def open_sales(self, tx: Session, event_id: str) -> None:
        await self.tiers.update_many(
            {"event_id": event_id}, {"$set": {"on_sale": True}}, session=tx
        )

    async def close_sales(self, tx: Session, event_id: str) -> None:
        await close_tiers(self, tx, event_id)

    async def recount_tiers(self, tx: Session, event_id: str) -> None:
        await derive_counters(self, tx, event_id)

    async def release_lapsed(self, tx: Session, event_id: str, now: datetime) -> None:
        await release_expired(self, tx, now, event_id)

    async def has_holdings(self, tx: Session, event_id: str) -> bool:
        held = await self.bookings.find_one(
            {"event_id": event_id, **HOLDS_SEATS}, {"_id": 1}, session=tx
        )
        return held is not None

    async def end_holdings(self, s: Session, event_id: str, now: datetime, actor: Actor) -> None:
        holding = await self.bookings.find(
            {"event_id": event_id, **HOLDS_SEATS}, session=s
        ).to_list()
        ends: dict[str, list[Doc]] = {"expired": [], "cancelled": []}
        for d in holding:
            lapsed = d["status"] == "pending" and not hold_active(
                d["status"], fields_of(d)["expires_at"], now
            )
            ends["expired" if lapsed else "cancelled"].append(d)
        changes = []
        for status, docs in ends.items():
            if not docs:
                continue
            await self.bookings.update_many(
                {"_id": {"$in": [d["_id"] for d in docs]}},
                {"$set": {"status": status, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
            )
            who = SYSTEM_ACTOR if status == "expired" else actor
            changes += [
                changelog.booking_change(status, ended(d, status, now), who, now) for d in docs
            ]
        await record_changes(self, s, changes)
        await end_code_uses(self, s, [d["_id"] for d in holding])
        for status, docs in ends.items():
            who = SYSTEM_ACTOR if status == "expired" else actor
            orders = sorted({d["order_id"] for d in docs if d.get("order_id")})
            await end_orders(self, s, orders, status, who, now)

    async def soft_delete(self, event_id: str, now: datetime, actor: Actor) -> None:
        async def work(s: Session) -> None:
            deleted = await self.events.update_one(
                {"_id": event_id, "deleted_at": None},
                {"$set": {"deleted_at": now, "updated_at": now}, "$inc": {"version": 1}},
                session=s,
            )
            if deleted.matched_count == 0:
                raise errors.Missing()
            await lifecycle.deleting(self, s, event_id, now)
            await self._changed(s, event_id, "deleted", actor, now)

        await self.tx(work)

    async def availability(self, event_id: str, now: datetime) -> list[TierCount]:
        pending = {"$sum": {"$cond": [{"$eq": ["$status", "pending"]}, "$quantity", 0]}}
        confirmed = {"$sum": {"$cond": [{"$eq": ["$status", "confirmed"]}, "$quantity", 0]}}
        pipeline: list[Doc] = [
            {"$match": {"event_id": event_id, **active_at(now)}},
            {"$group": {"_id": "$tier", "pending": pending, "confirmed": confirmed}},
        ]
        counts = {d["_id"]: d async for d in await self.bookings.aggregate(pipeline)}
        tiers = (await self._tiers(None, [event_id]))[event_id]
        return [
            TierCount(
                t.code,
                t.capacity,
                int(counts.get(t.code, {}).get("pending", 0)),
                int(counts.get(t.code, {}).get("confirmed", 0)),
                blocked=t.blocked,
                hidden=t.hidden,
            )
            for t in tiers
        ]


def _event_doc(event: Event) -> Doc:
    return {"_id": event.id, **as_fields(event, exclude=("id", "tiers"))}


def _tier_doc(event_id: str, tier: Tier, position: int, on_sale: bool) -> Doc:
    new = {"active": 0, "version": 0, "on_sale": on_sale, "position": position}
    return {"_id": tier_id(event_id, tier.code), "event_id": event_id, **as_fields(tier), **new}
