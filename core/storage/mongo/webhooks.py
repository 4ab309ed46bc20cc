"""Webhook endpoints and their deliveries on MongoDB: a claim is a conditional
`find_one_and_update` per delivery, so two dispatchers never lease the same one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from core.storage.attempts import delivery_settled
from core.storage.errors import InvalidTransition, Missing
from core.storage.mongo.base import Doc, MongoBase, record
from core.storage.records import Attempt, Delivery, Webhook, as_fields

DUPLICATE_KEY = 11000
CANDIDATES_PER_CLAIM = 10
"""Due deliveries looked at per one claimed: some wait behind an earlier one of their subject."""


def webhook_of(doc: Doc) -> Webhook:
    return record(Webhook, doc, events=tuple(doc["events"]))


def delivery_of(doc: Doc) -> Delivery:
    return record(Delivery, doc)


def _doc(value: Webhook | Delivery) -> Doc:
    fields = as_fields(value, exclude=("id",))
    if isinstance(value, Webhook):
        fields["events"] = list(value.events)
    return {"_id": value.id, **fields}


def _free(now: datetime) -> Doc:
    return {"$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}


class MongoWebhooks(MongoBase):
    async def create(self, webhook: Webhook) -> Webhook:
        await self.write(lambda: self.webhooks.insert_one(_doc(webhook)))
        return webhook

    async def get(self, webhook_id: str) -> Webhook | None:
        doc = await self.webhooks.find_one({"_id": webhook_id})
        return webhook_of(doc) if doc else None

    async def find(
        self, *, owner_id: str | None, after_id: str | None, limit: int
    ) -> list[Webhook]:
        match: Doc = {}
        if owner_id is not None:
            match["owner_id"] = owner_id
        if after_id is not None:
            match["_id"] = {"$gt": after_id}
        docs = await self.webhooks.find(match).sort("_id", ASCENDING).limit(limit).to_list()
        return [webhook_of(d) for d in docs]

    async def enabled(self) -> list[Webhook]:
        return [webhook_of(d) for d in await self.webhooks.find({"enabled": True}).to_list()]

    async def update(self, webhook_id: str, fields: dict[str, Any], now: datetime) -> Webhook:
        values = dict(fields, updated_at=now)
        if "events" in values:
            values["events"] = list(values["events"])
        doc = await self.webhooks.find_one_and_update(
            {"_id": webhook_id}, {"$set": values}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise Missing()
        return webhook_of(doc)

    async def delete(self, webhook_id: str) -> None:
        if not (await self.webhooks.delete_one({"_id": webhook_id})).deleted_count:
            raise Missing()
        await self.webhook_deliveries.delete_many({"webhook_id": webhook_id})

    async def note_outcome(self, webhook_id: str, ok: bool, now: datetime) -> Webhook | None:
        if ok:
            update: Any = {"$set": {"failing_since": None}}
        else:  # keep the first failure's time: a pipeline update reads the current value
            update = [{"$set": {"failing_since": {"$ifNull": ["$failing_since", now]}}}]
        doc = await self.webhooks.find_one_and_update(
            {"_id": webhook_id}, update, return_document=ReturnDocument.AFTER
        )
        return webhook_of(doc) if doc else None

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        try:
            result = await self.webhook_deliveries.insert_many(
                [_doc(d) for d in deliveries], ordered=False
            )
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(result.inserted_ids)

    async def claim(
        self,
        now: datetime,
        holder: str,
        until: datetime,
        limit: int,
        delivery_id: str | None = None,
    ) -> list[Delivery]:
        due: Doc = {"status": "pending", "next_attempt_at": {"$lte": now}, **_free(now)}
        if delivery_id is not None:
            due["_id"] = delivery_id
        candidates = (
            await self.webhook_deliveries.find(due)
            .sort("next_attempt_at", ASCENDING)
            .limit(limit * CANDIDATES_PER_CLAIM)
            .to_list()
        )
        claimed: list[Delivery] = []
        for candidate in candidates:
            if len(claimed) >= limit:
                break
            earlier = await self.webhook_deliveries.find_one(
                {
                    "webhook_id": candidate["webhook_id"],
                    "subject_id": candidate["subject_id"],
                    "status": "pending",
                    "seq": {"$lt": candidate["seq"]},
                },
                projection={"_id": 1},
            )
            if earlier is not None:
                continue  # it waits for the earlier change of its subject
            doc = await self.webhook_deliveries.find_one_and_update(
                {"_id": candidate["_id"], "status": "pending", **_free(now)},
                {"$set": {"lease_holder": holder, "lease_until": until}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                claimed.append(delivery_of(doc))
        return claimed

    async def settle(self, delivery_id: str, holder: str, attempt: Attempt) -> Delivery | None:
        doc = await self.webhook_deliveries.find_one_and_update(
            {"_id": delivery_id, "lease_holder": holder},
            {"$set": delivery_settled(attempt), "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return delivery_of(doc) if doc else None

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        doc = await self.webhook_deliveries.find_one({"_id": delivery_id})
        return delivery_of(doc) if doc else None

    async def deliveries(
        self, webhook_id: str, *, before_id: str | None, limit: int
    ) -> list[Delivery]:
        match: Doc = {"webhook_id": webhook_id}
        if before_id is not None:
            match["_id"] = {"$lt": before_id}
        cursor = self.webhook_deliveries.find(match).sort("_id", DESCENDING).limit(limit)
        return [delivery_of(d) for d in await cursor.to_list()]

    async def retry(
        self, webhook_id: str, delivery_id: str, now: datetime, retry_until: datetime
    ) -> Delivery:
        mine = {"_id": delivery_id, "webhook_id": webhook_id}
        doc = await self.webhook_deliveries.find_one_and_update(
            {**mine, "status": {"$ne": "pending"}},
            {"$set": {"status": "pending", "next_attempt_at": now, "retry_until": retry_until}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return delivery_of(doc)
        if await self.webhook_deliveries.find_one(mine, projection={"_id": 1}) is None:
            raise Missing()
        raise InvalidTransition("pending")
