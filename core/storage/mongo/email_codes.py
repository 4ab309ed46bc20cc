"""Email codes on MongoDB: one document per account and purpose (`<user>/<purpose>`); an
attempt is a guarded `$inc` per code, a use one transaction."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument

from core.storage.mongo.base import Doc, MongoBase, Session, record
from core.storage.records import EmailCode, Mail, User, as_fields


def code_of(doc: Doc) -> EmailCode:
    return record(EmailCode, doc)


def code_id(code: EmailCode) -> str:
    return f"{code.user_id}/{code.purpose}"


class MongoEmailCodes(MongoBase):
    async def issue(self, code: EmailCode, mail: Mail) -> None:
        doc = {"_id": code_id(code), **as_fields(code)}

        async def work(s: Session) -> None:
            await self.email_codes.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=s)
            await self.mail.insert_one(
                {"_id": mail.id, **as_fields(mail, exclude=("id",))}, session=s
            )

        await self.tx(work)

    async def attempt(self, email: str, now: datetime, max_attempts: int) -> list[EmailCode]:
        live: Doc = {
            "email": email,
            "attempts": {"$lt": max_attempts},
            "expires_at": {"$gt": now},
        }
        counted = []
        for candidate in await self.email_codes.find(live, {"_id": 1}).to_list():
            doc = await self.email_codes.find_one_and_update(
                {"_id": candidate["_id"], **live},
                {"$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                counted.append(code_of(doc))
        return counted

    async def find(self, email: str) -> list[EmailCode]:
        return [code_of(d) for d in await self.email_codes.find({"email": email}).to_list()]

    async def use(self, code: EmailCode, now: datetime, mail: Mail | None) -> User | None:
        account: Doc = {"_id": code.user_id}
        if code.purpose == "verify":
            account["email"] = code.email

        async def work(s: Session) -> User | None:
            spent = await self.email_codes.delete_one(
                {"_id": code_id(code), "code_hash": code.code_hash}, session=s
            )
            if not spent.deleted_count:
                return None
            d = await self.users.find_one_and_update(
                account,
                {"$set": {"email": code.email, "email_verified_at": now, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
                session=s,
            )
            if d is None:
                return None
            if mail is not None:
                await self.mail.insert_one(
                    {"_id": mail.id, **as_fields(mail, exclude=("id",))}, session=s
                )
            return record(User, d)

        return await self.tx(work)
