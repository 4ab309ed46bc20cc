"""The mail outbox and password-reset tokens on MongoDB: a claim is a conditional `find_one_and_update` per message,
so two senders never lease the same one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from core.storage.attempts import mail_settled
from core.storage.mongo.accounts import password_set
from core.storage.mongo.base import Doc, MongoBase, Session, record
from core.storage.port import SpendOutcome
from core.storage.records import Attempt, Mail, ResetToken, User, as_fields

DUPLICATE_KEY = 11000


def mail_of(doc: Doc) -> Mail:
    return record(Mail, doc)


def _free(now: datetime) -> Doc:
    return {"$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}


class MongoMail(MongoBase):
    async def enqueue(self, mails: Sequence[Mail]) -> int:
        if not mails:
            return 0
        docs = [{"_id": m.id, **as_fields(m, exclude=("id",))} for m in mails]
        try:
            result = await self.mail.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
            return int(exc.details.get("nInserted", 0))
        return len(result.inserted_ids)

    async def claim(self, now: datetime, holder: str, until: datetime, limit: int) -> list[Mail]:
        due: Doc = {"status": "pending", "next_attempt_at": {"$lte": now}, **_free(now)}
        candidates = (
            await self.mail.find(due, projection={"_id": 1})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
            .to_list()
        )
        claimed: list[Mail] = []
        for candidate in candidates:
            doc = await self.mail.find_one_and_update(
                {"_id": candidate["_id"], **due},
                {"$set": {"lease_holder": holder, "lease_until": until}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                claimed.append(mail_of(doc))
        return claimed

    async def settle(self, mail_id: str, holder: str, attempt: Attempt) -> Mail | None:
        doc = await self.mail.find_one_and_update(
            {"_id": mail_id, "lease_holder": holder},
            {"$set": mail_settled(attempt), "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return mail_of(doc) if doc else None

    async def get(self, mail_id: str) -> Mail | None:
        doc = await self.mail.find_one({"_id": mail_id})
        return mail_of(doc) if doc else None

    async def find(self, *, status: str | None, before_id: str | None, limit: int) -> list[Mail]:
        match: Doc = {}
        if status is not None:
            match["status"] = status
        if before_id is not None:
            match["_id"] = {"$lt": before_id}
        cursor = self.mail.find(match).sort("_id", DESCENDING).limit(limit)
        return [mail_of(d) for d in await cursor.to_list()]


class MongoResets(MongoBase):
    async def issue(self, token: ResetToken, mail: Mail) -> None:
        doc = {"_id": token.user_id, **as_fields(token, exclude=("user_id",))}

        async def work(s: Session) -> None:
            await self.resets.replace_one({"_id": token.user_id}, doc, upsert=True, session=s)
            await self.mail.insert_one(
                {"_id": mail.id, **as_fields(mail, exclude=("id",))}, session=s
            )

        await self.tx(work)

    async def reset(
        self, token_hash: str, password_hash: str, now: datetime
    ) -> tuple[SpendOutcome, User | None]:
        async def work(s: Session) -> tuple[SpendOutcome, User | None]:
            doc = await self.resets.find_one_and_delete({"token_hash": token_hash}, session=s)
            if doc is None:
                return "unknown", None
            token = record(ResetToken, doc | {"user_id": doc["_id"]})
            if token.expires_at <= now:
                return "spent", None
            user = await password_set(self, s, token.user_id, password_hash, now)
            return ("ok", record(User, user)) if user else ("unknown", None)

        return await self.tx(work)
