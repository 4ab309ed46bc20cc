"""The change log on MongoDB: appending inside the changing transaction, reading, dispatching."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from core.storage.mongo.base import Doc, MongoBase, Session, record
from core.storage.records import Actor, Change, as_fields
from core.storage.requests import ChangeQuery


def change_doc(change: Change) -> Doc:
    fields = as_fields(change, exclude=("id", "actor"))
    return {
        "_id": change.id,
        **fields,
        "actor_kind": change.actor.kind,
        "actor_id": change.actor.id,
    }


def change_of(doc: Doc) -> Change:
    return record(Change, doc, actor=Actor(doc["actor_kind"], doc["actor_id"]))


async def record_changes(base: MongoBase, s: Session, changes: Sequence[Change]) -> None:
    """Append changes inside the caller's transaction: they commit with the change or not at all."""
    if changes:
        await base.changes.insert_many([change_doc(c) for c in changes], session=s)


class MongoChanges(MongoBase):
    async def find(self, query: ChangeQuery) -> list[Change]:
        match: Doc = {
            name: value
            for name, value in (
                ("event_id", query.event_id),
                ("subject_id", query.subject_id),
                ("type", query.type),
                ("actor_id", query.actor_id),
            )
            if value is not None
        }
        occurred: dict[str, Any] = {}
        if query.occurred_from is not None:
            occurred["$gte"] = query.occurred_from
        if query.occurred_to is not None:
            occurred["$lte"] = query.occurred_to
        if occurred:
            match["occurred_at"] = occurred
        if query.before_id is not None:
            match["_id"] = {"$lt": query.before_id}
        docs = await self.changes.find(match).sort("_id", DESCENDING).limit(query.limit).to_list()
        return [change_of(d) for d in docs]

    async def undispatched(self, limit: int) -> list[Change]:
        cursor = self.changes.find({"dispatched_at": None}).sort("_id", ASCENDING).limit(limit)
        return [change_of(d) for d in await cursor.to_list()]

    async def note(self, change: Change) -> None:
        await self.changes.insert_one(change_doc(change) | {"dispatched_at": change.occurred_at})

    async def mark_dispatched(self, change_ids: Sequence[str], now: datetime) -> None:
        await self.changes.update_many(
            {"_id": {"$in": list(change_ids)}}, {"$set": {"dispatched_at": now}}
        )

    async def prune(self, before: datetime) -> int:
        return (await self.changes.delete_many({"occurred_at": {"$lt": before}})).deleted_count

    async def hold_lease(self, name: str, holder: str, until: datetime, now: datetime) -> bool:
        try:
            await self.leases.update_one(
                {"_id": name, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": holder, "until": until}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # someone else holds it: the upsert found no match and collided
        return True
