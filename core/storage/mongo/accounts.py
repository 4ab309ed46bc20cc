"""Users, partners and refresh tokens on MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from core.storage.errors import Missing
from core.storage.mongo.base import Doc, MongoBase, Session, record
from core.storage.port import SpendOutcome
from core.storage.records import Partner, RefreshToken, Role, User, as_fields


def _doc(record_: Any) -> Doc:
    values = as_fields(record_)
    return {"_id": values.pop("id"), **values}


class MongoUsers(MongoBase):
    async def create(self, user: User) -> User:
        await self.write(lambda: self.users.insert_one(_doc(user)))
        return user

    async def get(self, user_id: str) -> User | None:
        d = await self.users.find_one({"_id": user_id})
        return record(User, d) if d else None

    async def get_by_email(self, email: str) -> User | None:
        d = await self.users.find_one({"email": email.lower()})
        return record(User, d) if d else None

    async def set_role(self, user_id: str, role: Role, now: datetime) -> User:
        return await self._change(user_id, now, role=role)

    async def bump_token_version(self, user_id: str, now: datetime) -> User:
        return await self._change(user_id, now)

    async def set_password(self, user_id: str, password_hash: str, now: datetime) -> User:
        d = await self.tx(lambda s: password_set(self, s, user_id, password_hash, now))
        if d is None:
            raise Missing()
        return record(User, d)

    async def _change(self, user_id: str, now: datetime, **values: Any) -> User:
        d = await self.users.find_one_and_update(
            {"_id": user_id},
            {"$set": {**values, "updated_at": now}, "$inc": {"token_version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if d is None:
            raise Missing()
        return record(User, d)


async def password_set(
    base: MongoBase, s: Session, user_id: str, password_hash: str, now: datetime
) -> Doc | None:
    """Within a transaction: the new password, every session ended (token version, refresh
    tokens); the account's document after, or None if there is no such account."""
    d = await base.users.find_one_and_update(
        {"_id": user_id},
        {
            "$set": {"password_hash": password_hash, "updated_at": now},
            "$inc": {"token_version": 1},
        },
        return_document=ReturnDocument.AFTER,
        session=s,
    )
    if d is not None:
        await base.tokens.update_many({"user_id": user_id}, {"$set": {"revoked": True}}, session=s)
    return d


class MongoPartners(MongoBase):
    async def create(self, partner: Partner) -> Partner:
        await self.write(lambda: self.partners.insert_one(_doc(partner)))
        return partner

    async def get(self, partner_id: str) -> Partner | None:
        d = await self.partners.find_one({"_id": partner_id})
        return record(Partner, d) if d else None

    async def get_by_client_id(self, client_id: str) -> Partner | None:
        d = await self.partners.find_one({"client_id": client_id})
        return record(Partner, d) if d else None

    async def find(self, *, after_id: str | None, limit: int) -> list[Partner]:
        query: Doc = {"_id": {"$gt": after_id}} if after_id is not None else {}
        docs = await self.partners.find(query).sort("_id", ASCENDING).limit(limit).to_list()
        return [record(Partner, d) for d in docs]

    async def set_secret(self, partner_id: str, secret_hash: str) -> Partner:
        d = await self.partners.find_one_and_update(
            {"_id": partner_id},
            {"$set": {"secret_hash": secret_hash}, "$inc": {"token_version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if d is None:
            raise Missing()
        return record(Partner, d)


class MongoTokens(MongoBase):
    async def add(self, token: RefreshToken) -> None:
        values = as_fields(token)
        doc = {"_id": values.pop("jti"), **values, "spent_at": None, "revoked": False}
        await self.write(lambda: self.tokens.insert_one(doc))

    async def spend(self, jti: str, now: datetime) -> SpendOutcome:
        result = await self.tokens.update_one(
            {"_id": jti, "spent_at": None, "revoked": False}, {"$set": {"spent_at": now}}
        )
        if result.modified_count:
            return "ok"
        found = await self.tokens.find_one({"_id": jti}, {"spent_at": 1})
        if found is None:
            return "unknown"
        return "revoked" if found.get("spent_at") is None else "spent"

    async def revoke_family(self, family_id: str) -> None:
        await self.tokens.update_many({"family_id": family_id}, {"$set": {"revoked": True}})
